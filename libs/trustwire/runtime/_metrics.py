"""Prometheus metrics without a dependency: a registry, three metric kinds, the text exposition
format 0.0.4, and a small asyncio HTTP server for ``GET /metrics``.

Why not ``prometheus_client``: the allowed dependencies are fixed, and what a service needs is
small. Recording::

    registry = MetricsRegistry()
    connections = registry.counter(
        "trustwire_enforcer_connections_total", "Decided connections.",
        labels=("direction", "verdict"),
    )
    connections.labels("egress", "allow").inc()          # a dict lookup and an add
    registry.gauge("trustwire_enforcer_relays", "Live relays.", callback=lambda: len(relays))

Serving::

    server = MetricsServer(registry, "127.0.0.1:9464")
    await server.start()  # server.port is the bound port (":0" picks one)
    ...
    await server.stop()

Concurrency: updates and scrapes are meant to run on the service's event loop (relay threads
hand their reports to the loop already), so nothing here takes a lock: an increment stays as
cheap as the hot path needs. Series are created on first use; label values come from bounded
sets (directions, verdicts, reason codes), never from identifiers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar, cast

from trustwire.errors import FailedPrecondition, InvalidArgument

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricsRegistry",
    "MetricsServer",
]

_log = logging.getLogger("trustwire.runtime.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; covers an in-host decision (~100 us) up to a timed-out handshake (seconds).
DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# What a callback returns: one value (a metric without labels) or a value per label tuple.
Samples = float | Mapping[tuple[str, ...], float]
Callback = Callable[[], Samples]


def _number(value: float) -> str:
    """Go's float syntax, which Prometheus parses: ``+Inf``, ``-Inf``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_text(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escape_label_value(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


class _Metric:
    kind = ""

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str],
        callback: Callback | None,
        *,
        reserved: frozenset[str] = frozenset(),
    ) -> None:
        if not _METRIC_NAME.fullmatch(name):
            raise InvalidArgument(f"metric {name!r}: not a valid metric name", field="name")
        for label in labels:
            if not _LABEL_NAME.fullmatch(label) or label.startswith("__") or label in reserved:
                raise InvalidArgument(
                    f"metric {name}: {label!r} is not a valid label name", field="labels"
                )
        if len(set(labels)) != len(labels):
            raise InvalidArgument(f"metric {name}: duplicate label names", field="labels")
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)
        self._callback = callback

    def _checked(self, values: Sequence[object]) -> tuple[str, ...]:
        """Label values of a new series: as many as label names, each a string."""
        if len(values) != len(self.label_names):
            raise InvalidArgument(
                f"metric {self.name}: expected {len(self.label_names)} label values "
                f"{self.label_names}, got {len(values)}",
                field="labels",
            )
        for label, value in zip(self.label_names, values, strict=True):
            if not isinstance(value, str):
                raise InvalidArgument(
                    f"metric {self.name}: label {label} must be a string, got "
                    f"{type(value).__name__}",
                    field=label,
                )
        return cast(tuple[str, ...], tuple(values))

    def _from_callback(self) -> dict[tuple[str, ...], float]:
        assert self._callback is not None
        result = self._callback()
        if not isinstance(result, Mapping):
            return {self._checked(()): float(result)}
        return {self._checked(key): float(value) for key, value in result.items()}

    def sample_names(self) -> tuple[str, ...]:
        return (self.name,)

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {_escape_help(self.help)}")
        out.append(f"# TYPE {self.name} {self.kind}")
        if self._callback is not None:
            try:
                values = self._from_callback()
            except Exception:
                # One broken callback must not take the whole scrape down: its metric is
                # shown without samples and the failure logged.
                _log.exception("metric %s: callback failed", self.name)
                return
        else:
            values = self._values()
        for key in sorted(values):
            out.append(f"{self.name}{_label_text(self.label_names, key)} {_number(values[key])}")

    def _values(self) -> dict[tuple[str, ...], float]:
        raise NotImplementedError


