"""Runs a scenario (model + NetworkPolicy YAML) through one evaluator and checks truth tables.

Both evaluators of the engine contract are exercised by every scenario: the compiled
``PolicyEngine`` and the plain ``ReferenceEvaluator``. The expectations are written from the
Kubernetes documentation, API reference and upstream e2e tests, never from either evaluator.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from trustwire.policy import PolicyEngine, Protocol, load_cluster
from trustwire.policy.reference import ReferenceEvaluator

from .model import ALL_PODS, NamedPort, Reachability, model_yaml

__all__ = ["EVALUATORS", "Harness"]

EVALUATORS: dict[str, Any] = {"engine": PolicyEngine, "reference": ReferenceEvaluator}


def protocol(name: str) -> Protocol:
    return Protocol(name)


def _side(result: Any) -> str:
    if result is None:
        return "-"
    policy = getattr(result, "policy", None)
    return f"{'allow' if result.allowed else 'deny'}/{result.reason}" + (
        f"/{policy}" if policy else ""
    )


class Harness:
    """One evaluator kind; ``load`` a scenario, then ``check`` probes against it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.cluster: Any = None
        self.evaluator: Any = None

    def load(
        self,
        policies: str,
        *,
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
        pod_labels: Mapping[str, Mapping[str, str]] | None = None,
        extra_ports: Mapping[str, Sequence[NamedPort]] | None = None,
        host_ips: Mapping[str, str] | None = None,
    ) -> Harness:
        sources = [
            (
                "model.yaml",
                model_yaml(
                    namespace_labels=namespace_labels,
                    pod_labels=pod_labels,
                    extra_ports=extra_ports,
                    host_ips=host_ips,
                ),
            )
        ]
        if policies.strip():
            sources.append(("policy.yaml", textwrap.dedent(policies)))
        self.cluster = load_cluster(sources)
        self.evaluator = EVALUATORS[self.kind](self.cluster)
        return self

    def decide(self, src: str, dst: str, proto: str, port: int) -> Any:
        return self.evaluator.decide(
            self.cluster.endpoint(src), self.cluster.endpoint(dst), protocol(proto), port
        )

    def observe(self, proto: str, port: int) -> dict[tuple[str, str], Any]:
        return {(s, d): self.decide(s, d, proto, port) for s in ALL_PODS for d in ALL_PODS}

    def check(self, proto: str, port: int, expected: Reachability) -> None:
        """Assert the full 9x9 matrix for one probe; the failure shows both matrices."""
        decisions = self.observe(proto, port)
        observed = {pair: bool(d.allowed) for pair, d in decisions.items()}
        if expected.mismatches(observed):

            def explain(src: str, dst: str) -> str:
                d = decisions[(src, dst)]
                return f"reason={d.reason} egress={_side(d.egress)} ingress={_side(d.ingress)}"

            raise AssertionError(
                "\n"
                + expected.render_diff(
                    observed, title=f"{proto}/{port} via {self.kind}", explain=explain
                )
            )

    def check_probes(self, probes: Sequence[tuple[str, int, Reachability]]) -> None:
        """Check several probes; report every failing one, not just the first."""
        failures: list[str] = []
        for proto, port, expected in probes:
            try:
                self.check(proto, port, expected)
            except AssertionError as exc:
                failures.append(str(exc))
        if failures:
            raise AssertionError("\n".join(failures))

    def check_flows(self, flows: Sequence[tuple[str, str, str, int, bool]]) -> None:
        """Check single flows (any endpoint: ``"x/a"`` or an IP address)."""
        wrong: list[str] = []
        for src, dst, proto, port, allowed in flows:
            d = self.decide(src, dst, proto, port)
            if bool(d.allowed) is not allowed:
                wrong.append(
                    f"  {src} -> {dst} {proto}/{port}: expected "
                    f"{'allowed' if allowed else 'denied'}, observed "
                    f"{'allowed' if d.allowed else 'denied'} [reason={d.reason} "
                    f"egress={_side(d.egress)} ingress={_side(d.ingress)}]"
                )
        if wrong:
            raise AssertionError(
                f"\n{len(wrong)} flow(s) wrong via {self.kind}:\n" + "\n".join(wrong)
            )
