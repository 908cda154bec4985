"""Signing Trust Profiles: what the source enforcer does for every new connection (and the
destination enforcer for its answer)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from trustwire.errors import InvalidArgument

from . import _codec, _crypto
from ._credential import Credential
from ._envelope import PROFILE_PAYLOAD_TYPE, SignatureAlgorithm, SignedEnvelope
from ._issuer import Clock, utc_now
from ._profile import NONCE_BYTES, FiveTuple, TraceContext, TrustProfile
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
        profile = TrustProfile(
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
        return SignedProfile(self.sign_profile(profile, inline_chain=inline_chain), profile)

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
