"""`trustwire simulate` and `trustwire explain`: the policy engine over local YAML files."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from trustwire.errors import InvalidArgument
from trustwire.policy import (
    Cluster,
    Decision,
    DirectionDecision,
    Endpoint,
    PolicyEngine,
    ReasonCode,
    load_cluster,
    read_sources,
)
from trustwire.policy.simulation import (
    ProbeResult,
    declared_ports,
    parse_port,
    parse_probe,
    simulate,
)

from .tables import matrix, table


def register(sub: Any) -> None:
    # Without -f these commands ask the live policy service (live_commands wraps the handlers
    # and adds --server); -f is checked by whichever mode runs.
    files_help = (
        "YAML file or directory (repeatable); - reads stdin; without -f, the live state on the "
        "server"
    )

    sim = sub.add_parser(
        "simulate",
        help="reachability of every workload pair, decided by the policies in FILEs",
        description=(
            "Evaluate every ordered pair of workloads (self included) on each --port, plus each "
            "--probe. Without --port or --probe, every port some workload declares is used."
        ),
    )
    sim.add_argument(
        "-f", "--filename", action="append", default=[], metavar="FILE", help=files_help
    )
    sim.add_argument(
        "--port", action="append", default=[], metavar="PROTO/PORT", help="e.g. TCP/80 (repeatable)"
    )
    sim.add_argument(
        "--probe",
        action="append",
        default=[],
        metavar="FROM,TO,PROTO/PORT",
        help="one extra connection; FROM/TO are namespace/pod or an IP address (repeatable)",
    )
    sim.add_argument("-o", "--output", choices=("table", "json"), default="table")
    sim.set_defaults(handler=run_simulate)

    exp = sub.add_parser(
        "explain",
        help="why one connection is allowed or denied",
        description=(
            "Explain the decision for one connection: each direction's verdict, tier, "
            "policy, rule and reason."
        ),
    )
    exp.add_argument(
        "-f", "--filename", action="append", default=[], metavar="FILE", help=files_help
    )
    exp.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="FROM",
        help="namespace/pod or an IP address",
    )
    exp.add_argument(
        "--to",
        dest="destination",
        required=True,
        metavar="TO",
        help="namespace/pod or an IP address",
    )
    exp.add_argument("--port", required=True, metavar="PROTO/PORT", help="e.g. TCP/5432")
    exp.add_argument("-o", "--output", choices=("text", "json"), default="text")
    exp.set_defaults(handler=run_explain)


def _load(paths: list[str]) -> Cluster:
    return load_cluster(read_sources(paths))


# ----------------------------------------------------------------------------- simulate


def run_simulate(args: argparse.Namespace) -> int:
    ports = [parse_port(p, field="--port") for p in args.port]
    probes = [parse_probe(p) for p in args.probe]
    cluster = _load(args.filename)
    if not ports and not probes:
        ports = declared_ports(cluster)
        if not ports:
            raise InvalidArgument(
                "no workload declares a port: pass --port PROTO/PORT or --probe", field="--port"
            )
    engine = PolicyEngine(cluster)
    results = simulate(engine, ports, probes)
    if args.output == "json":
        json.dump([result_json(r) for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print_simulation(cluster, ports, results)
    return 0


def print_simulation(
    cluster: Cluster, ports: list[tuple[Any, int]], results: list[ProbeResult]
) -> None:
    keys = [w.key for w in cluster.workloads]
    n_pairs = len(keys) * len(keys)
    out = sys.stdout
    for i, (protocol, port) in enumerate(ports):
        block = results[i * n_pairs : (i + 1) * n_pairs]
        cells = {(r.probe.source, r.probe.destination): _cell(r.decision) for r in block}
        allowed = sum(1 for r in block if r.decision.allowed)
        out.write(f"{protocol.value}/{port}  ({allowed}/{len(block)} allowed)\n")
        out.write(matrix(keys, cells))
        out.write("\n")
    extra = results[len(ports) * n_pairs :]
    if ports:
        out.write("legend: . allowed   E allowed, encrypted   X denied   rows: from, columns: to\n")
    if extra:
        if ports:
            out.write("\n")
        rows = [
            [
                r.probe.source,
                r.probe.destination,
                f"{r.probe.protocol.value}/{r.probe.port}",
                r.decision.action.value,
                r.decision.reason.value,
                _deciding_policy(r.decision),
            ]
            for r in extra
        ]
        out.write(table(["FROM", "TO", "PORT", "VERDICT", "REASON", "POLICY"], rows))


def _cell(decision: Decision) -> str:
    if not decision.allowed:
        return "X"
    return "E" if decision.encrypted else "."


def _deciding_policy(decision: Decision) -> str:
    d = decision.deciding
    if d is None or d.policy is None:
        return "-"
    rule = f"#{d.rule}" if d.rule is not None and d.tier == "kubernetes" else ""
    return f"{d.tier}:{d.policy}{rule}"


def direction_json(d: DirectionDecision | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "allowed": d.allowed,
        "action": d.action.value,
        "encrypted": d.encrypted,
        "reason": d.reason.value,
        "tier": d.tier,
        "policy": d.policy,
        "rule": d.rule,
        "observedAllowed": d.observed_allowed,
        "observedPolicy": d.observed_policy,
        "overriddenPolicy": d.overridden_policy,
    }


def result_json(r: ProbeResult) -> dict[str, Any]:
    d = r.decision
    deciding = d.deciding
    return {
        "from": r.probe.source,
        "to": r.probe.destination,
        "fromIP": str(r.source.ip) if r.source.ip else None,
        "toIP": str(r.destination.ip) if r.destination.ip else None,
        "protocol": r.probe.protocol.value,
        "port": r.probe.port,
        "allowed": d.allowed,
        "action": d.action.value,
        "encrypted": d.encrypted,
        "reason": d.reason.value,
        "direction": deciding.direction.value if deciding else None,
        "tier": deciding.tier if deciding else None,
        "policy": deciding.policy if deciding else None,
        "rule": deciding.rule if deciding else None,
        "observedAllowed": d.observed_allowed,
        "egress": direction_json(d.egress),
        "ingress": direction_json(d.ingress),
        "revision": d.revision,
    }


# ----------------------------------------------------------------------------- explain


def run_explain(args: argparse.Namespace) -> int:
    protocol, port = parse_port(args.port, field="--port")
    cluster = _load(args.filename)
    engine = PolicyEngine(cluster)
    probe = parse_probe(f"{args.source},{args.destination},{protocol.value}/{port}")
    (result,) = simulate(engine, [], [probe])
    if args.output == "json":
        json.dump(result_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    sys.stdout.write(explanation_text(cluster, result))
    return 0


def explanation_text(cluster: Cluster, r: ProbeResult) -> str:
    d = r.decision
    verdict = "ALLOWED" if d.allowed else "DENIED"
    if d.allowed and d.encrypted:
        verdict = "ALLOWED (encrypted)"
    lines = [
        f"{_describe(r.source, r.probe.source)} -> {_describe(r.destination, r.probe.destination)}"
        f" {r.probe.protocol.value}/{r.probe.port}: {verdict}",
        f"  reason: {d.reason.value}",
    ]
    if d.reason is ReasonCode.SELF_TRAFFIC:
        lines.append("  a workload connecting to itself is never subject to policy")
    else:
        for side, endpoint, name in (
            (d.egress, r.source, "egress "),
            (d.ingress, r.destination, "ingress"),
        ):
            lines.extend(_direction_lines(cluster, name, side, endpoint))
    if not d.observed_allowed and d.allowed:
        lines.append("  audit: an observe policy would deny this connection if enforced")
    return "\n".join(lines) + "\n"


def _describe(endpoint: Endpoint, spec: str) -> str:
    if endpoint.workload is not None:
        if spec != endpoint.workload.key:
            return f"{endpoint.workload.key} ({spec})"
        return endpoint.workload.key
    if endpoint.external_network:
        return f"{endpoint.ip} (external network {endpoint.external_network})"
    return f"{endpoint.ip} (outside the cluster)"


def _direction_lines(
    cluster: Cluster, name: str, d: DirectionDecision | None, endpoint: Endpoint
) -> list[str]:
    who = str(endpoint)
    if d is None:
        return [f"  {name} at {who}: not evaluated: no enforcer (outside the cluster)"]
    verdict = d.action.value if d.allowed else "reject"
    head = f"  {name} at {who}: {verdict} [{d.reason.value}]"
    why: str
    if d.reason is ReasonCode.K8S_ALLOWED:
        rule = f"{d.direction.value.lower()} rule {d.rule}"
        why = f"Kubernetes NetworkPolicy {d.policy} allows it ({rule})"
    elif d.reason is ReasonCode.K8S_ISOLATED_NO_MATCH:
        why = (
            f"Kubernetes NetworkPolicy {d.policy} isolates {who} for {d.direction.value.lower()}; "
            "no rule of any NetworkPolicy selecting it allows this peer and port "
            "(the Kubernetes tier is final)"
        )
    elif d.reason in (ReasonCode.POLICY_ALLOW, ReasonCode.POLICY_REJECT, ReasonCode.POLICY_ENCRYPT):
        why = f"NetworkAccessPolicy {d.policy} (tier {d.tier}) is the first matching rule"
    elif d.reason in (ReasonCode.NAMESPACE_DEFAULT_ALLOW, ReasonCode.NAMESPACE_DEFAULT_REJECT):
        ns = endpoint.workload.namespace if endpoint.workload else "?"
        default = cluster.namespace(ns).default_action.value
        why = f"no policy matches; the default of namespace {ns} is {default}"
    else:
        why = d.reason.value
    lines = [head, f"      {why}"]
    if d.encrypted and d.tier == "kubernetes":
        lines.append(
            "      encrypted: a Trustwire encrypt policy overlays this Kubernetes-allowed flow"
        )
    if d.overridden_policy:
        lines.append(
            f"      note: NetworkAccessPolicy {d.overridden_policy} would "
            f"{'reject' if d.allowed else 'allow'} it, but the Kubernetes tier is final "
            "for this direction"
        )
    if d.observed_policy:
        observed = "allow" if d.observed_allowed else "reject"
        lines.append(f"      audit: observe policy {d.observed_policy} would {observed} it")
    return lines
