"""Verifying Trust Profiles and identity documents, with the public-key work cached.

Cost model (DESIGN.md "Cost rules"): per profile, exactly one public-key operation (the
profile's own signature). Certificate chains are verified once per chain (cache keyed by the
chain digest), documents once per document (cache keyed by a digest of the whole envelope);
both caches are bounded LRUs, emptied whenever the bundles or revocations change, and
everything that depends on time or revocation (validity windows, expiry, revocation lists,
timestamp skew, replay) is re-checked on every call.

The order of checks is part of the contract (docs/trust-profile.md, "Verification") so every
implementation reports the same reason code for the same input: cheap structural checks, then
the signer's chain, then the profile signature, and only then anything read from the payload.
A nonce is recorded last, so a profile refused for any other reason consumes nothing.
"""

from __future__ import annotations

import contextlib
import hmac
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

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

_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class VerifiedProfile:
    """A profile that passed every check. ``signer`` is the sending enforcer's SPIFFE ID;
    ``labels`` is the complete label set policy evaluates (own plus reserved)."""

    profile: TrustProfile
    document: IdentityDocument
    signer: SpiffeId

    @property
    def trust_domain(self) -> TrustDomain:
        return self.document.trust_domain

    @property
    def pu_id(self) -> str:
        return self.document.pu_id

    @property
    def labels(self) -> Mapping[str, str]:
        return self.document.policy_labels


