"""The connection handshake (DESIGN.md "The connection handshake"), both sides, without gRPC.

Source side (:meth:`Handshake.outbound`, the datapath's decision for a PU's outgoing
connection): look the destination up in the applied view's directory; an enforced PU on
another enforcer is asked with ``Authorize`` carrying a Trust Profile for the exact wire
5-tuple (sealed under the channel session with that enforcer, or ECDSA-signed on first contact
while a session is opened in the background); its answer is verified (signature or seal,
document, peer nonce, the enforcer and PU the directory names) and egress is evaluated on the
destination's verified identity. The request also carries the source's own egress decision,
taken before asking: a destination that allows encrypts when either side requires it, and
records a refusal the source made. A PU of this enforcer is decided here for both directions; an
address without an enforcer by egress CIDR rules alone.

Destination side (:meth:`Handshake.authorize`, the ``Authorize`` handler): the profile must
name one of this enforcer's PUs as destination, verify against the claimed trust domain's
bundle (revocation, document, skew, replay), and come from an address the directory gives that
PU; ingress is evaluated for the PU on the source's verified identity; an allowed tuple is
pre-authorized for a few seconds, and the answer carries this side's own profile (bound to the
request's nonce), the verdict and, for ``encrypt``, the TLS parameters. Connections that
arrive without a grant (sources without an enforcer) are decided by ingress CIDR rules alone
(:meth:`Handshake.inbound_without_grant`).

Every connection is one trace: the source opens ``intercept`` with ``authorize`` and
``decide`` children, puts the ``authorize`` span's context in the profile, and the destination
continues it (``authorize`` there, then ``intercept``/``relay`` for the arriving connection).
Each side records its own flow facts, with its deciding policy and reason, when the datapath
reports the connection finished (or at once for a refusal that never becomes a connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from trustwire.errors import TrustwireError
from trustwire.flows import ConnectionFacts, FlowDecision, FlowEndpoint
from trustwire.flows import Verdict as FlowVerdict
from trustwire.identity import (
    FiveTuple,
    ReasonCode,
    Session,
    SignedProfile,
    SpiffeId,
    TraceContext,
    VerificationError,
    VerifiedProfile,
)
from trustwire.policy.decision import DirectionDecision
from trustwire.policy.decision import ReasonCode as PolicyReason
from trustwire.policy.labels import Labels
from trustwire.policy.model import Action as PolicyAction
from trustwire.policy.model import Direction, IPAddress, Scores
from trustwire.policy.model import Protocol as L4
from trustwire.policy.views import DirectoryEntry, EnforcerEndpoint, Peer, PuView
from trustwire_enforcer.datapath import (
    Action,
    ConnectionReport,
    InterceptedConnection,
    Outcome,
    PreAuthorizations,
    Relay,
    Verdict,
)
from trustwire_enforcer.flows import FlowReporter
from trustwire_enforcer.metrics import EnforcerMetrics
from trustwire_enforcer.policy_state import (
    AppliedPolicy,
    ExternalDestination,
    LocalDestination,
    RemoteDestination,
    resolve_destination,
)
from trustwire_enforcer.trust import TrustState

__all__ = [
    "AuthorizeAnswer",
    "Handshake",
    "LocalIdentities",
    "PeerChannel",
    "PeerChannels",
    "Refusal",
]

_log = logging.getLogger("trustwire.enforcer.handshake")
_propagator = TraceContextTextMapPropagator()

# Reason codes of operational refusals (common.v1.ReasonCode names).
PEER_REJECTED = "PEER_REJECTED"
HANDSHAKE_TIMEOUT = "HANDSHAKE_TIMEOUT"
POLICY_NOT_SYNCED = "POLICY_NOT_SYNCED"
FAIL_CLOSED = "FAIL_CLOSED"
NO_ENFORCER = "NO_ENFORCER"


@dataclass(frozen=True, slots=True)
class AuthorizeAnswer:
    """The destination's answer (``AuthorizeResponse`` without protobuf). ``profile`` is empty
    when the request was refused for a credential reason: nothing is disclosed to a caller
    whose profile did not verify."""

    allowed: bool
    reason: str
    encrypt: bool = False
    profile: bytes = b""
    server_spiffe_id: str = ""
    preauthorization_ttl: float = 0.0
    revision: int = 0


class Refusal(Exception):
    """Internal: the connection is rejected with ``reason`` (a ReasonCode name)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class PeerChannel(Protocol):
    """The enforcer channel to one peer enforcer (the gRPC edge implements it)."""

    async def authorize(
        self,
        envelope: bytes,
        timeout: float,  # noqa: ASYNC109
        egress: PolicyAction,
    ) -> AuthorizeAnswer:
        """``egress``: the source's own decision (``allow``, ``encrypt`` or ``reject``), so
        the destination can encrypt on request and record a refusal it did not make."""
        ...

    async def open_session(self, request: bytes, timeout: float) -> bytes: ...  # noqa: ASYNC109

    async def confirm_session(self, request: bytes, timeout: float) -> None: ...  # noqa: ASYNC109


