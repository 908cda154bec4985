"""The per-replica view cache shared by every WatchPolicy stream.

The hub follows the state source (latest wins) and keeps one :class:`RevisionViews` for the
newest revision: a ``ViewBuilder`` whose memo tables every stream shares, so a rule that many
enforcers' PUs share is compiled once per revision, and each enforcer's view is computed once
per revision however many streams it has. A view equal to the enforcer's view at the previous
revision is replaced by that previous object, so unchanged views are shared (memory) and
compare by identity (cheap "nothing changed" checks).

Streams wait on an ``asyncio.Event`` each; publishing a revision sets them all (no queue: a
stream that wakes late simply sees the newest revision). Old revisions, needed to resume an
enforcer from its last applied revision, come from ``StateSource.state_at`` through a small
single-flight cache, so a crowd of enforcers resuming from the same revision after a replica
failover costs one rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict

from trustwire.policy.views import EnforcerView, ViewBuilder

from .codec import EncodeCache
from .seam import DistributionState, StateSource

__all__ = ["MAX_LINKS", "RevisionViews", "ViewHub"]

# Bound on the write traces one response links to (a delta coalescing a long burst of writes
# links to the newest ones).
MAX_LINKS = 32

_log = logging.getLogger("trustwire.policy.distribution")


class RevisionViews:
    """Views of every enforcer at one revision, computed on demand."""

    _builder: ViewBuilder

    def __init__(self, state: DistributionState, previous: RevisionViews | None) -> None:
        self.state = state
        self.revision = state.revision
        self.previous_revision = previous.revision if previous is not None else 0
        # Built from the previous revision's builder: PU views no change can have touched
        # are reused, so an enforcer whose view did not change costs a few identity checks.
        self._builder = ViewBuilder(
            state.cluster,
            state.topology,
            previous=previous._builder if previous is not None else None,
        )
        self._views: dict[str, EnforcerView] = {}
        self._previous = previous
        # Entries shared by many views (rules, directory entries) are encoded once here.
        self.encoded = EncodeCache()

    def view(self, enforcer_id: str) -> EnforcerView:
        view = self._views.get(enforcer_id)
        if view is None:
            view = self._builder.view(enforcer_id)
            if self._previous is not None:
                before = self._previous._views.get(enforcer_id)
                if before is not None and (before is view or before == view):
                    view = before
            self._views[enforcer_id] = view
        return view

    def forget_previous(self) -> None:
        self._previous = None

    def traceparents(self, after: int) -> list[str]:
        """W3C traceparents of the policy writes in (``after``, this revision], oldest first
        (as far as the state source remembers them), at most ``MAX_LINKS``."""
        found = dict(self.state.traces)
        if self.state.traceparent:
            found[self.revision] = self.state.traceparent
        return [t for r, t in sorted(found.items()) if after < r <= self.revision][-MAX_LINKS:]


class ViewHub:
    """Follows a :class:`StateSource`; see the module docstring."""

    def __init__(self, source: StateSource, *, history: int = 8) -> None:
        self._source = source
        self._latest: RevisionViews | None = None
        self._waiters: set[asyncio.Event] = set()
        self._ready = asyncio.Event()
        self._history: OrderedDict[int, asyncio.Task[RevisionViews]] = OrderedDict()
        self._history_size = history
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="view-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in self._history.values():
            task.cancel()

    async def _follow(self) -> None:
        current = self._source.current
        if current is not None:
            self.publish(current)
        async for state in self._source.updates():
            self.publish(state)

    def publish(self, state: DistributionState) -> None:
        """Make ``state`` the newest and wake every stream (ignores stale states)."""
        latest = self._latest
        if latest is not None and state.revision <= latest.revision:
            return
        if latest is not None:
            latest.forget_previous()  # keep one step of history, not a chain
        self._latest = RevisionViews(state, latest)
        self._ready.set()
        for event in self._waiters:
            event.set()

    # ------------------------------------------------------------------ for streams

    @property
    def latest(self) -> RevisionViews | None:
        return self._latest

    async def wait_ready(self) -> RevisionViews:
        self.start()  # lazily: the hub may be built before the event loop serves
        await self._ready.wait()
        assert self._latest is not None
        return self._latest

    def subscribe(self, event: asyncio.Event) -> None:
        self._waiters.add(event)

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    async def at(self, revision: int) -> RevisionViews:
        """Views at an old ``revision`` (errors of ``StateSource.state_at`` propagate)."""
        latest = self._latest
        if latest is not None and latest.revision == revision:
            return latest
        task = self._history.get(revision)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.create_task(self._load(revision))
            self._history[revision] = task
            while len(self._history) > self._history_size:
                self._history.popitem(last=False)
        else:
            self._history.move_to_end(revision)
        # shield: one cancelled stream must not cancel the load others wait for.
        return await asyncio.shield(task)

    async def _load(self, revision: int) -> RevisionViews:
        state = await self._source.state_at(revision)
        return RevisionViews(state, None)
