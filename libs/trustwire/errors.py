"""The one exception tree of Trustwire.

Domain code raises these; the gRPC edge (``trustwire.runtime``, in ``_errors.py``) maps each
class to one status code and a ``google.rpc.ErrorInfo`` carrying ``reason`` and ``metadata``.
Nothing else crosses a service boundary, so a client in any language can branch on
``ErrorInfo.reason``.

::

    TrustwireError                      (INTERNAL)     base; never raised directly
    ├── InvalidArgument                 (INVALID_ARGUMENT) bad input; names the field
    │   └── DocumentError               (INVALID_ARGUMENT) problems in YAML documents: file, index,
    │                                                      field; ``.errors`` lists every one
    ├── NotFound                        (NOT_FOUND)
    ├── AlreadyExists                   (ALREADY_EXISTS)
    ├── Conflict                        (ABORTED)      lost a compare-and-swap; re-read and retry
    ├── FailedPrecondition              (FAILED_PRECONDITION) e.g. resume revision compacted
    ├── Unauthenticated                 (UNAUTHENTICATED) no or bad credentials
    ├── PermissionDenied                (PERMISSION_DENIED) authenticated, not allowed
    ├── ResourceExhausted               (RESOURCE_EXHAUSTED) oversize request, quota
    └── Unavailable                     (UNAVAILABLE)  a dependency (etcd, a peer) is down

Every error has a stable, upper-snake ``reason`` (for machines) and a message (for people).

Input is validated as a whole, so one :class:`DocumentError` may stand for several problems
(:meth:`DocumentError.combine`): it reads like its first problem (``source``, ``index``,
``field``), says how many there are in its message, and lists each in ``errors``. A caller
that handles one ``DocumentError`` keeps working; one that shows problems iterates ``errors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
    """One or more problems in YAML/JSON documents of an input.

    One problem reads ``FILE: document N (KIND NAME): FIELD: PROBLEM`` so that a person can go
    straight to it; the parts are also kept as attributes (``kind``, ``namespace`` and ``name``
    too, when the document got that far) and in ``metadata``. Its ``errors`` is ``(self,)``.

    Several problems are one error made by :meth:`combine`: ``errors`` holds each (in document
    order), ``omitted`` counts those found but not kept (inputs are bounded, so a huge bad file
    cannot make a huge error), and the attributes are those of the first problem, so code that
    handles a single ``DocumentError`` still sees a real one.
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
        kind: str = "",
        namespace: str = "",
        name: str = "",
        reason: str | None = None,
    ) -> None:
        if not what and name:
            what = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
            what = what.strip()
        elif what and not (kind or name):
            # Callers that only describe the document ("KIND NAME", "KIND NS/NAME") still give
            # clients the structured parts (ApplyErrors carries kind, namespace, name).
            kind, _, ref = what.partition(" ")
            namespace, _, name = ref.rpartition("/")
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
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.errors: tuple[DocumentError, ...] = (self,)
        self.omitted = 0
        self.documents = 1

    @property
    def total(self) -> int:
        """How many problems were found: those in ``errors`` and the ``omitted`` ones."""
        return len(self.errors) + self.omitted

    @property
    def summary(self) -> str:
        """``"3 problems in 2 documents"``: the last line a person reads."""
        problems = "problem" if self.total == 1 else "problems"
        documents = "document" if self.documents == 1 else "documents"
        return f"{self.total} {problems} in {self.documents} {documents}"

    @classmethod
    def combine(
        cls,
        problems: Sequence[DocumentError],
        *,
        omitted: int = 0,
        documents: int | None = None,
    ) -> DocumentError:
        """One error for ``problems`` (in the order given; combined ones are flattened).

        A single problem comes back as itself, so its message is unchanged. ``omitted`` counts
        problems found but not listed; ``documents`` how many documents have problems (default:
        those of the listed ones).
        """
        flat = tuple(p for problem in problems for p in problem.errors)
        omitted += sum(problem.omitted for problem in problems)
        if not flat:
            raise ValueError("DocumentError.combine needs at least one problem")
        if documents is None:
            documents = len({(p.source, p.index) for p in flat})
        if len(flat) == 1 and not omitted:
            return flat[0]
        first = flat[0]
        combined = cls(
            first.problem,
            source=first.source,
            index=first.index,
            field=first.field,
            what=first.what,
            kind=first.kind,
            namespace=first.namespace,
            name=first.name,
            reason=cls.default_reason,  # each problem keeps its own reason in ``errors``
        )
        combined.errors = flat
        combined.omitted = omitted
        combined.documents = documents
        # Short whatever the count: this message travels in gRPC trailers (see runtime).
        combined.message = f"{combined.summary}; the first: {first.message}"
        combined.args = (combined.message,)
        combined.metadata["problems"] = str(combined.total)
        combined.metadata["documents"] = str(documents)
        return combined


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