class PeerChannels(Protocol):
    def channel(self, enforcer_id: str, addresses: tuple[str, ...]) -> PeerChannel: ...


class LocalIdentities(Protocol):
    """This enforcer's PUs as the handshake needs them."""

    def document(self, pu_id: str) -> bytes | None:
        """The PU's identity document envelope, None while it has none."""
        ...

    def listening_pu(self, pu_ids: Sequence[str], ip: IPAddress, port: int) -> str | None:
        """Of ``pu_ids`` (PUs sharing ``ip``), the one the kernel delivers a connection to
        ``ip:port`` to (its cgroup owns the listening socket); None when not exactly one."""
        ...


@dataclass
class _Side:
    """One side of one connection, as this enforcer decided it: what flows and re-evaluation
    need once the datapath reports the connection."""

    pu_id: str
    direction: Direction
    source: FlowEndpoint
    destination: FlowEndpoint
    port: int
    decision: FlowDecision
    revision: int
    peer: Peer | None = None  # None: not a policy decision (a refusal); never re-evaluated
    scores: Scores | None = None
    encrypted: bool = False
    # The other enforcer (SPIFFE ID): the TLS peer an encrypted data connection must present.
    peer_identity: str | None = None
    parent: otel_context.Context | None = None
    spans: list[Span] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)

    @property
    def trace_id(self) -> str:
        for span in self.spans:
            ctx = span.get_span_context()
            if ctx.is_valid:
                return format(ctx.trace_id, "032x")
        if self.parent is not None:
            ctx = trace.get_current_span(self.parent).get_span_context()
            if ctx.is_valid:
                return format(ctx.trace_id, "032x")
        return ""


def _decision_flow(decision: DirectionDecision | None, direction: Direction) -> FlowDecision:
    if decision is None:  # self traffic: no policy applies
        return FlowDecision(direction, FlowVerdict.ALLOW, PolicyReason.SELF_TRAFFIC.value)
    return FlowDecision.from_decision(decision)


# A sealed request refused for these (without a profile: nothing was verified) means the
# destination does not hold our session: drop it and re-send signed. EXPIRED is what
# destinations answered before UNKNOWN_SESSION existed.
_SESSION_GONE = frozenset({ReasonCode.UNKNOWN_SESSION.value, ReasonCode.EXPIRED.value})


def _egress_action(decision: DirectionDecision | None) -> PolicyAction:
    """What a source tells the destination of its own egress decision."""
    if decision is None:  # a PU talking to itself: never remote, but be total
        return PolicyAction.ALLOW
    if not decision.allowed:
        return PolicyAction.REJECT
    return PolicyAction.ENCRYPT if decision.encrypted else PolicyAction.ALLOW


def _combined_egress(decisions: list[DirectionDecision | None]) -> PolicyAction:
    """What a source tells the destination when the destination PU is one of several: reject
    only if it rejects them all, encrypt if any it allows requires it (the destination
    encrypts on request; the source re-decides on the PU the answer names)."""
    actions = {_egress_action(d) for d in decisions}
    if actions == {PolicyAction.REJECT}:
        return PolicyAction.REJECT
    return PolicyAction.ENCRYPT if PolicyAction.ENCRYPT in actions else PolicyAction.ALLOW


def _scores(verified: VerifiedProfile) -> Scores:
    profile = verified.profile
    return Scores(
        reputation=1.0 if profile.reputation_score is None else profile.reputation_score,
        anomaly=0.0 if profile.behaviour_score is None else profile.behaviour_score,
    )


def _traceparent(span: Span) -> str:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


def _context_from(traceparent: str) -> otel_context.Context | None:
    if not traceparent:
        return None
    ctx = _propagator.extract({"traceparent": traceparent})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


