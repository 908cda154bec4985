"""The signed envelope shared by identity documents and Trust Profiles (``common.v1``).

DSSE-style: the signature covers ``pae(payload_type, payload)``, never the envelope encoding,
so the payload type is authenticated (a document cannot pass as a profile) and the chain is
not (it is only a hint of which key to use; the verifier proves it to a bundle).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "DOCUMENT_PAYLOAD_TYPE",
    "PROFILE_PAYLOAD_TYPE",
    "SignatureAlgorithm",
    "SignedEnvelope",
]

# Full protobuf names of the payload messages, as the envelope contract in
# protos/trustwire/api/common/v1/envelope.proto prescribes.
DOCUMENT_PAYLOAD_TYPE = "trustwire.api.identity.v1.IdentityDocument"
PROFILE_PAYLOAD_TYPE = "trustwire.api.enforcer.v1.TrustProfile"


class SignatureAlgorithm(enum.IntEnum):
    """``common.v1.SignatureAlgorithm``: same numbers."""

    UNSPECIFIED = 0
    ECDSA_P256_SHA256 = 1
    # A Trust Profile sealed under a channel session (``_session``): HMAC-SHA256 with the
    # sender's directional session key. Profiles only, never documents.
    HMAC_SHA256_SESSION = 2


@dataclass(frozen=True, slots=True)
class SignedEnvelope:
    """``common.v1.SignedEnvelope``. ``signer_chain_der`` is the signer's certificate then its
    intermediates, never a bundle CA. It may be empty: for a document, the signer is then a CA
    of the document's trust domain bundle; for a profile, the signer is the certificate the
    peer presented on the mutually authenticated channel (``peer_chain``).

    ``session_id`` is set iff ``algorithm`` is ``HMAC_SHA256_SESSION``: the channel session
    whose sender key made the tag in ``signature`` (``signer_chain_der`` is then empty)."""

    payload: bytes
    payload_type: str
    signature: bytes
    algorithm: SignatureAlgorithm
    signer_chain_der: tuple[bytes, ...] = ()
    session_id: bytes = b""
