"""Trustwire tiers on top of Kubernetes: order, actions, observe, namespace defaults, scope,
conditions and external networks. Each case runs on both evaluators."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from trustwire.policy import Cluster, Decision, PolicyEngine, Protocol, Scores, load_cluster
from trustwire.policy.reference import ReferenceEvaluator

BASE = """
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: v1
kind: Namespace
metadata:
  name: z
  annotations: {trustwire.io/default-action: reject}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: a, labels: {app: web}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 80}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: a, labels: {app: db}}
spec: {containers: [{name: c, ports: [{name: pg, containerPort: 5432}]}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: vault, namespace: z, labels: {app: vault}}
status: {podIP: 10.0.9.1}
---
apiVersion: trustwire.io/v1
kind: ExternalNetwork
metadata: {name: internet, labels: {zone: internet}}
spec: {cidrs: [0.0.0.0/0]}
---
apiVersion: trustwire.io/v1
kind: ExternalNetwork
metadata: {name: partner, labels: {zone: partner}}
spec: {cidrs: [198.51.100.0/24]}
"""


def policy(name: str, spec: str, namespace: str | None = "a") -> str:
    ns = f", namespace: {namespace}" if namespace else ""
    return (
        f"---\napiVersion: trustwire.io/v1\nkind: NetworkAccessPolicy\n"
        f"metadata: {{name: {name}{ns}}}\nspec: {spec}\n"
    )


Decide = Callable[..., Decision]


@pytest.fixture(params=["compiled", "reference"])
def decider(request: pytest.FixtureRequest) -> Callable[[str], Decide]:
    def make(extra: str) -> Decide:
        cluster: Cluster = load_cluster([("t.yaml", BASE + extra)])
        engine = (
            PolicyEngine(cluster) if request.param == "compiled" else ReferenceEvaluator(cluster)
        )

        def decide(src: str, dst: str, port: int = 80, **scores: Scores) -> Decision:
            return engine.decide(
                cluster.endpoint(src), cluster.endpoint(dst), Protocol.TCP, port, **scores
            )

        return decide

    return make


def test_no_policy_means_namespace_default(decider: Callable[[str], Decide]) -> None:
    decide = decider("")
    assert decide("a/web", "a/db").reason == "NAMESPACE_DEFAULT_ALLOW"
    d = decide("a/web", "z/vault")
    assert not d.allowed
    assert d.reason == "NAMESPACE_DEFAULT_REJECT"
    assert d.ingress is not None
    assert d.ingress.policy is None
    assert not decide("z/vault", "a/web").allowed  # z's default applies to its egress too


def test_tier_order_beats_priority(decider: Callable[[str], Decide]) -> None:
    decide = decider(
        policy(
            "app-allow", "{tier: application, priority: 1, subject: {}, object: {}, action: allow}"
        )
        + policy(
            "sec-reject",
            "{tier: security, priority: 999, subject: {matchLabels: {app: web}}, object: {}, action: reject}",
        )
    )
    d = decide("a/web", "a/db")
    assert not d.allowed
    assert d.reason == "POLICY_REJECT"
    assert d.deciding is not None
    assert (d.deciding.policy, d.deciding.tier) == ("a/sec-reject", "security")
    assert decide("a/db", "a/web").reason == "POLICY_ALLOW"


def test_priority_then_name_inside_a_tier(decider: Callable[[str], Decide]) -> None:
    decide = decider(
        policy("b-reject", "{priority: 5, subject: {}, object: {}, action: reject}")
        + policy("a-allow", "{priority: 5, subject: {}, object: {}, action: allow}")
        + policy(
            "z-encrypt",
            "{priority: 1, subject: {}, object: {matchLabels: {app: db}}, action: encrypt}",
        )
    )
    assert decide("a/web", "a/db").action == "encrypt"  # lower priority number first
    d = decide("a/db", "a/web")
    assert d.action == "allow"  # same priority: a-allow before b-reject by name
    assert d.deciding is not None
    assert d.deciding.policy == "a/a-allow"


def test_kubernetes_tier_is_final_but_encrypt_overlays(decider: Callable[[str], Decide]) -> None:
    k8s = """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: a}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: pg}]}]