class Handshake:
    def __init__(
        self,
        *,
        enforcer_id: str,
        trust: TrustState,
        identities: LocalIdentities,
        policy: Callable[[], AppliedPolicy | None],
        channels: PeerChannels,
        grants: PreAuthorizations,
        flows: FlowReporter,
        tracer: Tracer,
        preauthorization_ttl: float = 5.0,
        authorize_timeout: float = 3.0,
        metrics: EnforcerMetrics | None = None,
    ) -> None:
        self.enforcer_id = enforcer_id
        self.trust = trust
        self.identities = identities
        self._policy = policy
        self.channels = channels
        self.grants = grants
        self.flows = flows
        self.tracer = tracer
        self.ttl = preauthorization_ttl
        self.timeout = authorize_timeout
        self.metrics = metrics or EnforcerMetrics()
        self._egress: dict[int, _Side] = {}  # by datapath connection id
        self._ingress: dict[FiveTuple, _Side] = {}  # by wire 5-tuple
        self._session_tasks: dict[str, asyncio.Task[None]] = {}
        # For tests and diagnosis: the last Authorize envelope sent (a replay test resends it).
        self.last_request: bytes = b""

    @property
    def pending(self) -> int:
        """Outbound connections decided but not yet reported by the datapath."""
        return len(self._egress)

    @property
    def trust_domain(self) -> str:
        return self.trust.credential.trust_domain.name

    # ------------------------------------------------------------------ the datapath's seam

    async def decide(self, conn: InterceptedConnection) -> Verdict:
        """The datapath's decider: outbound runs the handshake; inbound takes the grant the
        ``Authorize`` left for its tuple, else is decided by address."""
        if conn.direction is Direction.EGRESS:
            return await self.outbound(conn)
        verdict = self.grants.take(conn.five_tuple)
        if verdict is None:
            return self.inbound_without_grant(conn)
        side = self._ingress.get(conn.five_tuple)
        if side is not None and side.pu_id != conn.pu_id:
            # The grant was decided for another PU at this address than the one whose
            # listener the kernel delivered the connection to: only possible where resolution
            # by port was ambiguous (PUs sharing a port with SO_REUSEPORT, a listener that
            # moved between Authorize and the SYN). Another PU's grant must not admit it.
            for span in side.spans:
                span.end()
            refused = self._refused_side(conn, ReasonCode.ADDRESS_MISMATCH.value)
            self._ingress[conn.five_tuple] = refused
            return Verdict.reject(refused.decision.reason, revision=refused.revision)
        if side is not None:
            side.spans.append(self.tracer.start_span("intercept", context=side.parent))
        return verdict

    async def outbound(self, conn: InterceptedConnection) -> Verdict:
        tuple_ = conn.wire_tuple
        root = self.tracer.start_span(
            "intercept",
            attributes={
                "trustwire.pu_id": conn.pu_id,
                "trustwire.direction": "egress",
                "net.peer.ip": str(tuple_.destination_ip),
                "net.peer.port": tuple_.destination_port,
            },
        )
        side: _Side | None = None
        try:
            with trace.use_span(root, end_on_exit=False):
                side = await self._outbound(conn, tuple_)
        except Refusal as refusal:
            side = self._refused_side(conn, refusal.reason)
            root.set_attribute("trustwire.reason", refusal.reason)
            root.set_attribute("trustwire.detail", str(refusal))
        side.spans.insert(0, root)
        self._egress[conn.id] = side
        if side.decision.verdict is FlowVerdict.REJECT:
            return Verdict.reject(side.decision.reason, revision=side.revision)
        side.spans.append(self.tracer.start_span("relay", context=trace.set_span_in_context(root)))
        return side_verdict(side)

    async def _outbound(self, conn: InterceptedConnection, tuple_: FiveTuple) -> _Side:
        policy = self._policy()
        if policy is None or policy.pu(conn.pu_id) is None:
            raise Refusal(POLICY_NOT_SYNCED, "no policy for this PU yet")
        own = policy.pu(conn.pu_id)
        assert own is not None
        source = self._own_endpoint(own, str(tuple_.source_ip))
        port = tuple_.destination_port
        destination = resolve_destination(
            policy, self.enforcer_id, tuple_.destination_ip, port, self._listening(tuple_)
        )
        if isinstance(destination, ExternalDestination):
            peer = Peer.address(tuple_.destination_ip)
            with self.tracer.start_as_current_span("decide"):
                decision = policy.decide(conn.pu_id, Direction.EGRESS, peer, port)
            dest = FlowEndpoint(
                labels=destination.labels,
                ip=str(destination.ip),
                port=port,
                external_network=destination.network,
            )
            flow = _decision_flow(decision, Direction.EGRESS)
            return _Side(
                conn.pu_id,
                Direction.EGRESS,
                source,
                dest,
                port,
                flow,
                policy.revision,
                peer=peer,
                encrypted=flow.encrypted,
            )
        if isinstance(destination, LocalDestination):
            return self._local(conn, tuple_, policy, own, destination.pu, source)
        return await self._remote(conn, tuple_, policy, destination, source)

    def _local(
        self,
        conn: InterceptedConnection,
        tuple_: FiveTuple,
        policy: AppliedPolicy,
        own: PuView,
        target: PuView,
        source: FlowEndpoint,
    ) -> _Side:
        """Both PUs are this enforcer's: decide both directions here, grant the inbound side
        to ourselves (the connection still crosses the two PUs' rules)."""
        port = tuple_.destination_port
        src_labels = self._pu_labels(own)
        dst_labels = self._pu_labels(target)
        destination = FlowEndpoint(
            target.id, dst_labels, self.trust_domain, str(tuple_.destination_ip), port
        )
        to_peer = Peer.identity(target.id, dst_labels, tuple_.destination_ip)
        from_peer = Peer.identity(own.id, src_labels, tuple_.source_ip)
        with self.tracer.start_as_current_span("decide"):
            egress = policy.decide(own.id, Direction.EGRESS, to_peer, port)
            ingress = policy.decide(target.id, Direction.INGRESS, from_peer, port)
        e_flow = _decision_flow(egress, Direction.EGRESS)
        i_flow = _decision_flow(ingress, Direction.INGRESS)
        encrypted = e_flow.encrypted or i_flow.encrypted
        parent = otel_context.get_current()
        in_side = _Side(
            target.id,
            Direction.INGRESS,
            source,
            destination,
            port,
            i_flow,
            policy.revision,
            peer=from_peer,
            encrypted=encrypted and i_flow.verdict is FlowVerdict.ALLOW,
            parent=parent,
        )
        if i_flow.verdict is FlowVerdict.ALLOW and e_flow.verdict is FlowVerdict.ALLOW:
            self._ingress[tuple_] = in_side
            self.grants.grant(tuple_, side_verdict(in_side, self.trust.spiffe_id), self.ttl)
        else:
            self._record(in_side, 0, 0)
        if i_flow.verdict is not FlowVerdict.ALLOW and e_flow.verdict is FlowVerdict.ALLOW:
            e_flow = FlowDecision.refused(Direction.EGRESS, i_flow.reason)
        return _Side(
            own.id,
            Direction.EGRESS,
            source,
            destination,
            port,
            e_flow,
            policy.revision,
            peer=to_peer,
            encrypted=encrypted and e_flow.verdict is FlowVerdict.ALLOW,
            peer_identity=self.trust.spiffe_id,
            parent=parent,
        )

    async def _remote(
        self,
        conn: InterceptedConnection,
        tuple_: FiveTuple,
        policy: AppliedPolicy,
        destination: RemoteDestination,
        source: FlowEndpoint,
    ) -> _Side:
        document = self.identities.document(conn.pu_id)
        if document is None:
            raise Refusal(FAIL_CLOSED, "the PU has no identity document yet")
        endpoint = destination.enforcer
        peer_id = self._enforcer_spiffe(endpoint)
        channel = self.channels.channel(endpoint.enforcer_id, endpoint.addresses)
        port = tuple_.destination_port
        # Our egress, decided before asking: the directory names the destination, and the
        # view matches a directory PU by id, so the verified labels cannot change this; only
        # conditions on the destination's scores (known from the answer) can, and they are
        # checked again below. The destination needs it to encrypt when only we require it.
        # Several candidates (PUs sharing the address, none declaring the port): the answer
        # names the one that listens; until then ask with what any of them would get.
        with self.tracer.start_as_current_span("decide"):
            intents = {
                entry.pu_id: policy.decide(
                    conn.pu_id, Direction.EGRESS, Peer.identity(entry.pu_id, Labels()), port
                )
                for entry in destination.entries
            }
        egress = _combined_egress(list(intents.values()))
        asked = time.perf_counter()
        outcome = "failed"  # until an answer arrives: a timeout or channel failure raises
        with (
            self.tracer.start_as_current_span(
                "authorize", attributes={"trustwire.peer_enforcer": peer_id}
            ) as span,
            self._timed_authorize(asked, lambda: outcome),
        ):
            trace_context = TraceContext(traceparent=_traceparent(span))
            session = self.trust.session_with(peer_id)
            if session is None:
                self._ensure_session(peer_id, channel)
            answer, nonce = await self._ask(
                channel, document, tuple_, trace_context, session, egress
            )
            checked = self._verify_answer(answer, tuple_, nonce)
            if _session_gone(checked):
                # The answer is sealed under a session this side no longer holds (dropped
                # meanwhile: eviction, a bundle or revocation update): ask again, signed,
                # once; a signed request gets a signed answer.
                span.set_attribute("trustwire.resent_signed", True)
                answer, nonce = await self._ask(
                    channel, document, tuple_, trace_context, None, egress
                )
                checked = self._verify_answer(answer, tuple_, nonce)
            outcome = "allowed" if answer.allowed else "rejected"
            span.set_attribute("trustwire.verdict", "allow" if answer.allowed else "reject")
            span.set_attribute("trustwire.reason", answer.reason)
        if checked is None:
            # A credential refusal: the destination saw no valid profile of ours.
            raise Refusal(answer.reason or PEER_REJECTED, "destination refused our profile")
        if isinstance(checked, VerificationError):
            raise Refusal(checked.code.value, f"answer did not verify: {checked}")
        verified = checked
        if str(verified.signer) != peer_id or verified.pu_id not in intents:
            raise Refusal(
                PEER_REJECTED,
                f"answer from {verified.signer} for {verified.pu_id}, "
                f"expected {peer_id} for {' or '.join(intents)}",
            )
        entry: DirectoryEntry = next(e for e in destination.entries if e.pu_id == verified.pu_id)
        intent = intents[entry.pu_id]
        labels = Labels(verified.labels)
        destination_ep = FlowEndpoint(
            entry.pu_id, labels, verified.trust_domain.name, str(tuple_.destination_ip), port
        )
        peer = Peer.identity(entry.pu_id, labels, tuple_.destination_ip)
        scores = _scores(verified)
        if egress is PolicyAction.REJECT:
            # The destination was told we refuse and granted nothing: that decision stands.
            flow = _decision_flow(intent, Direction.EGRESS)
        else:
            with self.tracer.start_as_current_span("decide"):
                decision = policy.decide(conn.pu_id, Direction.EGRESS, peer, port, scores=scores)
            flow = _decision_flow(decision, Direction.EGRESS)
        if flow.verdict is FlowVerdict.ALLOW and not answer.allowed:
            # Our side allowed; the destination's verdict is what rejected it.
            flow = FlowDecision.refused(Direction.EGRESS, answer.reason or PEER_REJECTED)
        encrypted = flow.verdict is FlowVerdict.ALLOW and (answer.encrypt or flow.encrypted)
        if encrypted and not answer.encrypt:
            # We require encryption but the destination granted a plain connection (our
            # request said allow: the destination's scores turned our decision into encrypt,
            # or the destination predates encryption on request). Its end would refuse TLS:
            # fail here, with the reason.
            flow = FlowDecision.refused(Direction.EGRESS, PEER_REJECTED)
            encrypted = False
        elif encrypted and not flow.encrypted:
            flow = dataclasses.replace(flow, encrypted=True)  # the destination's requirement
        return _Side(
            conn.pu_id,
            Direction.EGRESS,
            source,
            destination_ep,
            port,
            flow,
            policy.revision,
            peer=peer,
            scores=scores,
            encrypted=encrypted,
            peer_identity=peer_id,
        )

    @contextlib.contextmanager
    def _timed_authorize(self, asked: float, outcome: Callable[[], str]) -> Iterator[None]:
        """Observe one Authorize round trip however it ends (``outcome`` read at the end)."""
        try:
            yield
        finally:
            elapsed = time.perf_counter() - asked
            self.metrics.authorize_duration.labels(outcome()).observe(elapsed)

    async def _ask(
        self,
        channel: PeerChannel,
        document: bytes,
        tuple_: FiveTuple,
        trace_context: TraceContext,
        session: Session | None,
        egress: PolicyAction,
    ) -> tuple[AuthorizeAnswer, bytes]:
        """One Authorize; a sealed profile the destination no longer knows the session of
        (EXPIRED without a profile: it restarted or dropped it) is re-sent signed, once."""
        signed: SignedProfile | None = None
        if session is not None:
            with contextlib.suppress(TrustwireError):
                signed = self.trust.signer.seal(
                    document, tuple_, session, trace_context=trace_context
                )
        sealed = signed is not None
        if signed is None:
            signed = self.trust.signer.sign(document, tuple_, trace_context=trace_context)
        self.last_request = signed.envelope
        try:
            answer = await channel.authorize(signed.envelope, self.timeout, egress)
        except TimeoutError:
            raise Refusal(HANDSHAKE_TIMEOUT, "Authorize timed out") from None
        except TrustwireError as error:
            raise Refusal(HANDSHAKE_TIMEOUT, f"Authorize failed: {error}") from None
        if sealed and not answer.profile and answer.reason in _SESSION_GONE:
            assert session is not None
            self.trust.verifier.drop_session(session.session_id)
            return await self._ask(channel, document, tuple_, trace_context, None, egress)
        return answer, signed.profile.nonce

    def _verify_answer(
        self, answer: AuthorizeAnswer, tuple_: FiveTuple, nonce: bytes
    ) -> VerifiedProfile | VerificationError | None:
        """The answer's profile verified (None: the answer carries none), or why not."""
        if not answer.profile:
            return None
        try:
            return self.trust.verifier.verify(answer.profile, tuple_, expected_peer_nonce=nonce)
        except VerificationError as error:
            return error

    # ------------------------------------------------------------------ sessions (initiator)

    def _ensure_session(self, peer_id: str, channel: PeerChannel) -> None:
        task = self._session_tasks.get(peer_id)
        if task is not None and not task.done():
            return
        task = asyncio.get_running_loop().create_task(
            self._open_session(peer_id, channel), name=f"session-{peer_id}"
        )
        self._session_tasks[peer_id] = task

    async def _open_session(self, peer_id: str, channel: PeerChannel) -> None:
        """Background: a failed session only means the next profiles are signed, not sealed.

        ``complete`` installs the session here (so answers the responder seals under it
        verify as soon as the responder has it), but nothing is sealed under it before the
        responder accepted ``ConfirmSession``: until then the responder does not know it."""
        sessions = self.trust.sessions
        try:
            state, request = sessions.initiate(expected_peer=SpiffeId.parse(peer_id))
            response = await channel.open_session(request, self.timeout)
            session, confirm = sessions.complete(state, response)
            try:
                await channel.confirm_session(confirm, self.timeout)
            except BaseException:
                self.trust.verifier.drop_session(session.session_id)
                raise
            self.trust.confirmed(session)
        except (TrustwireError, TimeoutError, OSError) as error:
            _log.info("session with %s not established: %s", peer_id, error)

    async def settle_sessions(self) -> None:
        """Until every session handshake in progress has finished (diagnosis and tests)."""
        pending = [t for t in self._session_tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending)

    async def close(self) -> None:
        for task in self._session_tasks.values():
            task.cancel()
        for task in self._session_tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._session_tasks.clear()

    # ------------------------------------------------------------------ destination side

    def authorize(
        self,
        envelope: bytes,
        claimed: FiveTuple | None,
        peer_chain: tuple[bytes, ...] | None,
        egress: PolicyAction = PolicyAction.ALLOW,
    ) -> AuthorizeAnswer:
        """The ``Authorize`` handler (see :meth:`_authorize`), counted by verdict."""
        answer = self._authorize(envelope, claimed, peer_chain, egress)
        verdict = "allow" if answer.allowed else "reject"
        self.metrics.authorize_served.labels(verdict, answer.reason).inc()
        return answer

    def _authorize(
        self,
        envelope: bytes,
        claimed: FiveTuple | None,
        peer_chain: tuple[bytes, ...] | None,
        egress: PolicyAction,
    ) -> AuthorizeAnswer:
        """The ``Authorize`` handler. ``claimed`` is the tuple the (not yet verified) profile
        names, read by the transport so the verifier can check the profile against exactly
        the connection it will admit; ``peer_chain`` the channel peer's certificate chain;
        ``egress`` the source's own decision (``allow``, ``encrypt`` or ``reject``)."""
        policy = self._policy()
        if claimed is None or egress is PolicyAction.OBSERVE:
            return AuthorizeAnswer(False, ReasonCode.MALFORMED_PROFILE.value)
        target = (
            policy.local_pu_at(
                claimed.destination_ip, claimed.destination_port, self._listening(claimed)
            )
            if policy is not None
            else None
        )
        if target is None:
            # Not a PU of ours (or no policy yet): nothing to authorize; say which.
            reason = ReasonCode.ADDRESS_MISMATCH.value if policy else POLICY_NOT_SYNCED
            return AuthorizeAnswer(False, reason)
        assert policy is not None
        try:
            verified = self.trust.verifier.verify(envelope, claimed, peer_chain=peer_chain)
        except VerificationError as error:
            self._record_refused_ingress(target, claimed, error.code.value, policy.revision)
            return AuthorizeAnswer(False, error.code.value)
        except TrustwireError as error:  # replay cache full: fail closed, visibly
            _log.warning("Authorize refused: %s", error)
            self._record_refused_ingress(target, claimed, FAIL_CLOSED, policy.revision)
            return AuthorizeAnswer(False, FAIL_CLOSED)
        parent = _context_from(verified.profile.trace_context.traceparent)
        with self.tracer.start_as_current_span(
            "authorize",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"trustwire.pu_id": target.id, "trustwire.source_pu": verified.pu_id},
        ) as span:
            answer = self._admit(
                verified, claimed, target, policy, trace.get_current_span(), egress
            )
            span.set_attribute("trustwire.verdict", "allow" if answer.allowed else "reject")
            span.set_attribute("trustwire.reason", answer.reason)
        return answer

    def _admit(
        self,
        verified: VerifiedProfile,
        tuple_: FiveTuple,
        target: PuView,
        policy: AppliedPolicy,
        span: Span,
        egress: PolicyAction,
    ) -> AuthorizeAnswer:
        port = tuple_.destination_port
        known = policy.peer(verified.pu_id)
        if known is not None and known.ips and tuple_.source_ip not in known.ips:
            # The source enforcer vouches for a PU at an address the directory does not give
            # it: refuse rather than let one PU's identity cover another's address.
            self._record_refused_ingress(
                target, tuple_, ReasonCode.ADDRESS_MISMATCH.value, policy.revision
            )
            return AuthorizeAnswer(False, ReasonCode.ADDRESS_MISMATCH.value)
        labels = Labels(verified.labels)
        peer = Peer.identity(verified.pu_id, labels, tuple_.source_ip)
        scores = _scores(verified)
        with self.tracer.start_as_current_span("decide"):
            decision = policy.decide(target.id, Direction.INGRESS, peer, port, scores=scores)
        flow = _decision_flow(decision, Direction.INGRESS)
        if flow.verdict is FlowVerdict.ALLOW and egress is PolicyAction.REJECT:
            # The source refuses: record it here too (the reason is on both sides) and
            # pre-authorize nothing.
            flow = FlowDecision.refused(Direction.INGRESS, PEER_REJECTED)
        elif flow.verdict is FlowVerdict.ALLOW and egress is PolicyAction.ENCRYPT:
            # Encryption is granted when either side requires it.
            flow = dataclasses.replace(flow, encrypted=True)
        source = FlowEndpoint(
            verified.pu_id, labels, verified.trust_domain.name, str(tuple_.source_ip)
        )
        destination = self._own_endpoint(target, str(tuple_.destination_ip), port)
        allowed = flow.verdict is FlowVerdict.ALLOW
        side = _Side(
            target.id,
            Direction.INGRESS,
            source,
            destination,
            port,
            flow,
            policy.revision,
            peer=peer,
            scores=scores,
            encrypted=allowed and flow.encrypted,
            parent=trace.set_span_in_context(span),
        )
        source_enforcer = str(verified.signer)
        if allowed:
            self._purge_ingress()
            self._ingress[tuple_] = side
            self.grants.grant(tuple_, side_verdict(side, source_enforcer), self.ttl)
        else:
            self._record(side, 0, 0)
        document = self.identities.document(target.id)
        if document is None:
            return AuthorizeAnswer(False, FAIL_CLOSED, revision=policy.revision)
        trace_context = TraceContext(traceparent=_traceparent(span))
        # Sealed only under the session the request was sealed under: the source has just
        # proven it holds that one. Any other (one we initiated and the source has not
        # installed yet, one it dropped) could fail at the source; a signed request gets a
        # signed answer.
        session = self.trust.verifier.session(verified.session_id) if verified.sealed else None
        signed: SignedProfile | None = None
        if session is not None:
            with contextlib.suppress(TrustwireError):
                signed = self.trust.signer.seal(
                    document,
                    tuple_,
                    session,
                    peer_nonce=verified.nonce,
                    trace_context=trace_context,
                )
        if signed is None:
            signed = self.trust.answer_signer.sign(
                document, tuple_, peer_nonce=verified.nonce, trace_context=trace_context
            )
        return AuthorizeAnswer(
            allowed=allowed,
            reason=flow.reason,
            encrypt=side.encrypted,
            profile=signed.envelope,
            server_spiffe_id=self.trust.spiffe_id,
            preauthorization_ttl=self.ttl if allowed else 0.0,
            revision=policy.revision,
        )

    def open_session(self, request: bytes, peer_chain: tuple[bytes, ...] | None) -> bytes:
        return self.trust.sessions.respond(request, peer_chain=peer_chain)

    def confirm_session(self, request: bytes, peer_chain: tuple[bytes, ...] | None) -> None:
        self.trust.sessions.confirm(request, peer_chain=peer_chain)

    def inbound_without_grant(self, conn: InterceptedConnection) -> Verdict:
        """A connection that no ``Authorize`` announced: its source has no enforcer (or its
        enforcer did not ask). Ingress by address rules only."""
        tuple_ = conn.five_tuple
        policy = self._policy()
        pu = policy.pu(conn.pu_id) if policy is not None else None
        span = self.tracer.start_span(
            "intercept",
            attributes={"trustwire.pu_id": conn.pu_id, "trustwire.direction": "ingress"},
        )
        if policy is None or pu is None:
            side = self._refused_side(conn, POLICY_NOT_SYNCED)
        else:
            peer = Peer.address(tuple_.source_ip)
            network = policy.external_network(tuple_.source_ip)
            decision = policy.decide(conn.pu_id, Direction.INGRESS, peer, tuple_.destination_port)
            flow = _decision_flow(decision, Direction.INGRESS)
            side = _Side(
                conn.pu_id,
                Direction.INGRESS,
                FlowEndpoint(
                    labels=network.labels if network else Labels(),
                    ip=str(tuple_.source_ip),
                    external_network=network.name if network else "",
                ),
                self._own_endpoint(pu, str(tuple_.destination_ip), tuple_.destination_port),
                tuple_.destination_port,
                flow,
                policy.revision,
                peer=peer,
            )
        side.spans.append(span)
        self._ingress[tuple_] = side
        if side.decision.verdict is not FlowVerdict.ALLOW:
            return Verdict.reject(side.decision.reason, revision=side.revision)
        return Verdict.allow(side.decision.reason, rule=side.decision.policy or "")

    # ------------------------------------------------------------------ reports and changes

    def on_report(self, report: ConnectionReport) -> None:
        """The datapath finished a connection: record its flow, end its spans."""
        conn = report.connection
        if conn.direction is Direction.EGRESS:
            side = self._egress.pop(conn.id, None)
        else:
            side = self._ingress.pop(conn.five_tuple, None)
        if side is None:
            reason = HANDSHAKE_TIMEOUT if report.outcome is Outcome.DECIDE_FAILED else FAIL_CLOSED
            side = self._refused_side(conn, reason)
        elif report.outcome is Outcome.DECIDE_FAILED:
            side.decision = FlowDecision.refused(conn.direction, HANDSHAKE_TIMEOUT)
        rejected = side.decision.verdict is not FlowVerdict.ALLOW
        if conn.direction is Direction.EGRESS:
            sent, received = report.bytes_from_pu, report.bytes_to_pu
        else:
            sent, received = report.bytes_to_pu, report.bytes_from_pu
        trace_id = side.trace_id
        for span in reversed(side.spans):
            span.set_attribute("trustwire.outcome", report.outcome.value)
            span.set_attribute("trustwire.reason", side.decision.reason)
            if report.detail:
                span.set_attribute("trustwire.detail", report.detail[:200])
            span.end()
        side.spans.clear()
        self.metrics.connection_finished(report, side.decision.verdict.value, side.decision.reason)
        self._record(side, 0 if rejected else sent, 0 if rejected else received, trace_id)

    def denied_by(self, policy: AppliedPolicy) -> Callable[[Relay], bool]:
        """For ``close_where`` after a new revision: live connections it no longer admits (or
        admits only encrypted while they run in the clear)."""

        def denied(relay: Relay) -> bool:
            conn = relay.connection
            side = (
                self._egress.get(conn.id)
                if conn.direction is Direction.EGRESS
                else self._ingress.get(conn.five_tuple)
            )
            return side is not None and self._no_longer_admitted(policy, side)

        return denied

    def grant_denied_by(self, policy: AppliedPolicy) -> Callable[[FiveTuple, Verdict], bool]:
        def denied(five_tuple: FiveTuple, verdict: Verdict) -> bool:
            side = self._ingress.get(five_tuple)
            return side is not None and self._no_longer_admitted(policy, side)

        return denied

    def _no_longer_admitted(self, policy: AppliedPolicy, side: _Side) -> bool:
        if side.peer is None:
            return False
        try:
            decision = policy.decide(
                side.pu_id, side.direction, side.peer, side.port, scores=side.scores
            )
        except KeyError:
            return True  # the PU left the view: nothing admits it any more
        if decision is None:
            return False
        return not decision.allowed or (decision.encrypted and not side.encrypted)

    # ------------------------------------------------------------------ helpers

    def _record(self, side: _Side, sent: int, received: int, trace_id: str = "") -> None:
        try:
            self.flows.record(
                ConnectionFacts(
                    source=side.source,
                    destination=side.destination,
                    protocol=L4.TCP,
                    decision=side.decision,
                    revision=side.revision,
                    bytes_sent=sent,
                    bytes_received=received,
                    trace_id=trace_id or side.trace_id,
                )
            )
        except TrustwireError as error:  # a malformed fact must not break enforcement
            _log.warning("flow not recorded: %s", error)

    def _record_refused_ingress(
        self, target: PuView, tuple_: FiveTuple, reason: str, revision: int
    ) -> None:
        side = _Side(
            target.id,
            Direction.INGRESS,
            FlowEndpoint(ip=str(tuple_.source_ip)),
            self._own_endpoint(target, str(tuple_.destination_ip), tuple_.destination_port),
            tuple_.destination_port,
            FlowDecision.refused(Direction.INGRESS, reason),
            revision,
        )
        self._record(side, 0, 0)

    def _refused_side(self, conn: InterceptedConnection, reason: str) -> _Side:
        tuple_ = conn.wire_tuple
        policy = self._policy()
        pu = policy.pu(conn.pu_id) if policy is not None else None
        own_ip = tuple_.source_ip if conn.direction is Direction.EGRESS else tuple_.destination_ip
        own = (
            self._own_endpoint(pu, str(own_ip))
            if pu is not None
            else FlowEndpoint(pu_id=conn.pu_id, ip=str(own_ip))
        )
        if conn.direction is Direction.EGRESS:
            source = own
            destination = FlowEndpoint(ip=str(tuple_.destination_ip), port=tuple_.destination_port)
        else:
            source = FlowEndpoint(ip=str(tuple_.source_ip))
            destination = FlowEndpoint(
                own.pu_id, own.labels, own.trust_domain, own.ip, tuple_.destination_port
            )
        return _Side(
            conn.pu_id,
            conn.direction,
            source,
            destination,
            tuple_.destination_port,
            FlowDecision.refused(conn.direction, reason),
            policy.revision if policy is not None else 0,
        )

    def _purge_ingress(self) -> None:
        """Ingress sides of grants never used (the source rejected at egress, or never
        connected) expire with their grant."""
        if len(self._ingress) < 1024:
            return
        horizon = time.monotonic() - 2 * self.ttl - 60.0
        for key in [k for k, s in self._ingress.items() if s.created < horizon]:
            side = self._ingress.pop(key)
            for span in side.spans:
                span.end()

    def _listening(self, tuple_: FiveTuple) -> Callable[[tuple[PuView, ...], int], PuView | None]:
        """The kernel's answer to "which of these PUs sharing the destination address listens
        on the port" (for ``AppliedPolicy.local_pu_at``)."""

        def listening(pus: tuple[PuView, ...], port: int) -> PuView | None:
            owner = self.identities.listening_pu([pu.id for pu in pus], tuple_.destination_ip, port)
            return next((pu for pu in pus if pu.id == owner), None)

        return listening

    def _pu_labels(self, pu: PuView) -> Labels:
        return Labels(
            {
                **pu.labels,
                "namespace": pu.namespace,
                "pu-type": pu.pu_type.value,
                "trust-domain": self.trust_domain,
                "enforcer": self.enforcer_id,
            }
        )

    def _own_endpoint(self, pu: PuView, ip: str, port: int = 0) -> FlowEndpoint:
        return FlowEndpoint(pu.id, self._pu_labels(pu), self.trust_domain, ip, port)

    def _enforcer_spiffe(self, endpoint: EnforcerEndpoint) -> str:
        domain = endpoint.trust_domain or self.trust_domain
        return f"spiffe://{domain}/enforcer/{endpoint.enforcer_id}"


def _session_gone(result: VerifiedProfile | VerificationError | None) -> bool:
    """A sealed answer this side cannot check because it no longer holds the session."""
    return (
        isinstance(result, VerificationError)
        and result.code in (ReasonCode.UNKNOWN_SESSION, ReasonCode.EXPIRED)
        and result.metadata.get("session") in ("unknown", "expired")
    )


def side_verdict(side: _Side, peer_identity: str | None = None) -> Verdict:
    decision = side.decision
    action = Action.ENCRYPT if side.encrypted else Action.ALLOW
    return Verdict(
        action,
        decision.reason,
        decision.policy or "",
        peer_identity if peer_identity is not None else side.peer_identity,
        side.revision,
    )
