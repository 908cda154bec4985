"""Client channels to peer enforcers: one long-lived mutual-TLS channel per peer, reused by
every connection's ``Authorize`` (no TLS handshake per connection)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc.aio
from opentelemetry.trace import TracerProvider

from trustwire.api.common.v1 import envelope_pb2
from trustwire.api.enforcer.v1 import authorization_service_pb2 as authz_pb
from trustwire.api.enforcer.v1 import authorization_service_pb2_grpc as authz_grpc
from trustwire.errors import Unavailable
from trustwire.policy.model import Action
from trustwire.runtime import ClientTLS, create_channel
from trustwire.wire_enums import ACTION_TO_PB
from trustwire_enforcer.api.convert import answer_from_pb
from trustwire_enforcer.handshake import AuthorizeAnswer, PeerChannel

__all__ = ["GrpcPeerChannel", "GrpcPeerChannels"]


class GrpcPeerChannel:
    """``on_unavailable`` is called when the peer could not be reached: the owner then drops
    this channel, so the next connection dials afresh instead of waiting out gRPC's reconnect
    backoff (a restarted peer is then reached at once)."""

    def __init__(
        self, channel: grpc.aio.Channel, on_unavailable: Callable[[], None] = lambda: None
    ) -> None:
        self.channel = channel
        self._stub = authz_grpc.AuthorizationServiceStub(channel)
        self._on_unavailable = on_unavailable

    async def authorize(
        self,
        envelope: bytes,
        timeout: float,  # noqa: ASYNC109
        egress: Action,
    ) -> AuthorizeAnswer:
        request = authz_pb.AuthorizeRequest(
            profile=envelope_pb2.SignedEnvelope.FromString(envelope),
            egress_action=ACTION_TO_PB[egress],
        )
        try:
            response = await self._stub.Authorize(request, timeout=timeout)
        except Unavailable:
            self._on_unavailable()
            raise
        return answer_from_pb(response)

    async def open_session(self, request: bytes, timeout: float) -> bytes:  # noqa: ASYNC109
        response = await self._stub.OpenSession(
            authz_pb.OpenSessionRequest.FromString(request), timeout=timeout
        )
        data: bytes = response.SerializeToString(deterministic=True)
        return data

    async def confirm_session(self, request: bytes, timeout: float) -> None:  # noqa: ASYNC109
        await self._stub.ConfirmSession(
            authz_pb.ConfirmSessionRequest.FromString(request), timeout=timeout
        )


class GrpcPeerChannels:
    """Channels by peer enforcer id. The peer's certificate is checked against its node name
    (enforcer certificates carry it as their DNS name), whatever address it is dialled at."""

    def __init__(self, tls: ClientTLS, tracer_provider: TracerProvider | None = None) -> None:
        self._tls = tls
        self._tracer_provider = tracer_provider
        self._channels: dict[tuple[str, str], GrpcPeerChannel] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def channel(self, enforcer_id: str, addresses: tuple[str, ...]) -> PeerChannel:
        address = addresses[0]
        key = (enforcer_id, address)
        existing = self._channels.get(key)
        if existing is None:
            tls = ClientTLS(
                self._tls.ca_bundle,
                self._tls.certificate_chain,
                self._tls.private_key,
                server_name=enforcer_id,
            )
            existing = GrpcPeerChannel(
                create_channel(address, tls, tracer_provider=self._tracer_provider),
                lambda: self._drop(key),
            )
            self._channels[key] = existing
        return existing

    def _drop(self, key: tuple[str, str]) -> None:
        dropped = self._channels.pop(key, None)
        if dropped is not None:
            task = asyncio.get_running_loop().create_task(dropped.channel.close(None))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def reset(self, tls: ClientTLS) -> None:
        """A renewed certificate: new channels present it; old ones are closed."""
        self._tls = tls
        old, self._channels = self._channels, {}
        for channel in old.values():
            await channel.channel.close(None)

    async def close(self) -> None:
        await self.reset(self._tls)
