"""Suggest: exact generalisation rules, and the suggested YAML enforced by the policy engine."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trustwire.flows import FlowEndpoint, FlowRecord, Verdict
from trustwire.policy import (
    Action,
    Cluster,
    Direction,
    Labels,
    LabelSelector,
    Operator,
    PolicyEngine,
    Protocol,
    Requirement,
    load_cluster,
)
from trustwire_policy.suggest import SuggestOptions, suggest, suggestions_yaml

from .factory import allow, pu, record, reject

CLUSTER = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations: {trustwire.io/default-action: reject}
---
apiVersion: v1
kind: Namespace
metadata: {name: monitoring}
---
apiVersion: v1
kind: List
items:
"""
_PODS = [
    ("shop", "frontend", {"app": "frontend"}, "10.1.0.1"),
    ("shop", "api-1", {"app": "api"}, "10.1.0.2"),
    ("shop", "api-2", {"app": "api"}, "10.1.0.3"),
    ("shop", "db", {"app": "db"}, "10.1.0.4"),
    ("shop", "worker", {"app": "worker"}, "10.1.0.5"),
    ("shop", "batch", {"role": "batch"}, "10.1.0.6"),
    ("monitoring", "prometheus", {"app": "prometheus"}, "10.2.0.1"),
]


def _cluster_yaml() -> str:
    items = [
        "- apiVersion: v1\n  kind: Pod\n"
        f"  metadata: {{name: {name}, namespace: {ns}, labels: {dict(labels)!r}}}\n"
        "  spec: {containers: [{name: c, image: i}]}\n"
        f"  status: {{podIP: {ip}}}\n"
        for ns, name, labels, ip in _PODS
    ]
    return CLUSTER + "".join(items).replace("'", "")


def _cluster(*extra: tuple[str, str]) -> Cluster:
    return load_cluster([("cluster.yaml", _cluster_yaml()), *extra])


def _endpoint(cluster: Cluster, key: str, port: int = 0) -> FlowEndpoint:
    w = cluster.workload(key)
    assert w is not None
    return FlowEndpoint(pu_id=key, labels=w.identity_labels(), ip=str(w.ips[0]), port=port)


