"""The demo's table: each driven connection with what the client saw, what the enforcers
recorded (flow records), and whether that equals what ``trustwire simulate`` computes from the
example files for the same pair and port. A process PU is marked ``(process)`` where it is the
source or the destination; the others are network-namespace PUs (the examples' pods).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from trustwire.flows import FlowRecord, Verdict

from ..tables import table
from .scenario import Expectation, Probe
from .traffic import Outcome

__all__ = ["LEGEND", "Row", "build_rows", "mismatches", "render", "select_record"]

PROCESS_MARK = " (process)"
LEGEND = (
    "(process): a Linux process PU (trustwire run on its host, attested by that host's "
    "enforcer, enforced by its cgroup); the others are network-namespace PUs"
)

HEADERS = [
    "SOURCE",
    "DESTINATION",
    "PORT",
    "VERDICT",
    "CLIENT",
    "ENCRYPTED",
    "POLICY",
    "REASON",
    "OBSERVE",
    "SIMULATE",
    "TRACE ID",
]


@dataclass(frozen=True)
class Row:
    source: str
    destination: str
    port: int
    verdict: str  # "allowed"/"rejected" from the flow record ("?" when none arrived)
    client: str  # "allowed"/"rejected (reset)": what the application saw
    encrypted: bool
    policy: str
    reason: str
    observe: str  # "reject by <policy>" when an observe rule saw it, else ""
    expected: str  # what simulate computes: "allow", "encrypt", "reject"
    trace_id: str
    match: bool
    source_type: str = "pod"  # the PU's type: "pod" (a network namespace) or "process"
    destination_type: str = "pod"

    def cells(self) -> list[str]:
        return [
            self.source + (PROCESS_MARK if self.source_type == "process" else ""),
            self.destination + (PROCESS_MARK if self.destination_type == "process" else ""),
            str(self.port),
            self.verdict,
            self.client,
            "yes" if self.encrypted else "no",
            self.policy or "-",
            self.reason or "-",
            self.observe or "-",
            self.expected + ("" if self.match else " (DIFFERS)"),
            self.trace_id or "-",
        ]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def select_record(
    records: Iterable[FlowRecord], source_ip: str, destination_ip: str, port: int
) -> FlowRecord | None:
    """The record that explains the probe's outcome, in the order the policy engine's
    ``Decision.deciding`` uses for a denial: the source's (egress) rejection, else the
    destination's (ingress) rejection. For an allowed connection the source's record is shown
    (it names an ``encrypt`` overlay, which the destination's Kubernetes verdict does not),
    else the destination's."""
    mine = sorted(
        (
            r
            for r in records
            if r.source.ip == source_ip and r.destination.ip == destination_ip and r.port == port
        ),
        key=lambda r: r.window_end,
        reverse=True,
    )

    def first(verdict: Verdict | None, direction: str | None) -> FlowRecord | None:
        for record in mine:
            if verdict is not None and record.verdict is not verdict:
                continue
            if direction is not None and record.decision.direction.value.lower() != direction:
                continue
            return record
        return None

    return (
        first(Verdict.REJECT, "egress")
        or first(Verdict.REJECT, None)
        or first(None, "egress")
        or first(None, None)
    )


def _expected_text(expectation: Expectation) -> str:
    if not expectation.allowed:
        return "reject"
    return "encrypt" if expectation.encrypted else "allow"


def build_rows(
    probes: Sequence[Probe],
    outcomes: Sequence[Outcome],
    records: Sequence[FlowRecord],
    expectations: Sequence[Expectation],
) -> list[Row]:
    """One row per probe; ``outcomes`` and ``expectations`` are in the order of ``probes``."""
    rows: list[Row] = []
    for probe, outcome, expectation in zip(probes, outcomes, expectations, strict=True):
        record = select_record(records, probe.source.ip, probe.destination.ip, probe.port)
        client = "allowed" if outcome.allowed else f"rejected ({outcome.detail})"
        if record is None:
            verdict, encrypted, policy, reason, observe, trace = "?", False, "", "", "", ""
        else:
            decision = record.decision
            verdict = "allowed" if decision.verdict is Verdict.ALLOW else "rejected"
            encrypted = decision.encrypted
            policy, reason, trace = decision.policy or "", decision.reason, record.trace_id
            observe = (
                f"{decision.observed_verdict.value} by {decision.observed_policy}"
                if decision.observed_verdict is not None
                else ""
            )
        match = (
            record is not None
            and outcome.allowed == expectation.allowed
            and (verdict == "allowed") == expectation.allowed
            and encrypted == (expectation.allowed and expectation.encrypted)
        )
        rows.append(
            Row(
                probe.source.key,
                probe.destination.key,
                probe.port,
                verdict,
                client,
                encrypted,
                policy,
                reason,
                observe,
                _expected_text(expectation),
                trace,
                match,
                probe.source.pu_type.value,
                probe.destination.pu_type.value,
            )
        )
    return rows


def render(rows: Sequence[Row]) -> str:
    text = table(HEADERS, [r.cells() for r in rows])
    if any("process" in (r.source_type, r.destination_type) for r in rows):
        text += "\n" + LEGEND + "\n"
    return text


def mismatches(rows: Sequence[Row]) -> list[str]:
    out: list[str] = []
    for row in rows:
        if row.match:
            continue
        seen = f"client {row.client}, flow record {row.verdict}"
        if row.encrypted:
            seen += ", encrypted"
        out.append(
            f"{row.source} -> {row.destination}:{row.port}: {seen}; simulate: {row.expected}"
        )
    return out
