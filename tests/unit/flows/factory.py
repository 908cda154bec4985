"""Flow records for tests: small constructors with sensible defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trustwire.flows import ConnectionFacts, FlowDecision, FlowEndpoint, FlowRecord, Verdict
from trustwire.policy import Direction, Labels, Protocol

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
TRACE_A = "0af7651916cd43dd8448eb211c80319c"
TRACE_B = "4bf92f3577b34da6a3ce929d0e0e4736"


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def pu(
    name: str, app: str | None = None, namespace: str = "shop", ip: str = "10.0.0.1", **extra: str
) -> FlowEndpoint:
    labels = {"namespace": namespace, "pu-type": "pod", **extra}
    if app is not None:
        labels["app"] = app
    return FlowEndpoint(pu_id=f"{name}-id", labels=Labels(labels), ip=ip)


def allow(
    policy: str | None = "shop/web-to-db", direction: Direction = Direction.EGRESS
) -> FlowDecision:
    return FlowDecision(
        direction=direction,
        verdict=Verdict.ALLOW,
        reason="POLICY_ALLOW" if policy else "NAMESPACE_DEFAULT_ALLOW",
        tier="application" if policy else None,
        policy=policy,
        rule=0 if policy else None,
    )


def reject(policy: str = "shop/deny-db") -> FlowDecision:
    return FlowDecision(
        direction=Direction.EGRESS,
        verdict=Verdict.REJECT,
        reason="POLICY_REJECT",
        tier="security",
        policy=policy,
        rule=0,
    )


def facts(
    source: FlowEndpoint | None = None,
    destination: FlowEndpoint | None = None,
    port: int = 5432,
    decision: FlowDecision | None = None,
    trace_id: str = "",
    sent: int = 0,
    received: int = 0,
    revision: int = 7,
) -> ConnectionFacts:
    src = source or pu("web", "web")
    dst = destination or pu("db", "db", ip="10.0.0.2")
    return ConnectionFacts(
        source=src,
        destination=FlowEndpoint(
            pu_id=dst.pu_id, labels=dst.labels, trust_domain=dst.trust_domain, ip=dst.ip, port=port
        ),
        protocol=Protocol.TCP,
        decision=decision or allow(),
        revision=revision,
        bytes_sent=sent,
        bytes_received=received,
        trace_id=trace_id,
    )


def record(
    *,
    source: FlowEndpoint | None = None,
    destination: FlowEndpoint | None = None,
    port: int = 5432,
    decision: FlowDecision | None = None,
    start: datetime = T0,
    reporter: str = "node-1",
    connections: int = 1,
    trace_id: str = "",
    protocol: Protocol = Protocol.TCP,
) -> FlowRecord:
    f = facts(source, destination, port, decision)
    return FlowRecord(
        reporter=reporter,
        source=f.source,
        destination=f.destination,
        protocol=protocol,
        decision=f.decision,
        revision=f.revision,
        window_start=start,
        window_end=start + timedelta(seconds=10),
        connection_count=connections,
        bytes_sent=100 if f.decision.verdict is Verdict.ALLOW else 0,
        bytes_received=200,
        trace_id=trace_id,
    )
