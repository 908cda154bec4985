"""Channel sessions between two in-process handshake endpoints: concurrent first contacts must
never seal a profile under a session the other enforcer does not hold yet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from opentelemetry import trace

from tests.unit.identity.pki import TYPICAL_LABELS, World, make_world, typical_attestation
from trustwire.identity import (
    FiveTuple,
    ProfileSigner,
    ProfileVerifier,
    ReasonCode,
    SessionManager,
    VerificationError,
)
from trustwire.identity._credential import Credential
from trustwire_enforcer.handshake import AuthorizeAnswer, Handshake
from trustwire_enforcer.trust import TrustState

TUPLE = FiveTuple.of("TCP", "10.0.0.1", 40000, "10.0.0.2", 5432)


class _Trust(TrustState):
    """A ``TrustState`` over a test credential (no enforcer certificate files)."""

    def __init__(self, credential: Credential, world: World) -> None:
        self.verifier = ProfileVerifier(world.bundles, clock=world.clock)
        self.signer = ProfileSigner(credential, clock=world.clock)
        self.answer_signer = ProfileSigner(credential, clock=world.clock, inline_chain=True)
        self.sessions = SessionManager(credential, self.verifier, inline_chain=True)
        self._confirmed: set[bytes] = set()


class _Channel:
    """The channel from one endpoint to another; every rpc yields to the loop (as gRPC does),
    ``ConfirmSession`` only once ``confirm_gate`` is set."""

    def __init__(self, to: Handshake, confirm_gate: asyncio.Event) -> None:
        self.to = to
        self.confirm_gate = confirm_gate

    async def authorize(
        self,
        envelope: bytes,
        timeout: float,  # noqa: ASYNC109
        egress: object,
    ) -> AuthorizeAnswer:
        raise AssertionError("not used")

    async def open_session(self, request: bytes, timeout: float) -> bytes:  # noqa: ASYNC109
        await asyncio.sleep(0)
        response = self.to.open_session(request, None)
        await asyncio.sleep(0)
        return response

    async def confirm_session(self, request: bytes, timeout: float) -> None:  # noqa: ASYNC109
        await self.confirm_gate.wait()
        self.to.confirm_session(request, None)
        await asyncio.sleep(0)


def _endpoint(credential: Credential, world: World) -> Handshake:
    unused: Callable[..., object] = lambda *a, **k: None  # noqa: E731
    return Handshake(
        enforcer_id=str(credential.spiffe_id).rsplit("/", 1)[-1],
        trust=_Trust(credential, world),
        identities=unused,  # type: ignore[arg-type]
        policy=lambda: None,
        channels=unused,  # type: ignore[arg-type]
        grants=unused,  # type: ignore[arg-type]
        flows=unused,  # type: ignore[arg-type]
        tracer=trace.get_tracer("test"),
    )


def _sealed_by(world: World, sender: Handshake, receiver: Handshake) -> ReasonCode | None:
    """Seal a profile with the session ``sender`` would use with ``receiver`` and verify it
    there: None when it verifies (or nothing would be sealed), else the refusal."""
    session = sender.trust.session_with(str(receiver.trust.signer.credential.spiffe_id))
    if session is None:
        return None
    issued = world.issuer_a.issue(
        pu_id="shop/web-1",
        enforcer_id=sender.enforcer_id,
        labels=TYPICAL_LABELS,
        attestation=typical_attestation(),
        not_after=world.node1.certificate.not_valid_after_utc,
    )
    signed = sender.trust.signer.seal(issued.envelope, TUPLE, session)
    try:
        receiver.trust.verifier.verify(signed.envelope, TUPLE)
    except VerificationError as error:
        return error.code
    return None


async def test_concurrent_first_contacts_never_seal_under_an_unconfirmed_session() -> None:
    """Both enforcers open a session to each other at once (first connections both ways).
    At every point of the interleaving, a session either side would seal under must be one
    the other side holds: before the fix the initiator offered its session as soon as
    ``complete`` installed it, while the responder had it only after ``ConfirmSession``, and
    a profile (request or answer) sealed in between was refused EXPIRED."""
    world = make_world()
    a = _endpoint(world.node1, world)
    b = _endpoint(world.node2, world)
    a_id, b_id = str(world.node1.spiffe_id), str(world.node2.spiffe_id)
    gate_ab, gate_ba = asyncio.Event(), asyncio.Event()
    a._ensure_session(b_id, _Channel(b, gate_ab))
    a._ensure_session(b_id, _Channel(b, gate_ab))  # single flight: still one handshake
    b._ensure_session(a_id, _Channel(a, gate_ba))
    assert len(a._session_tasks) == 1

    for _ in range(10):  # both handshakes reach ConfirmSession and wait there
        await asyncio.sleep(0)
        assert _sealed_by(world, a, b) is None
        assert _sealed_by(world, b, a) is None
    assert len(a.trust.verifier.sessions) == 1  # its own, unconfirmed; none of b's yet
    assert a.trust.session_with(b_id) is None
    assert b.trust.session_with(a_id) is None

    gate_ab.set()  # b confirms a's session: both sides hold it
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)
        assert _sealed_by(world, a, b) is None
        assert _sealed_by(world, b, a) is None
    gate_ba.set()
    await a.settle_sessions()
    await b.settle_sessions()
    for sender, receiver in ((a, b), (b, a)):
        other = str(receiver.trust.signer.credential.spiffe_id)
        assert sender.trust.session_with(other) is not None
        assert _sealed_by(world, sender, receiver) is None
    await a.close()
    await b.close()
