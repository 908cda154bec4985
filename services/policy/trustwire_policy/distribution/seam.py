"""What distribution needs from the rest of the policy service (the seam with the state mirror
and repository owned by ``trustwire_policy.state`` / ``repository``).

Distribution depends on these protocols only, so unit tests use small fakes and the service
wires the real mirror in with an adapter (``adapters.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from trustwire.policy import Cluster
from trustwire.policy.views import Topology

__all__ = ["AckError", "AckRecorder", "DistributionState", "StateSource"]


@dataclass(frozen=True)
class DistributionState:
    """The policy state at one etcd revision, as distribution sees it."""

    cluster: Cluster
    topology: Topology
    revision: int
    # W3C traceparent of the write that produced ``revision`` (recorded by the writer in the
    # write's transaction, see ``codec.Keyspace.trace``); "" when unknown.
    traceparent: str = ""
    # (revision, traceparent) of recent writes up to ``revision`` (a bounded window, oldest
    # first): a delta covering several writes links the enforcer's apply span to each.
    traces: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class AckError:
    """A NACK's error, as the enforcer reported it."""

    reason: str
    message: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


class StateSource(Protocol):
    """The state mirror: the latest state, a latest-wins feed of new ones, and old states."""

    @property
    def current(self) -> DistributionState | None:
        """The newest state, or None before the first one is loaded."""
        ...

    def updates(self) -> AsyncIterator[DistributionState]:
        """New states, latest wins: a slow consumer skips intermediate ones, never queues.
        Starts with the current state when there is one."""
        ...

    async def state_at(self, revision: int) -> DistributionState:
        """The state as it was at ``revision``. Raises ``FailedPrecondition`` with reason
        ``REVISION_COMPACTED`` when etcd no longer has it, ``InvalidArgument`` (reason
        ``FUTURE_REVISION``) when it is newer than the store."""
        ...


class AckRecorder(Protocol):
    """Where convergence goes. Implementations should return quickly (the stream's reader
    awaits them): record and write behind, as ``adapters.RepositoryRecorder`` does."""

    async def record_ack(self, enforcer_id: str, revision: int, error: AckError | None) -> None:
        """Record that ``enforcer_id`` runs ``revision`` (its last good one on NACK, with the
        error). Also called, without an ack from the enforcer, with the revision at which the
        enforcer's acked view is known to equal the current view (nothing to send): the
        enforcer is converged there. Shown by ``trustwire get enforcers`` and awaited by
        ``apply --wait``."""
        ...

    async def record_connection(self, enforcer_id: str, connected: bool, replica: str) -> None:
        """Record that a WatchPolicy stream of ``enforcer_id`` on ``replica`` opened (True)
        or ended (the end counts only while that replica still holds the enforcer)."""
        ...
