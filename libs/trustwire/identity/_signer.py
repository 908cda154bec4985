"""Signing Trust Profiles: what the source enforcer does for every new connection (and the
destination enforcer for its answer).

Two modes: ``sign`` (ECDSA with the enforcer's certified key; anyone holding the bundle can
verify it: first contact, peers without a session) and ``seal`` (HMAC-SHA256 with this side's
key of an established channel session; only that session's peer can verify it, and it costs no
public-key operation on either side)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from trustwire.errors import FailedPrecondition, InvalidArgument

from . import _codec, _crypto
from ._credential import Credential
from ._envelope import PROFILE_PAYLOAD_TYPE, SignatureAlgorithm, SignedEnvelope
from ._issuer import Clock, utc_now
from ._profile import NONCE_BYTES, FiveTuple, TraceContext, TrustProfile
from ._session import Session
from ._spiffe import Role

__all__ = ["ProfileSigner", "SignedProfile"]

_NO_TRACE = TraceContext()


@dataclass(frozen=True, slots=True)
class SignedProfile:
    """``envelope`` is the ``common.v1.SignedEnvelope`` wire bytes for ``Authorize``;
    ``profile`` is what it says (keep ``profile.nonce`` to check the answer's peer nonce)."""

    envelope: bytes
    profile: TrustProfile


class ProfileSigner:
    """Signs Trust Profiles with an enforcer's certified key.

    ``inline_chain`` chooses where the verifier finds the signer's certificate:
    - False (default): nowhere in the envelope; the verifier uses the certificate this
      enforcer presented on the mutually authenticated channel (``peer_chain``). Saves the
      ~460-byte certificate per profile. Use it on a channel that presented *this*
      credential's certificate.
    - True: the chain travels in the envelope. Use it when the channel was authenticated with
      another certificate (after a rotation, until the channel reconnects) or when no channel
      certificate is available to the verifier.
    """

    def __init__(
        self, credential: Credential, *, clock: Clock = utc_now, inline_chain: bool = False
    ) -> None:
        if credential.spiffe_id is None or credential.spiffe_id.role is not Role.ENFORCER:
            raise InvalidArgument(
                f"profiles are signed by an enforcer certificate, not {credential.spiffe_id}",
                field="credential",
            )
        self.credential = credential
        self._clock = clock
        self._inline_chain = inline_chain

    def sign(
        self,
        identity_document: bytes,
        five_tuple: FiveTuple,
        *,
        destination_service: str = "",
        behaviour_score: float | None = None,
        reputation_score: float | None = None,
        trace_context: TraceContext = _NO_TRACE,
        peer_nonce: bytes = b"",
        inline_chain: bool | None = None,
    ) -> SignedProfile:
        """A fresh profile (new 16-byte nonce from ``secrets``, timestamp from the clock) for
        ``identity_document`` (the envelope bytes as issued). ``peer_nonce`` is the request's
        nonce when this profile answers one."""
        profile = self._fresh(
            identity_document,
            five_tuple,
            destination_service,
            behaviour_score,
            reputation_score,
            trace_context,
            peer_nonce,
        )
        return SignedProfile(self.sign_profile(profile, inline_chain=inline_chain), profile)

    def seal(
        self,
        identity_document: bytes,
        five_tuple: FiveTuple,
        session: Session,
        *,
        destination_service: str = "",
        behaviour_score: float | None = None,
        reputation_score: float | None = None,
        trace_context: TraceContext = _NO_TRACE,
        peer_nonce: bytes = b"",
    ) -> SignedProfile:
        """Like ``sign``, but sealed under ``session`` (an established channel session with
        the enforcer that will verify it). Raises ``FailedPrecondition`` (reason
        ``SESSION_UNUSABLE``) when the session is closed or outside its validity window: open
        a new one, or ``sign``."""
        profile = self._fresh(
            identity_document,
            five_tuple,
            destination_service,
            behaviour_score,
            reputation_score,
            trace_context,
            peer_nonce,
        )
        return SignedProfile(self.seal_profile(profile, session), profile)

    def _fresh(
        self,
        identity_document: bytes,
        five_tuple: FiveTuple,
        destination_service: str,
        behaviour_score: float | None,
        reputation_score: float | None,
        trace_context: TraceContext,
        peer_nonce: bytes,
    ) -> TrustProfile:
        return TrustProfile(
            identity_document=_codec.decode_envelope(identity_document, "identity_document"),
            five_tuple=five_tuple,
            nonce=secrets.token_bytes(NONCE_BYTES),
            timestamp=self._clock(),
            destination_service=destination_service,
            behaviour_score=behaviour_score,
            reputation_score=reputation_score,
            trace_context=trace_context,
            peer_nonce=peer_nonce,
        )

    def sign_profile(self, profile: TrustProfile, *, inline_chain: bool | None = None) -> bytes:
        """Sign a fully built profile. The caller owns its nonce's freshness: use ``sign``
        unless you are producing test vectors."""
        payload = _codec.encode_profile(profile)
        signature = _crypto.ecdsa_sign(
            self.credential.private_key, _crypto.pae(PROFILE_PAYLOAD_TYPE, payload)
        )
        inline = self._inline_chain if inline_chain is None else inline_chain
        return _codec.encode_envelope(
            SignedEnvelope(
                payload=payload,
                payload_type=PROFILE_PAYLOAD_TYPE,
                signature=signature,
                algorithm=SignatureAlgorithm.ECDSA_P256_SHA256,
                signer_chain_der=self.credential.chain_der if inline else (),
            )
        )

    def seal_profile(self, profile: TrustProfile, session: Session) -> bytes:
        """Seal a fully built profile under ``session``: ``signature`` is
        HMAC-SHA256(this side's session key, session_id || PAE(type, payload)), no chain. The
        caller owns the nonce's freshness: use ``seal`` unless producing test vectors."""
        if session.local != self.credential.spiffe_id:
            raise InvalidArgument(
                f"session of {session.local} used by the signer of {self.credential.spiffe_id}",
                field="session",
            )
        if not session.usable(self._clock()):
            raise FailedPrecondition(
                f"session {session.session_id.hex()} is closed or outside its validity window",
                reason="SESSION_UNUSABLE",
            )
        payload = _codec.encode_profile(profile)
        return _codec.encode_envelope(
            SignedEnvelope(
                payload=payload,
                payload_type=PROFILE_PAYLOAD_TYPE,
                signature=session.seal_tag(payload),
                algorithm=SignatureAlgorithm.HMAC_SHA256_SESSION,
                session_id=session.session_id,
            )
        )
