"""Wiring distribution to the policy service's state mirror and repository.

``distribution_factory()`` is what ``PolicyReplica(distribution=...)`` takes: it builds one
:class:`PolicyDistribution` per replica from the replica's ``StateMirror`` (what to send) and
``PolicyRepository`` (where acks go).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from trustwire.policy.views import PuPlacement, Topology

from .hub import ViewHub
from .seam import AckError, DistributionState
from .stream import PolicyDistribution

if TYPE_CHECKING:
    from ..repository import PolicyRepository
    from ..state import StateMirror, StateSnapshot

__all__ = ["MirrorSource", "RepositoryRecorder", "distribution_factory", "state_of"]


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
    """``seam.AckRecorder`` over ``PolicyRepository.record_ack``."""

    def __init__(self, repository: PolicyRepository) -> None:
        self._repository = repository

    async def record_ack(self, enforcer_id: str, revision: int, error: AckError | None) -> None:
        await self._repository.record_ack(
            enforcer_id, revision, None if error is None else (error.reason, error.message)
        )


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
