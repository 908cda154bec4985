"""``EnforcerLocalService`` over the local API: protobuf in, domain call, protobuf out.

Authorization by the kernel-reported caller, from :data:`LOCAL_AUTHORIZATION` (every method of
the service has an entry; an unlisted one is refused): adding network-namespace PUs takes root
(it installs kernel rules in another namespace); ``trustwire run`` (``PrepareRun``,
``StartRun``) is open to any caller, who can only run a process as itself (``StartRun``
checks the process is the caller's child and runs under the caller's uid); ``RemovePu`` takes
root or the owner of a process PU; reading is open to whoever can open the socket (its mode
already restricts that to root).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from trustwire.api.enforcer.v1 import enforcer_local_service_pb2 as local_pb
from trustwire.api.policy.v1 import enforcer_pb2
from trustwire.api.policy.v1 import processing_unit_pb2 as pu_pb
from trustwire.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from trustwire_enforcer.api.convert import (
    fail_mode_from_pb,
    local_pu_to_pb,
    protocol_from_pb,
    pu_to_pb,
    timestamp,
)
from trustwire_enforcer.local_api import Caller, Handler
from trustwire_enforcer.metrics import pu_state
from trustwire_enforcer.policy_state import AppliedPolicy
from trustwire_enforcer.pus import LocalPus, PuRequest, RunRequest
from trustwire_enforcer.state_files import StoredPu

__all__ = ["LOCAL_AUTHORIZATION", "Access", "EnforcerFacts", "local_handlers"]


class Access(enum.Enum):
    ROOT = "root"  # uid 0 only
    ANY = "any"  # any caller who can open the socket; the handler checks ownership
    ROOT_OR_OWNER = "root_or_owner"  # root, or the uid a process PU runs as


# Keyed by the method names of EnforcerLocalService (tests check every rpc has an entry).
LOCAL_AUTHORIZATION: dict[str, Access] = {
    "AddPu": Access.ROOT,
    "RemovePu": Access.ROOT_OR_OWNER,
    "ListPus": Access.ANY,
    "Status": Access.ANY,
    "PrepareRun": Access.ANY,
    "StartRun": Access.ANY,
}

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


def _ports(ports: Iterable[pu_pb.NamedPort]) -> tuple[tuple[str, str, int], ...]:
    out = tuple(
        (p.name, protocol_from_pb(p.protocol, f"ports[{i}].protocol").value, p.number)
        for i, p in enumerate(ports)
    )
    if any(not 1 <= number <= 65535 for _, _, number in out):
        raise InvalidArgument("ports: numbers are 1..65535", field="ports")
    return out


def _authorized(method: str, handler: Handler) -> Handler:
    """The table's check in front of the handler (default deny for a method not listed)."""
    access = LOCAL_AUTHORIZATION.get(method)

    async def checked(caller: Caller, body: bytes) -> bytes:
        if access is None:
            raise PermissionDenied(f"{method} is not authorized", reason="LOCAL_METHOD_DENIED")
        if access is Access.ROOT:
            _require_root(caller, method)
        return await handler(caller, body)

    return checked


def local_handlers(
    pus: LocalPus,
    policy: Callable[[], AppliedPolicy | None],
    facts: Callable[[], EnforcerFacts],
) -> dict[str, Handler]:
    def state_of(pu: StoredPu, local: local_pb.LocalPu) -> None:
        applied = policy()
        error = pus.last_errors.get(pu.pu_id)
        # One rule for the state, shared with the enforcer's PU gauge (metrics.pu_state).
        in_view = applied is not None and applied.pu(pu.pu_id) is not None
        state = pu_state(pu, failed=bool(error), enforced=in_view)
        if state == "failed":
            local.state = local_pb.LOCAL_PU_STATE_FAILED
            local.last_error.message = error or ""
        elif state == "enforced" and applied is not None:
            local.state = local_pb.LOCAL_PU_STATE_ENFORCED
            local.applied_revision = applied.revision
        else:
            local.state = local_pb.LOCAL_PU_STATE_PENDING

    def shown(pu: StoredPu) -> local_pb.LocalPu:
        local = local_pu_to_pb(pu, pus.enforcer_id, facts().trust_domain)
        state_of(pu, local)
        return local

    async def add_pu(caller: Caller, body: bytes) -> bytes:
        request = local_pb.AddPuRequest.FromString(body)
        if request.WhichOneof("target") != "netns_path":
            raise FailedPrecondition(
                "only network-namespace PUs (netns_path) are supported yet",
                reason="UNIMPLEMENTED",
            )
        ports = _ports(request.ports)
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
        request = local_pb.RemovePuRequest.FromString(body)
        if not request.pu_id:
            raise InvalidArgument("pu_id is required", field="pu_id")
        if not pus.may_remove(request.pu_id, caller.uid):
            raise PermissionDenied(
                f"RemovePu of {request.pu_id} needs root or the process PU's own user "
                f"(caller uid {caller.uid})",
                reason="LOCAL_CALLER_NOT_OWNER",
            )
        await pus.remove(request.pu_id)
        return local_pb.RemovePuResponse().SerializeToString()

    async def list_pus(caller: Caller, body: bytes) -> bytes:
        response = local_pb.ListPusResponse()
        for pu in pus.all():
            response.pus.add().CopyFrom(shown(pu))
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
        request = local_pb.PrepareRunRequest.FromString(body)
        if not request.executable:
            raise InvalidArgument("executable is required", field="executable")
        run = await pus.prepare_run(
            RunRequest(
                executable=request.executable,
                namespace=request.namespace,
                labels=dict(request.labels),
                name=request.name,
                ports=_ports(request.ports),
                fail_mode=fail_mode_from_pb(request.fail_mode),
            ),
            caller.pid,
            caller.uid,
        )
        return local_pb.PrepareRunResponse(
            pu_id=run.pu_id,
            cgroup_path=str(run.cgroup),
            join_deadline=timestamp(run.deadline),
        ).SerializeToString()

    async def start_run(caller: Caller, body: bytes) -> bytes:
        request = local_pb.StartRunRequest.FromString(body)
        if not request.pu_id:
            raise InvalidArgument("pu_id is required", field="pu_id")
        if not request.pid:
            raise InvalidArgument("pid is required", field="pid")
        pu = await pus.start_run(request.pu_id, request.pid, caller.pid, caller.uid)
        return local_pb.StartRunResponse(pu=shown(pu)).SerializeToString()

    handlers: dict[str, Handler] = {
        "AddPu": add_pu,
        "RemovePu": remove_pu,
        "ListPus": list_pus,
        "Status": status,
        "PrepareRun": prepare_run,
        "StartRun": start_run,
    }
    return {method: _authorized(method, handler) for method, handler in handlers.items()}
