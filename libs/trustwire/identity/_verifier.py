"""Verifying Trust Profiles and identity documents, with the public-key work cached.

Cost model (DESIGN.md "Cost rules"): per ECDSA-signed profile, exactly one public-key
operation (the profile's own signature); per profile sealed under a channel session
(``_session``), none: an HMAC-SHA256 tag with the session's receiving key. Certificate chains
are verified once per chain (cache keyed by the chain digest), documents once per document
(cache keyed by the document envelope bytes);
both caches are bounded LRUs, emptied whenever the bundles or revocations change, and
everything that depends on time or revocation (validity windows, expiry, revocation lists,
timestamp skew, replay) is re-checked on every call.

The order of checks is part of the contract (docs/trust-profile.md, "Verification") so every
implementation reports the same reason code for the same input: cheap structural checks, then
the signer's chain, then the profile signature, and only then anything read from the payload.
A nonce is recorded last, so a profile refused for any other reason consumes nothing.

Hot path: after the envelope is authenticated (signature or tag), the payload is checked as a
parsed protobuf message (``_codec.check_profile_message``), never turned into dataclasses;
``VerifiedProfile.profile`` builds the ``TrustProfile`` only when asked. Documents are cached
by their envelope bytes as received, with their decoded form and policy labels.
"""

from __future__ import annotations

import contextlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from trustwire.api.common.v1 import envelope_pb2
from trustwire.api.enforcer.v1 import trust_profile_pb2

from . import _chain, _codec, _crypto
from ._bundle import BundleSet, RevocationList
from ._chain import VerifiedChain
from ._document import IdentityDocument
from ._envelope import (
    DOCUMENT_PAYLOAD_TYPE,
    PROFILE_PAYLOAD_TYPE,
    SignatureAlgorithm,
    SignedEnvelope,
)
from ._issuer import Clock, utc_now
from ._profile import FiveTuple, TrustProfile
from ._reasons import ReasonCode, VerificationError
from ._replay import DEFAULT_REPLAY_CAPACITY, ReplayCache
from ._session import SESSION_ID_BYTES, Session
from ._spiffe import Role, SpiffeId, TrustDomain

__all__ = [
    "DEFAULT_MAX_SKEW",
    "MAX_ENVELOPE_BYTES",
    "ProfileVerifier",
    "VerifiedProfile",
    "VerifierStats",
]

DEFAULT_MAX_SKEW = timedelta(seconds=30)
MAX_ENVELOPE_BYTES = 8192
DEFAULT_CHAIN_CACHE_SIZE = 4096
DEFAULT_DOCUMENT_CACHE_SIZE = 65_536
DEFAULT_MAX_SESSIONS = 65_536
# Sessions one peer enforcer may hold here at once: a re-handshake (rotation, reconnect) can
# overlap the previous session; more would only let one peer crowd out others.
DEFAULT_MAX_SESSIONS_PER_PEER = 4
DEFAULT_CHANNEL_CACHE_SIZE = 4096

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_WIRE_ECDSA = envelope_pb2.SIGNATURE_ALGORITHM_ECDSA_P256_SHA256
_WIRE_HMAC_SESSION = envelope_pb2.SIGNATURE_ALGORITHM_HMAC_SHA256_SESSION
_PROTOCOL_TO_WIRE = _codec.PROTOCOL_TO_WIRE
_ip = _codec.ip_address

_K = TypeVar("_K")
_V = TypeVar("_V")


