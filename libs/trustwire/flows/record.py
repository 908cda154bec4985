"""Flow records: what one enforcer decided and observed for a set of connections in a window.

Values here are frozen and hashable; they know nothing about protobuf, gRPC or storage (the
wire form lives in the private ``_codec``, re-exported by the package). A connection between
two enforced PUs yields two records, the source enforcer's (``EGRESS``) and the destination
enforcer's (``INGRESS``), sharing the trace id.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from trustwire.errors import InvalidArgument
from trustwire.policy.decision import DirectionDecision
from trustwire.policy.labels import Labels
from trustwire.policy.model import Direction, Protocol

__all__ = [
    "FlowDecision",
    "FlowEndpoint",
    "FlowKey",
    "FlowRecord",
    "Verdict",
    "endpoint",
    "is_trace_id",
]

# W3C trace-context trace id: 32 lower-case hex digits, not all zero.
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


class Verdict(enum.StrEnum):
    """An enforced or would-be verdict. Encryption is reported next to it (an encrypted
    connection is an allowed one)."""

    ALLOW = "allow"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class FlowEndpoint:
    """One side of a flow as the reporter knew it.

    ``labels`` are the identity's labels (reserved ones included: ``namespace``,
    ``trust-domain``, ``pu-type``...), from its verified identity document, the policy
    directory or the external network. ``port`` is the destination port; it is always 0 for
    the source of an aggregate (ephemeral ports are not aggregated).
    """

    pu_id: str = ""
    labels: Labels = field(default_factory=Labels)
    trust_domain: str = ""
    ip: str = ""
    port: int = 0
    external_network: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.labels, Labels):
            # Accept any mapping; keep the hashable form so endpoints can key aggregates.
            object.__setattr__(self, "labels", Labels(self.labels))

    @property
    def namespace(self) -> str:
        return self.labels.get("namespace") or ""

    def display(self) -> str:
        """Short human form: ``namespace/app`` style when labelled, else the PU id or IP."""
        name = self.labels.get("app") or self.pu_id
        if name and self.namespace:
            return f"{self.namespace}/{name}"
        if self.external_network:
            return f"{self.external_network}({self.ip})" if self.ip else self.external_network
        return name or self.ip or "?"

    def validate(self, path: str) -> None:
        if self.ip:
            try:
                ipaddress.ip_address(self.ip)
            except ValueError:
                raise InvalidArgument(
                    f"{path}.ip: invalid IP address {self.ip!r}", field=f"{path}.ip"
                ) from None
        if not 0 <= self.port <= 65535:
            raise InvalidArgument(f"{path}.port: must be 0..65535", field=f"{path}.port")
        if not (self.pu_id or self.ip or self.labels):
            raise InvalidArgument(
                f"{path}: a PU id, an IP address or labels are required", field=path
            )


@dataclass(frozen=True, slots=True)
class FlowDecision:
    """The reporter's side of the decision, as a flow record carries it.

    ``reason`` is a ``common.v1.ReasonCode`` value name without its ``REASON_CODE_`` prefix:
    ``trustwire.policy.ReasonCode`` and ``trustwire.identity.ReasonCode`` members are such
    strings, as are the operational ones (``FAIL_CLOSED``, ``PEER_REJECTED``...).
    ``policy``/``observed_policy`` are policy keys (``namespace/name``, or ``name`` for a
    cluster-wide policy); ``tier`` ``kubernetes`` marks an imported NetworkPolicy.
    ``observed_verdict`` is ``None`` when no observe rule matched.
    """

    direction: Direction
    verdict: Verdict
    reason: str
    encrypted: bool = False
    tier: str | None = None
    policy: str | None = None
    rule: int | None = None
    observed_verdict: Verdict | None = None
    observed_policy: str | None = None

    @staticmethod
    def from_decision(decision: DirectionDecision) -> FlowDecision:
        """The flow form of the policy engine's verdict for one direction."""
        observed: Verdict | None = None
        if decision.observed_policy is not None:
            observed = Verdict.ALLOW if decision.observed_allowed else Verdict.REJECT
        return FlowDecision(
            direction=decision.direction,
            verdict=Verdict.ALLOW if decision.allowed else Verdict.REJECT,
            reason=str(decision.reason.value),
            encrypted=decision.allowed and decision.encrypted,
            tier=decision.tier,
            policy=decision.policy,
            rule=decision.rule,
            observed_verdict=observed,
            observed_policy=decision.observed_policy,
        )

    @staticmethod
    def refused(direction: Direction, reason: str) -> FlowDecision:
        """A rejection without a policy decision: a refused credential (``REPLAYED``...) or an
        operational condition (``FAIL_CLOSED``, ``HANDSHAKE_TIMEOUT``)."""
        return FlowDecision(direction=direction, verdict=Verdict.REJECT, reason=str(reason))

    @property
    def observed_mismatch(self) -> bool:
        """An observe rule would change this verdict (what enforcing it would break or fix)."""
        return self.observed_verdict is not None and self.observed_verdict != self.verdict


