"""The one exception tree of Trustwire.

Domain code raises these; the gRPC edge (``trustwire.runtime``, in ``_errors.py``) maps each
class to one status code and a ``google.rpc.ErrorInfo`` carrying ``reason`` and ``metadata``.
Nothing else crosses a service boundary, so a client in any language can branch on
``ErrorInfo.reason``.

::

    TrustwireError                      (INTERNAL)     base; never raised directly
    ├── InvalidArgument                 (INVALID_ARGUMENT) bad input; names the field
    │   └── DocumentError               (INVALID_ARGUMENT) a YAML document: file, index, field
    ├── NotFound                        (NOT_FOUND)
    ├── AlreadyExists                   (ALREADY_EXISTS)
    ├── Conflict                        (ABORTED)      lost a compare-and-swap; re-read and retry
    ├── FailedPrecondition              (FAILED_PRECONDITION) e.g. resume revision compacted
    ├── Unauthenticated                 (UNAUTHENTICATED) no or bad credentials
    ├── PermissionDenied                (PERMISSION_DENIED) authenticated, not allowed
    ├── ResourceExhausted               (RESOURCE_EXHAUSTED) oversize request, quota
    └── Unavailable                     (UNAVAILABLE)  a dependency (etcd, a peer) is down

Every error has a stable, upper-snake ``reason`` (for machines) and a message (for people).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AlreadyExists",
    "Conflict",
    "DocumentError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "TrustwireError",
    "Unauthenticated",
    "Unavailable",
]


class TrustwireError(Exception):
    """Base of every error Trustwire raises on purpose."""

    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})

    def __str__(self) -> str:
        return self.message


class InvalidArgument(TrustwireError):
    """Input that can never succeed as given. ``field`` is a path such as ``spec.ports[0].port``."""

    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        field: str = "",
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        md = dict(metadata or {})
        if field:
            md.setdefault("field", field)
        super().__init__(message, reason=reason, metadata=md)
        self.field = field


class DocumentError(InvalidArgument):
    """A problem in one YAML/JSON document of an input file.

    The message reads ``FILE: document N (KIND NAME): FIELD: PROBLEM`` so that a person can go
    straight to it; the parts are also kept as attributes and in ``metadata``.
    """

    default_reason = "INVALID_DOCUMENT"

    def __init__(
        self,
        problem: str,
        *,
        source: str,
        index: int | None = None,
        field: str = "",
        what: str = "",
        reason: str | None = None,
    ) -> None:
        where = source
        if index is not None:
            where += f": document {index}"
            if what:
                where += f" ({what})"
        message = f"{where}: {field}: {problem}" if field else f"{where}: {problem}"
        md = {"source": source}
        if index is not None:
            md["document"] = str(index)
        super().__init__(message, field=field, reason=reason, metadata=md)
        self.problem = problem
        self.source = source
        self.index = index
        self.what = what


class NotFound(TrustwireError):
    default_reason = "NOT_FOUND"


class AlreadyExists(TrustwireError):
    default_reason = "ALREADY_EXISTS"


class Conflict(TrustwireError):
    """A concurrent writer won a compare-and-swap; the caller should re-read and retry."""

    default_reason = "CONFLICT"


class FailedPrecondition(TrustwireError):
    default_reason = "FAILED_PRECONDITION"


class Unauthenticated(TrustwireError):
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(TrustwireError):
    default_reason = "PERMISSION_DENIED"


class ResourceExhausted(TrustwireError):
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(TrustwireError):
    default_reason = "UNAVAILABLE"
