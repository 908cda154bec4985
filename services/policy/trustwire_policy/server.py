"""One policy replica: etcd store, repository, state mirror, servicer and gRPC server.

With ``tls`` and ``identity.address`` set, the replica renews its own certificate
(``credential.py``): the renewed files are what the server presents on new connections.

Health: the overall status and ``PolicyService`` are ``NOT_SERVING`` until the state mirror has
loaded the state once (a replica without state would answer explain with nothing); the gRPC
server itself accepts calls from the start (writes need only etcd).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType

from opentelemetry.trace import TracerProvider

from trustwire.api.flow.v1 import flow_service_pb2_grpc as flow_grpc
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire.errors import InvalidArgument
from trustwire.runtime import (
    MetricsRegistry,
    MetricsServer,
    RotatingServerTLS,
    Service,
    ServiceServer,
    build_server,
)
from trustwire.store import KeyValueStore

from .api.authorization import AUTHORIZATION, FLOW_SERVICE, POLICY_SERVICE
from .api.flow_peers import FlowPeerClient
from .api.flow_service import FlowServicer, FlowWatchers
from .api.service import PolicyDistribution, PolicyServicer
from .cluster_flows import ClusterFlows
from .codec import Keyspace
from .credential import CertificateFiles, CertificateRenewal
from .flowstore import FlowStore
from .metrics import policy_metrics
from .replicas import ReplicaMembership, advertised_address, new_replica_id
from .repository import PolicyRepository
from .settings import PolicySettings
from .state import StateMirror

__all__ = ["DistributionFactory", "PolicyReplica"]

_log = logging.getLogger("trustwire.policy.server")

# How the distribution subsystem is plugged in: built from this replica's mirror (what to
# send) and repository (where acks go), once, at start.
DistributionFactory = Callable[[StateMirror, PolicyRepository], PolicyDistribution]


def _default_distribution() -> DistributionFactory:
    # Imported here: the distribution package builds on this module's collaborators.
    from .distribution import distribution_factory

    return distribution_factory()


class PolicyReplica:
    """Use ``async with PolicyReplica(settings, store) as replica:``; ``replica.address``."""

    def __init__(
        self,
        settings: PolicySettings,
        store: KeyValueStore,
        *,
        distribution: DistributionFactory | None = None,
        tracer_provider: TracerProvider | None = None,
        close_store: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        keys = Keyspace(settings.etcd.key_root)
        self.repository = PolicyRepository(store, keys)
        self.mirror = StateMirror(
            store,
            keys,
            trust_domain=settings.trust_domain,
            initial_backoff=settings.reconnect_initial_backoff,
            max_backoff=settings.reconnect_max_backoff,
        )
        # Flow records: SQLite beside the replica, never etcd (see flowstore.py).
        self.flow_store = FlowStore(
            settings.flows.path,
            retention=timedelta(seconds=settings.flows.retention),
            max_rows=settings.flows.max_rows,
        )
        # Flow queries are cluster-wide: this store plus every live peer's (cluster_flows.py);
        # membership joins at start, once the advertised address is known.
        cluster = settings.cluster
        tls = settings.tls
        self.replica_id = cluster.replica_id or new_replica_id()
        self.flow_peers = FlowPeerClient(
            (tls.certificate, tls.key, tls.client_ca)
            if tls.certificate and tls.key and tls.client_ca
            else None,
            server_name=cluster.peer_server_name or settings.identity.server_name,
            tracer_provider=tracer_provider,
        )
        self.cluster_flows = ClusterFlows(
            self.flow_store,
            replica_id=self.replica_id,
            peers=self.flow_peers,
            peer_timeout=cluster.peer_timeout,
        )
        self.membership: ReplicaMembership | None = None
        self.flow_servicer = FlowServicer(
            self.flow_store,
            watchers=FlowWatchers(settings.flows.watch_buffer),
            limits=settings.limits,
            cluster=self.cluster_flows,
        )
        self.servicer = PolicyServicer(
            self.repository,
            self.mirror,
            limits=settings.limits,
            trust_domain=settings.trust_domain,
            # WatchPolicy is served by the distribution subsystem unless a test swaps it.
            distribution=(distribution or _default_distribution())(self.mirror, self.repository),
            flows=self.cluster_flows,
        )
        self._tracer_provider = tracer_provider
        self._close_store = close_store
        self._server: ServiceServer | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._renewal: CertificateRenewal | None = None
        self._metrics_server: MetricsServer | None = None
        # Per-RPC metrics are recorded from the first call; served when metrics_address is set.
        self.rpc_metrics = MetricsRegistry()

    @property
    def server(self) -> ServiceServer:
        if self._server is None:
            raise RuntimeError("replica not started")
        return self._server

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def metrics_address(self) -> str:
        """``host:port`` of the metrics endpoint ("" when off)."""
        return self._metrics_server.address if self._metrics_server is not None else ""

    @property
    def renewal(self) -> CertificateRenewal | None:
        """The renewal of this replica's certificate, when ``identity.address`` is set."""
        return self._renewal

    async def start(self) -> None:
        tls = self.settings.tls
        server_tls = None
        renewal = None
        if tls.enabled:
            if tls.key is None or tls.client_ca is None or tls.certificate is None:
                raise InvalidArgument(
                    "tls: certificate, key and client_ca are required together", field="tls"
                )
            if self.settings.identity.enabled:
                # Checked before anything starts: an expired or mismatching set would be
                # served until the first caller failed, and could not be renewed anyway.
                files = CertificateFiles(tls.certificate, tls.key, tls.client_ca)
                identity = self.settings.identity
                renewal = CertificateRenewal(
                    files,
                    files.load(datetime.now(UTC)),
                    identity.address,
                    server_name=identity.server_name or None,
                    tracer_provider=self._tracer_provider,
                )
            # Re-read when the files change: certificates are renewed under a running replica
            # (by ``renewal``, or by whatever manages the files).
            server_tls = RotatingServerTLS.from_files(tls.certificate, tls.key, tls.client_ca)
        # Refused before binding: a wildcard listen address without an advertised one.
        advertised_address(self.settings.cluster.advertise_address, self.settings.listen_address)
        self._server = build_server(
            [
                Service.from_servicer(
                    POLICY_SERVICE, service_grpc.add_PolicyServiceServicer_to_server, self.servicer
                ),
                Service.from_servicer(
                    FLOW_SERVICE, flow_grpc.add_FlowServiceServicer_to_server, self.flow_servicer
                ),
            ],
            address=self.settings.listen_address,
            tls=server_tls,
            authorization=AUTHORIZATION if server_tls is not None else None,
            trust_domain=self.settings.trust_domain or None,
            tracer_provider=self._tracer_provider,
            metrics=self.rpc_metrics,
        )
        await self.mirror.start()
        await self._server.start()
        if renewal is not None:
            renewal.start()
            self._renewal = renewal
        await self._join_cluster()
        if self.settings.metrics_address:
            self._metrics_server = MetricsServer(
                policy_metrics(
                    self.servicer, self.flow_servicer, self.mirror, registry=self.rpc_metrics
                ),
                self.settings.metrics_address,
            )
            await self._metrics_server.start()
            _log.info("metrics served", extra={"address": self._metrics_server.address})
        if not self.mirror.ready:
            await self._server.set_serving("", False)
            await self._server.set_serving(POLICY_SERVICE.full_name, False)
            self._health_task = asyncio.create_task(self._serve_when_ready())

    async def _join_cluster(self) -> None:
        cluster = self.settings.cluster
        self.membership = ReplicaMembership(
            self.store,
            self.settings.etcd.key_root,
            replica_id=self.replica_id,
            address=advertised_address(cluster.advertise_address, self.server.address),
            heartbeat_interval=cluster.heartbeat_interval,
            stale_after=cluster.stale_after,
            forget_after=cluster.forget_after,
        )
        self.cluster_flows.membership = self.membership
        await self.membership.start()

    async def _serve_when_ready(self) -> None:
        await self.mirror.wait_ready()
        await self.server.set_serving("", True)
        await self.server.set_serving(POLICY_SERVICE.full_name, True)
        _log.info("policy state ready", extra={"revision": self.mirror.current.revision})

    async def stop(self, grace: float | None = 1.0) -> None:
        if self._metrics_server is not None:
            await self._metrics_server.stop()
            self._metrics_server = None
        if self.membership is not None:
            # First: peers stop asking a replica that is going away.
            await self.membership.stop()
            self.membership = None
        if self._renewal is not None:
            # First: no certificate files are rewritten while the replica shuts down.
            await self._renewal.stop()
            self._renewal = None
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        if self._server is not None:
            await self._server.stop(grace)
        # Distribution stores the convergence it recorded while the store is still open.
        close = getattr(self.servicer.distribution, "close", None)
        if close is not None:
            await close()
        await self.mirror.stop()
        await self.flow_peers.close()
        await self.flow_store.close()
        if self._close_store:
            await self.store.close()

    async def __aenter__(self) -> PolicyReplica:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