@dataclass(frozen=True, slots=True)
class FlowKey:
    """What connections must share to be aggregated into one record.

    Beyond (source, destination, port, protocol, enforced and observed verdict) the key holds
    the whole decision and the policy revision: a record names one deciding rule and one
    revision, so a policy change inside a window starts a new record instead of misattributing
    connections to a rule that no longer decided them.
    """

    source: FlowEndpoint
    destination: FlowEndpoint
    protocol: Protocol
    decision: FlowDecision
    revision: int

    @property
    def port(self) -> int:
        return self.destination.port


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One aggregate: the connections of one :class:`FlowKey` in ``[window_start,
    window_end)``, reported by enforcer ``reporter``.

    ``trace_id`` is the trace of the first traced connection of the window (empty when none
    was); ``trace_sample`` keeps a few more (at most the aggregator's sample size, first
    seen first) for local diagnosis. Only ``trace_id`` travels on the wire today.
    Timestamps are timezone-aware (UTC).
    """

    reporter: str
    source: FlowEndpoint
    destination: FlowEndpoint
    protocol: Protocol
    decision: FlowDecision
    revision: int
    window_start: datetime
    window_end: datetime
    connection_count: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    trace_id: str = ""
    trace_sample: tuple[str, ...] = ()

    @property
    def key(self) -> FlowKey:
        return FlowKey(self.source, self.destination, self.protocol, self.decision, self.revision)

    @property
    def port(self) -> int:
        return self.destination.port

    @property
    def verdict(self) -> Verdict:
        return self.decision.verdict

    def validate(self, path: str = "record") -> None:
        """Raise ``InvalidArgument`` naming the field when the record cannot be true."""
        self.source.validate(f"{path}.source")
        self.destination.validate(f"{path}.destination")
        if self.window_start.tzinfo is None or self.window_end.tzinfo is None:
            raise InvalidArgument(f"{path}.window_start: must be timezone-aware", field=path)
        if self.window_end <= self.window_start:
            raise InvalidArgument(
                f"{path}.window_end: must be after window_start", field=f"{path}.window_end"
            )
        if self.trace_id and not is_trace_id(self.trace_id):
            raise InvalidArgument(
                f"{path}.trace_id: expected 32 lower-case hex digits", field=f"{path}.trace_id"
            )
        if self.decision.encrypted and self.decision.verdict is not Verdict.ALLOW:
            raise InvalidArgument(
                f"{path}.decision.encrypted: only an allowed connection is encrypted",
                field=f"{path}.decision.encrypted",
            )
        if not self.decision.reason:
            raise InvalidArgument(
                f"{path}.decision.reason: required", field=f"{path}.decision.reason"
            )
        if self.revision < 0:
            raise InvalidArgument(f"{path}.revision: must be >= 0", field=f"{path}.revision")
        if self.decision.verdict is Verdict.REJECT and self.bytes_sent:
            raise InvalidArgument(
                f"{path}.bytes_sent: a rejected flow carries no payload",
                field=f"{path}.bytes_sent",
            )


def is_trace_id(value: str) -> bool:
    return bool(_TRACE_ID.match(value)) and value != "0" * 32


def endpoint(
    *,
    pu_id: str = "",
    labels: Mapping[str, str] | None = None,
    trust_domain: str = "",
    ip: str = "",
    port: int = 0,
    external_network: str = "",
) -> FlowEndpoint:
    """Convenience constructor taking a plain mapping of labels."""
    return FlowEndpoint(
        pu_id=pu_id,
        labels=Labels(labels or {}),
        trust_domain=trust_domain,
        ip=ip,
        port=port,
        external_network=external_network,
    )
