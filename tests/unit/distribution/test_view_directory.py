"""The directory of a view (ADR 0011): every PU that some rule relates to one of the enforcer's
PUs, whichever endpoint the rule is compiled for, so that a source enforcer knows an enforced
destination (and asks it) whenever the destination's rules decide on the source's identity.
The incremental builder must follow that dependency on other PUs' rules and labels."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustwire.policy import (
    Action,
    Cluster,
    Direction,
    KubernetesNetworkPolicy,
    KubernetesPeer,
    KubernetesRule,
    Labels,
    LabelSelector,
    Namespace,
    NetworkAccessPolicy,
    Workload,
)
from trustwire.policy.views import EnforcerView, PuPlacement, Topology, ViewBuilder

from ..policy.strategies import clusters
from .view_strategies import ENFORCERS, topologies

# ------------------------------------------------------------------------ a two-host shop

API, DB, WEB = "shop/api", "shop/db", "shop/web"


def _workload(name: str, labels: dict[str, str], last_octet: int) -> Workload:
    return Workload(
        namespace="shop",
        name=name,
        labels=Labels(labels),
        ips=(ipaddress.IPv4Address(f"10.1.0.{last_octet}"),),
    )


def _db_admits(app: str, direction: Direction = Direction.INGRESS) -> KubernetesNetworkPolicy:
    """db's NetworkPolicy admitting ``app`` (nothing on that app's side names db)."""
    rule = KubernetesRule(peers=(KubernetesPeer(pod_selector=LabelSelector(Labels({"app": app}))),))
    return KubernetesNetworkPolicy(
        namespace="shop",
        name=f"db-{direction.value}",
        pod_selector=LabelSelector(Labels({"app": "db"})),
        policy_types=frozenset({direction}),
        ingress=(rule,) if direction is Direction.INGRESS else (),
        egress=(rule,) if direction is Direction.EGRESS else (),
    )


def _access(
    name: str, subject: str, obj: str, action: Action = Action.ALLOW
) -> NetworkAccessPolicy:
    return NetworkAccessPolicy(
        name=name,
        namespace="shop",
        tier="application",
        priority=100,
        subject=LabelSelector(Labels({"app": subject})),
        object=LabelSelector(Labels({"app": obj})),
        action=action,
    )


SHOP = Cluster(
    namespaces={"shop": Namespace.make("shop", default_action=Action.REJECT)},
    workloads=(
        _workload("api", {"app": "api"}, 1),
        _workload("db", {"app": "db"}, 2),
        _workload("web", {"app": "web"}, 3),
    ),
    revision=1,
)


def _shop(**changes: object) -> Cluster:
    """The shop with some fields replaced; the workload objects stay the same (as the state
    mirror keeps them), so a builder of one state reuses the work of another's."""
    return SHOP.with_changes(**changes)


# api and web on node-a, db on node-b.
TOPOLOGY = Topology(
    placement={
        API: PuPlacement(pu_id=API, enforcer_id="node-a"),
        DB: PuPlacement(pu_id=DB, enforcer_id="node-b"),
        WEB: PuPlacement(pu_id=WEB, enforcer_id="node-a"),
    },
    enforcer_addresses={"node-a": ("a:8443",), "node-b": ("b:8443",)},
)


def _knows(view: EnforcerView, pu_id: str) -> bool:
    return pu_id in view.peers_by_id


def _relabel(cluster: Cluster, key: str, labels: dict[str, str]) -> Cluster:
    """``cluster`` with one workload's labels replaced (a new object; the others are kept, as
    the state mirror keeps unchanged PUs' objects)."""
    return cluster.with_changes(
        workloads=tuple(
            dataclasses.replace(w, labels=Labels(labels)) if w.key == key else w
            for w in cluster.workloads
        ),
        revision=cluster.revision + 1,
    )


def _next(builder: ViewBuilder, cluster: Cluster) -> ViewBuilder:
    """The next revision's builder, reusing ``builder`` (every view of which was built), and
    checked against a fresh build."""
    for enforcer in ("node-a", "node-b"):
        builder.view(enforcer)
    reused = ViewBuilder(cluster, TOPOLOGY, previous=builder)
    fresh = ViewBuilder(cluster, TOPOLOGY)
    for enforcer in ("node-a", "node-b"):
        assert reused.view(enforcer) == fresh.view(enforcer), enforcer
    return reused


def test_a_networkpolicy_admitting_a_pu_puts_its_pod_in_that_pus_directory() -> None:
    builder = ViewBuilder(_shop(kubernetes_policies=(_db_admits("api"),)), TOPOLOGY)
    a, b = builder.view("node-a"), builder.view("node-b")
    # Nothing on api's side names db: db's ingress alone relates them.
    assert not any(r.peer.pu_ids for pu in a.pus for r in (*pu.egress.rules, *pu.ingress.rules))
    assert _knows(a, DB)
    assert a.peers_by_id[DB].enforcer_id == "node-b"
    assert [e.enforcer_id for e in a.enforcers] == ["node-b"]
    assert [e.addresses for e in a.enforcers] == [("b:8443",)]
    # web is in no rule's peers on either side: db's enforcer does not need it.
    assert _knows(b, API)
    assert not _knows(b, WEB)


