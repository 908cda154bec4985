"""PU identity documents, issued on an enforcer's request.

Authorization here, signing in ``trustwire.identity.DocumentIssuer``:

- only an enforcer asks, and only for PUs it hosts: the document's ``enforcer_id`` is the
  caller's name from its certificate; an attestation naming another node is refused
  (``DOCUMENT_FOR_OTHER_ENFORCER``);
- a revoked enforcer, or one presenting a superseded certificate, gets nothing;
- reserved labels (``trust-domain``, ``namespace``, ...) come from the attestation and the
  issuer, never from the request: a request label with a reserved key is ``INVALID_ARGUMENT``
  naming ``labels.<key>`` (reason ``RESERVED_LABEL``);
- lifetime: the requested TTL, else the default; never longer than the default (the
  maximum), than the caller's certificate, or than the signing certificate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from trustwire.errors import InvalidArgument, PermissionDenied
from trustwire.identity import Attestation, DocumentIssuer, IssuedDocument, Role, SpiffeId
from trustwire.policy.model import RESERVED_LABELS

from .enrollment import Enrollments, check_usable
from .records import EnrollmentKind

__all__ = ["DEFAULT_DOCUMENT_TTL", "Documents"]

DEFAULT_DOCUMENT_TTL = timedelta(hours=1)


class Documents:
    def __init__(
        self,
        enrollments: Enrollments,
        issuer: Callable[[], DocumentIssuer],
        *,
        ttl: timedelta = DEFAULT_DOCUMENT_TTL,
    ) -> None:
        self._enrollments = enrollments
        self._issuer = issuer
        self._ttl = ttl

    async def issue(
        self,
        caller: SpiffeId,
        *,
        caller_serial: int,
        caller_not_after: datetime,
        pu_id: str,
        labels: Mapping[str, str],
        attestation: Attestation,
        ttl: timedelta = timedelta(0),
    ) -> IssuedDocument:
        if caller.role is not Role.ENFORCER:
            raise PermissionDenied(f"{caller} is not an enforcer", reason="ROLE_NOT_ALLOWED")
        if not pu_id:
            raise InvalidArgument("a PU id is required", field="pu_id")
        for key in sorted(labels):
            if key in RESERVED_LABELS:
                raise InvalidArgument(
                    f"label {key!r} is reserved: it is derived from the attestation",
                    field=f"labels.{key}",
                    reason="RESERVED_LABEL",
                )
        if attestation.node and attestation.node != caller.name:
            raise PermissionDenied(
                f"enforcer {caller.name!r} cannot get documents for PUs of node "
                f"{attestation.node!r}",
                reason="DOCUMENT_FOR_OTHER_ENFORCER",
                metadata={"enforcer_id": caller.name, "node": attestation.node},
            )
        if ttl < timedelta(0):
            raise InvalidArgument("ttl must not be negative", field="ttl")
        record = await self._enrollments.get(EnrollmentKind.ENFORCER, caller.name)
        if record is None:
            raise PermissionDenied(f"{caller} is not enrolled", reason="NOT_ENROLLED")
        check_usable(record, caller_serial)
        return self._issuer().issue(
            pu_id=pu_id,
            enforcer_id=caller.name,
            labels=labels,
            attestation=attestation,
            not_after=caller_not_after,
            ttl=min(ttl, self._ttl) if ttl else self._ttl,
        )
