"""The enforcer's Prometheus metrics (``docs/enforcer.md``, "Metrics").

Counters are updated where the facts are decided, on the event loop: connections and bytes where
the datapath reports a finished connection (``Handshake.on_report``, which every intercepted
connection passes exactly once), handshakes where the source asks and the destination answers.
State (PUs, relays, revision, certificate) is read by callbacks at scrape time, so nothing has
to keep a second copy of it up to date.

Label values come from bounded sets (directions, verdicts, reason codes, outcomes): never a PU
id or an address, which would make one series per workload.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable

from trustwire.policy.model import Direction
from trustwire.runtime import MetricsRegistry
from trustwire_enforcer.datapath import ConnectionReport
from trustwire_enforcer.state_files import StoredPu

__all__ = ["AUTHORIZE_BUCKETS", "EnforcerMetrics", "pu_state"]

# Seconds: a sealed Authorize on a LAN is ~1 ms, a first contact (ECDSA both ways) a few ms;
# the top buckets catch timeouts (``authorize_timeout`` defaults to 3 s).
AUTHORIZE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


# Label values are lower case, like every other label value here (the enum says "Egress").
_DIRECTION = {Direction.EGRESS: "egress", Direction.INGRESS: "ingress"}


def pu_state(pu: StoredPu, *, failed: bool, enforced: bool) -> str:
    """The state ``trustwire get pu`` shows: ``failed`` (last sync error), ``enforced`` (in the
    applied view with an identity document) or ``pending``."""
    if failed:
        return "failed"
    if enforced and pu.document:
        return "enforced"
    return "pending"


class EnforcerMetrics:
    """Every enforcer metric in one registry; the daemon adds the scrape-time callbacks with
    :meth:`observe_state`."""

    def __init__(self) -> None:
        self.registry = registry = MetricsRegistry()
        self.connections = registry.counter(
            "trustwire_enforcer_connections_total",
            "Intercepted connections finished, by direction, final verdict and reason code.",
            labels=("direction", "verdict", "reason"),
        )
        self.relayed_bytes = registry.counter(
            "trustwire_enforcer_relayed_bytes_total",
            "Application bytes relayed (before TLS), counted when the connection ends; "
            "stream from_pu is what the PU sent, to_pu what it received.",
            labels=("direction", "stream"),
        )
        self.authorize_duration = registry.histogram(
            "trustwire_enforcer_authorize_duration_seconds",
            "Authorize round trips asked by this enforcer (source side), by outcome: "
            "allowed, rejected (by the destination), failed (no answer: timeout, channel down).",
            labels=("outcome",),
            buckets=AUTHORIZE_BUCKETS,
        )
        self.authorize_served = registry.counter(
            "trustwire_enforcer_authorize_requests_total",
            "Authorize requests answered by this enforcer (destination side), by verdict and "
            "reason code.",
            labels=("verdict", "reason"),
        )

    def connection_finished(self, report: ConnectionReport, verdict: str, reason: str) -> None:
        """One finished connection; ``verdict``/``reason`` are what its flow record says."""
        direction = _DIRECTION[report.connection.direction]
        self.connections.labels(direction, verdict, reason).inc()
        if report.bytes_from_pu:
            self.relayed_bytes.labels(direction, "from_pu").inc(report.bytes_from_pu)
        if report.bytes_to_pu:
            self.relayed_bytes.labels(direction, "to_pu").inc(report.bytes_to_pu)

    def observe_state(
        self,
        *,
        pus: Callable[[], Iterable[tuple[str, str, str]]],
        live_relays: Callable[[], int],
        tls_handshakes: Callable[[], tuple[int, int]],
        policy_revision: Callable[[], int],
        policy_connected: Callable[[], bool],
        certificate_seconds_left: Callable[[], float],
        flow_records_dropped: Callable[[], int],
    ) -> None:
        """Register the gauges computed at scrape time. ``pus`` yields (type, fail mode, state)
        per PU; ``tls_handshakes`` is (full, resumed) since start."""
        registry = self.registry

        def pu_counts() -> dict[tuple[str, ...], float]:
            return {key: float(n) for key, n in Tally(pus()).items()}

        def handshakes() -> dict[tuple[str, ...], float]:
            full, resumed = tls_handshakes()
            return {("full",): float(full), ("resumed",): float(resumed)}

        registry.gauge(
            "trustwire_enforcer_pus",
            "PUs served by this enforcer, by type (pod, process), fail mode (closed, open) and "
            "state (enforced, pending, failed).",
            labels=("type", "fail_mode", "state"),
            callback=pu_counts,
        )
        registry.gauge(
            "trustwire_enforcer_relays",
            "Connections being relayed now.",
            callback=lambda: float(live_relays()),
        )
        registry.counter(
            "trustwire_enforcer_tls_handshakes_total",
            "TLS handshakes of encrypted data connections, full or resumed (ADR 0012).",
            labels=("resumption",),
            callback=handshakes,
        )
        registry.gauge(
            "trustwire_enforcer_policy_revision",
            "The policy revision applied (0: none yet).",
            callback=lambda: float(policy_revision()),
        )
        registry.gauge(
            "trustwire_enforcer_policy_stream_connected",
            "1 while the policy stream is connected to a replica, else 0.",
            callback=lambda: 1.0 if policy_connected() else 0.0,
        )
        registry.gauge(
            "trustwire_enforcer_certificate_expiry_seconds",
            "Seconds until the enforcer certificate expires (negative: expired).",
            callback=certificate_seconds_left,
        )
        registry.counter(
            "trustwire_enforcer_flow_records_dropped_total",
            "Flow records dropped because the policy service was unreachable for too long.",
            callback=lambda: float(flow_records_dropped()),
        )