def test_an_egress_networkpolicy_naming_a_pu_puts_its_pod_in_that_pus_directory() -> None:
    builder = ViewBuilder(
        _shop(kubernetes_policies=(_db_admits("api", Direction.EGRESS),)), TOPOLOGY
    )
    assert _knows(builder.view("node-a"), DB)  # db may reach api: api's side must know db
    assert _knows(builder.view("node-b"), API)


def test_a_rejecting_rule_on_the_destination_alone_is_known_at_the_source() -> None:
    """A reject in db's ingress relates db to web as much as an allow does: the rejection is
    decided after a handshake and recorded on both sides."""
    builder = ViewBuilder(
        _shop(access_policies=(_access("web-never-db", "web", "db", Action.REJECT),)), TOPOLOGY
    )
    assert _knows(builder.view("node-a"), DB)
    assert _knows(builder.view("node-b"), WEB)


def test_removing_the_policy_removes_the_peer_unless_another_rule_needs_it() -> None:
    policy = _db_admits("api")
    builder = ViewBuilder(_shop(kubernetes_policies=(policy,)), TOPOLOGY)
    assert _knows(builder.view("node-a"), DB)
    gone = _next(builder, _shop(kubernetes_policies=(), revision=2))
    assert not _knows(gone.view("node-a"), DB)
    assert not gone.view("node-a").enforcers

    # With a Trustwire rule that also relates api and db, db stays.
    both = _shop(kubernetes_policies=(policy,), access_policies=(_access("x", "api", "db"),))
    builder = ViewBuilder(both, TOPOLOGY)
    kept = _next(builder, both.with_changes(kubernetes_policies=(), revision=2))
    assert _knows(kept.view("node-a"), DB)


def test_a_remote_pod_relabelled_out_of_the_policy_leaves_the_directory() -> None:
    builder = ViewBuilder(_shop(kubernetes_policies=(_db_admits("api"),)), TOPOLOGY)
    assert _knows(builder.view("node-a"), DB)
    # The policy no longer selects db: it isolates nothing and names api for nobody.
    relabelled = _relabel(builder.cluster, DB, {"app": "cache"})
    after = _next(builder, relabelled)
    assert not _knows(after.view("node-a"), DB)
    # ... and back.
    back = _next(after, _relabel(relabelled, DB, {"app": "db"}))
    assert _knows(back.view("node-a"), DB)


def test_a_local_pu_relabelled_out_of_the_peer_selector_forgets_the_remote_pod() -> None:
    builder = ViewBuilder(_shop(kubernetes_policies=(_db_admits("api"),)), TOPOLOGY)
    assert _knows(builder.view("node-a"), DB)
    after = _next(builder, _relabel(builder.cluster, API, {"app": "batch"}))
    assert not _knows(after.view("node-a"), DB)
    assert not _knows(after.view("node-b"), API)
    # web relabelled into the selector brings db back.
    again = _next(after, _relabel(after.cluster, WEB, {"app": "api"}))
    assert _knows(again.view("node-a"), DB)
    assert _knows(again.view("node-b"), WEB)


def test_a_new_policy_on_a_remote_pu_updates_the_view() -> None:
    builder = ViewBuilder(_shop(), TOPOLOGY)
    before = builder.view("node-a")
    assert not _knows(before, DB)
    k8s = _next(builder, _shop(kubernetes_policies=(_db_admits("api"),), revision=2))
    assert _knows(k8s.view("node-a"), DB)

    builder = ViewBuilder(_shop(), TOPOLOGY)
    access = _next(
        builder, _shop(access_policies=(_access("r", "web", "db", Action.REJECT),), revision=2)
    )
    assert _knows(access.view("node-a"), DB)


def test_an_unrelated_change_keeps_the_view_object() -> None:
    """The reverse dependency does not cost the reuse: a policy change that selects none of an
    enforcer's PUs, nor a PU whose rules name them, keeps its previous view object."""
    cluster = _shop(
        kubernetes_policies=(_db_admits("api"),),
        workloads=(*SHOP.workloads, _workload("batch", {"app": "batch"}, 9)),
    )
    topology = Topology(
        placement={**TOPOLOGY.placement, "shop/batch": PuPlacement("shop/batch", "node-c")},
        enforcer_addresses=TOPOLOGY.enforcer_addresses,
    )
    builder = ViewBuilder(cluster, topology)
    a, b = builder.view("node-a"), builder.view("node-b")
    after = cluster.with_changes(
        access_policies=(_access("batch-self", "batch", "batch"),), revision=2
    )
    reused = ViewBuilder(after, topology, previous=builder)
    assert reused.view("node-a") is a
    assert reused.view("node-b") is b
    assert reused.view("node-a") == ViewBuilder(after, topology).view("node-a")


