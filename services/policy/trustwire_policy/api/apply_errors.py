"""``policy.v1.ApplyErrors``: every problem of a rejected input, in the status details.

``PolicyService.Apply`` promises that invalid input fails ``INVALID_ARGUMENT`` with ErrorInfo
reason ``INVALID_DOCUMENT`` and an ``ApplyErrors`` detail listing every problem. The loader
raises one :class:`~trustwire.errors.DocumentError` holding them all (``errors``); this codec
turns it into that detail and back.

It is a hook of the runtime (:func:`trustwire.runtime.register_error_detail`) rather than part
of the runtime's own mapping, because the runtime serves every service and ``ApplyErrors`` is
this service's contract. Both ends call :func:`register_apply_errors`: the servicer, so that
its statuses carry the detail, and clients (the CLI), so that the error they get back lists
every problem again. A process that registers it packs the detail for any ``DocumentError``
its RPCs raise; in the policy service that is Apply, and Simulate's upserts, which are checked
by the same code and so get the same answer.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from trustwire.api.policy.v1 import policy_service_pb2 as service_pb
from trustwire.errors import DocumentError, TrustwireError
from trustwire.runtime import register_error_detail

__all__ = ["APPLY_ERRORS", "ApplyErrorsCodec", "register_apply_errors"]


class ApplyErrorsCodec:
    """:class:`trustwire.runtime.ErrorDetailCodec` for ``ApplyErrors``."""

    message_type = service_pb.ApplyErrors

    def encode(self, error: TrustwireError, max_bytes: int) -> Message | None:
        if not isinstance(error, DocumentError):
            return None
        detail = service_pb.ApplyErrors()
        size = 0
        for problem in error.errors:
            entry = _entry(problem)
            # A repeated message field costs its tag (1 byte) and length prefix on top.
            cost = entry.ByteSize() + 1 + _varint_size(entry.ByteSize())
            if size + cost > max_bytes:
                # The rest stay counted: ErrorInfo.metadata["problems"] is the total.
                break
            detail.errors.append(entry)
            size += cost
        return detail if detail.errors else None

    def decode(self, error: TrustwireError, detail: Message) -> TrustwireError:
        assert isinstance(detail, service_pb.ApplyErrors)
        if not detail.errors:
            return error
        problems = [_problem(entry) for entry in detail.errors]
        total = _count(error.metadata.get("problems"))
        combined = DocumentError.combine(
            problems,
            omitted=max(0, (total or len(problems)) - len(problems)),
            documents=_count(error.metadata.get("documents")),
        )
        # The server's message, reason and metadata are the truth, as for every error.
        combined.message = error.message
        combined.args = (error.message,)
        combined.reason = error.reason
        combined.metadata = dict(error.metadata)
        return combined


APPLY_ERRORS = ApplyErrorsCodec()


def register_apply_errors() -> None:
    """Pack and unpack ``ApplyErrors`` in this process (idempotent)."""
    register_error_detail(APPLY_ERRORS)


def _entry(problem: DocumentError) -> Any:
    return service_pb.DocumentError(
        source_name=problem.source,
        # The proto counts from 0, people (and DocumentError) from 1. A problem of no
        # particular document (index None) does not arise in an RPC; it would read as the first.
        document_index=max(0, (problem.index or 1) - 1),
        kind=problem.kind,
        namespace=problem.namespace,
        name=problem.name,
        field=problem.field,
        message=problem.problem,
        reason=problem.reason,
    )


def _problem(entry: Any) -> DocumentError:
    return DocumentError(
        entry.message,
        source=entry.source_name,
        index=entry.document_index + 1,
        field=entry.field,
        kind=entry.kind,
        namespace=entry.namespace,
        name=entry.name,
        reason=entry.reason or None,
    )


def _count(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size
