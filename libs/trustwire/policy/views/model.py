"""Per-enforcer compiled views: exactly what one enforcer needs to decide for its PUs.

Value types only (frozen, hashable, deterministic order everywhere) so that two replicas
compute equal views for equal states, the transport encodes them to identical bytes, and a
delta is a plain set difference. ``builder.py`` computes views, ``evaluator.py`` decides over
one, ``delta.py`` diffs and patches them. Nothing here knows protobuf, gRPC or etcd.

Peer matching contract (what every rule's :class:`PeerSet` means; the evaluator implements
it and the protobuf ``CompiledPeer`` documents it):

- a peer with a verified identity whose PU id is in the view's directory matches iff the id is
  in ``pu_ids`` (the identity set resolved at the view's revision, over the whole population,
  so a directory PU that no rule of this view names, there because its own rules name one of
  this view's PUs, is matched by none of them);
- any other identity (another trust domain, a PU registered after the revision) matches iff
  ``selector`` is set and selects its signed labels;
- a peer without identity (a bare address) matches iff the longest prefix containing its
  address among ``cidrs`` and ``except_cidrs`` is one of ``cidrs`` (ties: excluded).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property

from ..labels import Labels, LabelSelector
from ..model import (
    Action,
    Conditions,
    ContainerPort,
    IPAddress,
    IPNetwork,
    PortMatch,
    PuType,
)

__all__ = [
    "DirectoryEntry",
    "EnforcerEndpoint",
    "EnforcerView",
    "ExternalNetworkView",
    "PeerSet",
    "PolicyKind",
    "PolicyRef",
    "PuPlacement",
    "PuView",
    "RuleSetView",
    "RuleView",
    "Topology",
    "ViewDelta",
]


class PolicyKind(enum.StrEnum):
    KUBERNETES = "kubernetes"
    ACCESS = "access"


@dataclass(frozen=True, slots=True, order=True)
class PolicyRef:
    kind: PolicyKind
    namespace: str  # "" for cluster-wide Trustwire policies
    name: str

    @property
    def key(self) -> str:
        """The key decisions name (``NetworkAccessPolicy.key``, Kubernetes alike)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class PeerSet:
    """Who a rule applies to on the other side (see the module docstring for the contract)."""

    pu_ids: tuple[str, ...] = ()  # sorted
    selector: LabelSelector | None = None
    cidrs: tuple[IPNetwork, ...] = ()  # sorted by (version, address, prefix length)
    except_cidrs: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleView:
    """One compiled rule. Kubernetes rules always have ``action`` ALLOW; a Kubernetes rule with
    several ipBlocks is split into one RuleView per block (same ``rule_index``), since one
    (cidrs, except_cidrs) pair cannot express a union of blocks with their own exceptions."""

    policy: PolicyRef
    rule_index: int
    tier: str
    priority: int
    peer: PeerSet
    ports: tuple[PortMatch, ...]  # empty: all ports; named ports unresolved (see evaluator)
    action: Action
    observed_action: Action = Action.REJECT
    conditions: Conditions = field(default_factory=Conditions)


@dataclass(frozen=True, slots=True)
class RuleSetView:
    """One direction of one PU. Isolated iff ``kubernetes_policies`` is non-empty."""

    kubernetes_policies: tuple[PolicyRef, ...]  # sorted by name: the reference's order
    kubernetes_rules: tuple[RuleView, ...]  # by (policy name, rule index): first match names
    rules: tuple[RuleView, ...]  # Trustwire rules in evaluation order
    default_action: Action

    @property
    def kubernetes_isolated(self) -> bool:
        return bool(self.kubernetes_policies)


@dataclass(frozen=True, slots=True)
class PuView:
    """A PU this enforcer serves, with its compiled rules."""

    id: str
    name: str
    namespace: str
    labels: Labels  # the PU's own labels (Kubernetes selectors' view)
    pu_type: PuType
    ips: tuple[IPAddress, ...]
    ports: tuple[ContainerPort, ...]
    enforcer_id: str
    fail_open: bool
    host_ips: tuple[IPAddress, ...]
    ingress: RuleSetView
    egress: RuleSetView


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """A PU that some rule relates to one of this view's PUs, on either side (its rules or
    theirs, ADR 0011): where it lives, which enforcer to ask, what ports it declares."""

    pu_id: str
    trust_domain: str
    ips: tuple[IPAddress, ...]
    enforcer_id: str
    pu_type: PuType
    ports: tuple[ContainerPort, ...]


@dataclass(frozen=True, slots=True)
class EnforcerEndpoint:
    enforcer_id: str
    trust_domain: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExternalNetworkView:
    namespace: str
    name: str
    labels: Labels
    cidrs: tuple[IPNetwork, ...]
    except_cidrs: tuple[IPNetwork, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class EnforcerView:
    """Everything one enforcer holds. Every tuple is sorted by its key, so equal views are
    equal values and encode to equal bytes. The revision is *not* part of the view: the stream
    tags views with revisions, and an unchanged view at a newer revision is the same view."""

    enforcer_id: str
    pus: tuple[PuView, ...] = ()  # by id
    peers: tuple[DirectoryEntry, ...] = ()  # by pu_id
    enforcers: tuple[EnforcerEndpoint, ...] = ()  # by enforcer_id
    external_networks: tuple[ExternalNetworkView, ...] = ()  # by (namespace, name)

    @cached_property
    def pus_by_id(self) -> dict[str, PuView]:
        return {p.id: p for p in self.pus}

    @cached_property
    def peers_by_id(self) -> dict[str, DirectoryEntry]:
        return {p.pu_id: p for p in self.peers}

    @property
    def size(self) -> int:
        """Number of entries (PUs, peers, enforcers, external networks)."""
        return len(self.pus) + len(self.peers) + len(self.enforcers) + len(self.external_networks)


@dataclass(frozen=True)
class ViewDelta:
    """Whole-entry replacements and removals between two views (never field patches), so any
    number of revisions coalesce into one delta."""

    upserted_pus: tuple[PuView, ...] = ()
    removed_pu_ids: tuple[str, ...] = ()
    upserted_peers: tuple[DirectoryEntry, ...] = ()
    removed_peer_ids: tuple[str, ...] = ()
    upserted_enforcers: tuple[EnforcerEndpoint, ...] = ()
    removed_enforcer_ids: tuple[str, ...] = ()
    upserted_external_networks: tuple[ExternalNetworkView, ...] = ()
    removed_external_networks: tuple[tuple[str, str], ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.size == 0

    @property
    def size(self) -> int:
        return (
            len(self.upserted_pus)
            + len(self.removed_pu_ids)
            + len(self.upserted_peers)
            + len(self.removed_peer_ids)
            + len(self.upserted_enforcers)
            + len(self.removed_enforcer_ids)
            + len(self.upserted_external_networks)
            + len(self.removed_external_networks)
        )


# ---------------------------------------------------------------------------- builder input


@dataclass(frozen=True, slots=True)
class PuPlacement:
    """Where a workload runs: its PU id and the enforcer serving it ("" for none)."""

    pu_id: str
    enforcer_id: str
    fail_open: bool = False


@dataclass(frozen=True)
class Topology:
    """What the builder needs beyond the ``Cluster``: PU ids and placement by workload key
    (``namespace/name``; a workload without placement gets its key as id and no enforcer),
    and each enforcer's addresses."""

    placement: dict[str, PuPlacement] = field(default_factory=dict)
    enforcer_addresses: dict[str, tuple[str, ...]] = field(default_factory=dict)
