"""Flow reporting: every decided connection becomes facts in the aggregator, and ended windows
are sent to the policy service in batches.

Reporting never blocks enforcement: records wait in a bounded queue while the policy service is
unreachable (the oldest are dropped beyond ``max_pending`` and counted), and a batch that
failed is re-sent with the same batch id, which the policy service de-duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from trustwire.errors import TrustwireError
from trustwire.flows import ConnectionFacts, FlowAggregator, FlowRecord

__all__ = ["FlowReporter", "FlowSink"]

_log = logging.getLogger("trustwire.enforcer.flows")
MAX_BATCH = 5_000


class FlowSink(Protocol):
    """Where batches go (the policy service's ``FlowService.ReportFlows``)."""

    async def report(self, batch_id: str, records: Sequence[FlowRecord]) -> None: ...


class FlowReporter:
    def __init__(
        self,
        reporter: str,
        sink: FlowSink | None,
        *,
        window: timedelta,
        interval: float,
        max_pending: int = 50_000,
    ) -> None:
        self.aggregator = FlowAggregator(reporter, window=window)
        self._sink = sink
        self._interval = interval
        self._pending: deque[FlowRecord] = deque()
        self._max_pending = max_pending
        # Batch ids: unique per enforcer run (random prefix) and monotonic within it.
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)
        self._inflight: tuple[str, int] | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.reported = 0

    def record(self, facts: ConnectionFacts) -> None:
        self.aggregator.record(facts)

    def start(self) -> None:
        if self._task is None and self._sink is not None:
            self._task = asyncio.create_task(self._run(), name="flow-reporter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TrustwireError, OSError):
            await self.flush(final=True)

    async def flush(self, *, final: bool = False) -> int:
        """Move ended windows (all of them with ``final``) to the queue and send it; returns
        the records sent. ``final`` is also how tests see flows without waiting a window."""
        async with self._lock:
            self._pending.extend(self.aggregator.flush(final=final))
            while len(self._pending) > self._max_pending:
                self._pending.popleft()
                self.dropped += 1
                self._inflight = None  # its records are no longer all there
            if self._sink is None:
                self._pending.clear()
                return 0
            sent = 0
            while self._pending:
                if self._inflight is None:
                    # Kept until the batch is accepted: a retry after a lost answer re-sends
                    # the same id with the same records, and the policy service stores it once.
                    size = min(MAX_BATCH, len(self._pending))
                    self._inflight = (f"{self._prefix}-{next(self._counter)}", size)
                batch_id, size = self._inflight
                batch = [self._pending[i] for i in range(size)]
                await self._sink.report(batch_id, batch)
                self._inflight = None
                for _ in batch:
                    self._pending.popleft()
                sent += len(batch)
            self.reported += sent
            return sent

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except (TrustwireError, OSError) as error:
                _log.info("flow report failed; kept for the next attempt: %s", error)
