"""Asking a peer replica for its own flow records: ``QueryFlows`` with ``QUERY_SCOPE_LOCAL`` over
mutual TLS, presenting this replica's own certificate (an enrolled service certificate is
valid for client authentication too; it authenticates as ``spiffe://<td>/service/<name>``,
which the authorization table admits for ``QueryFlows``).

Channels are kept per peer address. The certificate files are renewed under a running replica
(``credential.py``), so they are checked on every call (a ``stat``, ``runtime.TLSFiles``) and,
once changed, new channels are made with the new material while the old ones finish their
calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc.aio
from opentelemetry.trace import TracerProvider

from trustwire.api.common.v1 import pagination_pb2
from trustwire.api.flow.v1 import flow_service_pb2 as flow_pb
from trustwire.api.flow.v1 import flow_service_pb2_grpc as flow_grpc
from trustwire.flows import FlowFilter, filter_to_proto, record_from_proto, timestamp_to_proto
from trustwire.runtime import ClientTLS, TLSFiles, TLSMaterial, create_channel

from ..cluster_flows import ReplicaPage
from ..replicas import ReplicaMember

__all__ = ["FlowPeerClient"]

_log = logging.getLogger("trustwire.policy.flow_peers")

# Calls in flight on a retired channel get this long to finish.
_RETIRE_GRACE_S = 10.0


class FlowPeerClient:
    """``cluster_flows.FlowPeers`` over gRPC. ``tls_files`` (certificate, key, CA bundle) is
    ``None`` for a plaintext replica (development and tests). ``close`` when done."""

    def __init__(
        self,
        tls_files: tuple[Path, Path, Path] | None,
        *,
        server_name: str = "",
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        # The runtime's file follower: re-read on change, never a new chain with an old key.
        self._files = TLSFiles(*tls_files) if tls_files is not None else None
        self._server_name = server_name or None
        self._tracer_provider = tracer_provider
        self._material: TLSMaterial | None = None
        self._tls: ClientTLS | None = None
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    async def query(
        self,
        member: ReplicaMember,
        flow_filter: FlowFilter,
        *,
        start: datetime,
        end: datetime,
        page_size: int,
        page_token: str,
        time_limit: float,
    ) -> ReplicaPage:
        stub = flow_grpc.FlowServiceStub(self._channel(member.address))
        response: Any = await stub.QueryFlows(
            flow_pb.QueryFlowsRequest(
                filter=filter_to_proto(flow_filter),
                start_time=timestamp_to_proto(start),
                end_time=timestamp_to_proto(end),
                page=pagination_pb2.PageRequest(page_size=page_size, page_token=page_token),
                scope=flow_pb.QUERY_SCOPE_LOCAL,
            ),
            timeout=time_limit,
        )
        return ReplicaPage(
            tuple(
                record_from_proto(m, path=f"records[{i}]") for i, m in enumerate(response.records)
            ),
            tuple(response.record_page_tokens),
            response.page.next_page_token,
        )

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(None)
        for task in list(self._retiring):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _channel(self, address: str) -> grpc.aio.Channel:
        tls = self._client_tls()
        channel = self._channels.get(address)
        if channel is None:
            channel = create_channel(address, tls, tracer_provider=self._tracer_provider)
            self._channels[address] = channel
        return channel

    def _client_tls(self) -> ClientTLS | None:
        """This replica's current material; retires every channel once the files changed."""
        if self._files is None:
            return None
        material = self._files()
        if self._tls is None or material is not self._material:
            chain, key, bundle = material
            self._tls = ClientTLS(bundle, chain, key, self._server_name)
            self._material = material
            for channel in self._channels.values():
                task = asyncio.create_task(channel.close(_RETIRE_GRACE_S))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
            if self._channels:
                _log.info("certificate files changed; new peer channels use them")
            self._channels = {}
        return self._tls