class _CounterSeries:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise InvalidArgument("a counter only goes up", field="amount")
        self.value += amount


class Counter(_Metric):
    """A value that only goes up (and restarts at zero with the process). The name ends in
    ``_total``. With ``callback``: the value is read at scrape time (a count kept elsewhere)."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        callback: Callback | None = None,
    ) -> None:
        if not name.endswith("_total"):
            raise InvalidArgument(f"metric {name}: a counter's name ends in _total", field="name")
        super().__init__(name, help_text, labels, callback)
        self._series: dict[tuple[str, ...], _CounterSeries] = {}
        if not labels and callback is None:
            self._series[()] = _CounterSeries()  # shown as 0 before the first increment

    def labels(self, *values: str) -> _CounterSeries:
        series = self._series.get(values)
        if series is None:
            series = self._series[self._checked(values)] = _CounterSeries()
        return series

    def inc(self, amount: float = 1.0) -> None:
        """A counter without labels."""
        self.labels().inc(amount)

    def value(self, *values: str) -> float:
        series = self._series.get(values)
        return series.value if series is not None else 0.0

    def _values(self) -> dict[tuple[str, ...], float]:
        return {key: series.value for key, series in self._series.items()}


class _GaugeSeries:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class Gauge(_Metric):
    """A value that goes up and down: set by the code, or computed by ``callback`` at scrape
    time (then ``labels``/``set`` are not used: the callback is the only source)."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        callback: Callback | None = None,
    ) -> None:
        super().__init__(name, help_text, labels, callback)
        self._series: dict[tuple[str, ...], _GaugeSeries] = {}
        if not labels and callback is None:
            self._series[()] = _GaugeSeries()

    def labels(self, *values: str) -> _GaugeSeries:
        if self._callback is not None:
            raise InvalidArgument(f"metric {self.name}: computed by its callback", field="labels")
        series = self._series.get(values)
        if series is None:
            series = self._series[self._checked(values)] = _GaugeSeries()
        return series

    def set(self, value: float) -> None:
        self.labels().set(value)

    def _values(self) -> dict[tuple[str, ...], float]:
        return {key: series.value for key, series in self._series.items()}


class _HistogramSeries:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative (cheaper to observe)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1
                break
        self.count += 1
        self.sum += value


