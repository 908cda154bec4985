"""Criteria on flow records, shared by the store (queries) and watchers (live matching).

All set criteria must hold (AND); a set-valued criterion matches any of its values (OR).
:meth:`FlowFilter.matches` is the reference semantics: a store may evaluate part of a filter
in its query language but must agree with it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from trustwire.policy.labels import LabelSelector
from trustwire.policy.model import Protocol

from .record import FlowRecord, Verdict

__all__ = ["FlowFilter", "policy_matches"]


@dataclass(frozen=True, slots=True)
class FlowFilter:
    # Either endpoint is one of these PUs.
    pu_ids: frozenset[str] = frozenset()
    # Either endpoint's `namespace` label equals this.
    namespace: str = ""
    # Label selectors of the source and the destination (None: any).
    source_selector: LabelSelector | None = None
    destination_selector: LabelSelector | None = None
    # The enforced verdict is one of these.
    verdicts: frozenset[Verdict] = frozenset()
    # The reason (ReasonCode name without prefix) is one of these.
    reasons: frozenset[str] = frozenset()
    # The deciding or observing policy: a key (`namespace/name`, or `name` for a cluster-wide
    # policy). A bare name also matches that name in any namespace.
    policy: str = ""
    trace_id: str = ""
    destination_port: int = 0
    protocol: Protocol | None = None
    reporter: str = ""
    # Only records whose observed verdict is set and differs from the enforced one.
    only_observed_mismatch: bool = False

    def matches(self, record: FlowRecord) -> bool:
        d = record.decision
        if self.pu_ids and not (
            record.source.pu_id in self.pu_ids or record.destination.pu_id in self.pu_ids
        ):
            return False
        if self.namespace and self.namespace not in (
            record.source.namespace,
            record.destination.namespace,
        ):
            return False
        if self.source_selector is not None and not self.source_selector.matches(
            record.source.labels
        ):
            return False
        if self.destination_selector is not None and not self.destination_selector.matches(
            record.destination.labels
        ):
            return False
        if self.verdicts and d.verdict not in self.verdicts:
            return False
        if self.reasons and d.reason not in self.reasons:
            return False
        if self.policy and not (
            policy_matches(self.policy, d.policy) or policy_matches(self.policy, d.observed_policy)
        ):
            return False
        if self.trace_id and record.trace_id != self.trace_id:
            return False
        if self.destination_port and record.port != self.destination_port:
            return False
        if self.protocol is not None and record.protocol is not self.protocol:
            return False
        if self.reporter and record.reporter != self.reporter:
            return False
        return not (self.only_observed_mismatch and not d.observed_mismatch)

    def digest(self) -> str:
        """A stable fingerprint, binding page tokens to the filter they were issued for."""
        canonical = {
            "pu_ids": sorted(self.pu_ids),
            "namespace": self.namespace,
            "source": str(self.source_selector) if self.source_selector else None,
            "destination": str(self.destination_selector) if self.destination_selector else None,
            "verdicts": sorted(v.value for v in self.verdicts),
            "reasons": sorted(self.reasons),
            "policy": self.policy,
            "trace_id": self.trace_id,
            "port": self.destination_port,
            "protocol": self.protocol.value if self.protocol else None,
            "reporter": self.reporter,
            "mismatch": self.only_observed_mismatch,
        }
        text = json.dumps(canonical, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def policy_matches(wanted: str, key: str | None) -> bool:
    """``wanted`` names policy ``key``: equal keys, or a bare name equal to the key's name."""
    if key is None:
        return False
    if wanted == key:
        return True
    return "/" not in wanted and key.rpartition("/")[2] == wanted
