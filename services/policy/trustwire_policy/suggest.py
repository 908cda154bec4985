"""Suggest: NetworkAccessPolicies that allow exactly the connections observed in flow records.

Works on domain values only (``FlowRecord`` in, ``NetworkAccessPolicy`` out); the YAML comes
from the policy codec, so it is exactly what ``trustwire apply -f`` reads back.

Rules (docs/flows.md, "Suggest"):

1. **Evidence**: records whose enforced verdict is allow, including those an observe rule
   would reject (making them explicit is the point of observe mode), except self traffic,
   node-local probes and fail-open connections (allowed without a decision: no evidence of
   intent). Records must name a destination port.
2. **Identity of an endpoint**: its labels restricted to ``label_keys`` (default ``app``),
   plus its ``namespace`` and ``trust-domain`` labels, so no selector reaches into another
   namespace or trust domain. An endpoint with none of ``label_keys`` keeps all its labels
   (the most specific selector there is). An endpoint whose labels are only generic ones
   (``namespace``, ``trust-domain``, ``pu-type``, ``enforcer``) cannot be named without
   widening to everything of that kind: its records are skipped and counted.
3. **Groups**: one per (policy namespace, source identity, destination identity), with the
   union of the observed (protocol, port) pairs.
4. **Merging, exact only**: groups that differ only in the value of one identity key on one
   side, with equal ports and equal other side, become one policy with an ``In`` expression
   of exactly the observed values. Every (subject, object, port) a merged policy allows was
   observed, so nothing wider than the observed identities is proposed. Empty selectors are
   never produced unless ``allow_empty_selectors``.
5. **Names**: ``allow-<subject>-to-<object>`` from the identities' key values, sanitized to an
   RFC 1123 label; colliding names get a hash of their selectors. Same flows, same names: a
   suggestion re-applied later updates rather than duplicates.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from trustwire.errors import InvalidArgument
from trustwire.flows import FlowEndpoint, FlowRecord, Verdict
from trustwire.policy.labels import Labels, LabelSelector, Operator, Requirement
from trustwire.policy.model import Action, NetworkAccessPolicy, PortMatch, Protocol

from .codec import resource_from_domain, resource_to_document

__all__ = ["SuggestOptions", "SuggestResult", "Suggestion", "suggest", "suggestions_yaml"]

# Labels every PU of a kind shares: a selector made only of these selects a whole namespace
# (or every external address), far wider than the observed endpoint.
_GENERIC = frozenset({"namespace", "trust-domain", "pu-type", "enforcer"})
# Scoping labels kept in every identity so a selector stays in its namespace / trust domain.
_SCOPE = ("namespace", "trust-domain")
# Allowed without any rule deciding: not evidence that a rule is wanted.
_NOT_EVIDENCE = frozenset({"SELF_TRAFFIC", "NODE_LOCAL", "FAIL_OPEN"})
_Pairs = tuple[tuple[str, str], ...]
_NAME_PART = re.compile(r"[^a-z0-9]+")
_MAX_NAME_PART = 24


@dataclass(frozen=True, slots=True)
class SuggestOptions:
    # Namespace of the generated policies, and a filter: only flows whose destination is in
    # it. Empty: every namespace, each policy in its destination's namespace (the source's for
    # an external destination).
    namespace: str = ""
    # Only flows whose destination labels match; None matches all.
    object_selector: LabelSelector | None = None
    # Label keys that identify a workload.
    label_keys: tuple[str, ...] = ("app",)
    tier: str = "application"
    priority: int = 1000
    # ALLOW, or OBSERVE (the policies are staged as observe with observeAction allow).
    action: Action = Action.ALLOW
    allow_empty_selectors: bool = False

    def __post_init__(self) -> None:
        if self.action not in (Action.ALLOW, Action.OBSERVE):
            raise InvalidArgument("action: ALLOW or OBSERVE", field="action")
        if not self.label_keys:
            raise InvalidArgument("label_keys: at least one key", field="label_keys")


@dataclass(frozen=True, slots=True)
class Suggestion:
    policy: NetworkAccessPolicy
    flow_count: int
    connection_count: int
    # Every supporting record was allowed with no observe rule objecting: current policy
    # already allows these flows and the suggestion makes that explicit.
    already_allowed: bool


@dataclass(frozen=True, slots=True)
class SuggestResult:
    suggestions: tuple[Suggestion, ...]
    # Allowed records that no label selector can name without widening (see rule 2).
    skipped: int = 0


# ----------------------------------------------------------------------- selectors


@dataclass(frozen=True, slots=True, order=True)
class _Selector:
    """``fixed`` pairs AND (when ``key``) ``key In values``: the only shapes Suggest makes."""

    fixed: _Pairs
    key: str = ""
    values: tuple[str, ...] = ()

    def split(
        self, keys: Sequence[str]
    ) -> tuple[tuple[tuple[str, str], ...], str, tuple[str, ...]]:
        """(residual pairs, merge key, values): how this selector can merge with others."""
        if self.key:
            return self.fixed, self.key, self.values
        pairs = dict(self.fixed)
        for k in keys:
            if k in pairs:
                return tuple(p for p in self.fixed if p[0] != k), k, (pairs[k],)
        return self.fixed, "", ()

    @staticmethod
    def of(residual: _Pairs, key: str, values: Iterable[str]) -> _Selector:
        vals = tuple(sorted(set(values)))
        if len(vals) == 1:
            return _Selector(tuple(sorted((*residual, (key, vals[0])))))
        return _Selector(residual, key, vals)

    @property
    def is_empty(self) -> bool:
        return not self.fixed and not self.key

    def domain(self) -> LabelSelector:
        requirements: tuple[Requirement, ...] = ()
        if self.key:
            requirements = (Requirement(self.key, Operator.IN, frozenset(self.values)),)
        return LabelSelector(Labels(dict(self.fixed)), requirements)

    def name_part(self, keys: Sequence[str]) -> str:
        pairs = dict(self.fixed)
        if self.key:
            raw = "-".join(self.values)
        else:
            raw = next((pairs[k] for k in keys if k in pairs), "")
            if not raw:
                raw = "-".join(v for k, v in self.fixed if k not in _GENERIC) or "any"
        part = _NAME_PART.sub("-", raw.lower()).strip("-") or "x"
        return part[:_MAX_NAME_PART].strip("-")


def _identity(endpoint: FlowEndpoint, keys: Sequence[str]) -> _Selector | None:
    labels = endpoint.labels
    chosen = {k: labels[k] for k in keys if k in labels}
    if chosen:
        chosen.update({k: labels[k] for k in _SCOPE if k in labels})
    else:
        chosen = dict(labels.items())
    if not any(k not in _GENERIC for k in chosen):
        return None
    return _Selector(tuple(sorted(chosen.items())))


# -------------------------------------------------------------------------- groups


@dataclass(slots=True)
class _Group:
    namespace: str | None
    subject: _Selector
    object: _Selector
    ports: frozenset[tuple[Protocol, int]]
    records: list[FlowRecord] = field(default_factory=list)


def _policy_namespace(record: FlowRecord, options: SuggestOptions) -> str | None:
    if options.namespace:
        return options.namespace
    return record.destination.namespace or record.source.namespace or None


def _evidence(records: Iterable[FlowRecord], options: SuggestOptions) -> Iterable[FlowRecord]:
    for r in records:
        if r.decision.verdict is not Verdict.ALLOW or r.decision.reason in _NOT_EVIDENCE:
            continue
        if r.port == 0:
            continue
        if options.namespace and r.destination.namespace != options.namespace:
            continue
        if options.object_selector is not None and not options.object_selector.matches(
            r.destination.labels
        ):
            continue
        yield r


def suggest(records: Iterable[FlowRecord], options: SuggestOptions | None = None) -> SuggestResult:
    """The smallest exact set of policies (rules in the module docstring), most connections
    first; ties by name."""
    opts = options or SuggestOptions()
    keys = opts.label_keys
    skipped = 0
    by_pair: dict[tuple[str | None, _Selector, _Selector], list[FlowRecord]] = defaultdict(list)
    for record in _evidence(records, opts):
        subject = _identity(record.source, keys)
        obj = _identity(record.destination, keys)
        if subject is None or obj is None:
            skipped += 1
            continue
        by_pair[(_policy_namespace(record, opts), subject, obj)].append(record)
    groups = [
        _Group(ns, s, o, frozenset((r.protocol, r.port) for r in rs), rs)
        for (ns, s, o), rs in by_pair.items()
    ]
    groups = _merge_until_stable(groups, keys)
    if not opts.allow_empty_selectors:
        kept = [g for g in groups if not (g.subject.is_empty or g.object.is_empty)]
        skipped += sum(len(g.records) for g in groups if g not in kept)
        groups = kept
    policies = _name(groups, opts)
    suggestions = [
        Suggestion(
            policy=policy,
            flow_count=len(group.records),
            connection_count=_connections(group.records),
            already_allowed=all(
                r.decision.observed_verdict != Verdict.REJECT for r in group.records
            ),
        )
        for policy, group in policies
    ]
    suggestions.sort(key=lambda s: (-s.connection_count, s.policy.key))
    return SuggestResult(tuple(suggestions), skipped)


def _connections(records: Sequence[FlowRecord]) -> int:
    """Connections, counted once although both enforcers of a connection report it: the
    larger of the egress-side and ingress-side totals."""
    totals: dict[str, int] = defaultdict(int)
    for r in records:
        totals[r.decision.direction.value] += r.connection_count
    return max(totals.values(), default=0)


def _merge_until_stable(groups: list[_Group], keys: Sequence[str]) -> list[_Group]:
    """Merge exact (rule 4) on subjects, then objects, until nothing changes. Each pass only
    reduces the number of groups, so this terminates."""
    while True:
        before = len(groups)
        groups = _merge(groups, keys, side="subject")
        groups = _merge(groups, keys, side="object")
        if len(groups) == before:
            return sorted(groups, key=lambda g: (g.namespace or "", g.subject, g.object))


def _merge(groups: list[_Group], keys: Sequence[str], *, side: str) -> list[_Group]:
    buckets: dict[tuple[Any, ...], list[_Group]] = defaultdict(list)
    for g in groups:
        this: _Selector = getattr(g, side)
        other = g.object if side == "subject" else g.subject
        residual, key, _ = this.split(keys)
        buckets[(g.namespace or "", other, g.ports, residual, key)].append(g)
    out: list[_Group] = []
    for (_, other, ports, residual, key), members in buckets.items():
        if len(members) == 1 or not key:
            out.extend(members)
            continue
        values = [v for m in members for v in getattr(m, side).split(keys)[2]]
        merged = _Selector.of(residual, key, values)
        records = [r for m in members for r in m.records]
        namespace = members[0].namespace
        if side == "subject":
            out.append(_Group(namespace, merged, other, ports, records))
        else:
            out.append(_Group(namespace, other, merged, ports, records))
    return out


def _name(groups: list[_Group], opts: SuggestOptions) -> list[tuple[NetworkAccessPolicy, _Group]]:
    keys = opts.label_keys
    base: dict[int, str] = {
        i: f"allow-{g.subject.name_part(keys)}-to-{g.object.name_part(keys)}"
        for i, g in enumerate(groups)
    }
    count: dict[tuple[str | None, str], int] = defaultdict(int)
    for i, g in enumerate(groups):
        count[(g.namespace, base[i])] += 1
    out: list[tuple[NetworkAccessPolicy, _Group]] = []
    for i, g in enumerate(groups):
        name = base[i]
        if count[(g.namespace, name)] > 1:
            digest = hashlib.sha256(repr((g.subject, g.object)).encode()).hexdigest()[:8]
            name = f"{name}-{digest}"
        ports = tuple(
            PortMatch(protocol=protocol, port=port)
            for protocol, port in sorted(g.ports, key=lambda p: (p[0].value, p[1]))
        )
        policy = NetworkAccessPolicy(
            name=name,
            namespace=g.namespace,
            tier=opts.tier,
            priority=opts.priority,
            subject=g.subject.domain(),
            object=g.object.domain(),
            action=opts.action,
            ports=ports,
            observe_action=Action.ALLOW if opts.action is Action.OBSERVE else Action.REJECT,
        )
        out.append((policy, g))
    return out


def suggestions_yaml(suggestions: Sequence[Suggestion]) -> str:
    """All policies as YAML documents (``---`` separated), ready for ``trustwire apply -f``.
    Each document is preceded by a comment with its evidence."""
    parts: list[str] = []
    for s in suggestions:
        document = resource_to_document(resource_from_domain(s.policy))
        evidence = f"# {s.flow_count} flow record(s), {s.connection_count} connection(s)" + (
            "; already allowed" if s.already_allowed else "; an observe rule would reject them"
        )
        parts.append(evidence + "\n" + yaml.safe_dump(document, sort_keys=False))
    return "---\n".join(parts)
