"""Why a credential was refused: one stable reason code per failure, carried by one exception.

``ReasonCode`` names are the ``common.v1.ReasonCode`` value names without the
``REASON_CODE_`` prefix, so a flow record, a log line and an ``Authorize`` answer say the
same thing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from trustwire.errors import PermissionDenied

__all__ = ["ReasonCode", "VerificationError"]


class ReasonCode(enum.StrEnum):
    # The envelope or a signature in it does not verify, or the algorithm is not ECDSA P-256.
    BAD_SIGNATURE = "BAD_SIGNATURE"
    # The bytes do not parse, a required field is missing, or a value is out of range.
    MALFORMED_PROFILE = "MALFORMED_PROFILE"
    # The document or a certificate of a chain is past its expiry.
    EXPIRED = "EXPIRED"
    # The document or a certificate of a chain is not valid yet (beyond the allowed skew).
    NOT_YET_VALID = "NOT_YET_VALID"
    # A certificate of the signer chain, or the signer's enforcer, is revoked.
    REVOKED = "REVOKED"
    # The nonce was already accepted within the replay window, or a response is not bound to
    # the request it answers (peer nonce mismatch).
    REPLAYED = "REPLAYED"
    # The profile's timestamp is further than the allowed skew from the verifier's clock.
    CLOCK_SKEW = "CLOCK_SKEW"
    # The claimed trust domain has no bundle at the verifier (neither local nor federated).
    FOREIGN_TRUST_DOMAIN = "FOREIGN_TRUST_DOMAIN"
    # The chain does not verify to any CA of the claimed trust domain's bundle.
    UNKNOWN_CA = "UNKNOWN_CA"
    # The profile's 5-tuple is not the connection the verifier observes.
    ADDRESS_MISMATCH = "ADDRESS_MISMATCH"
    # The document names another enforcer (or trust domain) than the profile's signer.
    DOCUMENT_ENFORCER_MISMATCH = "DOCUMENT_ENFORCER_MISMATCH"
    # The envelope's payload type is not the one expected here (a document passed as a
    # profile, or the reverse).
    WRONG_PAYLOAD_TYPE = "WRONG_PAYLOAD_TYPE"
    # A certificate is unfit for its role: key usage, extended key usage, SAN, CA flags,
    # key or signature algorithm, unknown critical extension, or the wrong SPIFFE role.
    CERTIFICATE_INVALID = "CERTIFICATE_INVALID"
    # A sealed profile names a channel session the verifier does not hold (never established,
    # dropped, or lost in a restart). Not an expiry: the sender re-sends signed at once.
    UNKNOWN_SESSION = "UNKNOWN_SESSION"

    @property
    def wire_value(self) -> int:
        """The ``common.v1.ReasonCode`` number to put on the wire for this reason."""
        return _WIRE[self]


# Numbers of common.v1.ReasonCode (a unit test checks them against the generated enum).
_WIRE: Mapping[ReasonCode, int] = {
    ReasonCode.BAD_SIGNATURE: 50,
    ReasonCode.EXPIRED: 51,
    ReasonCode.REVOKED: 52,
    ReasonCode.REPLAYED: 53,
    ReasonCode.CLOCK_SKEW: 54,
    ReasonCode.FOREIGN_TRUST_DOMAIN: 55,
    ReasonCode.UNKNOWN_CA: 56,
    ReasonCode.ADDRESS_MISMATCH: 57,
    ReasonCode.DOCUMENT_ENFORCER_MISMATCH: 58,
    ReasonCode.MALFORMED_PROFILE: 59,
    ReasonCode.NOT_YET_VALID: 60,
    ReasonCode.WRONG_PAYLOAD_TYPE: 61,
    ReasonCode.CERTIFICATE_INVALID: 62,
    ReasonCode.UNKNOWN_SESSION: 63,
}


class VerificationError(PermissionDenied):
    """A document, chain or profile was refused. ``code`` says why; branch on it, not on text.

    ``reason`` (the ``ErrorInfo`` reason at the gRPC edge) is ``code``'s name. The message is
    for people and may name the offending field or certificate; it never contains key material.
    """

    def __init__(
        self,
        code: ReasonCode,
        message: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}", reason=code.value, metadata=metadata)
        self.code = code
