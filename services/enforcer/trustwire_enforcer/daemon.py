"""The enforcer daemon: wires credentials, trust, policy, the handshake, the datapath, the local
API and the control-plane clients into one per-host agent.

Start order is chosen so that enforcement never waits for the control plane:

1. the certificate (persisted; a join token only on first start);
2. the last applied policy view, from disk;
3. the datapath, and every persisted PU served again (interception, documents from disk);
4. the enforcer channel (``AuthorizationService``) and the local API;
5. then, in the background: registration with the policy service, the policy stream (resuming
   from the restored revision), the trust bundle and revocation watch, certificate renewal, PU
   re-registration and document refresh, flow reports.

Each background task retries on its own; none of them failing stops enforcement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from trustwire.api.enforcer.v1 import authorization_service_pb2_grpc as authz_grpc
from trustwire.errors import TrustwireError
from trustwire.identity import TrustBundle
from trustwire.policy.views import EnforcerView
from trustwire.runtime import (
    MetricsServer,
    RotatingServerTLS,
    Service,
    ServiceServer,
    TLSMaterial,
    build_server,
)
from trustwire_enforcer.api.authorization import AUTHORIZATION, AUTHORIZATION_SERVICE
from trustwire_enforcer.api.control_plane import IdentityConnection, PolicyConnection
from trustwire_enforcer.api.convert import trust_update_from_pb
from trustwire_enforcer.api.local_service import VERSION, EnforcerFacts, local_handlers
from trustwire_enforcer.api.peer_service import AuthorizationServicer
from trustwire_enforcer.api.peers import GrpcPeerChannels
from trustwire_enforcer.credentials import (
    EnforcerCredential,
    credential_files,
    obtain_credential,
)
from trustwire_enforcer.datapath import (
    ConnectionReport,
    InterceptedConnection,
    PreAuthorizations,
    ProxyDatapath,
    TlsConfig,
    Verdict,
)
from trustwire_enforcer.flows import FlowReporter
from trustwire_enforcer.handshake import Handshake
from trustwire_enforcer.local_api import LocalApiServer
from trustwire_enforcer.metrics import EnforcerMetrics, pu_state
from trustwire_enforcer.policy_state import AppliedPolicy
from trustwire_enforcer.pus import LocalPus
from trustwire_enforcer.settings import EnforcerSettings
from trustwire_enforcer.state_files import PuFile, ViewFile
from trustwire_enforcer.trust import TrustState
from trustwire_identity.ca import certificates_to_pem
from trustwire_identity.client import CredentialRotator, IdentityClient, NodeCredential

__all__ = ["Enforcer"]


async def _nothing() -> None:
    return None


_log = logging.getLogger("trustwire.enforcer")
MAINTENANCE_INTERVAL = 60.0


class Enforcer:
    """``await Enforcer(settings).start()``; ``await enforcer.stop()``."""

    def __init__(
        self, settings: EnforcerSettings, *, tracer_provider: TracerProvider | None = None
    ) -> None:
        self.settings = settings
        self.enforcer_id = settings.node_name
        self._tracer_provider = tracer_provider
        provider = tracer_provider or trace.get_tracer_provider()
        self.tracer = provider.get_tracer("trustwire.enforcer")
        self.policy: AppliedPolicy | None = None
        self.started_at = datetime.now(UTC)
        self.grants = PreAuthorizations(ttl=settings.preauthorization_ttl)
        self._changed = asyncio.Condition()
        self._reported = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: ServiceServer | None = None
        self._local: LocalApiServer | None = None
        self.address = ""
        self.restored_revision = 0
        self.metrics = EnforcerMetrics()
        self._metrics_server: MetricsServer | None = None
        # Data-channel TLS handshakes of configurations replaced by renewals and bundle
        # updates (``tls_stats`` counts per configuration): the metric must not go backwards.
        self._tls_handshakes_before = (0, 0)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        settings = self.settings
        settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.credential = await obtain_credential(settings)
        self.trust = TrustState(self.credential)
        # What the enforcer channel's server presents and accepts; it follows renewals and
        # bundle updates (a static certificate would be served until it expired).
        self._channel_bundle_pem = self.credential.bundle_pem
        self.policy = ViewFile(settings.state_dir, self.enforcer_id).load()
        if self.policy is not None:
            self.restored_revision = self.policy.revision
            _log.info("restored policy view", extra={"revision": self.policy.revision})
        self.policy_connection = PolicyConnection(
            self.enforcer_id,
            settings.policy.addresses,
            None
            if settings.policy.insecure
            else self.credential.client_tls(settings.policy.server_name),
            tracer_provider=self._tracer_provider,
        )
        self.flows = FlowReporter(
            self.enforcer_id,
            self.policy_connection,
            window=timedelta(seconds=settings.flows.window),
            interval=settings.flows.interval,
            max_pending=settings.flows.max_pending,
        )
        self.peers = GrpcPeerChannels(
            self.credential.client_tls(), tracer_provider=self._tracer_provider
        )
        self.identity_client = IdentityClient(
            settings.identity.address,
            self.credential.node,
            server_name=settings.identity.server_name or None,
            tracer_provider=self._tracer_provider,
        )
        self.pus_ready = False
        self.datapath = ProxyDatapath(
            self._decide,
            tls=self.credential.data_tls(),
            on_report=self._on_report,
            decide_timeout=settings.authorize_timeout + 1.0,
        )
        self.pus = LocalPus(
            self.enforcer_id,
            self.datapath,
            self.policy_connection,
            IdentityConnection(self.identity_client, self.enforcer_id),
            PuFile(settings.state_dir),
        )
        self.handshake = Handshake(
            enforcer_id=self.enforcer_id,
            trust=self.trust,
            identities=self.pus,
            policy=lambda: self.policy,
            channels=self.peers,
            grants=self.grants,
            flows=self.flows,
            tracer=self.tracer,
            preauthorization_ttl=settings.preauthorization_ttl,
            authorize_timeout=settings.authorize_timeout,
            metrics=self.metrics,
        )
        self._observe_state()
        await self.datapath.prewarm(8)
        restored = await self.pus.restore()
        if restored:
            _log.info("PUs served again from disk", extra={"pus": restored})
        self._server = build_server(
            [
                Service.from_servicer(
                    AUTHORIZATION_SERVICE,
                    authz_grpc.add_AuthorizationServiceServicer_to_server,
                    AuthorizationServicer(self.handshake),
                )
            ],
            address=settings.listen_address,
            tls=RotatingServerTLS.following(self._channel_material),
            authorization=AUTHORIZATION,
            trust_domain=self.credential.trust_domain.name,
            tracer_provider=self._tracer_provider,
            reflection_enabled=False,
            metrics=self.metrics.registry,
        )
        await self._server.start()
        host = settings.listen_address.rpartition(":")[0]
        self.address = f"{host}:{self._server.port}"
        self._local = LocalApiServer(
            settings.local_socket,
            local_handlers(self.pus, lambda: self.policy, self.facts),
        )
        await self._local.start()
        self.policy_client = self.policy_connection.policy_client(
            self._apply,
            view=self.policy.view if self.policy is not None else None,
            revision=self.policy.revision if self.policy is not None else 0,
        )
        if settings.metrics_address:
            # Once everything the scrape-time gauges read exists.
            self._metrics_server = MetricsServer(self.metrics.registry, settings.metrics_address)
            await self._metrics_server.start()
        self._spawn(self._register, "register-enforcer")
        self.policy_client.start()
        self._spawn(self._watch_trust, "trust-watch")
        self._spawn(self._renew, "renewal")
        self._spawn(self._maintain, "pu-maintenance")
        self.flows.start()
        _log.info(
            "enforcer started",
            extra={
                "enforcer_id": self.enforcer_id,
                "address": self.address,
                "metrics_address": self.metrics_address,
            },
        )

    async def stop(self, *, rules: Literal["remove", "fail_mode", "keep"] = "fail_mode") -> None:
        """Orderly stop: each PU is left in its fail mode (``rules``), flows are flushed. Every
        step runs even if an earlier one failed: a listener or relay thread left behind would
        outlive the daemon."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("policy stream", self.policy_client.stop),
            ("local API", self._local.stop if self._local else _nothing),
            ("metrics", self._metrics_server.stop if self._metrics_server else _nothing),
            ("enforcer channel", lambda: self._server.stop(0.5) if self._server else _nothing()),
            ("process PU watches", self.pus.close),
            ("datapath", lambda: self.datapath.close(rules=rules, grace=2.0)),
            ("sessions", self.handshake.close),
            ("flows", self.flows.stop),
            ("peer channels", self.peers.close),
            ("policy channels", self.policy_connection.close),
            ("identity channel", self.identity_client.close),
        ]
        for name, step in steps:
            try:
                await step()
            except Exception:
                _log.exception("stopping %s failed", name)

    def _spawn(self, body: Callable[[], Awaitable[None]], name: str) -> None:
        self._tasks.append(asyncio.create_task(self._guarded(body, name), name=name))

    async def _guarded(self, body: Callable[[], Awaitable[None]], name: str) -> None:
        try:
            await body()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("background task %s failed", name)

    # ------------------------------------------------------------------ datapath seam

    # The datapath is built before the handshake (PUs need the datapath, the handshake needs
    # the PUs), so it calls these, which delegate.

    async def _decide(self, conn: InterceptedConnection) -> Verdict:
        return await self.handshake.decide(conn)

    def _on_report(self, report: ConnectionReport) -> None:
        self.handshake.on_report(report)
        self._reported.set()

    async def settle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until no connection is being decided or relayed and every one was reported (flows
        are then complete: what a test checks after its clients are done)."""
        async with asyncio.timeout(timeout):
            while len(self.datapath.relays) or self.handshake.pending:
                self._reported.clear()
                await self._reported.wait()

    # ------------------------------------------------------------------ policy

    async def _apply(self, view: EnforcerView, revision: int) -> None:
        """A new view from the policy stream: persist it (a restart resumes from it), make it
        the one decisions use, then close what it no longer admits."""
        applied = AppliedPolicy(view, revision)
        await asyncio.to_thread(ViewFile(self.settings.state_dir, self.enforcer_id).save, applied)
        self.policy = applied
        closed = self.datapath.close_where(
            self.handshake.denied_by(applied), f"policy_revision_{revision}"
        )
        revoked = self.grants.revoke_where(self.handshake.grant_denied_by(applied))
        if closed or revoked:
            _log.info(
                "policy change closed connections",
                extra={"revision": revision, "closed": closed, "grants_revoked": revoked},
            )
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(
        self,
        predicate: Callable[[Enforcer], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """Until ``predicate(self)`` holds (checked on every applied view)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def wait_for_revision(self, revision: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.wait_for(
            lambda e: e.policy is not None and e.policy.revision >= revision, timeout
        )

    # ------------------------------------------------------------------ background

    async def _register(self) -> None:
        """Make this enforcer reachable: its channel address in the policy service."""
        addresses = self.settings.advertise_addresses or (self.address,)
        delay = 0.05
        while True:
            try:
                await self.policy_connection.register_enforcer(addresses, VERSION)
                return
            except TrustwireError as error:
                _log.info("enforcer registration failed, retrying: %s", error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _watch_trust(self) -> None:
        # aclosing: on cancellation the generator (and its stream) is closed inside this task,
        # not later by the garbage collector on a loop that may be gone.
        async with contextlib.aclosing(self.identity_client.watch_trust_bundle()) as updates:
            async for response in updates:
                bundle, revocations = trust_update_from_pb(response)
                await self.trust.update(bundle, revocations)
                if revocations is not None:
                    # Resumable data-channel TLS sessions were authenticated before this list:
                    # the next encrypted connection to any peer does a full handshake.
                    self.datapath.forget_tls_sessions()
                if bundle is not None:
                    self._bundle_changed(bundle)

    def _bundle_changed(self, bundle: TrustBundle) -> None:
        # Data connections verify peers against the bundle too: new CA roots must be accepted
        # there as soon as profiles chained to them are.
        cred = self.trust.credential
        pem = certificates_to_pem(bundle.ca_certificates)
        self._set_data_tls(TlsConfig.from_pem(cred.chain_pem, cred.key_pem, pem))
        self._channel_bundle_pem = pem

    def _set_data_tls(self, tls: TlsConfig) -> None:
        self._tls_handshakes_before = self._tls_handshakes()
        self.datapath.set_tls(tls)

    def _tls_handshakes(self) -> tuple[int, int]:
        """(full, resumed) data-channel TLS handshakes since start."""
        full, resumed = self._tls_handshakes_before
        stats = self.datapath.tls_stats()
        if stats is None:
            return full, resumed
        return full + stats.full, resumed + stats.resumed

    def _channel_material(self) -> TLSMaterial:
        """The enforcer channel server's TLS material, asked by gRPC on every handshake."""
        cred = self.trust.credential
        return cred.chain_pem, cred.key_pem, self._channel_bundle_pem

    async def _renew(self) -> None:
        rotator = CredentialRotator(
            self.identity_client,
            credential_files(self.settings.state_dir),
            on_renewed=self._renewed,
        )
        await rotator.run()

    def _renewed(self, node: NodeCredential) -> None:
        credential = EnforcerCredential(node)
        self.trust.rotate(credential)
        self._channel_bundle_pem = credential.bundle_pem
        self._set_data_tls(credential.data_tls())
        self.policy_connection.reset(credential.client_tls(self.settings.policy.server_name))
        task = asyncio.get_running_loop().create_task(self.peers.reset(credential.client_tls()))
        self._tasks.append(task)
        # The enforcer channel's server picks the new certificate up on its next handshake
        # (``_channel_material``); established channels keep theirs until they reconnect.

    async def _maintain(self) -> None:
        while True:
            await self.pus.maintain()
            await asyncio.sleep(MAINTENANCE_INTERVAL)

    # ------------------------------------------------------------------ status

    @property
    def metrics_address(self) -> str:
        """Where ``GET /metrics`` is served, with the port bound ("" when off)."""
        return self._metrics_server.address if self._metrics_server is not None else ""

    def _observe_state(self) -> None:
        def pus() -> list[tuple[str, str, str]]:
            applied = self.policy
            return [
                (
                    pu.pu_type,
                    pu.fail_mode,
                    pu_state(
                        pu,
                        failed=bool(self.pus.last_errors.get(pu.pu_id)),
                        enforced=applied is not None and applied.pu(pu.pu_id) is not None,
                    ),
                )
                for pu in self.pus.all()
            ]

        def certificate_seconds_left() -> float:
            not_after = self.trust.credential.node.not_after
            return (not_after - datetime.now(UTC)).total_seconds()

        self.metrics.observe_state(
            pus=pus,
            live_relays=lambda: len(self.datapath.relays),
            tls_handshakes=self._tls_handshakes,
            policy_revision=lambda: self.policy.revision if self.policy is not None else 0,
            policy_connected=lambda: self.policy_client.connected_address is not None,
            certificate_seconds_left=certificate_seconds_left,
            flow_records_dropped=lambda: self.flows.dropped,
        )

    def facts(self) -> EnforcerFacts:
        return EnforcerFacts(
            enforcer_id=self.enforcer_id,
            trust_domain=self.credential.trust_domain.name,
            policy_connected=self.policy_client.connected_address is not None,
            applied_revision=self.policy.revision if self.policy is not None else 0,
            certificate_not_after=self.trust.credential.node.not_after,
            started_at=self.started_at,
        )
