"""Real policy replicas (etcd store, repository, state mirror, gRPC on loopback) with
distribution, real PolicyClients, and a seeded generator of random policy and PU changes
written through the real repository."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from trustwire.api.common.v1 import network_pb2, workload_pb2
from trustwire.api.policy.v1 import enforcer_pb2, processing_unit_pb2
from trustwire.errors import Conflict
from trustwire.policy.views import EnforcerView, ViewBuilder
from trustwire.store import KeyValueStore
from trustwire.store.etcd import EtcdStore
from trustwire_policy.codec import Keyspace, Kind
from trustwire_policy.distribution import Backoff, PolicyClient, distribution_factory
from trustwire_policy.distribution.adapters import state_of
from trustwire_policy.distribution.stream import PolicyDistribution
from trustwire_policy.manifests import parse_yaml
from trustwire_policy.repository import PolicyRepository
from trustwire_policy.server import PolicyReplica
from trustwire_policy.settings import EtcdSettings, LimitSettings, PolicySettings
from trustwire_policy.state import StateMirror

ENFORCERS = tuple(f"node-{i}" for i in range(6))
NAMESPACES = ("x", "y")
APPS = ("a", "b", "c", "d")
ACTIONS = ("allow", "reject", "encrypt", "observe")


def settings_for(endpoints: Sequence[str], key_root: str) -> PolicySettings:
    return PolicySettings(
        listen_address="127.0.0.1:0",
        trust_domain="td.example",
        etcd=EtcdSettings(endpoints=tuple(endpoints), key_root=key_root),
        reconnect_initial_backoff=0.02,
        reconnect_max_backoff=0.5,
    )


class Replicas:
    """``count`` replicas, each with its own etcd connection, served on loopback."""

    def __init__(self, endpoints: Sequence[str], key_root: str) -> None:
        self.settings = settings_for(endpoints, key_root)
        self.replicas: list[PolicyReplica] = []

    async def start(self, count: int) -> None:
        for _ in range(count):
            store = await EtcdStore.connect(list(self.settings.etcd.endpoints), timeout=2.0)
            replica = PolicyReplica(
                self.settings,
                store,
                distribution=distribution_factory(catch_up_timeout=5.0),
                close_store=True,
            )
            await replica.start()
            self.replicas.append(replica)
        for replica in self.replicas:
            await replica.mirror.wait_ready()

    @property
    def addresses(self) -> list[str]:
        return [r.address for r in self.replicas]

    async def kill(self, replica: PolicyReplica) -> None:
        """Stop serving at once (grace 0): every stream on it fails."""
        await replica.stop(grace=0)
        await _distribution(replica).close()

    async def close(self) -> None:
        for replica in self.replicas:
            if replica._server is not None:
                await replica.stop(grace=0)
            await _distribution(replica).close()


def _distribution(replica: PolicyReplica) -> PolicyDistribution:
    distribution = replica.servicer.distribution
    assert isinstance(distribution, PolicyDistribution)
    return distribution


@dataclass
class Enforcer:
    """A simulated enforcer: a PolicyClient plus what it applied (view per revision)."""

    enforcer_id: str
    client: PolicyClient
    applied: list[tuple[int, EnforcerView]] = field(default_factory=list)
    history: list[PolicyClient] = field(default_factory=list)


def make_client(
    enforcer_id: str,
    addresses: Sequence[str],
    applied: list[tuple[int, EnforcerView]],
    *,
    view: EnforcerView | None = None,
    revision: int = 0,
    seed: int = 0,
) -> PolicyClient:
    def on_apply(new_view: EnforcerView, new_revision: int) -> None:
        applied.append((new_revision, new_view))

    return PolicyClient(
        enforcer_id,
        addresses,
        on_apply=on_apply,
        view=view,
        resume_revision=revision,
        backoff=Backoff(initial=0.02, maximum=0.3),
        seed=seed,
    )


def start_enforcers(addresses: Sequence[str], ids: Sequence[str] = ENFORCERS) -> list[Enforcer]:
    enforcers = []
    for i, enforcer_id in enumerate(ids):
        applied: list[tuple[int, EnforcerView]] = []
        client = make_client(enforcer_id, addresses, applied, seed=i)
        client.start()
        enforcers.append(Enforcer(enforcer_id, client, applied))
    return enforcers


async def restart(enforcer: Enforcer, addresses: Sequence[str], seed: int) -> None:
    """Disconnect and reconnect as a restarted enforcer would: from its last applied state."""
    old = enforcer.client
    await old.stop()
    enforcer.history.append(old)
    enforcer.client = make_client(
        enforcer.enforcer_id,
        addresses,
        enforcer.applied,
        view=old.view,
        revision=old.revision,
        seed=seed,
    )
    enforcer.client.start()


class Changes:
    """Seeded random changes through the real repository."""

    def __init__(self, store: KeyValueStore, key_root: str, seed: int) -> None:
        self.repository = PolicyRepository(store, Keyspace(key_root))
        self.rng = random.Random(seed)
        self.limits = LimitSettings()
        self.pus: dict[str, str] = {}  # pu id -> enforcer
        self.policies: set[tuple[str, str]] = set()
        self.revision = 0

    async def register_enforcers(self) -> None:
        for e in ENFORCERS:
            await self.repository.register_enforcer(
                enforcer_pb2.Enforcer(id=e, addresses=[f"{e}.td.example:9443"])
            )

    def _pu(self, pu_id: str, enforcer: str) -> processing_unit_pb2.ProcessingUnit:
        rng = self.rng
        return processing_unit_pb2.ProcessingUnit(
            id=pu_id,
            name=pu_id,
            namespace=rng.choice(NAMESPACES),
            labels={"app": rng.choice(APPS)},
            type=workload_pb2.PROCESSING_UNIT_TYPE_POD,
            ips=[f"10.1.{rng.randrange(4)}.{rng.randrange(1, 30)}"],
            ports=[
                processing_unit_pb2.NamedPort(
                    name="http", protocol=network_pb2.PROTOCOL_TCP, number=rng.choice((80, 8080))
                )
            ],
            enforcer_id=enforcer,
        )

    def _policy_yaml(self, namespace: str, name: str) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.15:
            return (
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                f"metadata: {{name: {name}, namespace: {namespace}}}\n"
                f"spec:\n  podSelector: {{matchLabels: {{app: {rng.choice(APPS)}}}}}\n"
                "  policyTypes: [Ingress]\n"
                f"  ingress:\n  - from:\n    - podSelector: {{matchLabels: {{app: {rng.choice(APPS)}}}}}\n"
                "    - ipBlock: {cidr: 10.1.0.0/16, except: [10.1.2.0/24]}\n"
                "    ports: [{port: http}]\n"
            )
        ports = rng.choice(("[{protocol: TCP, port: 80}]", "[{port: http}]", "[]"))
        return (
            "apiVersion: trustwire.io/v1\nkind: NetworkAccessPolicy\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\n"
            f"spec:\n  priority: {rng.randrange(5)}\n"
            f"  subject: {{matchLabels: {{app: {rng.choice(APPS)}}}}}\n"
            f"  object: {{matchLabels: {{app: {rng.choice(APPS)}}}}}\n"
            f"  ports: {ports}\n  action: {rng.choice(ACTIONS)}\n"
        )

    async def step(self) -> None:
        """One random change (retried on a lost compare-and-swap)."""
        for _ in range(5):
            try:
                await self._step()
                return
            except Conflict:
                continue

    async def _step(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35:
            pu_id = f"pu{rng.randrange(24)}"
            enforcer = self.pus.get(pu_id) or rng.choice(ENFORCERS)
            record = await self.repository.register_pu(self._pu(pu_id, enforcer))
            self.pus[pu_id] = enforcer
            self.revision = max(self.revision, record.revision)
        elif roll < 0.45 and self.pus:
            pu_id = rng.choice(sorted(self.pus))
            self.revision = max(
                self.revision, await self.repository.deregister_pu(self.pus.pop(pu_id), pu_id)
            )
        elif roll < 0.9 or not self.policies:
            namespace, name = rng.choice(NAMESPACES), f"p{rng.randrange(16)}"
            text = self._policy_yaml(namespace, name)
            if (namespace, name) in self.policies:
                # The kind of a name stays fixed: delete and recreate on a kind change.
                await self._delete(namespace, name)
            manifests = parse_yaml(text, "random.yaml", self.limits)
            result = await self.repository.apply(manifests)
            self.policies.add((namespace, name))
            self.revision = max(self.revision, result.revision)
        else:
            namespace, name = rng.choice(sorted(self.policies))
            await self._delete(namespace, name)

    async def _delete(self, namespace: str, name: str) -> None:
        for kind in (Kind.NETWORK_ACCESS_POLICY, Kind.KUBERNETES_NETWORK_POLICY):
            try:
                result = await self.repository.delete(kind, namespace, name)
            except Exception:
                continue
            self.revision = max(self.revision, result.revision)
        self.policies.discard((namespace, name))


async def expected_views(
    store: KeyValueStore, key_root: str
) -> tuple[int, dict[str, EnforcerView]]:
    """Every enforcer's view computed from the store's current state by a fresh mirror."""
    mirror = StateMirror(store, Keyspace(key_root), trust_domain="td.example")
    snapshot = await mirror.state_at(await store.revision())
    state = state_of(snapshot)
    builder = ViewBuilder(state.cluster, state.topology)
    return snapshot.revision, {e: builder.view(e) for e in ENFORCERS}


async def views_at(store: KeyValueStore, key_root: str, revision: int) -> dict[str, EnforcerView]:
    mirror = StateMirror(store, Keyspace(key_root), trust_domain="td.example")
    state = state_of(await mirror.state_at(revision))
    builder = ViewBuilder(state.cluster, state.topology)
    return {e: builder.view(e) for e in ENFORCERS}


def _holds(view: EnforcerView) -> Callable[[PolicyClient], bool]:
    return lambda client: client.view == view


async def converge(
    enforcers: Sequence[Enforcer],
    expected: dict[str, EnforcerView],
    timeout: float,  # noqa: ASYNC109 - a bound, not cancellation
) -> None:
    """Wait until every enforcer holds its expected view (a diagnosis on timeout)."""
    try:
        await asyncio.gather(
            *(e.client.wait_for(_holds(expected[e.enforcer_id]), timeout) for e in enforcers)
        )
    except TimeoutError:
        lagging = [
            (
                e.enforcer_id,
                e.client.revision,
                e.client.connected_address,
                e.client.nacks[-3:],
                e.client.log[-2:],
            )
            for e in enforcers
            if e.client.view != expected[e.enforcer_id]
        ]
        raise AssertionError(f"not converged: {lagging}") from None


def check_sequence(enforcer: Enforcer, *, allow_compacted: bool = False) -> None:
    """Sequence accounting over every client this enforcer ran: each delta applies on exactly
    the revision applied before it, revisions never go back, no response is applied twice,
    and after the very first snapshot a reconnect resumes (no snapshot) unless compacted."""
    nonces: set[str] = set()
    revision = 0
    snapshots = 0
    for client in [*enforcer.history, enforcer.client]:
        assert not client.nacks, (enforcer.enforcer_id, client.nacks)
        for update in client.log:
            assert update.nonce not in nonces, update
            nonces.add(update.nonce)
            if update.kind == "delta":
                assert update.base_revision == revision, (enforcer.enforcer_id, update, revision)
                assert update.revision >= revision
            else:
                snapshots += 1
                assert update.revision >= revision
            revision = update.revision
    assert snapshots >= 1
    if not allow_compacted:
        assert snapshots == 1, (enforcer.enforcer_id, snapshots)
