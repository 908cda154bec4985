"""Channel sessions: one authenticated key exchange per enforcer pair, then profiles sealed with
HMAC-SHA256 instead of signed with ECDSA, so a connection costs no public-key operation.

Protocol (docs/trust-profile.md, "Channel sessions", is normative), a signed ephemeral
Diffie-Hellman in the style of the TLS 1.3 handshake and ISO/IEC 9798-3 ("SIG-DH"):

1. initiator -> responder (``OpenSessionRequest``): protocol label, ephemeral X25519 key,
   16-byte random, optional certificate chain (else the channel certificate).
2. responder -> initiator (``OpenSessionResponse``): its ephemeral key and random, the validity
   window it chose, the session id, and its ECDSA signature over the transcript.
3. initiator -> responder (``ConfirmSessionRequest``): the session id and its own ECDSA
   signature over the same transcript.

The transcript binds both SPIFFE IDs (as the verified certificate chains name them), both
ephemeral keys, both randoms, the protocol label and the validity window. Each side signs it
under its own context string (so one side's signature is never valid as the other's), and each
verifies the other's signature and chain (bundle of the claimed trust domain, enforcer role,
validity, revocation) through the ``ProfileVerifier``. Keys come from HKDF-SHA256 over the
X25519 secret with the transcript hash as salt: one key per sending direction and the session
id. Compromising an enforcer's long-term key later reveals nothing of past sessions (forward
secrecy) and never lets the thief forge *other* enforcers' profiles to it (no static-static
key agreement: every session needs the peer's live signature).

A ``Session`` is usable until ``not_after`` (at most the maximum lifetime, 1 h by default, and
never past either certificate's expiry) or until the verifier drops it (a bundle or revocation
update that invalidates either certificate, eviction).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from trustwire.api.enforcer.v1 import authorization_service_pb2 as pb

from . import _crypto
from ._chain import VerifiedChain
from ._credential import Credential
from ._envelope import PROFILE_PAYLOAD_TYPE
from ._issuer import Clock
from ._reasons import ReasonCode, VerificationError
from ._spiffe import SpiffeId

if TYPE_CHECKING:
    from ._verifier import ProfileVerifier

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_SESSION_LIFETIME",
    "EPHEMERAL_KEY_BYTES",
    "INITIATOR_SIGNATURE_CONTEXT",
    "KDF_LABEL_INITIATOR_KEY",
    "KDF_LABEL_RESPONDER_KEY",
    "KDF_LABEL_SESSION_ID",
    "RANDOM_BYTES",
    "RESPONDER_SIGNATURE_CONTEXT",
    "SESSION_ID_BYTES",
    "SESSION_PROTOCOL",
    "TAG_BYTES",
    "InitiatorHandshake",
    "Session",
    "SessionKeys",
    "SessionManager",
    "SessionRole",
    "derive_session_keys",
    "encode_transcript",
    "sealed_mac_input",
    "signed_transcript",
]

SESSION_PROTOCOL = "trustwire-session-v1"
INITIATOR_SIGNATURE_CONTEXT = b"trustwire-session-v1 initiator signature"
RESPONDER_SIGNATURE_CONTEXT = b"trustwire-session-v1 responder signature"
KDF_LABEL_INITIATOR_KEY = b"trustwire-session-v1 key initiator to responder"
KDF_LABEL_RESPONDER_KEY = b"trustwire-session-v1 key responder to initiator"
KDF_LABEL_SESSION_ID = b"trustwire-session-v1 session id"
EPHEMERAL_KEY_BYTES = 32
RANDOM_BYTES = 16
SESSION_ID_BYTES = 16
KEY_BYTES = 32
TAG_BYTES = 32
DEFAULT_SESSION_LIFETIME = timedelta(hours=1)
# Between OpenSession and ConfirmSession; also how far the initiator accepts the responder's
# not_before from its own clock (the verifier's max skew is used for that).
DEFAULT_HANDSHAKE_TIMEOUT = timedelta(seconds=30)
DEFAULT_MAX_PENDING = 4096

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# PAE(PROFILE_PAYLOAD_TYPE, payload) without LEN(payload) SP payload: constant, precomputed.
_PROFILE_PAE_HEAD = b"DSSEv1 %d %b " % (len(PROFILE_PAYLOAD_TYPE), PROFILE_PAYLOAD_TYPE.encode())


class SessionRole(enum.StrEnum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


# --- the cryptographic core (also what the test vectors pin down) ---------------------------


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """What the key schedule derives. ``initiator_key`` authenticates profiles the initiator
    sends, ``responder_key`` those the responder sends."""

    session_id: bytes
    initiator_key: bytes = b""
    responder_key: bytes = b""

    def __repr__(self) -> str:  # never print key material
        return f"SessionKeys(session_id={self.session_id.hex()})"


def encode_transcript(
    *,
    initiator: str,
    responder: str,
    initiator_ephemeral: bytes,
    responder_ephemeral: bytes,
    initiator_random: bytes,
    responder_random: bytes,
    not_before: int,
    not_after: int,
) -> bytes:
    """The transcript both enforcers sign. Each variable-length element is written as a 2-byte
    big-endian length then its bytes, in this order: protocol label, initiator SPIFFE ID,
    responder SPIFFE ID (UTF-8), initiator ephemeral key, responder ephemeral key, initiator
    random, responder random; then ``not_before`` and ``not_after`` as 8-byte big-endian
    unsigned Unix seconds. Unambiguous: no two inputs share an encoding."""
    parts = (
        SESSION_PROTOCOL.encode(),
        initiator.encode(),
        responder.encode(),
        initiator_ephemeral,
        responder_ephemeral,
        initiator_random,
        responder_random,
    )
    head = b"".join(len(p).to_bytes(2, "big") + p for p in parts)
    return head + not_before.to_bytes(8, "big") + not_after.to_bytes(8, "big")


def signed_transcript(role: SessionRole, transcript: bytes) -> bytes:
    """What ``role`` signs: its context string, one 0x00 byte, the transcript. Distinct
    contexts mean a responder signature can never stand in for an initiator signature."""
    context = (
        INITIATOR_SIGNATURE_CONTEXT
        if role is SessionRole.INITIATOR
        else RESPONDER_SIGNATURE_CONTEXT
    )
    return context + b"\x00" + transcript


def derive_session_keys(shared_secret: bytes, transcript: bytes) -> SessionKeys:
    """HKDF-SHA256 (RFC 5869) with IKM = the X25519 shared secret and salt = SHA-256(transcript):
    32-byte initiator and responder keys and the 16-byte session id, each with its own info
    label (``KDF_LABEL_*``)."""
    salt = hashlib.sha256(transcript).digest()

    def expand(info: bytes, length: int) -> bytes:
        return HKDF(hashes.SHA256(), length, salt, info).derive(shared_secret)

    return SessionKeys(
        session_id=expand(KDF_LABEL_SESSION_ID, SESSION_ID_BYTES),
        initiator_key=expand(KDF_LABEL_INITIATOR_KEY, KEY_BYTES),
        responder_key=expand(KDF_LABEL_RESPONDER_KEY, KEY_BYTES),
    )


def sealed_mac_input(session_id: bytes, payload: bytes) -> bytes:
    """``session_id || PAE(PROFILE_PAYLOAD_TYPE, payload)``: what a sealed profile's tag covers
    (the reference form; ``Session`` computes the same thing incrementally)."""
    return session_id + _crypto.pae(PROFILE_PAYLOAD_TYPE, payload)


def _x25519_shared(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    """X25519, refusing a peer key that yields the all-zero secret (a low-order point: the
    peer would be choosing the key alone). OpenSSL raises ValueError in that case."""
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        raise VerificationError(
            ReasonCode.MALFORMED_PROFILE, "peer ephemeral key is not a usable X25519 key"
        ) from None


def _public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _epoch_us(when: datetime) -> int:
    return (when - _EPOCH) // _ONE_US


def _epoch_seconds(when: datetime) -> int:
    """Whole seconds, rounded down (a window is only ever shortened by rounding)."""
    return (when - _EPOCH) // timedelta(seconds=1)


# --- an established session -------------------------------------------------------------------


class Session:
    """An established channel session between this enforcer (``local``) and ``peer``.

    Seals outgoing profiles with this side's sending key (``ProfileSigner.seal``) and, once
    installed in a ``ProfileVerifier`` (``SessionManager`` does it), lets the verifier check the
    peer's sealed profiles with the receiving key. The keys themselves are never exposed: only
    keyed HMAC states are kept, precomputed so a tag costs no key setup.

    ``closed`` becomes True when the verifier drops the session; an expired or closed session
    must not seal (``usable``).
    """

    __slots__ = (
        "_receive",
        "_send",
        "closed",
        "local",
        "local_chain",
        "local_chain_der",
        "not_after",
        "not_after_us",
        "not_before",
        "not_before_us",
        "peer",
        "peer_chain",
        "peer_chain_der",
        "peer_text",
        "role",
        "session_id",
    )

    def __init__(
        self,
        *,
        keys: SessionKeys,
        role: SessionRole,
        local_chain: VerifiedChain,
        local_chain_der: Sequence[bytes],
        peer_chain: VerifiedChain,
        peer_chain_der: Sequence[bytes],
        not_before: datetime,
        not_after: datetime,
    ) -> None:
        assert local_chain.spiffe_id is not None
        assert peer_chain.spiffe_id is not None
        self.session_id = keys.session_id
        self.role = role
        self.local: SpiffeId = local_chain.spiffe_id
        self.peer: SpiffeId = peer_chain.spiffe_id
        self.peer_text = str(self.peer)
        self.local_chain = local_chain
        self.local_chain_der = tuple(local_chain_der)
        self.peer_chain = peer_chain
        self.peer_chain_der = tuple(peer_chain_der)
        self.not_before = not_before
        self.not_after = not_after
        self.not_before_us = _epoch_us(not_before)
        self.not_after_us = _epoch_us(not_after)
        send, receive = (
            (keys.initiator_key, keys.responder_key)
            if role is SessionRole.INITIATOR
            else (keys.responder_key, keys.initiator_key)
        )
        # HMAC states already keyed with each direction's key, with the session id absorbed.
        self._send = _KeyedHmac(send, keys.session_id)
        self._receive = _KeyedHmac(receive, keys.session_id)
        self.closed = False

    def __repr__(self) -> str:
        return (
            f"Session({self.session_id.hex()}, {self.role}, local={self.local}, "
            f"peer={self.peer}, not_after={self.not_after.isoformat()}, closed={self.closed})"
        )

    def usable(self, now: datetime) -> bool:
        return not self.closed and self.not_before_us <= _epoch_us(now) < self.not_after_us

    def seal_tag(self, payload: bytes) -> bytes:
        """The tag this side puts on a profile it sends."""
        return self._send.tag(payload)

    def expected_tag(self, payload: bytes) -> bytes:
        """The tag a genuine profile from the peer carries."""
        return self._receive.tag(payload)


class _KeyedHmac:
    """HMAC-SHA256 (RFC 2104) of ``prefix || PAE(PROFILE_PAYLOAD_TYPE, payload)`` under one
    key, with the inner and outer SHA-256 states precomputed (key XOR ipad/opad absorbed, and
    ``prefix`` absorbed into the inner one). Equal to ``hmac.digest(key, prefix + pae, sha256)``
    (unit-tested); written out because ``hmac.HMAC.copy`` adds ~1.3 us of Python per tag on the
    verifier's hot path, while copying two ``hashlib`` states is C only."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, prefix: bytes) -> None:
        if len(key) > 64:  # never: session keys are 32 bytes; RFC 2104 would hash it first
            raise ValueError("HMAC-SHA256 key longer than the block size")
        block = key.ljust(64, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._inner.update(prefix)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def tag(self, payload: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(b"%b%d " % (_PROFILE_PAE_HEAD, len(payload)))
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


# --- the handshake ----------------------------------------------------------------------------


@dataclass(slots=True)
class InitiatorHandshake:
    """The initiator's state between ``initiate`` and ``complete``: single use."""

    private_key: X25519PrivateKey
    public_key: bytes
    random: bytes
    expected_peer: SpiffeId | None
    started_at: datetime
    done: bool = False

    def __repr__(self) -> str:
        return f"InitiatorHandshake(random={self.random.hex()}, done={self.done})"


@dataclass(frozen=True, slots=True)
class _Pending:
    """The responder's state between ``respond`` and ``confirm``."""

    keys: SessionKeys
    transcript: bytes
    initiator_chain: VerifiedChain
    initiator_ders: tuple[bytes, ...]
    local_chain: VerifiedChain
    not_before: datetime
    not_after: datetime
    deadline: datetime


class SessionManager:
    """Establishes channel sessions for one enforcer, as initiator and as responder.

    ``credential`` is the enforcer's certified key (replace the attribute on rotation; existing
    sessions stay valid until their own expiry, which never exceeds the old certificate's).
    ``verifier`` is the enforcer's ``ProfileVerifier``: it verifies peer chains (with its
    bundles, revocations and chain cache) and holds the established sessions, dropping them
    when a bundle or revocation update invalidates either certificate. ``lifetime`` caps a
    session's validity; an initiator refuses a responder's longer window.

    Gateway glue (not here: domain code has no gRPC): the enforcer's client calls
    ``initiate`` -> ``OpenSession`` -> ``complete`` -> ``ConfirmSession``; its server answers
    ``OpenSession`` with ``respond`` and ``ConfirmSession`` with ``confirm``, passing the
    channel peer's certificate chain (``peer_chain``) each time. Every refusal is a
    ``VerificationError`` with a reason code, sent back as PERMISSION_DENIED.
    """

    def __init__(
        self,
        credential: Credential,
        verifier: ProfileVerifier,
        *,
        clock: Clock | None = None,
        lifetime: timedelta = DEFAULT_SESSION_LIFETIME,
        handshake_timeout: timedelta = DEFAULT_HANDSHAKE_TIMEOUT,
        max_pending: int = DEFAULT_MAX_PENDING,
        inline_chain: bool = False,
    ) -> None:
        if lifetime < timedelta(seconds=1) or handshake_timeout <= timedelta(0):
            raise ValueError("lifetime must be at least 1 s and handshake_timeout positive")
        if max_pending < 1:
            raise ValueError("max_pending must be positive")
        self.credential = credential
        self.verifier = verifier
        self._clock = clock or verifier.clock
        self._lifetime = lifetime
        self._timeout = handshake_timeout
        self._max_pending = max_pending
        self._inline_chain = inline_chain
        self._pending: OrderedDict[bytes, _Pending] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # --- initiator ----------------------------------------------------------------------------

    def initiate(
        self,
        *,
        expected_peer: SpiffeId | None = None,
        ephemeral: tuple[X25519PrivateKey, bytes] | None = None,
    ) -> tuple[InitiatorHandshake, bytes]:
        """Message 1: returns the state to pass to ``complete`` and the ``OpenSessionRequest``
        wire bytes. ``expected_peer`` is the enforcer the caller means to reach (from its
        directory); ``complete`` refuses any other responder. ``ephemeral`` (a key and a
        16-byte random) exists for test vectors only: never reuse either."""
        now = self._clock()
        # Refuse to start with a credential this enforcer's own verifier would refuse.
        self.verifier.verify_enforcer_chain(self.credential.chain_der, now)
        private, random = ephemeral or (X25519PrivateKey.generate(), secrets.token_bytes(16))
        _check_random(random)
        public = _public_bytes(private)
        request = pb.OpenSessionRequest(
            protocol=SESSION_PROTOCOL,
            ephemeral_public_key=public,
            random=random,
            signer_chain_der=self.credential.chain_der if self._inline_chain else (),
        )
        state = InitiatorHandshake(private, public, random, expected_peer, now)
        return state, request.SerializeToString(deterministic=True)

    def complete(
        self,
        state: InitiatorHandshake,
        response: bytes,
        *,
        peer_chain: Sequence[bytes] | None = None,
    ) -> tuple[Session, bytes]:
        """Messages 2 and 3: verify the responder's ``OpenSessionResponse`` (wire bytes) and
        return the established session (installed in the verifier) and the
        ``ConfirmSessionRequest`` wire bytes to send. If ``ConfirmSession`` then fails, call
        ``verifier.drop_session(session.session_id)``."""
        now = self._clock()
        if state.done:
            raise VerificationError(ReasonCode.REPLAYED, "this handshake was already completed")
        state.done = True
        if now - state.started_at > self._timeout:
            raise VerificationError(ReasonCode.EXPIRED, "the session handshake timed out")
        msg = _parse(pb.OpenSessionResponse, response, "OpenSessionResponse")
        _check_sizes(msg.ephemeral_public_key, msg.random, "OpenSessionResponse")
        _check_session_id(msg.session_id)
        ders = tuple(msg.signer_chain_der) or tuple(peer_chain or ())
        responder = self._peer_chain(ders, peer_chain, msg.signer_chain_der, now)
        assert responder.spiffe_id is not None
        local = self.verifier.verify_enforcer_chain(self.credential.chain_der, now)
        assert local.spiffe_id is not None
        if state.expected_peer is not None and responder.spiffe_id != state.expected_peer:
            raise VerificationError(
                ReasonCode.CERTIFICATE_INVALID,
                f"session answered by {responder.spiffe_id}, expected {state.expected_peer}",
            )
        _refuse_self(local, responder)
        not_before = _whole_seconds(msg, "not_before")
        not_after = _whole_seconds(msg, "not_after")
        skew = self.verifier.max_skew
        if abs(not_before - now) > skew:
            raise VerificationError(
                ReasonCode.CLOCK_SKEW,
                f"session not_before {not_before.isoformat()} is more than "
                f"{skew.total_seconds():g} s from {now.isoformat()}",
            )
        if not not_before < not_after or not_after - not_before > self._lifetime:
            raise VerificationError(
                ReasonCode.MALFORMED_PROFILE,
                f"session window {not_before.isoformat()}..{not_after.isoformat()} is empty or "
                f"longer than {self._lifetime}",
            )
        if not_after > min(local.not_after, responder.not_after):
            raise VerificationError(
                ReasonCode.MALFORMED_PROFILE,
                "session window outlives an enforcer certificate",
            )
        if now >= not_after:
            raise VerificationError(ReasonCode.EXPIRED, "the offered session is already over")
        transcript = encode_transcript(
            initiator=str(local.spiffe_id),
            responder=str(responder.spiffe_id),
            initiator_ephemeral=state.public_key,
            responder_ephemeral=msg.ephemeral_public_key,
            initiator_random=state.random,
            responder_random=msg.random,
            not_before=_epoch_seconds(not_before),
            not_after=_epoch_seconds(not_after),
        )
        self.verifier.count_public_key_op()
        if not _crypto.ecdsa_verify(
            responder.public_key,
            msg.signature,
            signed_transcript(SessionRole.RESPONDER, transcript),
        ):
            raise VerificationError(
                ReasonCode.BAD_SIGNATURE, "responder's session signature does not verify"
            )
        keys = derive_session_keys(
            _x25519_shared(state.private_key, msg.ephemeral_public_key), transcript
        )
        if not hmac.compare_digest(keys.session_id, msg.session_id):
            raise VerificationError(
                ReasonCode.BAD_SIGNATURE, "session id differs: the key schedules disagree"
            )
        signature = _crypto.ecdsa_sign(
            self.credential.private_key, signed_transcript(SessionRole.INITIATOR, transcript)
        )
        session = Session(
            keys=keys,
            role=SessionRole.INITIATOR,
            local_chain=local,
            local_chain_der=self.credential.chain_der,
            peer_chain=responder,
            peer_chain_der=ders,
            not_before=not_before,
            not_after=not_after,
        )
        self.verifier.install_session(session)
        confirm = pb.ConfirmSessionRequest(session_id=keys.session_id, signature=signature)
        return session, confirm.SerializeToString(deterministic=True)

    # --- responder ----------------------------------------------------------------------------

    def respond(
        self,
        request: bytes,
        *,
        peer_chain: Sequence[bytes] | None = None,
        ephemeral: tuple[X25519PrivateKey, bytes] | None = None,
    ) -> bytes:
        """Message 1 -> 2: verify the initiator's ``OpenSessionRequest`` (wire bytes) and return
        the ``OpenSessionResponse`` wire bytes. Nothing is established until ``confirm``.
        ``ephemeral`` exists for test vectors only."""
        now = self._clock()
        msg = _parse(pb.OpenSessionRequest, request, "OpenSessionRequest")
        if msg.protocol != SESSION_PROTOCOL:
            raise VerificationError(
                ReasonCode.MALFORMED_PROFILE,
                f"session protocol {msg.protocol!r}, expected {SESSION_PROTOCOL!r}",
            )
        _check_sizes(msg.ephemeral_public_key, msg.random, "OpenSessionRequest")
        ders = tuple(msg.signer_chain_der) or tuple(peer_chain or ())
        initiator = self._peer_chain(ders, peer_chain, msg.signer_chain_der, now)
        assert initiator.spiffe_id is not None
        local = self.verifier.verify_enforcer_chain(self.credential.chain_der, now)
        assert local.spiffe_id is not None
        _refuse_self(local, initiator)
        start = _epoch_seconds(now)
        end = min(
            start + int(self._lifetime.total_seconds()),
            _epoch_seconds(initiator.not_after),
            _epoch_seconds(local.not_after),
        )
        if end <= start:
            raise VerificationError(
                ReasonCode.EXPIRED, "an enforcer certificate expires within the second"
            )
        private, random = ephemeral or (X25519PrivateKey.generate(), secrets.token_bytes(16))
        _check_random(random)
        public = _public_bytes(private)
        transcript = encode_transcript(
            initiator=str(initiator.spiffe_id),
            responder=str(local.spiffe_id),
            initiator_ephemeral=msg.ephemeral_public_key,
            responder_ephemeral=public,
            initiator_random=msg.random,
            responder_random=random,
            not_before=start,
            not_after=end,
        )
        keys = derive_session_keys(_x25519_shared(private, msg.ephemeral_public_key), transcript)
        signature = _crypto.ecdsa_sign(
            self.credential.private_key, signed_transcript(SessionRole.RESPONDER, transcript)
        )
        not_before = _EPOCH + timedelta(seconds=start)
        not_after = _EPOCH + timedelta(seconds=end)
        pending = _Pending(
            keys=keys,
            transcript=transcript,
            initiator_chain=initiator,
            initiator_ders=ders,
            local_chain=local,
            not_before=not_before,
            not_after=not_after,
            deadline=now + self._timeout,
        )
        with self._lock:
            self._purge_pending(now)
            if keys.session_id in self._pending:  # 2^-128; refuse rather than overwrite
                raise VerificationError(ReasonCode.REPLAYED, "session id already pending")
            # Full: forget the oldest pending handshake (it only fails; its initiator retries).
            while len(self._pending) >= self._max_pending:
                self._pending.popitem(last=False)
            self._pending[keys.session_id] = pending
        response = pb.OpenSessionResponse(
            session_id=keys.session_id,
            ephemeral_public_key=public,
            random=random,
            not_before=timestamp_pb2.Timestamp(seconds=start),
            not_after=timestamp_pb2.Timestamp(seconds=end),
            signature=signature,
            signer_chain_der=self.credential.chain_der if self._inline_chain else (),
        )
        return response.SerializeToString(deterministic=True)

    def confirm(self, request: bytes, *, peer_chain: Sequence[bytes] | None = None) -> Session:
        """Message 3: verify the initiator's ``ConfirmSessionRequest`` (wire bytes) and return
        the established session, installed in the verifier. One attempt per handshake: the
        pending state is consumed whatever the outcome."""
        now = self._clock()
        msg = _parse(pb.ConfirmSessionRequest, request, "ConfirmSessionRequest")
        _check_session_id(msg.session_id)
        with self._lock:
            pending = self._pending.pop(msg.session_id, None)
        if pending is None or now > pending.deadline:
            raise VerificationError(
                ReasonCode.EXPIRED,
                "no pending session handshake with this id (timed out, evicted, or unknown)",
            )
        initiator = pending.initiator_chain
        if peer_chain:
            channel = self.verifier.verify_enforcer_chain(tuple(peer_chain), now)
            if channel.spiffe_id != initiator.spiffe_id:
                raise VerificationError(
                    ReasonCode.CERTIFICATE_INVALID,
                    f"session of {initiator.spiffe_id} confirmed on the channel of "
                    f"{channel.spiffe_id}",
                )
        # Validity and revocation again: an update may have arrived since OpenSession.
        initiator = self.verifier.verify_enforcer_chain(pending.initiator_ders, now)
        local = self.verifier.verify_enforcer_chain(self.credential.chain_der, now)
        self.verifier.count_public_key_op()
        if not _crypto.ecdsa_verify(
            initiator.public_key,
            msg.signature,
            signed_transcript(SessionRole.INITIATOR, pending.transcript),
        ):
            raise VerificationError(
                ReasonCode.BAD_SIGNATURE, "initiator's session signature does not verify"
            )
        session = Session(
            keys=pending.keys,
            role=SessionRole.RESPONDER,
            local_chain=local,
            local_chain_der=self.credential.chain_der,
            peer_chain=initiator,
            peer_chain_der=pending.initiator_ders,
            not_before=pending.not_before,
            not_after=pending.not_after,
        )
        self.verifier.install_session(session)
        return session

    # --- helpers ------------------------------------------------------------------------------

    def _peer_chain(
        self,
        ders: tuple[bytes, ...],
        peer_chain: Sequence[bytes] | None,
        inline: Sequence[bytes],
        now: datetime,
    ) -> VerifiedChain:
        """The other enforcer's verified chain (inline, else the channel's), and, when both are
        present, proof that they name the same enforcer."""
        if not ders:
            raise VerificationError(
                ReasonCode.MALFORMED_PROFILE,
                "no certificate: the message carries no chain and no channel chain was given",
            )
        chain = self.verifier.verify_enforcer_chain(ders, now)
        if inline and peer_chain:
            channel = self.verifier.verify_enforcer_chain(tuple(peer_chain), now)
            if channel.spiffe_id != chain.spiffe_id:
                raise VerificationError(
                    ReasonCode.CERTIFICATE_INVALID,
                    f"session handshake of {chain.spiffe_id} on the channel of {channel.spiffe_id}",
                )
        return chain

    def _purge_pending(self, now: datetime) -> None:
        expired = [sid for sid, p in self._pending.items() if now > p.deadline]
        for sid in expired:
            del self._pending[sid]


_M = TypeVar("_M", pb.OpenSessionRequest, pb.OpenSessionResponse, pb.ConfirmSessionRequest)


def _parse(kind: type[_M], data: bytes, where: str) -> _M:
    if len(data) > 16_384:
        raise VerificationError(ReasonCode.MALFORMED_PROFILE, f"{where} over 16 KiB")
    try:
        return kind.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise VerificationError(
            ReasonCode.MALFORMED_PROFILE, f"{where} does not parse as protobuf ({exc})"
        ) from None


def _check_sizes(ephemeral: bytes, random: bytes, where: str) -> None:
    if len(ephemeral) != EPHEMERAL_KEY_BYTES or len(random) != RANDOM_BYTES:
        raise VerificationError(
            ReasonCode.MALFORMED_PROFILE,
            f"{where}: ephemeral key must be {EPHEMERAL_KEY_BYTES} bytes and random "
            f"{RANDOM_BYTES} bytes",
        )


def _check_random(random: bytes) -> None:
    if len(random) != RANDOM_BYTES:
        raise ValueError(f"random must be {RANDOM_BYTES} bytes")


def _check_session_id(session_id: bytes) -> None:
    if len(session_id) != SESSION_ID_BYTES:
        raise VerificationError(
            ReasonCode.MALFORMED_PROFILE, f"session id must be {SESSION_ID_BYTES} bytes"
        )


def _refuse_self(local: VerifiedChain, peer: VerifiedChain) -> None:
    if local.spiffe_id == peer.spiffe_id:
        raise VerificationError(
            ReasonCode.CERTIFICATE_INVALID, f"{peer.spiffe_id} cannot open a session with itself"
        )


def _whole_seconds(msg: pb.OpenSessionResponse, name: str) -> datetime:
    if not msg.HasField(name):
        raise VerificationError(ReasonCode.MALFORMED_PROFILE, f"OpenSessionResponse.{name} missing")
    ts: timestamp_pb2.Timestamp = getattr(msg, name)
    if ts.nanos != 0 or not 0 <= ts.seconds <= 253402300799:
        raise VerificationError(
            ReasonCode.MALFORMED_PROFILE,
            f"OpenSessionResponse.{name} must be whole seconds in range",
        )
    return _EPOCH + timedelta(seconds=ts.seconds)
