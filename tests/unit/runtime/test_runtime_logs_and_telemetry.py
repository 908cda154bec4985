"""JSON-lines logging with trace ids, and the telemetry handle."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trustwire.runtime import JsonFormatter, configure_logging, configure_telemetry


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A configured root logger writing to a buffer; the root logger is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging("debug", "policy", stream=buffer)
    yield buffer
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_line_fields_and_extras(stream: io.StringIO) -> None:
    logging.getLogger("trustwire.test").info(
        "applied %s", "rev-7", extra={"revision": 7, "enforcer": "node-1", "level": "shadow"}
    )
    [entry] = lines(stream)
    assert entry["msg"] == "applied rev-7"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "trustwire.test"
    assert entry["service"] == "policy"
    assert entry["ts"].endswith("Z")
    assert "T" in entry["ts"]
    assert entry["revision"] == 7
    assert entry["enforcer"] == "node-1"
    assert entry["extra_level"] == "shadow"  # an extra never overwrites a fixed key
    assert "trace_id" not in entry  # no span is current


def test_trace_and_span_ids_from_the_current_span(stream: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("trustwire.test").warning("inside")
    context = span.get_span_context()
    [entry] = lines(stream)
    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")


def test_exceptions_and_unserialisable_values(stream: io.StringIO) -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("x").exception("failed", extra={"obj": object.__new__(object)})
    [entry] = lines(stream)
    assert entry["level"] == "ERROR"
    assert "ValueError: bad" in entry["exc"]
    assert entry["obj"].startswith("<object object")


def test_configure_twice_replaces_own_handler(stream: io.StringIO) -> None:
    second = io.StringIO()
    configure_logging(logging.INFO, "policy", stream=second)
    logging.getLogger("x").info("once")
    logging.getLogger("x").debug("filtered by the new level")
    assert stream.getvalue() == ""
    assert [e["msg"] for e in lines(second)] == ["once"]
    assert sum(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers) == 1


def test_telemetry_with_own_processor_is_isolated() -> None:
    exporter = InMemorySpanExporter()
    telemetry = configure_telemetry(
        "identity",
        span_processor=SimpleSpanProcessor(exporter),
        resource_attributes={"deployment.environment": "test"},
        set_global=False,
    )
    with telemetry.tracer("t").start_as_current_span("issue"):
        pass
    assert telemetry.force_flush()
    telemetry.shutdown()
    [span] = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == "identity"
    assert span.resource.attributes["deployment.environment"] == "test"


def test_telemetry_exports_otlp_only_when_an_endpoint_is_set() -> None:
    without = configure_telemetry("a", set_global=False, environ={})
    processors = without.tracer_provider._active_span_processor._span_processors
    assert processors == ()
    without.shutdown()
    with_endpoint = configure_telemetry(
        "b", set_global=False, environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    )
    [processor] = with_endpoint.tracer_provider._active_span_processor._span_processors
    assert isinstance(processor, BatchSpanProcessor)
    with_endpoint.shutdown()  # nothing recorded: returns without contacting the endpoint
