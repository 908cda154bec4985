"""Small fakes of distribution's own seams (``seam.StateSource``, ``seam.AckRecorder``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from trustwire.errors import FailedPrecondition, InvalidArgument
from trustwire.policy import (
    Action,
    Cluster,
    Labels,
    LabelSelector,
    Namespace,
    NetworkAccessPolicy,
    PortMatch,
    Protocol,
    Workload,
)
from trustwire.policy.views import PuPlacement, Topology
from trustwire_policy.distribution.seam import AckError, DistributionState


class FakeState:
    """A state source fed by hand: every published state is kept (history) unless compacted."""

    def __init__(self) -> None:
        self.history: dict[int, DistributionState] = {}
        self.compacted_below = 0
        self._current: DistributionState | None = None
        self._changed = asyncio.Event()

    @property
    def current(self) -> DistributionState | None:
        return self._current

    def publish(self, state: DistributionState) -> None:
        self.history[state.revision] = state
        self._current = state
        self._changed.set()

    async def updates(self) -> AsyncIterator[DistributionState]:
        seen = 0
        while True:
            current = self._current
            if current is not None and current.revision > seen:
                seen = current.revision
                yield current
                continue
            self._changed.clear()
            await self._changed.wait()

    async def state_at(self, revision: int) -> DistributionState:
        if revision < self.compacted_below:
            raise FailedPrecondition("compacted", reason="REVISION_COMPACTED")
        if self._current is None or revision > self._current.revision:
            raise InvalidArgument("future", reason="FUTURE_REVISION")
        # The state in effect at ``revision``: the newest published at or before it.
        best = max(r for r in self.history if r <= revision)
        state = self.history[best]
        return DistributionState(state.cluster, state.topology, revision, state.traceparent)


class FakeRecorder:
    def __init__(self) -> None:
        self.acks: list[tuple[str, int, AckError | None]] = []
        self.connections: list[tuple[str, bool]] = []

    async def record_ack(self, enforcer_id: str, revision: int, error: AckError | None) -> None:
        self.acks.append((enforcer_id, revision, error))

    async def record_connection(self, enforcer_id: str, connected: bool, replica: str) -> None:
        self.connections.append((enforcer_id, connected))


def workload(name: str, app: str, ip: str, namespace: str = "shop") -> Workload:
    import ipaddress

    return Workload(namespace, name, Labels({"app": app}), (ipaddress.ip_address(ip),))


def allow(
    name: str, subject: str, obj: str, port: int = 80, action: Action = Action.ALLOW
) -> NetworkAccessPolicy:
    return NetworkAccessPolicy(
        name=name,
        namespace="shop",
        tier="application",
        priority=100,
        subject=LabelSelector(Labels({"app": subject})),
        object=LabelSelector(Labels({"app": obj})),
        action=action,
        ports=(PortMatch(Protocol.TCP, port),),
    )


def state(
    revision: int,
    workloads: list[tuple[Workload, str]],
    policies: list[NetworkAccessPolicy],
    traceparent: str = "",
) -> DistributionState:
    """A state with ``workloads`` placed on enforcers (pu id = workload name)."""
    cluster = Cluster(
        namespaces={"shop": Namespace.make("shop", default_action=Action.REJECT)},
        workloads=tuple(w for w, _ in workloads),
        access_policies=tuple(policies),
        revision=revision,
    )
    topology = Topology(
        placement={w.key: PuPlacement(w.name, enforcer) for w, enforcer in workloads},
        enforcer_addresses={e: (f"{e}:9443",) for _, e in workloads},
    )
    return DistributionState(cluster, topology, revision, traceparent)
