"""Decisions and their explanations.

Every verdict carries why: the deciding tier, policy, rule index and a stable reason code, for
each direction that was evaluated (egress at the source's enforcer, ingress at the
destination's). The reason codes are part of the public API (flow records, `explain -o json`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .model import KUBERNETES_TIER, Action, Direction

__all__ = ["Decision", "DirectionDecision", "ReasonCode"]


class ReasonCode(enum.StrEnum):
    # A workload connecting to itself is never subject to policy (as in Kubernetes).
    SELF_TRAFFIC = "SELF_TRAFFIC"
    # Kubernetes tier: the PU is isolated in this direction and a rule allows the peer/port.
    K8S_ALLOWED = "K8S_ALLOWED"
    # Kubernetes tier: the PU is isolated in this direction and no rule allows it.
    K8S_ISOLATED_NO_MATCH = "K8S_ISOLATED_NO_MATCH"
    POLICY_ALLOW = "POLICY_ALLOW"
    POLICY_REJECT = "POLICY_REJECT"
    POLICY_ENCRYPT = "POLICY_ENCRYPT"
    NAMESPACE_DEFAULT_ALLOW = "NAMESPACE_DEFAULT_ALLOW"
    NAMESPACE_DEFAULT_REJECT = "NAMESPACE_DEFAULT_REJECT"
    # The endpoint has no enforcer (an external address): nothing to evaluate on that side.
    NO_ENFORCER = "NO_ENFORCER"
    # From the destination's own node (kubelet probes): always admitted, as in Kubernetes.
    NODE_LOCAL = "NODE_LOCAL"

    @property
    def allows(self) -> bool:
        return self not in _DENYING


_DENYING = frozenset(
    {
        ReasonCode.K8S_ISOLATED_NO_MATCH,
        ReasonCode.POLICY_REJECT,
        ReasonCode.NAMESPACE_DEFAULT_REJECT,
    }
)


@dataclass(frozen=True, slots=True)
class DirectionDecision:
    """The verdict of one side. ``policy``/``rule`` name the deciding rule when there is one.

    ``observed_*`` is what would have happened had every ``observe`` policy been enforced
    (audit mode): equal to the enforced verdict unless an observe rule matched first.
    """

    direction: Direction
    allowed: bool
    encrypted: bool
    reason: ReasonCode
    tier: str | None = None
    policy: str | None = None
    rule: int | None = None
    observed_allowed: bool = True
    observed_encrypted: bool = False
    observed_policy: str | None = None
    # Trustwire rule that matched but could not apply because Kubernetes policy is final here
    # (a reject under a Kubernetes allow, an allow under a Kubernetes deny): shown by
    # `explain` so nobody wonders why.
    overridden_policy: str | None = None

    @property
    def action(self) -> Action:
        if not self.allowed:
            return Action.REJECT
        return Action.ENCRYPT if self.encrypted else Action.ALLOW

    @property
    def from_kubernetes(self) -> bool:
        return self.tier == KUBERNETES_TIER


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict for one connection attempt (source, destination, protocol, port)."""

    allowed: bool
    encrypted: bool
    reason: ReasonCode
    egress: DirectionDecision | None
    ingress: DirectionDecision | None
    revision: int = 0

    @property
    def action(self) -> Action:
        if not self.allowed:
            return Action.REJECT
        return Action.ENCRYPT if self.encrypted else Action.ALLOW

    @property
    def deciding(self) -> DirectionDecision | None:
        """The direction whose verdict explains the outcome.

        A denial is explained by the side that denied (egress first: the source's enforcer asks
        before anything leaves the host); an allowance by the destination's ingress verdict
        when there is one, since that is what admitted the connection.
        """
        return _deciding(self.egress, self.ingress)

    @property
    def observed_allowed(self) -> bool:
        return all(d.observed_allowed for d in (self.egress, self.ingress) if d is not None)

    @staticmethod
    def combine(
        egress: DirectionDecision | None,
        ingress: DirectionDecision | None,
        revision: int,
    ) -> Decision:
        sides = [d for d in (egress, ingress) if d is not None]
        allowed = all(d.allowed for d in sides)
        encrypted = allowed and any(d.encrypted for d in sides)
        deciding = _deciding(egress, ingress)
        reason = deciding.reason if deciding is not None else ReasonCode.NO_ENFORCER
        return Decision(allowed, encrypted, reason, egress, ingress, revision)

    @staticmethod
    def node_local(revision: int) -> Decision:
        ingress = DirectionDecision(
            direction=Direction.INGRESS,
            allowed=True,
            encrypted=False,
            reason=ReasonCode.NODE_LOCAL,
        )
        return Decision(True, False, ReasonCode.NODE_LOCAL, None, ingress, revision)

    @staticmethod
    def self_traffic(revision: int) -> Decision:
        return Decision(True, False, ReasonCode.SELF_TRAFFIC, None, None, revision)


def _deciding(
    egress: DirectionDecision | None, ingress: DirectionDecision | None
) -> DirectionDecision | None:
    if egress is not None and not egress.allowed:
        return egress
    if ingress is not None and not ingress.allowed:
        return ingress
    return ingress if ingress is not None else egress
