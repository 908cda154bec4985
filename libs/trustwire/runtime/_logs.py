"""Structured logs: one JSON object per line on stderr.

Each line has ``ts`` (RFC 3339, UTC, milliseconds), ``level``, ``logger``, ``msg``,
``service``, ``trace_id`` and ``span_id`` (hex, from the OpenTelemetry span current when the
record is emitted, if any), ``exc`` (the formatted traceback, when logged with ``exc_info``),
and every ``extra=`` field at the top level. An extra whose name collides with one of those
keys is kept as ``extra_<name>``. Values that are not JSON types are written with ``str()``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from opentelemetry import trace

__all__ = ["JsonFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_OWN_KEYS: Final = frozenset(
    {"ts", "level", "logger", "msg", "service", "trace_id", "span_id", "exc"}
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line (see the module docstring for the keys)."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self._service:
            entry["service"] = self._service
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRIBUTES or key.startswith("_"):
                continue
            entry[f"extra_{key}" if key in _OWN_KEYS else key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


class _Handler(logging.StreamHandler[TextIO]):
    """Marks the handler :func:`configure_logging` installed, so a second call replaces it."""


def configure_logging(
    level: int | str = "INFO", service: str = "", *, stream: TextIO | None = None
) -> None:
    """Send all logging (root logger) as JSON lines to ``stream`` (default ``sys.stderr``).

    Call once at process start; calling again replaces the handler installed before (and
    leaves handlers installed by others, e.g. pytest's capture, alone).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _Handler):
            root.removeHandler(handler)
            handler.close()
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
