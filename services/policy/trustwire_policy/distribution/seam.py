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
    # W3C traceparent of the write that produced ``revision`` (recorded by the writer next to
    # the resource); "" when unknown. Sent with non-coalesced deltas so that each enforcer's
    # apply span links to the write's span.
    traceparent: str = ""


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
    async def record_ack(self, enforcer_id: str, revision: int, error: AckError | None) -> None:
        """Record that ``enforcer_id`` runs ``revision`` (its last good one on NACK, with the
        error). Shown by ``trustwire get enforcers`` and awaited by ``apply --wait``."""
        ...
