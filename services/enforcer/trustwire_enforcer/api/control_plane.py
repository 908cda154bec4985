"""The enforcer's clients of the control plane: the policy replicas (PU and enforcer records,
flow reports, the policy stream) and the identity service (documents, trust watch, renewal).

Every unary call to the policy service goes to one replica and, if it is unreachable, to the
next: replicas are stateless, any of them serves any call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import grpc.aio
from opentelemetry.trace import TracerProvider

from trustwire.api.flow.v1 import flow_service_pb2, flow_service_pb2_grpc
from trustwire.api.policy.v1 import enforcer_pb2, policy_service_pb2, policy_service_pb2_grpc
from trustwire.errors import TrustwireError, Unavailable
from trustwire.flows import FlowRecord, record_to_proto
from trustwire.policy.views import EnforcerView
from trustwire.runtime import ClientTLS, create_channel
from trustwire_enforcer.api.convert import attestation_of, registration_to_pb
from trustwire_enforcer.state_files import StoredPu
from trustwire_identity.client import IdentityClient
from trustwire_policy.distribution import Backoff, PolicyClient
from trustwire_policy.distribution.client import OnApply

__all__ = ["IdentityConnection", "PolicyConnection"]

_log = logging.getLogger("trustwire.enforcer.control_plane")
CALL_TIMEOUT_S = 5.0


class PolicyConnection:
    def __init__(
        self,
        enforcer_id: str,
        addresses: Sequence[str],
        tls: ClientTLS | None,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.enforcer_id = enforcer_id
        self.addresses = list(addresses)
        self._tls = tls
        self._tracer_provider = tracer_provider
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._preferred = 0

    def open_channel(self, address: str) -> grpc.aio.Channel:
        return create_channel(address, self._tls, tracer_provider=self._tracer_provider)

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = self.open_channel(address)
        return channel

    async def _each_replica(self, call: str, request: object, *, flows: bool = False) -> object:
        last: TrustwireError | None = None
        for offset in range(len(self.addresses)):
            index = (self._preferred + offset) % len(self.addresses)
            channel = self._channel(self.addresses[index])
            stub: object = (
                flow_service_pb2_grpc.FlowServiceStub(channel)
                if flows
                else policy_service_pb2_grpc.PolicyServiceStub(channel)
            )
            try:
                response: object = await getattr(stub, call)(request, timeout=CALL_TIMEOUT_S)
            except Unavailable as error:
                last = error
                continue
            self._preferred = index
            return response
        raise last or Unavailable("no policy replica configured", reason="NO_POLICY_REPLICA")

    async def register_enforcer(self, addresses: Sequence[str], version: str) -> None:
        await self._each_replica(
            "RegisterEnforcer",
            policy_service_pb2.RegisterEnforcerRequest(
                enforcer=enforcer_pb2.Enforcer(
                    id=self.enforcer_id,
                    node=self.enforcer_id,
                    addresses=list(addresses),
                    version=version,
                    datapaths=[enforcer_pb2.DATAPATH_PROXY],
                )
            ),
        )

    async def register_pu(self, pu: StoredPu) -> None:
        await self._each_replica(
            "RegisterPu",
            policy_service_pb2.RegisterPuRequest(pu=registration_to_pb(pu, self.enforcer_id)),
        )

    async def deregister_pu(self, pu_id: str) -> None:
        await self._each_replica(
            "DeregisterPu", policy_service_pb2.DeregisterPuRequest(pu_id=pu_id)
        )

    async def report(self, batch_id: str, records: Sequence[FlowRecord]) -> None:
        """``FlowSink``: one batch to ``FlowService.ReportFlows``."""
        await self._each_replica(
            "ReportFlows",
            flow_service_pb2.ReportFlowsRequest(
                batch_id=batch_id, records=[record_to_proto(r) for r in records]
            ),
            flows=True,
        )

    def policy_client(
        self, on_apply: OnApply, *, view: EnforcerView | None = None, revision: int = 0
    ) -> PolicyClient:
        """The policy stream (``WatchPolicy``), resuming from the view restored from disk."""
        return PolicyClient(
            self.enforcer_id,
            self.addresses,
            on_apply=on_apply,
            resume_revision=revision,
            view=view,
            channel_factory=self.open_channel,
            backoff=Backoff(initial=0.05, maximum=2.0),
            keep_log=False,
        )

    def reset(self, tls: ClientTLS | None) -> None:
        """A renewed certificate: new channels present it (old ones close when idle)."""
        self._tls = tls
        self._channels = {}

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close(None)


class IdentityConnection:
    """Documents for this enforcer's PUs, over the identity client's mutual-TLS channel."""

    def __init__(self, client: IdentityClient, enforcer_id: str) -> None:
        self.client = client
        self.enforcer_id = enforcer_id

    async def issue_document(self, pu: StoredPu) -> tuple[bytes, float]:
        """The PU's identity document envelope and when to ask for the next (Unix seconds)."""
        response = await self.client.issue_document(
            pu.pu_id,
            attestation_of(pu, self.enforcer_id),
            {k: v for k, v in pu.labels.items()},
        )
        envelope: bytes = response.document.SerializeToString(deterministic=True)
        if response.HasField("refresh_after"):
            refresh = response.refresh_after.ToDatetime(tzinfo=UTC)
        else:
            refresh = datetime.now(UTC) + timedelta(minutes=10)
        return envelope, refresh.timestamp()