@dataclass(slots=True)
class VerifierStats:
    """Counters for metrics and tests. ``public_key_ops`` counts signature verifications
    (ECDSA and certificate signatures) this verifier performed."""

    public_key_ops: int = 0
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
            with contextlib.suppress(KeyError):
                self._items.move_to_end(key)
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
    ) -> None:
        if max_skew <= timedelta(0):
            raise ValueError("max_skew must be positive")
        self._bundles = bundles
        self._revocations: dict[TrustDomain, RevocationList] = {}
        for revocation_list in revocations:
            self._revocations[revocation_list.trust_domain] = revocation_list
        self._clock = clock
        self._max_skew = max_skew
        self._replay = ReplayCache(replay_capacity)
        self._chains: _Lru[tuple[object, ...], VerifiedChain] = _Lru(chain_cache_size)
        self._documents: _Lru[bytes, tuple[IdentityDocument, VerifiedChain]] = _Lru(
            document_cache_size
        )
        self.stats = VerifierStats()

    # --- state updates ------------------------------------------------------------------------

    @property
    def bundles(self) -> BundleSet:
        return self._bundles

    def update_bundles(self, bundles: BundleSet) -> None:
        """Trust exactly ``bundles`` from now on. Empties the chain and document caches: a
        result verified against a removed CA must not outlive it."""
        self._bundles = bundles
        self._invalidate()

    def update_revocations(self, revocations: RevocationList) -> bool:
        """Replace the revocation list of its trust domain, unless it is older (lower
        sequence number) than the one held. Returns whether it was applied."""
        held = self._revocations.get(revocations.trust_domain)
        if held is not None and revocations.sequence_number < held.sequence_number:
            return False
        self._revocations[revocations.trust_domain] = revocations
        self._invalidate()
        return True

    def _invalidate(self) -> None:
        self._chains.clear()
        self._documents.clear()

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

        Returns the verified profile or raises ``VerificationError`` with a reason code
        (``ResourceExhausted`` when the replay cache is full).
        """
        now = self._clock()
        if len(envelope) > MAX_ENVELOPE_BYTES:
            raise _error(ReasonCode.MALFORMED_PROFILE, f"envelope over {MAX_ENVELOPE_BYTES} bytes")
        env = _codec.decode_envelope(envelope)
        if env.payload_type != PROFILE_PAYLOAD_TYPE:
            raise _error(
                ReasonCode.WRONG_PAYLOAD_TYPE,
                f"payload type {env.payload_type!r}, expected {PROFILE_PAYLOAD_TYPE!r}",
            )
        _check_algorithm(env)
        ders = env.signer_chain_der or tuple(peer_chain or ())
        if not ders:
            raise _error(
                ReasonCode.MALFORMED_PROFILE,
                "no signer certificate: the envelope carries no chain and no channel "
                "certificate (peer_chain) was given",
            )
        signer = self._enforcer_chain(ders, now)
        assert signer.spiffe_id is not None  # _enforcer_chain guarantees an enforcer ID
        if env.signer_chain_der and peer_chain:
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

        profile = _codec.decode_profile(env.payload)
        if abs(profile.timestamp - now) > self._max_skew:
            raise _error(
                ReasonCode.CLOCK_SKEW,
                f"profile timestamp {profile.timestamp.isoformat()} is more than "
                f"{self._max_skew.total_seconds():g} s from {now.isoformat()}",
            )
        if profile.five_tuple != observed:
            raise _error(
                ReasonCode.ADDRESS_MISMATCH,
                f"profile is for {_describe(profile.five_tuple)}, connection is "
                f"{_describe(observed)}",
            )
        _check_peer_nonce(profile.peer_nonce, expected_peer_nonce)
        document = self._document(profile.identity_document, signer.trust_domain, now)
        if document.enforcer_id != signer.spiffe_id.name:
            raise _error(
                ReasonCode.DOCUMENT_ENFORCER_MISMATCH,
                f"document of PU {document.pu_id} names enforcer {document.enforcer_id}, "
                f"profile signed by {signer.spiffe_id}",
            )
        self._replay.admit(
            str(signer.spiffe_id), profile.nonce, profile.timestamp + self._max_skew, now
        )
        return VerifiedProfile(profile, document, signer.spiffe_id)

    # --- documents ----------------------------------------------------------------------------

    def verify_document(self, envelope: bytes, trust_domain: TrustDomain) -> IdentityDocument:
        """Verify a document envelope (wire bytes) issued in ``trust_domain``: signature by a
        CA of that domain's bundle or by its identity service, validity now, signer not
        revoked. Cached like documents inside profiles."""
        if len(envelope) > MAX_ENVELOPE_BYTES:
            raise _error(ReasonCode.MALFORMED_PROFILE, f"envelope over {MAX_ENVELOPE_BYTES} bytes")
        env = _codec.decode_envelope(envelope, "identity_document")
        return self._document(env, trust_domain, self._clock())

    def _document(
        self, env: SignedEnvelope, trust_domain: TrustDomain, now: datetime
    ) -> IdentityDocument:
        key = _document_key(env, trust_domain)
        cached = self._documents.get(key)
        if cached is None:
            self.stats.document_cache_misses += 1
            cached = self._verify_document_signature(env, trust_domain)
            self._documents.put(key, cached)
        else:
            self.stats.document_cache_hits += 1
        document, signer = cached
        _chain.check_validity(signer, now, self._max_skew)
        _chain.check_revocation(signer, self._revocations.get(trust_domain))
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
        _chain.check_revocation(signer, self._revocations.get(signer.trust_domain))
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


def _document_key(env: SignedEnvelope, trust_domain: TrustDomain) -> bytes:
    """Digest of everything a document's verification result depends on: the domain whose
    bundle it was verified under and every field of its envelope (length-prefixed, so the
    encoding is unambiguous). Not the received bytes: the envelope arrives parsed inside the
    profile, and re-serializing to hash would tie the key to one protobuf encoder."""
    parts = [
        trust_domain.name.encode(),
        env.payload_type.encode(),
        env.payload,
        env.signature,
        bytes([env.algorithm]),
        *env.signer_chain_der,
    ]
    return _crypto.sha256(b"".join(len(p).to_bytes(4, "big") + p for p in parts))


def _describe(ft: FiveTuple) -> str:
    return (
        f"{ft.protocol} {ft.source_ip}:{ft.source_port} -> "
        f"{ft.destination_ip}:{ft.destination_port}"
    )


def _error(code: ReasonCode, message: str) -> VerificationError:
    return VerificationError(code, message)