class Histogram(_Metric):
    """Observations counted in fixed buckets (upper bounds, ``le``); ``+Inf`` is implied."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labels, None, reserved=frozenset({"le"}))
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)) or any(math.isnan(b) for b in bounds):
            raise InvalidArgument(
                f"metric {name}: buckets must be distinct and increasing", field="buckets"
            )
        self.bounds = tuple(b for b in bounds if not math.isinf(b))
        self._series: dict[tuple[str, ...], _HistogramSeries] = {}
        if not labels:
            self._series[()] = _HistogramSeries(self.bounds)

    def labels(self, *values: str) -> _HistogramSeries:
        series = self._series.get(values)
        if series is None:
            series = self._series[self._checked(values)] = _HistogramSeries(self.bounds)
        return series

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def sample_names(self) -> tuple[str, ...]:
        return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {_escape_help(self.help)}")
        out.append(f"# TYPE {self.name} histogram")
        names = (*self.label_names, "le")
        for key in sorted(self._series):
            series = self._series[key]
            cumulative = 0
            for bound, count in zip(self.bounds, series.counts, strict=True):
                cumulative += count
                labels = _label_text(names, (*key, _number(bound)))
                out.append(f"{self.name}_bucket{labels} {cumulative}")
            out.append(f"{self.name}_bucket{_label_text(names, (*key, '+Inf'))} {series.count}")
            plain = _label_text(self.label_names, key)
            out.append(f"{self.name}_sum{plain} {_number(series.sum)}")
            out.append(f"{self.name}_count{plain} {series.count}")


_M = TypeVar("_M", bound=_Metric)


class MetricsRegistry:
    """The metrics of one service, rendered in registration order."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._samples: set[str] = set()

    def counter(
        self,
        name: str,
        help_text: str,
        *,
        labels: Sequence[str] = (),
        callback: Callback | None = None,
    ) -> Counter:
        return self._add(Counter(name, help_text, labels, callback))

    def gauge(
        self,
        name: str,
        help_text: str,
        *,
        labels: Sequence[str] = (),
        callback: Callback | None = None,
    ) -> Gauge:
        return self._add(Gauge(name, help_text, labels, callback))

    def histogram(
        self,
        name: str,
        help_text: str,
        *,
        labels: Sequence[str] = (),
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        return self._add(Histogram(name, help_text, labels, buckets))

    def _add(self, metric: _M) -> _M:
        # A histogram's ``x_count`` must not collide with a counter named ``x_count``: checked
        # on sample names, so the exposition never holds one series twice.
        names = {metric.name, *metric.sample_names()}
        if metric.name in self._metrics or names & self._samples:
            raise InvalidArgument(f"metric {metric.name}: already registered", field="name")
        self._metrics[metric.name] = metric
        self._samples |= names
        return metric

    def get(self, name: str) -> _Metric | None:
        return self._metrics.get(name)

    def exposition(self) -> str:
        """Every metric in the text format 0.0.4 (ends with a newline)."""
        out: list[str] = []
        for metric in self._metrics.values():
            metric.render(out)
        return "\n".join(out) + "\n" if out else ""


# ---------------------------------------------------------------------------------- HTTP server


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` to (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise InvalidArgument(f"metrics address {address!r} must be host:port", field="address")
    return host.strip("[]"), int(port)


class MetricsServer:
    """``GET /metrics`` over plain HTTP/1.x, one request per connection; another path is 404,
    another method 405, a request line without method, path and version 400.

    Bounded by design, since it listens beside an enforcement point: a request head larger than
    ``max_request_bytes`` gets 431, one not complete within ``read_timeout`` seconds is dropped,
    and at most ``max_clients`` connections are served at once (others are closed at accept).
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        address: str,
        *,
        read_timeout: float = 5.0,
        max_request_bytes: int = 8192,
        max_clients: int = 16,
    ) -> None:
        self.registry = registry
        self._host, self._port = split_address(address)
        self.read_timeout = read_timeout
        self.max_request_bytes = max_request_bytes
        self.max_clients = max_clients
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def address(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, self._host, self._port, limit=self.max_request_bytes
            )
        except OSError as error:
            raise FailedPrecondition(
                f"metrics server cannot listen on {self._host}:{self._port}: {error}",
                reason="METRICS_LISTEN_FAILED",
            ) from error
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._clients):
            task.cancel()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._clients) >= self.max_clients:
            writer.close()
            return
        self._clients.add(task)
        try:
            async with asyncio.timeout(self.read_timeout):
                status, body = await self._answer(reader)
                head = (
                    f"HTTP/1.1 {status}\r\n"
                    f"Content-Type: {CONTENT_TYPE if status.startswith('200') else 'text/plain'}"
                    f"\r\nContent-Length: {len(body)}\r\n"
                    + ("Allow: GET\r\n" if status.startswith("405") else "")
                    + "Connection: close\r\n\r\n"
                )
                writer.write(head.encode("ascii") + body)
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a slow or vanished client: nothing to answer
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, bytes]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return "431 Request Header Fields Too Large", b"request too large\n"
        except asyncio.IncompleteReadError as error:
            if not error.partial:
                raise
            head = error.partial  # a client that half-closed after its request line
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1]:
            return "400 Bad Request", b"bad request\n"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if target != b"/metrics":
            return "404 Not Found", b"not found\n"
        if method != b"GET":
            return "405 Method Not Allowed", b"method not allowed\n"
        return "200 OK", self.registry.exposition().encode("utf-8")
