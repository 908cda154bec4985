"""Computing per-enforcer views from a cluster snapshot (the semantics of ``reference.py``).

One :class:`ViewBuilder` per revision, shared by every enforcer stream: it indexes the cluster
once (labels to workloads, own-side label index of rules) and memoises every compiled rule
(peers resolved) by what it depends on, so the work for a rule that many enforcers' PUs share
is done once per revision. Building one enforcer's view then costs its PUs times the rules
whose own-side selector can select them.

How each part of a view follows from the reference semantics:

- a Trustwire rule is in a PU's direction when its own-side selector (subject for egress,
  object for ingress) selects the PU's identity labels; its peers are the workloads the other
  side selects, restricted to the policy's namespace when the PU is not in it (a namespaced
  policy needs one endpoint in its namespace); address peers are the external-network regions
  whose labels the peer selector selects (longest prefix wins, as ``Cluster.external_endpoint``);
- a pod is isolated in a direction by the NetworkPolicies of its namespace that select it;
  their rules' pod/namespace peers resolve to pod PU ids, ipBlocks to CIDRs and to the PUs
  owning an address inside them;
- the directory holds every PU that some rule relates to one of the enforcer's PUs, whichever
  endpoint the rule is compiled for (ADR 0011), and the enforcer endpoints serving them: the
  peers its own PUs' rules name, and the PUs whose rules name one of its PUs, so that a source
  enforcer knows an enforced destination (and asks it) whenever the destination's rules decide
  on the source's identity. Trustwire rules relate two PUs symmetrically (one policy selects
  each on one side; the namespace restriction holds iff one of them is in the policy's
  namespace), so the second half comes from Kubernetes rules alone: a NetworkPolicy is
  compiled only for the pods it isolates, and its peers learn those pods from
  :class:`_KubernetesPeers`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from ..labels import Labels, LabelSelector, Operator, Requirement
from ..model import (
    KUBERNETES_TIER,
    Action,
    Cluster,
    Direction,
    IPNetwork,
    KubernetesNetworkPolicy,
    KubernetesRule,
    NetworkAccessPolicy,
    PuType,
)
from ..reference import ordered_access_policies
from .model import (
    DirectoryEntry,
    EnforcerEndpoint,
    EnforcerView,
    ExternalNetworkView,
    PeerSet,
    PolicyKind,
    PolicyRef,
    PuPlacement,
    PuView,
    RuleSetView,
    RuleView,
    Topology,
)

__all__ = ["ViewBuilder", "build_views", "network_sort_key"]

_ALL_V4 = ipaddress.ip_network("0.0.0.0/0")
_ALL_V6 = ipaddress.ip_network("::/0")
_UNLABELLED_EXTERNAL = Labels({"pu-type": "external"})


class _KubernetesPeers:
    """The reverse of the Kubernetes rules: for a PU id, the PU ids of the pods whose
    NetworkPolicies (either direction) name it as a peer, one tuple per (policy, direction).

    Depends on the population, the Kubernetes policies and the namespaces' labels only, so a
    builder whose revision changed none of them shares its predecessor's instance (which
    ``ViewBuilder._reuse_from`` checks by identity). Computed on first use: a revision whose
    views are never asked for costs nothing."""

    __slots__ = ("by_peer",)

    def __init__(self) -> None:
        self.by_peer: dict[str, list[tuple[str, ...]]] | None = None


def network_sort_key(net: IPNetwork) -> tuple[int, int, int]:
    return (net.version, int(net.network_address), net.prefixlen)


def _sorted_networks(nets: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    return tuple(sorted(set(nets), key=network_sort_key))


class ViewBuilder:
    """Views of every enforcer at one cluster revision. Not thread-safe (memo tables)."""

    # Indexes of the population (workloads and their placement); shared with the next
    # revision's builder when its population is the same objects (``_same_population``).
    _placement: list[PuPlacement]
    _index_by_id: dict[str, int]
    _identity: list[Labels]
    _by_pair: dict[tuple[str, str], list[int]]
    _by_enforcer: dict[str, list[int]]
    _pods_by_namespace: dict[str, list[int]]
    _entries: dict[int, DirectoryEntry]
    _k8s_peers: _KubernetesPeers

    def __init__(
        self,
        cluster: Cluster,
        topology: Topology | None = None,
        *,
        previous: ViewBuilder | None = None,
    ) -> None:
        """``previous``: the builder of an earlier revision whose work may be reused (see
        ``_reuse_from``); views are equal with or without it (property-tested)."""
        self.cluster = cluster
        self.topology = topology or Topology()
        workloads = cluster.workloads
        self._workloads = workloads
        # PU views of the previous revision that no policy change can have touched, by
        # workload index, and that revision's enforcer views (see ``_reuse_from``).
        self._reusable: dict[int, PuView] = {}
        self._previous_views: dict[str, EnforcerView] = {}
        self._pu_views: dict[int, PuView] = {}
        if previous is not None and self._same_population(previous):
            self._placement = previous._placement
            self._index_by_id = previous._index_by_id
            self._identity = previous._identity
            self._by_pair = previous._by_pair
            self._by_enforcer = previous._by_enforcer
            self._pods_by_namespace = previous._pods_by_namespace
            # Directory entries depend on the workload and its placement only.
            self._entries = previous._entries
        else:
            previous = None
            self._index_population()
            self._entries = {}
        # Directories depend on other PUs' Kubernetes rules as well (ADR 0011): share that
        # reverse index only while nothing it depends on changed.
        if (
            previous is not None
            and previous.cluster.namespaces == cluster.namespaces
            and _same_items(previous.cluster.kubernetes_policies, cluster.kubernetes_policies)
        ):
            self._k8s_peers = previous._k8s_peers
        else:
            self._k8s_peers = _KubernetesPeers()

        self._ordered: list[NetworkAccessPolicy] = ordered_access_policies(cluster)
        # Own-side inverted index per direction: rule positions by one required label pair of
        # the own-side selector; selectors requiring no label are checked for every PU.
        self._own_index: dict[Direction, dict[tuple[str, str], list[int]]] = {
            Direction.EGRESS: {},
            Direction.INGRESS: {},
        }
        self._own_unindexed: dict[Direction, list[int]] = {
            Direction.EGRESS: [],
            Direction.INGRESS: [],
        }
        for position, policy in enumerate(self._ordered):
            for direction in (Direction.EGRESS, Direction.INGRESS):
                own = policy.subject if direction is Direction.EGRESS else policy.object
                if own.match_labels:
                    pair = max(own.match_labels.items())
                    self._own_index[direction].setdefault(pair, []).append(position)
                else:
                    self._own_unindexed[direction].append(position)

        self._k8s_by_namespace: dict[str, list[KubernetesNetworkPolicy]] = {}
        for k8s in cluster.kubernetes_policies:
            self._k8s_by_namespace.setdefault(k8s.namespace, []).append(k8s)
        for policies in self._k8s_by_namespace.values():
            policies.sort(key=lambda p: p.name)

        # External regions: each distinct CIDR labelled by the first network listing it (the
        # longest containing CIDR wins in ``Cluster.external_endpoint``; ties: first listed).
        self._regions: dict[IPNetwork, Labels] = {}
        self._region_owner: dict[IPNetwork, str] = {}
        for net in cluster.external_networks:
            for cidr in net.cidrs:
                if cidr not in self._regions:
                    self._regions[cidr] = net.identity_labels()
                    self._region_owner[cidr] = net.name

        self._access_memo: dict[tuple[int, Direction, str | None], RuleView] = {}
        self._k8s_memo: dict[tuple[str, Direction], tuple[RuleView, ...]] = {}
        self._address_memo: dict[LabelSelector, tuple[tuple[IPNetwork, ...], ...]] = {}
        self._views: dict[str, EnforcerView] = {}
        if previous is not None:
            self._reuse_from(previous)

    # ------------------------------------------------------------------ reuse

    def _index_population(self) -> None:
        workloads = self._workloads
        placement = self.topology.placement
        self._placement = [
            placement.get(w.key) or PuPlacement(pu_id=w.key, enforcer_id="") for w in workloads
        ]
        self._index_by_id = {p.pu_id: i for i, p in enumerate(self._placement)}
        self._identity = [w.identity_labels() for w in workloads]
        self._by_pair = {}
        for i, labels in enumerate(self._identity):
            for pair in labels.items():
                self._by_pair.setdefault(pair, []).append(i)
        self._by_enforcer = {}
        for i, p in enumerate(self._placement):
            if p.enforcer_id:
                self._by_enforcer.setdefault(p.enforcer_id, []).append(i)
        self._pods_by_namespace = {}
        for i, w in enumerate(workloads):
            if w.pu_type is PuType.POD:
                self._pods_by_namespace.setdefault(w.namespace, []).append(i)

    def _same_population(self, previous: ViewBuilder) -> bool:
        """The same workload objects in the same order, placed the same way."""
        old, new = previous._workloads, self._workloads
        return (
            len(old) == len(new)
            and all(a is b for a, b in zip(old, new, strict=True))
            and previous.topology.placement == self.topology.placement
        )

    def _reuse_from(self, previous: ViewBuilder) -> None:
        """Keep the previous revision's PU views that no change can have touched.

        With the population unchanged (``_same_population``), a PU view depends on its
        namespace's default action, the Kubernetes policies, the external networks, the
        tiers' order, the enforcer addresses, and the access policies whose own-side selector
        (subject for egress, object for ingress) selects the PU, in their relative order (a
        rule's peers depend on the population only). So when everything but the access
        policies is unchanged, a PU that no added, removed or modified access policy selects
        on either side has an identical view. Policies are compared by identity (the state
        mirror keeps unchanged resources' objects), which errs on the side of rebuilding.

        An enforcer *view* also depends on other PUs' rules, through its directory (ADR 0011):
        their access rules that name its PUs select those PUs too (a changed one makes the PU
        view unreusable, above), and their Kubernetes rules are in ``_KubernetesPeers``, which
        must be the same instance for a previous enforcer view to be kept.
        """
        old, new = previous.cluster, self.cluster
        if not (
            old.namespaces == new.namespaces
            and _same_items(old.kubernetes_policies, new.kubernetes_policies)
            and _same_items(old.external_networks, new.external_networks)
            and old.tiers == new.tiers
            and previous.topology.enforcer_addresses == self.topology.enforcer_addresses
            and previous._k8s_peers is self._k8s_peers
        ):
            return
        before = {id(p): p for p in old.access_policies}
        after = {id(p): p for p in new.access_policies}
        changed = [p for i, p in after.items() if i not in before]
        changed += [p for i, p in before.items() if i not in after]
        selectors = [s for p in changed for s in (p.subject, p.object)]
        for index, pu_view in previous._pu_views.items():
            labels = self._identity[index]
            if not any(selector.matches(labels) for selector in selectors):
                self._reusable[index] = pu_view
        self._previous_views = previous._views

    # ------------------------------------------------------------------ public

    @property
    def revision(self) -> int:
        return self.cluster.revision

    def enforcer_ids(self) -> list[str]:
        return sorted(self._by_enforcer)

    def view(self, enforcer_id: str) -> EnforcerView:
        """The view of ``enforcer_id`` (memoised; an enforcer without PUs gets an empty view)."""
        view = self._views.get(enforcer_id)
        if view is None:
            view = self._build(enforcer_id)
            self._views[enforcer_id] = view
        return view

    # ------------------------------------------------------------------ building

    def _build(self, enforcer_id: str) -> EnforcerView:
        indexes = self._by_enforcer.get(enforcer_id, ())
        before = self._previous_views.get(enforcer_id)
        if before is not None and all(i in self._reusable for i in indexes):
            # Every PU view is the previous one, and the directory depends on those rules'
            # peers (unchanged), the Kubernetes rules naming these PUs (the same
            # ``_KubernetesPeers``, or ``_reuse_from`` keeps nothing) and the population
            # (unchanged): the view is unchanged.
            for i in indexes:
                self._pu_views[i] = self._reusable[i]
            return before
        pus = [self._pu_view(i) for i in indexes]
        pus.sort(key=lambda p: p.id)
        named: set[str] = set()
        networks: set[IPNetwork] = set()
        for pu in pus:
            for rules in (
                pu.ingress.kubernetes_rules,
                pu.ingress.rules,
                pu.egress.kubernetes_rules,
                pu.egress.rules,
            ):
                for rule in rules:
                    named.update(rule.peer.pu_ids)
                    networks.update(rule.peer.cidrs)
                    networks.update(rule.peer.except_cidrs)
        # The other half of the relation: pods whose NetworkPolicies name one of these PUs
        # (db's ingress admitting api puts db in api's enforcer's directory, so api's
        # connections to db run the handshake instead of being decided as external).
        named_by = self._kubernetes_peers()
        for pu in pus:
            for group in named_by.get(pu.id, ()):
                named.update(group)
        peers = [self._directory_entry(self._index_by_id[pu_id]) for pu_id in sorted(named)]
        enforcer_ids = sorted({p.enforcer_id for p in peers if p.enforcer_id})
        addresses = self.topology.enforcer_addresses
        enforcers = tuple(
            EnforcerEndpoint(enforcer_id=e, trust_domain="", addresses=addresses.get(e, ()))
            for e in enforcer_ids
        )
        externals = tuple(
            sorted(
                (
                    ExternalNetworkView(
                        namespace="",
                        name=net.name,
                        labels=net.labels,
                        cidrs=_sorted_networks(net.cidrs),
                    )
                    for net in self.cluster.external_networks
                    if any(cidr in networks for cidr in net.cidrs)
                ),
                key=lambda n: n.key,
            )
        )
        return EnforcerView(
            enforcer_id=enforcer_id,
            pus=tuple(pus),
            peers=tuple(peers),
            enforcers=enforcers,
            external_networks=externals,
        )

    def _directory_entry(self, index: int) -> DirectoryEntry:
        # Shared by every view of this revision that names the PU (memory: a crowd of views
        # naming the same peers holds one entry each, not one per view).
        entry = self._entries.get(index)
        if entry is None:
            entry = self._new_directory_entry(index)
            self._entries[index] = entry
        return entry

    def _new_directory_entry(self, index: int) -> DirectoryEntry:
        w = self._workloads[index]
        placement = self._placement[index]
        return DirectoryEntry(
            pu_id=placement.pu_id,
            trust_domain=w.trust_domain,
            ips=w.ips,
            enforcer_id=placement.enforcer_id,
            pu_type=w.pu_type,
            ports=w.ports,
        )

    def _pu_view(self, index: int) -> PuView:
        view = self._pu_views.get(index)
        if view is None:
            view = self._reusable.get(index) or self._new_pu_view(index)
            self._pu_views[index] = view
        return view

    def _new_pu_view(self, index: int) -> PuView:
        w = self._workloads[index]
        placement = self._placement[index]
        return PuView(
            id=placement.pu_id,
            name=w.name,
            namespace=w.namespace,
            labels=w.labels,
            pu_type=w.pu_type,
            ips=w.ips,
            ports=w.ports,
            enforcer_id=placement.enforcer_id,
            fail_open=placement.fail_open,
            host_ips=w.host_ips,
            ingress=self._rule_set(index, Direction.INGRESS),
            egress=self._rule_set(index, Direction.EGRESS),
        )

    def _rule_set(self, index: int, direction: Direction) -> RuleSetView:
        w = self._workloads[index]
        isolating: list[KubernetesNetworkPolicy] = []
        if w.pu_type is PuType.POD:
            isolating = [
                p
                for p in self._k8s_by_namespace.get(w.namespace, ())
                if direction in p.policy_types and p.pod_selector.matches(w.labels)
            ]
        k8s_rules: list[RuleView] = []
        for policy in isolating:
            k8s_rules.extend(self._k8s_rules(policy, direction))

        labels = self._identity[index]
        candidates: set[int] = set(self._own_unindexed[direction])
        own_index = self._own_index[direction]
        for pair in labels.items():
            candidates.update(own_index.get(pair, ()))
        rules: list[RuleView] = []
        for position in sorted(candidates):
            access = self._ordered[position]
            own = access.subject if direction is Direction.EGRESS else access.object
            if not own.matches(labels):
                continue
            constraint = (
                access.namespace
                if access.namespace is not None and access.namespace != w.namespace
                else None
            )
            rules.append(self._access_rule(position, direction, constraint))
        return RuleSetView(
            kubernetes_policies=tuple(
                PolicyRef(PolicyKind.KUBERNETES, p.namespace, p.name) for p in isolating
            ),
            kubernetes_rules=tuple(k8s_rules),
            rules=tuple(rules),
            default_action=self.cluster.namespace(w.namespace).default_action,
        )

    # ------------------------------------------------------------------ Trustwire rules

    def _access_rule(self, position: int, direction: Direction, constraint: str | None) -> RuleView:
        key = (position, direction, constraint)
        rule = self._access_memo.get(key)
        if rule is not None:
            return rule
        policy = self._ordered[position]
        peer_selector = policy.object if direction is Direction.EGRESS else policy.subject
        ids = [
            self._placement[i].pu_id
            for i in self._selected(peer_selector)
            if constraint is None or self._workloads[i].namespace == constraint
        ]
        if constraint is None:
            selector = peer_selector
            cidrs, excepts = self._address_regions(peer_selector)
        else:
            # Identities of another namespace than the policy's: only those in its namespace.
            selector = LabelSelector(
                peer_selector.match_labels,
                (
                    *peer_selector.match_expressions,
                    Requirement("namespace", Operator.IN, frozenset({constraint})),
                ),
            )
            # Addresses have no namespace: a namespaced policy never applies to a PU outside
            # its namespace talking to an address.
            cidrs, excepts = (), ()
        rule = RuleView(
            policy=PolicyRef(PolicyKind.ACCESS, policy.namespace or "", policy.name),
            rule_index=0,
            tier=policy.tier,
            priority=policy.priority,
            peer=PeerSet(
                pu_ids=tuple(sorted(ids)), selector=selector, cidrs=cidrs, except_cidrs=excepts
            ),
            ports=policy.ports,
            action=policy.action,
            observed_action=policy.observe_action,
            conditions=policy.conditions,
        )
        self._access_memo[key] = rule
        return rule

    def _selected(self, selector: LabelSelector) -> list[int]:
        """Workload indexes whose identity labels ``selector`` selects (via the label index)."""
        if selector.match_labels:
            postings = [self._by_pair.get(pair, []) for pair in selector.match_labels.items()]
            smallest = min(postings, key=len)
            candidates: Iterable[int] = smallest
        else:
            candidates = range(len(self._workloads))
        return [i for i in candidates if selector.matches(self._identity[i])]

    def _address_regions(
        self, selector: LabelSelector
    ) -> tuple[tuple[IPNetwork, ...], tuple[IPNetwork, ...]]:
        """(included, excluded) prefixes: the addresses outside every workload whose external
        labels ``selector`` selects, as a longest-prefix-match table."""
        memo = self._address_memo.get(selector)
        if memo is not None:
            return memo[0], memo[1]
        included = [c for c, labels in self._regions.items() if selector.matches(labels)]
        excluded = [c for c, labels in self._regions.items() if not selector.matches(labels)]
        if selector.matches(_UNLABELLED_EXTERNAL):
            # Addresses in no external network: the whole space, unless a network claims it.
            for everything in (_ALL_V4, _ALL_V6):
                if everything not in self._regions:
                    included.append(everything)
        # An exclusion matters only inside an inclusion.
        excluded = [
            e
            for e in excluded
            if any(i.version == e.version and e.subnet_of(i) for i in included)  # type: ignore[arg-type]
        ]
        result = (_sorted_networks(included), _sorted_networks(excluded))
        self._address_memo[selector] = result
        return result

    # ------------------------------------------------------------------ Kubernetes rules

    def _kubernetes_peers(self) -> dict[str, list[tuple[str, ...]]]:
        """PU id -> groups of pods whose Kubernetes rules name it (see ``_KubernetesPeers``).

        Costs the Kubernetes rules' peer sets (memoised in ``_k8s_memo``: the isolated pods'
        own views need them anyway) plus one pass over each policy's namespace."""
        holder = self._k8s_peers
        if holder.by_peer is not None:
            return holder.by_peer
        by_peer: dict[str, list[tuple[str, ...]]] = {}
        for namespace, policies in self._k8s_by_namespace.items():
            pods = self._pods_by_namespace.get(namespace, ())
            for policy in policies:
                isolated = tuple(
                    sorted(
                        self._placement[i].pu_id
                        for i in pods
                        if policy.pod_selector.matches(self._workloads[i].labels)
                    )
                )
                if not isolated:
                    continue
                for direction in (Direction.INGRESS, Direction.EGRESS):
                    if direction not in policy.policy_types:
                        continue
                    named: set[str] = set()
                    for rule in self._k8s_rules(policy, direction):
                        named.update(rule.peer.pu_ids)
                    for pu_id in named:
                        by_peer.setdefault(pu_id, []).append(isolated)
        holder.by_peer = by_peer
        return by_peer

    def _k8s_rules(
        self, policy: KubernetesNetworkPolicy, direction: Direction
    ) -> tuple[RuleView, ...]:
        key = (policy.key, direction)
        memo = self._k8s_memo.get(key)
        if memo is not None:
            return memo
        ref = PolicyRef(PolicyKind.KUBERNETES, policy.namespace, policy.name)
        views: list[RuleView] = []
        for index, rule in enumerate(policy.rules(direction)):

            def make(
                peer: PeerSet, rule_index: int = index, rule: KubernetesRule = rule
            ) -> RuleView:
                return RuleView(
                    policy=ref,
                    rule_index=rule_index,
                    tier=KUBERNETES_TIER,
                    priority=0,
                    peer=peer,
                    ports=rule.ports,
                    action=Action.ALLOW,
                    observed_action=Action.ALLOW,
                )

            if not rule.peers:
                every = tuple(sorted(p.pu_id for p in self._placement))
                views.append(make(PeerSet(every, LabelSelector(), (_ALL_V4, _ALL_V6))))
                continue
            members: set[int] = set()
            blocks = [peer.ip_block for peer in rule.peers if peer.ip_block is not None]
            for peer in rule.peers:
                if peer.ip_block is not None:
                    block = peer.ip_block
                    members.update(
                        i
                        for i, w in enumerate(self._workloads)
                        if any(block.contains(ip) for ip in w.ips)
                    )
                    continue
                members.update(self._k8s_pods(peer.pod_selector, peer.namespace_selector, policy))
            ids = tuple(sorted(self._placement[i].pu_id for i in members))
            first_block = blocks[0] if blocks else None
            views.append(
                make(
                    PeerSet(
                        pu_ids=ids,
                        cidrs=(first_block.cidr,) if first_block else (),
                        except_cidrs=_sorted_networks(first_block.excepts) if first_block else (),
                    )
                )
            )
            for block in blocks[1:]:
                views.append(
                    make(PeerSet(cidrs=(block.cidr,), except_cidrs=_sorted_networks(block.excepts)))
                )
        result = tuple(views)
        self._k8s_memo[key] = result
        return result

    def _k8s_pods(
        self,
        pod_selector: LabelSelector | None,
        namespace_selector: LabelSelector | None,
        policy: KubernetesNetworkPolicy,
    ) -> Sequence[int]:
        if namespace_selector is None:
            namespaces: Iterable[str] = (policy.namespace,)
        else:
            namespaces = [
                name
                for name in self._pods_by_namespace
                if namespace_selector.matches(self.cluster.namespace(name).labels)
            ]
        found: list[int] = []
        for name in namespaces:
            for i in self._pods_by_namespace.get(name, ()):
                if pod_selector is None or pod_selector.matches(self._workloads[i].labels):
                    found.append(i)
        return found


def _same_items(a: Sequence[object], b: Sequence[object]) -> bool:
    return len(a) == len(b) and all(x is y or x == y for x, y in zip(a, b, strict=True))


def build_views(cluster: Cluster, topology: Topology | None = None) -> dict[str, EnforcerView]:
    """Every enforcer's view at ``cluster``'s revision (enforcers that serve a PU)."""
    builder = ViewBuilder(cluster, topology)
    return {e: builder.view(e) for e in builder.enforcer_ids()}