# ------------------------------------------------------------------------ properties


def _named(view: EnforcerView) -> Iterable[str]:
    for pu in view.pus:
        for rule_set in (pu.ingress, pu.egress):
            for rule in (*rule_set.kubernetes_rules, *rule_set.rules):
                yield from rule.peer.pu_ids


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), data=st.data())
def test_directory_is_exactly_the_pus_related_by_some_rule(
    cluster: Cluster, data: st.DataObject
) -> None:
    """For every enforcer E: the PUs E's rules name, plus every PU whose rules name one of E's
    PUs, and nothing else (every workload is placed, so every rule is in some view)."""
    topology = data.draw(topologies(cluster))
    builder = ViewBuilder(cluster, topology)
    views = {e: builder.view(e) for e in ENFORCERS}
    for enforcer, view in views.items():
        own = set(view.pus_by_id)
        expected = set(_named(view))
        for other in views.values():
            for pu in other.pus:
                rule_sets = (pu.ingress, pu.egress)
                rules = [r for rs in rule_sets for r in (*rs.kubernetes_rules, *rs.rules)]
                if any(own.intersection(r.peer.pu_ids) for r in rules):
                    expected.add(pu.id)
        assert set(view.peers_by_id) == expected, enforcer
        assert {e.enforcer_id for e in view.enforcers} == {
            p.enforcer_id for p in view.peers if p.enforcer_id
        }


@st.composite
def _steps(draw: st.DrawFn, cluster: Cluster, topology: Topology) -> tuple[Cluster, Topology]:
    """One random change of the kind the state mirror produces (unchanged objects are kept)."""
    other = draw(clusters())
    revision = cluster.revision + 1
    kind = draw(
        st.sampled_from(
            (
                "access",
                "access",
                "relabel",
                "kubernetes",
                "namespaces",
                "externals",
                "move",
                "nothing",
            )
        )
    )
    if kind == "access":
        kept = tuple(p for p in cluster.access_policies if draw(st.booleans()))
        added = other.access_policies[: draw(st.integers(0, 3))]
        # Distinct names: a kept and an added policy may not share one.
        added = tuple(dataclasses.replace(p, name=f"{p.name}-r{revision}") for p in added)
        return cluster.with_changes(access_policies=kept + added, revision=revision), topology
    if kind == "relabel":
        index = draw(st.integers(0, len(cluster.workloads) - 1))
        labels = other.workloads[0].labels
        workloads = tuple(
            dataclasses.replace(w, labels=labels) if i == index else w
            for i, w in enumerate(cluster.workloads)
        )
        return cluster.with_changes(workloads=workloads, revision=revision), topology
    if kind == "kubernetes":
        kept_k8s = tuple(p for p in cluster.kubernetes_policies if draw(st.booleans()))
        names = {p.name for p in kept_k8s}
        added_k8s = tuple(p for p in other.kubernetes_policies if p.name not in names)
        return (
            cluster.with_changes(kubernetes_policies=kept_k8s + added_k8s, revision=revision),
            topology,
        )
    if kind == "namespaces":
        return cluster.with_changes(namespaces=other.namespaces, revision=revision), topology
    if kind == "externals":
        return (
            cluster.with_changes(external_networks=other.external_networks, revision=revision),
            topology,
        )
    if kind == "move":
        key = draw(st.sampled_from(sorted(topology.placement)))
        placement = dict(topology.placement)
        placement[key] = dataclasses.replace(
            placement[key], enforcer_id=draw(st.sampled_from(ENFORCERS))
        )
        return cluster.with_changes(revision=revision), Topology(
            placement=placement, enforcer_addresses=topology.enforcer_addresses
        )
    return cluster.with_changes(revision=revision), topology


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), data=st.data())
def test_incremental_builder_equals_a_fresh_one_after_every_step(
    cluster: Cluster, data: st.DataObject
) -> None:
    """A chain of builders, each from the previous revision's (whose streams built some of its
    views), over random changes: every view equals a from-scratch build at every step."""
    topology = data.draw(topologies(cluster))
    builder = ViewBuilder(cluster, topology)
    for _ in range(data.draw(st.integers(1, 6))):
        for enforcer in data.draw(st.lists(st.sampled_from(ENFORCERS), unique=True)):
            builder.view(enforcer)
        cluster, topology = data.draw(_steps(cluster, topology))
        builder = ViewBuilder(cluster, topology, previous=builder)
        fresh = ViewBuilder(cluster, topology)
        for enforcer in data.draw(st.lists(st.sampled_from(ENFORCERS), unique=True, min_size=1)):
            assert builder.view(enforcer) == fresh.view(enforcer), enforcer