"""
    decide = decider(
        k8s
        + policy(
            "sec-reject-all",
            "{tier: security, subject: {}, object: {matchLabels: {app: db}}, action: reject}",
            None,
        )
    )
    d = decide("a/web", "a/db", 5432)
    # Egress of web is not isolated by Kubernetes: the Trustwire reject decides there.
    assert not d.allowed
    assert d.egress is not None
    assert d.egress.reason == "POLICY_REJECT"
    # Ingress of db is Kubernetes-isolated: Kubernetes allows; the reject is overridden.
    assert d.ingress is not None
    assert d.ingress.allowed
    assert d.ingress.reason == "K8S_ALLOWED"
    assert (d.ingress.policy, d.ingress.rule) == ("a/db-from-web", 0)
    assert d.ingress.overridden_policy == "sec-reject-all"

    decide = decider(k8s + policy("enc", "{subject: {}, object: {}, action: encrypt}"))
    d = decide("a/web", "a/db", 5432)
    assert d.allowed
    assert d.encrypted
    assert d.ingress is not None
    assert d.ingress.reason == "K8S_ALLOWED"
    assert d.ingress.encrypted
    # Encrypt cannot open what Kubernetes closes.
    d = decide("a/web", "a/db", 80)
    assert not d.allowed
    assert d.reason == "K8S_ISOLATED_NO_MATCH"


def test_observe_records_without_enforcing(decider: Callable[[str], Decide]) -> None:
    decide = decider(
        policy(
            "audit",
            "{tier: security, subject: {matchLabels: {app: web}}, object: {}, action: observe}",
        )
        + policy("allow-all", "{subject: {}, object: {}, action: allow}")
    )
    d = decide("a/web", "a/db")
    assert d.allowed
    assert d.reason == "POLICY_ALLOW"
    assert not d.observed_allowed
    assert d.egress is not None
    assert d.egress.observed_policy == "a/audit"
    other = decide("a/db", "a/web")
    assert other.observed_allowed
    assert other.egress is not None
    assert other.egress.observed_policy is None


def test_observe_behind_a_deciding_rule_observes_nothing(decider: Callable[[str], Decide]) -> None:
    decide = decider(
        policy("allow-first", "{tier: security, subject: {}, object: {}, action: allow}")
        + policy("audit", "{tier: baseline, subject: {}, object: {}, action: observe}")
    )
    d = decide("a/web", "a/db")
    assert d.observed_allowed


def test_namespaced_policy_only_touches_its_namespace(decider: Callable[[str], Decide]) -> None:
    # A policy in namespace a cannot open z's zero-trust default for z-internal traffic, but can
    # for traffic with one end in a.
    decide = decider(policy("open", "{subject: {}, object: {}, action: allow}", "a"))
    assert decide("a/web", "z/vault").allowed
    d = decide("z/vault", "a/db")
    assert d.allowed
    assert d.egress is not None
    assert d.egress.policy == "a/open"


def test_ports_named_and_ranges(decider: Callable[[str], Decide]) -> None:
    decide = decider(
        policy("http-only", "{subject: {}, object: {}, ports: [{port: http}], action: allow}", None)
        + policy("rest", "{tier: baseline, subject: {}, object: {}, action: reject}", None)
    )
    assert decide("a/db", "a/web", 80).allowed  # web names port 80 `http`
    assert not decide("a/web", "a/db", 80).allowed  # db has no `http` port
    decide = decider(
        policy(
            "range",
            "{subject: {}, object: {}, ports: [{port: 8000, endPort: 8080}], action: reject}",
        )
    )
    assert not decide("a/web", "a/db", 8000).allowed
    assert not decide("a/web", "a/db", 8080).allowed
    assert decide("a/web", "a/db", 8081).allowed


def test_conditions_use_the_peers_scores(decider: Callable[[str], Decide]) -> None:
    decide = decider(
        policy(
            "trusted-only",
            "{subject: {}, object: {matchLabels: {app: db}}, conditions: {minReputation: 0.5}, action: allow}",
        )
        + policy(
            "else-reject",
            "{tier: baseline, subject: {}, object: {matchLabels: {app: db}}, action: reject}",
        )
    )
    assert decide("a/web", "a/db").allowed  # simulation assumes a good citizen
    low = Scores(reputation=0.1)
    d = decide("a/web", "a/db", source_scores=low)
    assert not d.allowed
    assert d.ingress is not None
    assert d.ingress.policy == "a/else-reject"
    # Egress at web looks at the destination's profile, which is still good.
    assert d.egress is not None
    assert d.egress.policy == "a/trusted-only"


def test_external_networks_by_most_specific_cidr(decider: Callable[[str], Decide]) -> None:
    decide = decider(
        policy(
            "partners",
            "{subject: {matchLabels: {app: web}}, object: {matchLabels: {zone: partner}}, action: allow}",
        )
        + policy(
            "no-internet",
            "{tier: baseline, subject: {}, object: {matchLabels: {pu-type: external}}, action: reject}",
        )
    )
    d = decide("a/web", "198.51.100.9", 443)
    assert d.allowed
    assert d.ingress is None  # no enforcer there
    assert not decide("a/web", "8.8.8.8", 443).allowed
    assert not decide("a/db", "198.51.100.9", 443).allowed
    # From outside: only the destination's ingress is evaluated.
    d = decide("8.8.8.8", "a/web")
    assert d.egress is None
    assert d.ingress is not None


def test_self_traffic_is_always_allowed(decider: Callable[[str], Decide]) -> None:
    decide = decider(policy("deny", "{tier: security, subject: {}, object: {}, action: reject}"))
    d = decide("a/web", "a/web")
    assert d.allowed
    assert d.reason == "SELF_TRAFFIC"
    # Its own address is the workload itself.
    assert decide("10.0.0.1", "a/web").reason == "SELF_TRAFFIC"


def test_every_domain_reason_code_exists_in_the_api() -> None:
    from trustwire.api.common.v1 import decision_pb2
    from trustwire.policy import ReasonCode

    for code in ReasonCode:
        assert f"REASON_CODE_{code.value}" in decision_pb2.ReasonCode.keys(), code  # noqa: SIM118