def _observed(cluster: Cluster, src: str, dst: str, port: int, **kw: object) -> FlowRecord:
    return record(
        source=_endpoint(cluster, src),
        destination=_endpoint(cluster, dst),
        port=port,
        decision=kw.pop("decision", allow(None)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


OBSERVED = [
    ("shop/frontend", "shop/api-1", 8080),
    ("shop/frontend", "shop/api-2", 8080),
    ("shop/api-1", "shop/db", 5432),
    ("shop/worker", "shop/db", 5432),
    ("shop/batch", "shop/db", 5432),
    ("monitoring/prometheus", "shop/api-2", 9090),
    ("monitoring/prometheus", "shop/db", 9090),
]
UNOBSERVED = [
    ("shop/frontend", "shop/db", 5432),
    ("shop/worker", "shop/api-1", 8080),
    ("shop/api-1", "shop/db", 5433),
    ("monitoring/prometheus", "shop/frontend", 9090),
    ("shop/db", "shop/api-1", 5432),
]


def test_suggested_yaml_allows_exactly_the_observed_flows() -> None:
    cluster = _cluster()
    engine = PolicyEngine(cluster)
    for src, dst, port in OBSERVED:  # zero-trust namespace: nothing allowed yet
        assert not engine.decide(
            cluster.endpoint(src), cluster.endpoint(dst), Protocol.TCP, port
        ).allowed
    records = [_observed(cluster, s, d, p) for s, d, p in OBSERVED]
    # Rejected and self-traffic records are no evidence.
    records.append(_observed(cluster, "shop/frontend", "shop/db", 5432, decision=reject()))
    records.append(
        _observed(
            cluster,
            "shop/db",
            "shop/api-1",
            5432,
            decision=replace(allow(None), reason="SELF_TRAFFIC"),
        )
    )
    result = suggest(records)
    text = suggestions_yaml(result.suggestions)
    applied = _cluster(("suggested.yaml", text))
    engine = PolicyEngine(applied)
    for src, dst, port in OBSERVED:
        decision = engine.decide(applied.endpoint(src), applied.endpoint(dst), Protocol.TCP, port)
        assert decision.allowed, (src, dst, port, decision)
    for src, dst, port in UNOBSERVED:
        decision = engine.decide(applied.endpoint(src), applied.endpoint(dst), Protocol.TCP, port)
        assert not decision.allowed, (src, dst, port, text)
    # api->db and worker->db merged (same object and port); prometheus' two objects merged;
    # batch (no app label) kept apart with all its labels.
    names = sorted(s.policy.name for s in result.suggestions)
    assert names == [
        "allow-api-worker-to-db",
        "allow-batch-to-db",
        "allow-frontend-to-api",
        "allow-prometheus-to-api-db",
    ]


def test_selectors_keep_namespace_and_never_empty() -> None:
    (s,) = suggest([record()]).suggestions
    assert s.policy.subject == LabelSelector(Labels({"app": "web", "namespace": "shop"}))
    assert s.policy.object == LabelSelector(Labels({"app": "db", "namespace": "shop"}))
    assert s.policy.namespace == "shop"
    assert [str(p) for p in s.policy.ports] == ["TCP/5432"]
    # Only generic labels: no selector can name it without widening to the namespace.
    anonymous = FlowEndpoint(pu_id="x", labels=Labels({"namespace": "shop", "pu-type": "pod"}))
    result = suggest([record(source=anonymous)])
    assert result.suggestions == ()
    assert result.skipped == 1


def test_no_merge_when_ports_differ() -> None:
    records = [
        record(source=pu("a", "a")),
        record(source=pu("b", "b"), port=5433),
    ]
    names = sorted(s.policy.name for s in suggest(records).suggestions)
    assert names == ["allow-a-to-db", "allow-b-to-db"]


def test_ports_of_one_pair_join_one_policy_and_merges_are_in_expressions() -> None:
    records = [
        record(source=pu("a", "a"), port=80),
        record(source=pu("a", "a"), port=443),
        record(source=pu("b", "b"), port=80),
        record(source=pu("b", "b"), port=443),
    ]
    (s,) = suggest(records).suggestions
    assert [str(p) for p in s.policy.ports] == ["TCP/80", "TCP/443"]
    assert s.policy.subject.match_expressions == (
        Requirement("app", Operator.IN, frozenset({"a", "b"})),
    )
    assert s.policy.subject.match_labels == Labels({"namespace": "shop"})


def test_other_label_keys_and_fallback() -> None:
    tiered = pu("a", "a", tier="backend")
    (s,) = suggest([record(source=tiered)], SuggestOptions(label_keys=("tier",))).suggestions
    assert s.policy.subject.match_labels == Labels({"tier": "backend", "namespace": "shop"})
    # The destination has no `tier`: it keeps all its labels.
    assert s.policy.object.match_labels == Labels(
        {"app": "db", "namespace": "shop", "pu-type": "pod"}
    )


def test_namespace_filter_options_and_evidence_counts() -> None:
    ingress = replace(allow(None), direction=Direction.INGRESS)
    records = [
        record(connections=3),
        record(connections=3, decision=ingress),  # the same connections seen at the other end
        record(destination=pu("x", "x", namespace="other"), connections=9),
        record(
            decision=replace(allow(None), observed_verdict=Verdict.REJECT, observed_policy="audit")
        ),
    ]
    result = suggest(
        records, SuggestOptions(namespace="shop", tier="platform", action=Action.OBSERVE)
    )
    (s,) = result.suggestions
    assert (s.flow_count, s.connection_count) == (3, 4)
    assert not s.already_allowed  # an observe rule would reject one of them
    assert s.policy.tier == "platform"
    assert s.policy.action is Action.OBSERVE
    assert s.policy.observe_action is Action.ALLOW
    assert "observeAction: allow" in suggestions_yaml(result.suggestions)


def test_names_are_deterministic_and_unique() -> None:
    # Two different subjects that render to the same name part.
    records = [
        record(source=pu("a", "web.v1")),
        record(source=pu("b", "web-v1"), port=1),
    ]
    first = [s.policy.name for s in suggest(records).suggestions]
    again = [s.policy.name for s in suggest(list(reversed(records))).suggestions]
    assert sorted(first) == sorted(again)
    assert len(set(first)) == 2
    assert all(n.startswith("allow-web-v1-to-db-") for n in first)


def test_bad_options() -> None:
    with pytest.raises(Exception, match="action"):
        SuggestOptions(action=Action.REJECT)
