"""Aggregation of connections into flow records, per key and fixed time window.

The enforcer calls :meth:`FlowAggregator.record` once per decided connection (and again with
``new_connection=False`` to add bytes of a connection that outlives a window), and
:meth:`FlowAggregator.flush` on a timer; flushed records go to ``FlowService.ReportFlows``.

Windows are aligned to multiples of ``window`` since the Unix epoch, so the records of the
two enforcers of one connection cover the same window and line up in queries.

Memory is bounded: at most ``max_open_keys`` aggregates are open at once. A connection that
would open one more is not aggregated and is counted in :attr:`FlowAggregator.dropped`
instead (flush more often, or raise the bound); existing aggregates keep counting.
Not thread-safe: call from one thread (the enforcer's event loop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from trustwire.errors import InvalidArgument
from trustwire.policy.model import Protocol

from .record import FlowDecision, FlowEndpoint, FlowKey, FlowRecord, is_trace_id

__all__ = ["DEFAULT_WINDOW", "ConnectionFacts", "FlowAggregator"]

DEFAULT_WINDOW = timedelta(seconds=10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ConnectionFacts:
    """What the enforcer knows about one connection (or a byte-count update of one).

    ``source.port`` is ignored (set to 0): ephemeral ports are not aggregated.
    ``destination.port`` is the connection's destination port.
    """

    source: FlowEndpoint
    destination: FlowEndpoint
    protocol: Protocol
    decision: FlowDecision
    revision: int
    bytes_sent: int = 0
    bytes_received: int = 0
    trace_id: str = ""

    @property
    def key(self) -> FlowKey:
        source = self.source if self.source.port == 0 else replace(self.source, port=0)
        return FlowKey(source, self.destination, self.protocol, self.decision, self.revision)


@dataclass(slots=True)
class _Open:
    """A mutable aggregate of one key in one window."""

    connections: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    traces: list[str] = field(default_factory=list)


class FlowAggregator:
    """Aggregates :class:`ConnectionFacts` into :class:`FlowRecord` s of ``reporter``.

    ``clock`` returns the current time (timezone-aware); tests inject a fake one.
    ``trace_sample_size`` bounds the trace ids kept per record (the first ones seen).
    """

    def __init__(
        self,
        reporter: str,
        *,
        window: timedelta = DEFAULT_WINDOW,
        max_open_keys: int = 10_000,
        trace_sample_size: int = 8,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if window <= timedelta(0):
            raise InvalidArgument("window: must be positive", field="window")
        if max_open_keys < 1:
            raise InvalidArgument("max_open_keys: must be at least 1", field="max_open_keys")
        if trace_sample_size < 1:
            raise InvalidArgument(
                "trace_sample_size: must be at least 1", field="trace_sample_size"
            )
        self.reporter = reporter
        self.window = window
        self.max_open_keys = max_open_keys
        self.trace_sample_size = trace_sample_size
        self._clock = clock
        # Insertion-ordered: flush emits records in the order their aggregates opened.
        self._open: dict[tuple[datetime, FlowKey], _Open] = {}
        self.dropped = 0
        """Connections (and byte updates) not aggregated because ``max_open_keys`` was reached;
        monotonic, for the enforcer's metrics."""

    @property
    def open_keys(self) -> int:
        return len(self._open)

    def window_of(self, when: datetime) -> tuple[datetime, datetime]:
        """The ``[start, end)`` window containing ``when``."""
        periods = (when - _EPOCH) // self.window
        start = _EPOCH + periods * self.window
        return start, start + self.window

    def record(self, facts: ConnectionFacts, *, new_connection: bool = True) -> bool:
        """Count ``facts`` into the aggregate of its key in the current window.

        ``new_connection`` False adds only bytes (a long connection's progress); the record of
        that window then has ``connection_count`` 0 unless new connections joined it. Returns
        False when the bound on open aggregates dropped it.
        """
        start, _ = self.window_of(self._clock())
        slot = (start, facts.key)
        aggregate = self._open.get(slot)
        if aggregate is None:
            if len(self._open) >= self.max_open_keys:
                self.dropped += 1
                return False
            aggregate = self._open[slot] = _Open()
        if new_connection:
            aggregate.connections += 1
        aggregate.bytes_sent += max(0, facts.bytes_sent)
        aggregate.bytes_received += max(0, facts.bytes_received)
        if (
            facts.trace_id
            and len(aggregate.traces) < self.trace_sample_size
            and is_trace_id(facts.trace_id)
            and facts.trace_id not in aggregate.traces
        ):
            aggregate.traces.append(facts.trace_id)
        return True

    def flush(self, now: datetime | None = None, *, final: bool = False) -> list[FlowRecord]:
        """Remove and return the records of every window that has ended by ``now`` (default:
        the clock). ``final`` (shutdown) also closes the current window early, ending it at
        ``now``. Records come out in the order their aggregates opened."""
        when = self._clock() if now is None else now
        out: list[FlowRecord] = []
        for slot in list(self._open):
            start, key = slot
            end = start + self.window
            if end > when and not final:
                continue
            if end > when:
                end = max(when, start + timedelta(microseconds=1))
            aggregate = self._open.pop(slot)
            out.append(
                FlowRecord(
                    reporter=self.reporter,
                    source=key.source,
                    destination=key.destination,
                    protocol=key.protocol,
                    decision=key.decision,
                    revision=key.revision,
                    window_start=start,
                    window_end=end,
                    connection_count=aggregate.connections,
                    bytes_sent=aggregate.bytes_sent,
                    bytes_received=aggregate.bytes_received,
                    trace_id=aggregate.traces[0] if aggregate.traces else "",
                    trace_sample=tuple(aggregate.traces),
                )
            )
        return out