class VerifiedProfile:
    """A profile that passed every check. ``signer`` is the sending enforcer's SPIFFE ID;
    ``labels`` is the complete label set policy evaluates (own plus reserved).
    ``session_id`` is the channel session it was sealed under (empty: ECDSA-signed).

    ``profile`` (the ``TrustProfile`` dataclass) is built on first access from the verified
    message: the verifier's hot path never pays for it. Equality compares profile, document
    and signer, so a profile verified signed and the same verified sealed compare equal.
    """

    __slots__ = ("_message", "_profile", "document", "session_id", "signer")

    def __init__(
        self,
        profile: TrustProfile | None,
        document: IdentityDocument,
        signer: SpiffeId,
        *,
        message: trust_profile_pb2.TrustProfile | None = None,
        session_id: bytes = b"",
    ) -> None:
        if profile is None and message is None:
            raise ValueError("give a profile or its verified message")
        self._profile = profile
        self._message = message
        self.document = document
        self.signer = signer
        self.session_id = session_id

    @property
    def profile(self) -> TrustProfile:
        if self._profile is None:
            assert self._message is not None
            self._profile = _codec.profile_from_message(self._message)
        return self._profile

    @property
    def nonce(self) -> bytes:
        """The profile's nonce (an answer's ``peer_nonce`` must equal it), without building
        ``profile``."""
        return self._message.nonce if self._message is not None else self.profile.nonce

    @property
    def sealed(self) -> bool:
        return bool(self.session_id)

    @property
    def trust_domain(self) -> TrustDomain:
        return self.document.trust_domain

    @property
    def pu_id(self) -> str:
        return self.document.pu_id

    @property
    def labels(self) -> Mapping[str, str]:
        return self.document.policy_labels

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifiedProfile):
            return NotImplemented
        return (self.profile, self.document, self.signer) == (
            other.profile,
            other.document,
            other.signer,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable cache inside, like the dataclass was

    def __repr__(self) -> str:
        return f"VerifiedProfile(pu_id={self.pu_id!r}, signer={self.signer}, sealed={self.sealed})"


@dataclass(slots=True)
class VerifierStats:
    """Counters for metrics and tests. ``public_key_ops`` counts signature verifications
    (ECDSA and certificate signatures) this verifier performed."""

    public_key_ops: int = 0
    sealed_verified: int = 0
    sessions_installed: int = 0
    sessions_dropped: int = 0
    chain_cache_hits: int = 0
    chain_cache_misses: int = 0
    document_cache_hits: int = 0
    document_cache_misses: int = 0


class _Lru(Generic[_K, _V]):
    """A bounded least-recently-used map. Safe enough under threads: a racing eviction can
    only cause a miss, never a wrong value."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("cache capacity must be positive")
        self._capacity = capacity
        self._items: OrderedDict[_K, _V] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        value = self._items.get(key)
        if value is not None:
            try:  # noqa: SIM105 - hot path: try costs nothing, contextlib.suppress does
                self._items.move_to_end(key)
            except KeyError:
                pass
        return value

    def put(self, key: _K, value: _V) -> None:
        self._items[key] = value
        while len(self._items) > self._capacity:
            try:
                self._items.popitem(last=False)
            except KeyError:
                break

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class ProfileVerifier:
    """Verifies Trust Profiles (and identity documents) against a ``BundleSet``.

    One per enforcer, long-lived: its caches and replay cache are the point. ``clock`` is
    injected (tests never sleep); ``max_skew`` bounds both the timestamp check and, with it,
    the replay window. Not-yet-valid documents and certificates are tolerated by ``max_skew``
    (issuer clocks differ); expiry is never extended.
    """

    def __init__(
        self,
        bundles: BundleSet,
        revocations: Iterable[RevocationList] = (),
        *,
        clock: Clock = utc_now,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
        replay_capacity: int = DEFAULT_REPLAY_CAPACITY,
        chain_cache_size: int = DEFAULT_CHAIN_CACHE_SIZE,
        document_cache_size: int = DEFAULT_DOCUMENT_CACHE_SIZE,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_sessions_per_peer: int = DEFAULT_MAX_SESSIONS_PER_PEER,
    ) -> None:
        if max_skew <= timedelta(0):
            raise ValueError("max_skew must be positive")
        self._bundles = bundles
        # Keyed by trust domain *name*: a str hashes in C, a dataclass in Python (hot path).
        self._revocations: dict[str, RevocationList] = {}
        for revocation_list in revocations:
            self._revocations[revocation_list.trust_domain.name] = revocation_list
        if max_sessions < 1 or max_sessions_per_peer < 1:
            raise ValueError("session limits must be positive")
        self._clock = clock
        self._max_skew = max_skew
        self._max_skew_us = max_skew // _ONE_US
        self._replay = ReplayCache(replay_capacity)
        self._chains: _Lru[tuple[object, ...], VerifiedChain] = _Lru(chain_cache_size)
        # Keyed by (trust domain, document envelope bytes as received): exact, so a hit is the
        # verification result of exactly these bytes under exactly this domain.
        self._documents: _Lru[tuple[str, bytes], _CachedDocument] = _Lru(document_cache_size)
        # Channel peer chain (as given to verify) -> SPIFFE ID, for the sealed-profile check
        # that the session's peer is the channel's. Tuples of the same bytes objects hash
        # without rehashing the certificates.
        # A plain dict (no LRU bookkeeping on the hot path), emptied when it reaches its bound.
        self._channels: dict[tuple[bytes, ...], str] = {}
        # Established sessions by id, in installation order (oldest evicted first when full).
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()
        self._sessions_by_peer: dict[str, list[bytes]] = {}
        self._max_sessions = max_sessions
        self._max_sessions_per_peer = max_sessions_per_peer
        self._sessions_lock = threading.Lock()
        self.stats = VerifierStats()

    # --- state updates ------------------------------------------------------------------------

    @property
    def bundles(self) -> BundleSet:
        return self._bundles

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def max_skew(self) -> timedelta:
        return self._max_skew

    def update_bundles(self, bundles: BundleSet) -> None:
        """Trust exactly ``bundles`` from now on. Empties the chain and document caches: a
        result verified against a removed CA must not outlive it. Every session whose peer or
        local chain no longer verifies (to the new bundles, now) is dropped."""
        self._bundles = bundles
        self._invalidate()
        now = self._clock()
        for session in self.sessions:
            try:
                self._enforcer_chain(session.peer_chain_der, now)
                self._enforcer_chain(session.local_chain_der, now)
            except VerificationError:
                self.drop_session(session.session_id)

    def update_revocations(self, revocations: RevocationList) -> bool:
        """Replace the revocation list of its trust domain, unless it is older (lower
        sequence number) than the one held. Returns whether it was applied. Drops every
        session whose peer (or local) certificate path or enforcer the list revokes."""
        held = self._revocations.get(revocations.trust_domain.name)
        if held is not None and revocations.sequence_number < held.sequence_number:
            return False
        self._revocations[revocations.trust_domain.name] = revocations
        self._invalidate()
        for session in self.sessions:
            try:
                for chain in (session.peer_chain, session.local_chain):
                    _chain.check_revocation(chain, self._revocations.get(chain.trust_domain.name))
            except VerificationError:
                self.drop_session(session.session_id)
        return True

    def _invalidate(self) -> None:
        self._chains.clear()
        self._documents.clear()
        self._channels.clear()

    # --- sessions -----------------------------------------------------------------------------

    def install_session(self, session: Session) -> None:
        """Accept sealed profiles under ``session`` from now on (``SessionManager`` calls this
        once the handshake verified). Bounded: a peer holds at most ``max_sessions_per_peer``
        sessions (its oldest is dropped), the verifier ``max_sessions`` (the oldest installed is
        dropped; expired ones first). A dropped session only costs its peer a new handshake."""
        now_us = (self._clock() - _EPOCH) // _ONE_US
        with self._sessions_lock:
            if session.session_id in self._sessions:
                raise VerificationError(ReasonCode.REPLAYED, "session id already installed")
            own = self._sessions_by_peer.setdefault(session.peer_text, [])
            while len(own) >= self._max_sessions_per_peer:
                self._drop_locked(own[0])
            if len(self._sessions) >= self._max_sessions:
                for old in [s for s in self._sessions.values() if now_us >= s.not_after_us]:
                    self._drop_locked(old.session_id)
            while len(self._sessions) >= self._max_sessions:
                self._drop_locked(next(iter(self._sessions)))
            self._sessions[session.session_id] = session
            self._sessions_by_peer.setdefault(session.peer_text, []).append(session.session_id)
            self.stats.sessions_installed += 1

    def drop_session(self, session_id: bytes) -> bool:
        """Forget a session (and mark it closed so no signer keeps sealing with it). Returns
        whether it was held."""
        with self._sessions_lock:
            return self._drop_locked(session_id)

    def _drop_locked(self, session_id: bytes) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.closed = True
        ids = self._sessions_by_peer.get(session.peer_text)
        if ids is not None:
            with contextlib.suppress(ValueError):
                ids.remove(session_id)
            if not ids:
                del self._sessions_by_peer[session.peer_text]
        self.stats.sessions_dropped += 1
        return True

    def session(self, session_id: bytes) -> Session | None:
        return self._sessions.get(session_id)

    @property
    def sessions(self) -> tuple[Session, ...]:
        """The installed sessions (a snapshot)."""
        with self._sessions_lock:
            return tuple(self._sessions.values())

    # --- for SessionManager -------------------------------------------------------------------

    def verify_enforcer_chain(self, ders: Sequence[bytes], now: datetime) -> VerifiedChain:
        """An enforcer's chain, verified as a profile signer's is (bundle of the domain its
        SPIFFE ID claims, enforcer role, valid at ``now``, not revoked); cached by digest."""
        return self._enforcer_chain(tuple(ders), now)

    def count_public_key_op(self) -> None:
        self.stats.public_key_ops += 1

    @property
    def replay_cache_size(self) -> int:
        return len(self._replay)

    # --- profiles -----------------------------------------------------------------------------

    def verify(
        self,
        envelope: bytes,
        observed: FiveTuple,
        *,
        peer_chain: Sequence[bytes] | None = None,
        expected_peer_nonce: bytes | None = None,
    ) -> VerifiedProfile:
        """Verify a Trust Profile envelope (wire bytes) for the connection ``observed``.

        ``peer_chain`` is the DER chain (leaf first) the peer presented on the mutually
        authenticated channel the profile arrived on. It is the signer's chain when the
        envelope carries none; when the envelope carries one, its SPIFFE ID must be the
        channel peer's. ``expected_peer_nonce`` is None when verifying a request (its peer
        nonce must be empty) and the request's nonce when verifying the answer to it.

        A profile sealed under a channel session (``HMAC_SHA256_SESSION``) is verified with
        that session's receiving key, without any public-key operation; the session must be
        installed here (``SessionManager`` does it), and when ``peer_chain`` is given its
        enforcer must be the session's peer. Both forms return the same ``VerifiedProfile``
        content.

        Returns the verified profile or raises ``VerificationError`` with a reason code
        (``ResourceExhausted`` when the replay cache is full).
        """
        now = self._clock()
        if len(envelope) > MAX_ENVELOPE_BYTES:
            raise _error(ReasonCode.MALFORMED_PROFILE, f"envelope over {MAX_ENVELOPE_BYTES} bytes")
        env = _codec.parse_envelope_message(envelope)
        if env.payload_type != PROFILE_PAYLOAD_TYPE:
            raise _error(
                ReasonCode.WRONG_PAYLOAD_TYPE,
                f"payload type {env.payload_type!r}, expected {PROFILE_PAYLOAD_TYPE!r}",
            )
        algorithm = env.algorithm
        if algorithm == _WIRE_HMAC_SESSION:
            return self._verify_sealed(env, now, observed, peer_chain, expected_peer_nonce)
        if algorithm != _WIRE_ECDSA:
            raise _error(
                ReasonCode.BAD_SIGNATURE,
                f"signature algorithm {_algorithm_name(algorithm)}, expected ECDSA_P256_SHA256 "
                "or HMAC_SHA256_SESSION",
            )
        if env.session_id:
            raise _error(ReasonCode.MALFORMED_PROFILE, "an ECDSA-signed profile has a session id")
        inline = tuple(env.signer_chain_der)
        ders = inline or tuple(peer_chain or ())
        if not ders:
            raise _error(
                ReasonCode.MALFORMED_PROFILE,
                "no signer certificate: the envelope carries no chain and no channel "
                "certificate (peer_chain) was given",
            )
        signer = self._enforcer_chain(ders, now)
        assert signer.spiffe_id is not None  # _enforcer_chain guarantees an enforcer ID
        if inline and peer_chain:
            channel = self._enforcer_chain(tuple(peer_chain), now)
            if channel.spiffe_id != signer.spiffe_id:
                raise _error(
                    ReasonCode.CERTIFICATE_INVALID,
                    f"profile signed by {signer.spiffe_id} arrived on the channel of "
                    f"{channel.spiffe_id}",
                )
        self.stats.public_key_ops += 1
        if not _crypto.ecdsa_verify(
            signer.public_key, env.signature, _crypto.pae(env.payload_type, env.payload)
        ):
            raise _error(ReasonCode.BAD_SIGNATURE, "profile signature does not verify")
        return self._accept(
            env.payload,
            signer.spiffe_id,
            str(signer.spiffe_id),
            signer.trust_domain,
            now,
            observed,
            expected_peer_nonce,
            b"",
        )

    def _verify_sealed(
        self,
        env: envelope_pb2.SignedEnvelope,
        now: datetime,
        observed: FiveTuple,
        peer_chain: Sequence[bytes] | None,
        expected_peer_nonce: bytes | None,
    ) -> VerifiedProfile:
        """Steps S1-S6 of docs/trust-profile.md ("Verifying a sealed profile"), then the
        common steps. No public-key operation."""
        if env.signer_chain_der:
            raise _error(ReasonCode.MALFORMED_PROFILE, "a sealed profile carries no chain")
        session_id = env.session_id
        if len(session_id) != SESSION_ID_BYTES:
            raise _error(
                ReasonCode.MALFORMED_PROFILE, f"session id must be {SESSION_ID_BYTES} bytes"
            )
        session = self._sessions.get(session_id)
        if session is None:
            raise _error(
                ReasonCode.UNKNOWN_SESSION,
                f"no session {session_id.hex()} here (expired, dropped or never established): "
                "open a new session or sign with ECDSA",
                metadata={"session": "unknown"},
            )
        now_us = (now - _EPOCH) // _ONE_US
        if now_us >= session.not_after_us:
            self.drop_session(session_id)
            raise _error(
                ReasonCode.EXPIRED,
                f"session {session_id.hex()} expired at {session.not_after.isoformat()}",
                metadata={"session": "expired"},
            )
        if now_us + self._max_skew_us < session.not_before_us:
            raise _error(
                ReasonCode.NOT_YET_VALID,
                f"session {session_id.hex()} is valid only from {session.not_before.isoformat()}",
            )
        if peer_chain:
            channel = self._channel_identity(peer_chain, now)
            if channel != session.peer_text:
                raise _error(
                    ReasonCode.CERTIFICATE_INVALID,
                    f"profile sealed under a session with {session.peer} arrived on the "
                    f"channel of {channel}",
                )
        peer = session.peer_chain
        revocations = self._revocations.get(peer.trust_domain.name)
        if revocations is not None:
            # Sessions are dropped when a revocation arrives; re-checking costs a set lookup.
            _chain.check_revocation(peer, revocations)
        payload = env.payload
        if not hmac.compare_digest(session.expected_tag(payload), env.signature):
            raise _error(ReasonCode.BAD_SIGNATURE, "sealed profile tag does not verify")
        verified = self._accept(
            payload,
            session.peer,
            session.peer_text,
            peer.trust_domain,
            now,
            observed,
            expected_peer_nonce,
            session_id,
            now_us,
        )
        self.stats.sealed_verified += 1
        return verified

    def _channel_identity(self, peer_chain: Sequence[bytes], now: datetime) -> str:
        """The SPIFFE ID (text) of the channel peer's chain, verified once per chain."""
        key = peer_chain if isinstance(peer_chain, tuple) else tuple(peer_chain)
        identity = self._channels.get(key)
        if identity is None:
            identity = str(self._enforcer_chain(key, now).spiffe_id)
            if len(self._channels) >= DEFAULT_CHANNEL_CACHE_SIZE:
                self._channels.clear()
            self._channels[key] = identity
        return identity

    def _accept(
        self,
        payload: bytes,
        signer: SpiffeId,
        signer_text: str,
        trust_domain: TrustDomain,
        now: datetime,
        observed: FiveTuple,
        expected_peer_nonce: bytes | None,
        session_id: bytes,
        now_us: int | None = None,
    ) -> VerifiedProfile:
        """The steps after the envelope is authenticated, shared by both modes: payload field
        rules, skew, five-tuple, peer nonce, document, document enforcer, replay."""
        msg, facts = _codec.parse_profile_message(payload)
        (
            timestamp_us,
            protocol,
            source,
            source_port,
            destination,
            destination_port,
            nonce,
            peer_nonce,
        ) = facts
        if now_us is None:
            now_us = (now - _EPOCH) // _ONE_US
        if abs(timestamp_us - now_us) > self._max_skew_us:
            stamp = _EPOCH + timedelta(microseconds=timestamp_us)
            raise _error(
                ReasonCode.CLOCK_SKEW,
                f"profile timestamp {stamp.isoformat()} is more than "
                f"{self._max_skew.total_seconds():g} s from {now.isoformat()}",
            )
        if not (
            source_port == observed.source_port
            and destination_port == observed.destination_port
            and protocol == _PROTOCOL_TO_WIRE[observed.protocol]
            and source == observed.source_ip
            and destination == observed.destination_ip
        ):
            claimed = _codec.profile_from_message(msg).five_tuple
            raise _error(
                ReasonCode.ADDRESS_MISMATCH,
                f"profile is for {_describe(claimed)}, connection is {_describe(observed)}",
            )
        _check_peer_nonce(peer_nonce, expected_peer_nonce)
        raw_document = _codec.document_envelope_bytes(payload, msg)
        document = self._document(raw_document, trust_domain, now, now_us)
        if document.enforcer_id != signer.name:
            raise _error(
                ReasonCode.DOCUMENT_ENFORCER_MISMATCH,
                f"document of PU {document.pu_id} names enforcer {document.enforcer_id}, "
                f"profile signed by {signer}",
            )
        self._replay.admit_us(signer_text, nonce, timestamp_us + self._max_skew_us, now_us)
        return VerifiedProfile(None, document, signer, message=msg, session_id=session_id)

    # --- documents ----------------------------------------------------------------------------

    def verify_document(self, envelope: bytes, trust_domain: TrustDomain) -> IdentityDocument:
        """Verify a document envelope (wire bytes) issued in ``trust_domain``: signature by a
        CA of that domain's bundle or by its identity service, validity now, signer not
        revoked. Cached like documents inside profiles."""
        if len(envelope) > MAX_ENVELOPE_BYTES:
            raise _error(ReasonCode.MALFORMED_PROFILE, f"envelope over {MAX_ENVELOPE_BYTES} bytes")
        now = self._clock()
        return self._document(bytes(envelope), trust_domain, now, (now - _EPOCH) // _ONE_US)

    def _document(
        self, envelope: bytes, trust_domain: TrustDomain, now: datetime, now_us: int
    ) -> IdentityDocument:
        """A document envelope (bytes) verified under ``trust_domain``: signature from the
        cache or verified now, then validity and revocation on every call."""
        key = (trust_domain.name, envelope)
        cached = self._documents.get(key)
        if cached is None:
            self.stats.document_cache_misses += 1
            env = _codec.decode_envelope(envelope, "identity_document")
            document, signer = self._verify_document_signature(env, trust_domain)
            cached = _CachedDocument(document, signer, self._max_skew)
            self._documents.put(key, cached)
        else:
            self.stats.document_cache_hits += 1
        revocations = self._revocations.get(trust_domain.name)
        if revocations is None and cached.valid_from_us <= now_us < cached.valid_until_us:
            return cached.document  # the common case: one integer window, nothing revoked
        document, signer = cached.document, cached.signer
        _chain.check_validity(signer, now, self._max_skew)
        _chain.check_revocation(signer, revocations)
        if now >= document.expires_at:
            raise _error(
                ReasonCode.EXPIRED,
                f"document of PU {document.pu_id} expired at {document.expires_at.isoformat()}",
            )
        if now + self._max_skew < document.issued_at:
            raise _error(
                ReasonCode.NOT_YET_VALID,
                f"document of PU {document.pu_id} is issued at {document.issued_at.isoformat()}",
            )
        return document

    def _verify_document_signature(
        self, env: SignedEnvelope, trust_domain: TrustDomain
    ) -> tuple[IdentityDocument, VerifiedChain]:
        """Signature and issuer of a document: no time or revocation checks (the caller does
        them on every use). Returns what the document cache stores."""
        if env.payload_type != DOCUMENT_PAYLOAD_TYPE:
            raise _error(
                ReasonCode.WRONG_PAYLOAD_TYPE,
                f"identity document payload type {env.payload_type!r}, expected "
                f"{DOCUMENT_PAYLOAD_TYPE!r}",
            )
        _check_algorithm(env)
        data = _crypto.pae(env.payload_type, env.payload)
        signer: VerifiedChain | None
        if env.signer_chain_der:
            signer = self._document_signer_chain(env.signer_chain_der, trust_domain)
            self.stats.public_key_ops += 1
            if not _crypto.ecdsa_verify(signer.public_key, env.signature, data):
                signer = None
        else:
            bundle = self._bundles.get(trust_domain)
            if bundle is None:
                raise _error(
                    ReasonCode.FOREIGN_TRUST_DOMAIN,
                    f"no trust bundle for trust domain {trust_domain}",
                )
            ops = _crypto.OpCount()
            signer = _chain.verify_by_bundle_ca(bundle, env.signature, data, ops)
            self.stats.public_key_ops += ops.count
        if signer is None:
            raise _error(
                ReasonCode.BAD_SIGNATURE,
                "identity document signature does not verify"
                + ("" if env.signer_chain_der else f" under any CA of the {trust_domain} bundle"),
            )
        document = _codec.decode_document(env.payload)
        if document.trust_domain != trust_domain:
            raise _error(
                ReasonCode.UNKNOWN_CA,
                f"document of trust domain {document.trust_domain} signed under the "
                f"{trust_domain} bundle",
            )
        return document, signer

    # --- chains -------------------------------------------------------------------------------

    def _enforcer_chain(self, ders: Sequence[bytes], now: datetime) -> VerifiedChain:
        """The chain of a profile signer: verified to the bundle of the trust domain its own
        SPIFFE ID claims, an enforcer, valid now, not revoked."""
        key = ("profile", _chain.chain_digest(ders))
        signer = self._chains.get(key)
        if signer is None:
            self.stats.chain_cache_misses += 1
            # The domain is the one the signer's own SPIFFE ID claims.
            signer = self._verify_chain(ders, None, allow_ca_signer=False)
            self._chains.put(key, signer)
        else:
            self.stats.chain_cache_hits += 1
        if signer.spiffe_id is None or signer.spiffe_id.role is not Role.ENFORCER:
            raise _error(
                ReasonCode.CERTIFICATE_INVALID,
                f"profile signer {signer.spiffe_id} is not an enforcer",
            )
        _chain.check_validity(signer, now, self._max_skew)
        _chain.check_revocation(signer, self._revocations.get(signer.trust_domain.name))
        return signer

    def _document_signer_chain(
        self, ders: Sequence[bytes], trust_domain: TrustDomain
    ) -> VerifiedChain:
        key = ("document", trust_domain, _chain.chain_digest(ders))
        signer = self._chains.get(key)
        if signer is None:
            self.stats.chain_cache_misses += 1
            signer = self._verify_chain(ders, trust_domain, allow_ca_signer=True)
            self._chains.put(key, signer)
        else:
            self.stats.chain_cache_hits += 1
        identity_service = SpiffeId(trust_domain, Role.SERVICE, "identity")
        if signer.spiffe_id is not None and signer.spiffe_id != identity_service:
            # An enforcer's certificate chains to the same CA: it must not mint documents.
            raise _error(
                ReasonCode.CERTIFICATE_INVALID,
                f"documents are signed by a CA or {identity_service}, not {signer.spiffe_id}",
            )
        return signer

    def _verify_chain(
        self, ders: Sequence[bytes], trust_domain: TrustDomain | None, *, allow_ca_signer: bool
    ) -> VerifiedChain:
        ops = _crypto.OpCount()
        try:
            return _chain.verify_chain(
                ders, trust_domain, self._bundles, ops, allow_ca_signer=allow_ca_signer
            )
        finally:
            self.stats.public_key_ops += ops.count


class _CachedDocument:
    """A verified document with its signer, and the window in which both are valid as integer
    microseconds: ``[max(notBefore, issued_at) - skew, min(notAfter, expires_at))``, the same
    rule as ``check_validity`` plus the document's own times, for a one-comparison hot path."""

    __slots__ = ("document", "signer", "valid_from_us", "valid_until_us")

    def __init__(self, document: IdentityDocument, signer: VerifiedChain, skew: timedelta) -> None:
        self.document = document
        self.signer = signer
        self.valid_from_us = (max(signer.not_before, document.issued_at) - skew - _EPOCH) // _ONE_US
        self.valid_until_us = (min(signer.not_after, document.expires_at) - _EPOCH) // _ONE_US


def _check_algorithm(env: SignedEnvelope) -> None:
    if env.algorithm is not SignatureAlgorithm.ECDSA_P256_SHA256:
        raise _error(
            ReasonCode.BAD_SIGNATURE,
            f"signature algorithm {env.algorithm.name}, expected ECDSA_P256_SHA256",
        )


def _check_peer_nonce(peer_nonce: bytes, expected: bytes | None) -> None:
    if expected is None:
        if peer_nonce:
            raise _error(
                ReasonCode.REPLAYED,
                "an answer profile (peer nonce set) was presented as a request",
            )
    elif not hmac.compare_digest(peer_nonce, expected):
        raise _error(ReasonCode.REPLAYED, "answer profile is bound to another request")


def _describe(ft: FiveTuple) -> str:
    return (
        f"{ft.protocol} {ft.source_ip}:{ft.source_port} -> "
        f"{ft.destination_ip}:{ft.destination_port}"
    )


def _algorithm_name(value: int) -> str:
    try:
        return SignatureAlgorithm(value).name
    except ValueError:
        return f"UNSPECIFIED ({value})"


def _error(
    code: ReasonCode, message: str, *, metadata: Mapping[str, str] | None = None
) -> VerificationError:
    return VerificationError(code, message, metadata=metadata)
