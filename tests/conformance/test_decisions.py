"""The shape of decisions: per-direction verdicts, reason codes, the deciding policy.

These check the engine contract (``d.allowed`` is egress AND ingress; reasons; ``policy`` names
the allowing NetworkPolicy), using the Kubernetes rule that a connection needs both the
source's egress and the destination's ingress to allow it (concept page, "Isolated and
Non-isolated Pods").
"""

from __future__ import annotations

from .harness import Harness
from .model import ALL_PODS

POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-from-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - podSelector: {matchLabels: {pod: b}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-to-z, namespace: y}
spec:
  podSelector: {matchLabels: {pod: c}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {ns: z}}
"""


def test_verdict_is_egress_and_ingress_for_every_pair(run: Harness) -> None:
    run.load(POLICIES)
    for proto, port in (("TCP", 80), ("UDP", 81)):
        for src in ALL_PODS:
            for dst in ALL_PODS:
                d = run.decide(src, dst, proto, port)
                if src == dst:
                    assert d.allowed, f"{src} to itself"
                    continue
                assert d.egress is not None, f"{src} -> {dst}: a pod source has an egress side"
                assert d.ingress is not None, f"{src} -> {dst}: a pod has an ingress side"
                assert d.allowed == (d.egress.allowed and d.ingress.allowed), f"{src} -> {dst}"


def test_reason_for_ingress_isolation(run: Harness) -> None:
    run.load(POLICIES)
    d = run.decide("y/a", "x/b", "TCP", 80)
    assert not d.allowed
    assert d.reason == "K8S_ISOLATED_NO_MATCH"
    assert not d.ingress.allowed
    assert d.ingress.reason == "K8S_ISOLATED_NO_MATCH"
    assert d.egress.allowed


def test_reason_and_policy_for_allowing_rule(run: Harness) -> None:
    run.load(POLICIES)
    d = run.decide("x/b", "x/a", "TCP", 80)
    assert d.allowed
    assert d.ingress.reason == "K8S_ALLOWED"
    # deny-ingress also selects x/a, but it allows nothing: the allowing policy is the answer.
    assert d.ingress.policy == "x/allow-from-b"


def test_reason_for_egress_isolation(run: Harness) -> None:
    run.load(POLICIES)
    denied = run.decide("y/c", "y/a", "TCP", 80)
    assert not denied.allowed
    assert denied.reason == "K8S_ISOLATED_NO_MATCH"
    assert not denied.egress.allowed
    allowed = run.decide("y/c", "z/a", "TCP", 80)
    assert allowed.allowed
    assert allowed.egress.reason == "K8S_ALLOWED"
    assert allowed.egress.policy == "y/egress-to-z"


def test_self_traffic_reason(run: Harness) -> None:
    run.load(POLICIES)
    for pod in ("x/a", "x/b", "y/c"):
        d = run.decide(pod, pod, "TCP", 80)
        assert d.allowed
        assert d.reason == "SELF_TRAFFIC"
