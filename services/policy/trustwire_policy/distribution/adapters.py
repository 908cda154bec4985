"""Wiring distribution to the policy service's state mirror and repository.

``distribution_factory()`` is what ``PolicyReplica(distribution=...)`` takes: it builds one
:class:`PolicyDistribution` per replica from the replica's ``StateMirror`` (what to send) and
``PolicyRepository`` (where acks go).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from trustwire.policy.views import PuPlacement, Topology

from ..repository import StatusUpdate
from .hub import ViewHub
from .seam import AckError, DistributionState
from .stream import PolicyDistribution

if TYPE_CHECKING:
    from ..repository import PolicyRepository
    from ..state import StateMirror, StateSnapshot

__all__ = ["MirrorSource", "RepositoryRecorder", "distribution_factory", "state_of"]

_log = logging.getLogger("trustwire.policy.distribution")


def state_of(snapshot: StateSnapshot) -> DistributionState:
    """The distribution view of one mirror snapshot: PU ids and placement by workload key,
    enforcer addresses by id."""
    placement: dict[str, PuPlacement] = {}
    for pu_id, workload_key in snapshot.workload_of_pu.items():
        record = snapshot.pus[pu_id]
        placement[workload_key] = PuPlacement(
            pu_id=pu_id, enforcer_id=record.enforcer_id, fail_open=record.fail_mode == "open"
        )
    addresses = {e: record.addresses for e, record in snapshot.enforcers.items()}
    return DistributionState(
        cluster=snapshot.cluster,
        topology=Topology(placement=placement, enforcer_addresses=addresses),
        revision=snapshot.revision,
        traceparent=snapshot.traceparent,
        traces=snapshot.traces,
    )


class MirrorSource:
    """``seam.StateSource`` over the replica's ``StateMirror`` (latest wins, like the mirror)."""

    def __init__(self, mirror: StateMirror) -> None:
        self._mirror = mirror
        self._last: tuple[StateSnapshot, DistributionState] | None = None

    def _convert(self, snapshot: StateSnapshot) -> DistributionState:
        last = self._last
        if last is not None and last[0] is snapshot:
            return last[1]
        state = state_of(snapshot)
        self._last = (snapshot, state)
        return state

    @property
    def current(self) -> DistributionState | None:
        return self._convert(self._mirror.current) if self._mirror.ready else None

    async def updates(self) -> AsyncIterator[DistributionState]:
        seen = 0
        while True:
            snapshot = await self._mirror.next_snapshot(seen)
            seen = snapshot.revision
            yield self._convert(snapshot)

    async def state_at(self, revision: int) -> DistributionState:
        return state_of(await self._mirror.state_at(revision))


class RepositoryRecorder:
    """``seam.AckRecorder`` over ``PolicyRepository.record_statuses``, write-behind.

    Recording only notes the update (merged with any pending one of the same enforcer, see
    ``StatusUpdate.merged``) and returns; one writer task stores everything pending in batched
    transactions, then whatever arrived meanwhile. Under load a fan-out of N acks costs
    ~N/64 transactions instead of 2N store calls on the replica's event loop, and nothing
    queues beyond one pending update per enforcer. A failed write is logged and its updates
    are merged back under newer ones (retried with the next batch); acks are advisory
    (``get enforcers``, ``apply --wait``), the stream never waits for them.
    """

    def __init__(self, repository: PolicyRepository, *, retry_delay: float = 0.5) -> None:
        self._repository = repository
        self._pending: dict[str, StatusUpdate] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._retry_delay = retry_delay
        self._task: asyncio.Task[None] | None = None

    async def record_ack(self, enforcer_id: str, revision: int, error: AckError | None) -> None:
        self._note(
            enforcer_id,
            StatusUpdate.ack(revision, None if error is None else (error.reason, error.message)),
        )

    async def record_connection(self, enforcer_id: str, connected: bool, replica: str) -> None:
        self._note(enforcer_id, StatusUpdate(connected=connected, replica=replica))

    def _note(self, enforcer_id: str, update: StatusUpdate) -> None:
        pending = self._pending.get(enforcer_id)
        self._pending[enforcer_id] = update if pending is None else pending.merged(update)
        self._idle.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._write(), name="status-writer")

    async def flush(self) -> None:
        """Return once everything recorded so far is stored (or its write failed)."""
        if self._task is not None:
            await self._idle.wait()

    async def close(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109 - a bound on the flush
        """Store what is pending (bounded by ``timeout``: the store may be gone), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.flush()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, {}
            try:
                await self._repository.record_statuses(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.warning("cannot record %d enforcer statuses", len(batch), exc_info=True)
                for enforcer_id, update in batch.items():
                    newer = self._pending.get(enforcer_id)
                    self._pending[enforcer_id] = update if newer is None else update.merged(newer)
                self._idle.set()  # flush() reports what could be done, it never hangs
                await asyncio.sleep(self._retry_delay)
                self._wake.set()
                continue
            if not self._pending:
                self._idle.set()


def distribution_factory(
    **options: object,
) -> Callable[[StateMirror, PolicyRepository], PolicyDistribution]:
    """For ``PolicyReplica(distribution=distribution_factory())``; ``options`` go to
    :class:`PolicyDistribution` (``replica_id``, ``max_snapshot_part_bytes``, ...)."""

    def build(mirror: StateMirror, repository: PolicyRepository) -> PolicyDistribution:
        return PolicyDistribution(
            ViewHub(MirrorSource(mirror)),
            RepositoryRecorder(repository),
            **options,  # type: ignore[arg-type]
        )

    return build
