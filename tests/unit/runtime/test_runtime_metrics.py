"""The metrics registry (text exposition format 0.0.4) and its HTTP server on a real socket."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest

from trustwire.errors import InvalidArgument
from trustwire.runtime import MetricsRegistry, MetricsServer

WAIT = 5.0


# ---------------------------------------------------------------------------- exposition


def test_counter_help_type_and_labelled_series_sorted() -> None:
    registry = MetricsRegistry()
    served = registry.counter("x_requests_total", "Requests served.", labels=("verdict",))
    served.labels("reject").inc()
    served.labels("allow").inc(2)
    assert registry.exposition() == (
        "# HELP x_requests_total Requests served.\n"
        "# TYPE x_requests_total counter\n"
        'x_requests_total{verdict="allow"} 2\n'
        'x_requests_total{verdict="reject"} 1\n'
    )


def test_label_values_and_help_are_escaped() -> None:
    registry = MetricsRegistry()
    odd = registry.counter("x_total", 'Back\\slash and\nnewline "quoted".', labels=("v",))
    odd.labels('a"b\\c\nd').inc()
    assert registry.exposition().splitlines() == [
        # Help escapes backslash and newline only; label values also the double quote.
        '# HELP x_total Back\\\\slash and\\nnewline "quoted".',
        "# TYPE x_total counter",
        'x_total{v="a\\"b\\\\c\\nd"} 1',
    ]


def test_unlabelled_metrics_show_zero_before_first_update() -> None:
    registry = MetricsRegistry()
    registry.counter("x_total", "X.")
    registry.gauge("y", "Y.")
    assert "x_total 0\n" in registry.exposition()
    assert "y 0\n" in registry.exposition()


def test_histogram_buckets_are_cumulative_with_inf_sum_and_count() -> None:
    registry = MetricsRegistry()
    latency = registry.histogram(
        "x_seconds", "Latency.", labels=("outcome",), buckets=(0.1, 1.0, 10.0)
    )
    for value in (0.05, 0.1, 0.5, 20.0):
        latency.labels("ok").observe(value)
    assert registry.exposition().splitlines() == [
        "# HELP x_seconds Latency.",
        "# TYPE x_seconds histogram",
        'x_seconds_bucket{outcome="ok",le="0.1"} 2',  # le is inclusive
        'x_seconds_bucket{outcome="ok",le="1"} 3',
        'x_seconds_bucket{outcome="ok",le="10"} 3',
        'x_seconds_bucket{outcome="ok",le="+Inf"} 4',
        'x_seconds_sum{outcome="ok"} 20.65',
        'x_seconds_count{outcome="ok"} 4',
    ]


def test_callback_gauges_are_computed_at_scrape_time() -> None:
    registry = MetricsRegistry()
    pus: dict[tuple[str, ...], float] = {("pod", "closed"): 2.0}
    registry.gauge("x_pus", "PUs.", labels=("type", "fail_mode"), callback=lambda: pus)
    level = [1.5]
    registry.gauge("x_level", "Level.", callback=lambda: level[0])
    first = registry.exposition()
    assert 'x_pus{type="pod",fail_mode="closed"} 2\n' in first
    assert "x_level 1.5\n" in first
    pus[("process", "open")] = 1.0
    level[0] = math.inf
    second = registry.exposition()
    assert 'x_pus{type="process",fail_mode="open"} 1\n' in second
    assert "x_level +Inf\n" in second


def test_a_failing_callback_leaves_the_rest_of_the_scrape() -> None:
    registry = MetricsRegistry()

    def broken() -> float:
        raise RuntimeError("gone")

    registry.gauge("x_broken", "Broken.", callback=broken)
    registry.gauge("x_fine", "Fine.", callback=lambda: 3.0)
    text = registry.exposition()
    assert "# TYPE x_broken gauge\n" in text
    assert "x_broken " not in text.replace("# HELP x_broken ", "").replace("# TYPE x_broken", "")
    assert "x_fine 3\n" in text


def test_label_validation_errors_name_the_metric() -> None:
    registry = MetricsRegistry()
    served = registry.counter("x_served_total", "X.", labels=("verdict", "reason"))
    with pytest.raises(InvalidArgument, match="x_served_total: expected 2 label values"):
        served.labels("allow")
    with pytest.raises(InvalidArgument, match="x_served_total: label reason must be a string"):
        served.labels("allow", None)  # type: ignore[arg-type]
    pus = registry.gauge("x_pus", "X.", labels=("type",), callback=lambda: {("a", "b"): 1.0})
    with pytest.raises(InvalidArgument, match="x_pus: expected 1 label values"):
        pus._from_callback()
    with pytest.raises(InvalidArgument, match="x_bad_total: 'le' is not a valid label name"):
        registry.histogram("x_bad_total", "X.", labels=("le",))
    with pytest.raises(InvalidArgument, match="metric 'x-y': not a valid metric name"):
        registry.gauge("x-y", "X.")
    with pytest.raises(InvalidArgument, match="x_count: a counter's name ends in _total"):
        registry.counter("x_count", "X.")


def test_no_duplicate_series_across_metrics() -> None:
    registry = MetricsRegistry()
    registry.histogram("x_seconds", "X.")
    with pytest.raises(InvalidArgument, match="x_seconds: already registered"):
        registry.gauge("x_seconds", "X.")
    with pytest.raises(InvalidArgument, match="x_seconds_count: already registered"):
        registry.gauge("x_seconds_count", "X.")
    registry.gauge("y_sum", "Y.")
    with pytest.raises(InvalidArgument, match="y: already registered"):
        registry.histogram("y", "Y.")


def test_counters_only_go_up() -> None:
    registry = MetricsRegistry()
    with pytest.raises(InvalidArgument, match="only goes up"):
        registry.counter("x_total", "X.").inc(-1)


# ---------------------------------------------------------------------------- HTTP server


@pytest.fixture
async def server() -> AsyncIterator[MetricsServer]:
    registry = MetricsRegistry()
    registry.counter("x_scrapes_total", "Scrapes.").inc(7)
    metrics = MetricsServer(registry, "127.0.0.1:0", read_timeout=0.3, max_request_bytes=1024)
    await metrics.start()
    try:
        yield metrics
    finally:
        await metrics.stop()


async def request(server: MetricsServer, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send ``raw`` and read the whole answer: (status line, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(WAIT):
            answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


async def test_get_metrics_answers_the_exposition(server: MetricsServer) -> None:
    status, headers, body = await request(
        server, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(headers["content-length"]) == len(body)
    assert b"x_scrapes_total 7\n" in body


async def test_other_paths_and_methods_are_refused(server: MetricsServer) -> None:
    status, _, body = await request(server, b"GET / HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 404 Not Found"
    assert b"x_scrapes_total" not in body
    status, headers, _ = await request(server, b"POST /metrics HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 405 Method Not Allowed"
    assert headers["allow"] == "GET"


async def test_a_request_without_a_path_is_a_bad_request(server: MetricsServer) -> None:
    status, _, _ = await request(server, b"GET\r\n\r\n")
    assert status == "HTTP/1.1 400 Bad Request"
    status, _, _ = await request(server, b"GET  HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 400 Bad Request"


async def test_a_request_too_large_is_refused(server: MetricsServer) -> None:
    status, _, body = await request(
        server, b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * 4096 + b"\r\n\r\n"
    )
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert b"x_scrapes_total" not in body


async def test_a_slow_client_is_dropped_after_the_read_timeout(server: MetricsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\n")  # never finishes its head
        await writer.drain()
        async with asyncio.timeout(WAIT):  # bounded: the server's timeout is 0.3 s
            assert await reader.read() == b""
    finally:
        writer.close()
    # And the server still serves others.
    status, _, _ = await request(server, b"GET /metrics HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"


async def test_the_address_must_be_host_and_port() -> None:
    with pytest.raises(InvalidArgument, match="must be host:port"):
        MetricsServer(MetricsRegistry(), "9464")
