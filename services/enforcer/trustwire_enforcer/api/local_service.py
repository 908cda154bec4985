"""``EnforcerLocalService`` over the local API: protobuf in, domain call, protobuf out.

Authorization by the kernel-reported caller: adding and removing network-namespace PUs takes
root (it installs kernel rules in another namespace); reading is open to whoever can open the
socket (its mode already restricts that to root).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from trustwire.api.enforcer.v1 import enforcer_local_service_pb2 as local_pb
from trustwire.api.policy.v1 import enforcer_pb2
from trustwire.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from trustwire_enforcer.api.convert import (
    fail_mode_from_pb,
    protocol_from_pb,
    pu_to_pb,
    timestamp,
)
from trustwire_enforcer.local_api import Caller, Handler
from trustwire_enforcer.policy_state import AppliedPolicy
from trustwire_enforcer.pus import LocalPus, PuRequest

__all__ = ["EnforcerFacts", "local_handlers"]

VERSION = "0.1.0"


@dataclass(frozen=True)
class EnforcerFacts:
    enforcer_id: str
    trust_domain: str
    policy_connected: bool
    applied_revision: int
    certificate_not_after: datetime
    started_at: datetime


def _require_root(caller: Caller, what: str) -> None:
    if not caller.is_root:
        raise PermissionDenied(
            f"{what} needs root (caller uid {caller.uid})", reason="LOCAL_CALLER_NOT_ROOT"
        )


def local_handlers(
    pus: LocalPus,
    policy: Callable[[], AppliedPolicy | None],
    facts: Callable[[], EnforcerFacts],
) -> dict[str, Handler]:
    async def add_pu(caller: Caller, body: bytes) -> bytes:
        _require_root(caller, "AddPu")
        request = local_pb.AddPuRequest.FromString(body)
        if request.WhichOneof("target") != "netns_path":
            raise FailedPrecondition(
                "only network-namespace PUs (netns_path) are supported yet",
                reason="UNIMPLEMENTED",
            )
        ports = tuple(
            (p.name, protocol_from_pb(p.protocol, f"ports[{i}].protocol").value, p.number)
            for i, p in enumerate(request.ports)
        )
        if any(not 1 <= number <= 65535 for _, _, number in ports):
            raise InvalidArgument("ports: numbers are 1..65535", field="ports")
        pu = await pus.add(
            PuRequest(
                netns=request.netns_path,
                namespace=request.namespace,
                labels=dict(request.labels),
                name=request.name,
                ports=ports,
                fail_mode=fail_mode_from_pb(request.fail_mode),
            )
        )
        return local_pb.AddPuResponse(pu=pu_to_pb(pu, pus.enforcer_id)).SerializeToString()

    async def remove_pu(caller: Caller, body: bytes) -> bytes:
        _require_root(caller, "RemovePu")
        request = local_pb.RemovePuRequest.FromString(body)
        if not request.pu_id:
            raise InvalidArgument("pu_id is required", field="pu_id")
        await pus.remove(request.pu_id)
        return local_pb.RemovePuResponse().SerializeToString()

    async def list_pus(caller: Caller, body: bytes) -> bytes:
        applied = policy()
        response = local_pb.ListPusResponse()
        for pu in pus.all():
            local = response.pus.add()
            local.pu.CopyFrom(pu_to_pb(pu, pus.enforcer_id))
            error = pus.last_errors.get(pu.pu_id)
            if error:
                local.state = local_pb.LOCAL_PU_STATE_FAILED
                local.last_error.message = error
            elif applied is not None and applied.pu(pu.pu_id) is not None and pu.document:
                local.state = local_pb.LOCAL_PU_STATE_ENFORCED
                local.applied_revision = applied.revision
            else:
                local.state = local_pb.LOCAL_PU_STATE_PENDING
        return response.SerializeToString()

    async def status(caller: Caller, body: bytes) -> bytes:
        now = facts()
        return local_pb.StatusResponse(
            enforcer_id=now.enforcer_id,
            trust_domain=now.trust_domain,
            version=VERSION,
            datapath=enforcer_pb2.DATAPATH_PROXY,
            policy_connected=now.policy_connected,
            applied_revision=now.applied_revision,
            certificate_not_after=timestamp(now.certificate_not_after),
            pu_count=len(pus.all()),
            started_at=timestamp(now.started_at),
        ).SerializeToString()

    async def prepare_run(caller: Caller, body: bytes) -> bytes:
        raise FailedPrecondition(
            "process PUs (trustwire run) are not implemented yet", reason="UNIMPLEMENTED"
        )

    return {
        "AddPu": add_pu,
        "RemovePu": remove_pu,
        "ListPus": list_pus,
        "Status": status,
        "PrepareRun": prepare_run,
    }
