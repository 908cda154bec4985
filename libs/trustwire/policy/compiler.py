"""The compiled policy engine: the same semantics as ``reference.py``, fast.

How it is fast:

- **Identities.** Workloads that no policy can tell apart share one interned identity: same
  namespace, labels, PU type, trust domain, declared ports, and the same set of ``ipBlock``
  CIDRs their addresses fall in. External addresses get identities the same way (their
  ExternalNetwork labels plus their ipBlock set), found through a prefix table.
- **Per-identity rule sets, compiled once.** For each identity and direction: the Kubernetes
  policies isolating it (with every peer clause resolved to a set of identity ids and a set of
  ipBlock ids) and the Trustwire rules whose own-side selector matches it, found through an
  inverted label index and kept in evaluation order.
- **A decision cache** keyed by (source identity, destination identity, protocol, port,
  revision), bounded. Decisions hold no per-endpoint data, so one entry serves every pair of
  workloads with those identities.

The reference evaluator is the specification; property tests show the two agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .decision import Decision, DirectionDecision, ReasonCode
from .labels import Labels, LabelSelector
from .model import (
    GOOD_CITIZEN,
    KUBERNETES_TIER,
    Action,
    Cluster,
    Direction,
    Endpoint,
    IPAddress,
    IPBlock,
    KubernetesNetworkPolicy,
    NetworkAccessPolicy,
    PortMatch,
    Protocol,
    PuType,
    Scores,
    Workload,
)
from .reference import is_node_local, ordered_access_policies

__all__ = ["PolicyEngine"]

DEFAULT_CACHE_SIZE = 1 << 17


@dataclass(slots=True)
class _Identity:
    id: int
    namespace: str | None  # None: an external address
    pod: bool  # selectable by Kubernetes pod/namespace selectors
    k8s_labels: Labels
    labels: Labels  # what Trustwire selectors see
    blocks: frozenset[int]  # ids of the ipBlocks containing one of its addresses
    # Stands in for the workload when resolving named ports (only ports matter); None: external.
    port_owner: Workload | None
    directions: dict[Direction, _CompiledDirection] = field(default_factory=dict)
    # Per direction: positions of the rules whose *peer-side* selector may select this
    # identity (peer-side inverted index), intersected with the own-side set at decision time.
    peer_positions: dict[Direction, frozenset[int]] = field(default_factory=dict)
    # Selector id -> whether it selects this identity (memoised; bounded by the selector count).
    memo: dict[int, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _CompiledK8sRule:
    index: int
    all_peers: bool
    peer_ids: frozenset[int]
    block_ids: frozenset[int]
    ports: tuple[PortMatch, ...]


@dataclass(frozen=True, slots=True)
class _CompiledK8sPolicy:
    key: str
    rules: tuple[_CompiledK8sRule, ...]


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    policy: NetworkAccessPolicy
    # Selector ids: own side (subject for egress, object for ingress) and the peer side.
    own_selector: int
    peer_selector: int
    observe: bool
    action: Action  # the action it enforces, or for observe rules the would-be action


@dataclass(frozen=True, slots=True)
class _CompiledDirection:
    isolating: tuple[_CompiledK8sPolicy, ...]
    isolating_key: str | None
    rules: tuple[_CompiledRule, ...]
    default: Action
    # Positions (in evaluation order) of ``rules``: the own-side half of the intersection.
    positions: frozenset[int] = frozenset()


class _PrefixTable:
    """ipBlock CIDRs by (version, prefix length, network address): lookups are a few dict hits."""

    def __init__(self, blocks: Iterable[tuple[int, IPBlock]]) -> None:
        self._by_prefix: dict[tuple[int, int], dict[int, list[tuple[int, IPBlock]]]] = {}
        for block_id, block in blocks:
            cidr = block.cidr
            table = self._by_prefix.setdefault((cidr.version, cidr.prefixlen), {})
            table.setdefault(int(cidr.network_address), []).append((block_id, block))
        self._lengths = sorted(self._by_prefix)

    def containing(self, ip: IPAddress) -> frozenset[int]:
        found: set[int] = set()
        value = int(ip)
        bits = ip.max_prefixlen
        for version, plen in self._lengths:
            if version != ip.version:
                continue
            masked = value >> (bits - plen) << (bits - plen) if plen else 0
            for block_id, block in self._by_prefix[(version, plen)].get(masked, ()):
                if not any(ip in ex for ex in block.excepts):
                    found.add(block_id)
        return frozenset(found)


class PolicyEngine:
    """Decides connections for one cluster snapshot. Build a new one per revision."""

    def __init__(self, cluster: Cluster, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.cluster = cluster
        self._cache_size = cache_size
        self._cache: dict[tuple[object, ...], Decision] = {}
        self.cache_hits = 0
        self.cache_misses = 0

        self._ordered = ordered_access_policies(cluster)
        self._has_conditions = any(not p.conditions.is_empty for p in self._ordered)

        # ipBlocks, deduplicated, each with an id.
        block_ids: dict[IPBlock, int] = {}
        for policy in cluster.kubernetes_policies:
            for rule in policy.ingress + policy.egress:
                for peer in rule.peers:
                    if peer.ip_block is not None and peer.ip_block not in block_ids:
                        block_ids[peer.ip_block] = len(block_ids)
        self._block_ids = block_ids
        self._prefixes = _PrefixTable((i, b) for b, i in block_ids.items())

        # Selectors, deduplicated, each with an id; membership memoised per identity.
        self._selectors: list[LabelSelector] = []
        self._selector_ids: dict[LabelSelector, int] = {}

        # Identities.
        self._identities: list[_Identity] = []
        self._interned: dict[tuple[object, ...], _Identity] = {}
        self._by_workload: dict[str, _Identity] = {}
        # id(workload) -> (workload, identity) for the snapshot's own Workload objects (what
        # cluster.endpoint() hands out): no key formatting or deep hashing on the hot path.
        self._by_object: dict[int, tuple[Workload, _Identity]] = {}
        self._by_address: dict[IPAddress, _Identity] = {}
        self._by_namespace: dict[str, list[_Identity]] = {}
        for w in cluster.workloads:
            identity = self._workload_identity(w)
            self._by_workload[w.key] = identity
            self._by_object[id(w)] = (w, identity)

        # Inverted index of Trustwire rules by one required label of each side's selector;
        # rules whose selector requires no label are checked against every identity.
        self._index: dict[Direction, dict[tuple[str, str], list[int]]] = {
            Direction.EGRESS: {},
            Direction.INGRESS: {},
        }
        self._unindexed: dict[Direction, list[int]] = {Direction.EGRESS: [], Direction.INGRESS: []}
        # The same for the peer side: which rules' peer selector can select an identity.
        self._peer_index: dict[Direction, dict[tuple[str, str], list[int]]] = {
            Direction.EGRESS: {},
            Direction.INGRESS: {},
        }
        self._peer_unindexed: dict[Direction, list[int]] = {
            Direction.EGRESS: [],
            Direction.INGRESS: [],
        }
        self._compiled_rules: dict[Direction, list[_CompiledRule]] = {
            Direction.EGRESS: [],
            Direction.INGRESS: [],
        }
        for position, access in enumerate(self._ordered):
            for direction, own, other in (
                (Direction.EGRESS, access.subject, access.object),
                (Direction.INGRESS, access.object, access.subject),
            ):
                observe = access.action is Action.OBSERVE
                self._compiled_rules[direction].append(
                    _CompiledRule(
                        policy=access,
                        own_selector=self._selector_id(own),
                        peer_selector=self._selector_id(other),
                        observe=observe,
                        action=access.observe_action if observe else access.action,
                    )
                )
                for selector, index, unindexed in (
                    (own, self._index[direction], self._unindexed[direction]),
                    (other, self._peer_index[direction], self._peer_unindexed[direction]),
                ):
                    if selector.match_labels:
                        # Index under the rarest-looking pair: the longest key=value is a cheap
                        # proxy that keeps generic labels (app=web) from collecting every rule.
                        pair = max(
                            selector.match_labels.items(),
                            key=lambda kv: (len(kv[0]) + len(kv[1]), kv),
                        )
                        index.setdefault(pair, []).append(position)
                    else:
                        unindexed.append(position)

        self._k8s_by_namespace: dict[str, list[KubernetesNetworkPolicy]] = {}
        for policy in cluster.kubernetes_policies:
            self._k8s_by_namespace.setdefault(policy.namespace, []).append(policy)
        self._k8s_compiled: dict[str, _CompiledK8sPolicy] = {}

    # ------------------------------------------------------------------ identities

    def _intern(
        self, key: tuple[object, ...], make: type[_Identity], **kwargs: object
    ) -> _Identity:
        identity = self._interned.get(key)
        if identity is None:
            identity = make(id=len(self._identities), **kwargs)  # type: ignore[arg-type]
            self._identities.append(identity)
            self._interned[key] = identity
            if identity.namespace is not None:
                self._by_namespace.setdefault(identity.namespace, []).append(identity)
        return identity

    def _workload_identity(self, w: Workload) -> _Identity:
        blocks: frozenset[int] = frozenset().union(*(self._prefixes.containing(ip) for ip in w.ips))
        labels = w.identity_labels()
        key = ("w", w.namespace, w.pu_type, labels, w.labels, w.ports, blocks)
        return self._intern(
            key,
            _Identity,
            namespace=w.namespace,
            pod=w.pu_type is PuType.POD,
            k8s_labels=w.labels,
            labels=labels,
            blocks=blocks,
            port_owner=w,
        )

    def _endpoint_identity(self, endpoint: Endpoint) -> _Identity:
        workload = endpoint.workload
        if workload is not None:
            known = self._by_object.get(id(workload))
            if known is not None and known[0] is workload:
                return known[1]
            identity = self._by_workload.get(workload.key)
            if identity is not None:
                return identity
            return self._workload_identity(workload)
        ip = endpoint.ip
        if ip is None:
            raise ValueError("an endpoint needs a workload or an address")
        identity = self._by_address.get(ip)
        if identity is None:
            blocks = self._prefixes.containing(ip)
            labels = endpoint.external_labels
            identity = self._intern(
                ("x", labels, blocks),
                _Identity,
                namespace=None,
                pod=False,
                k8s_labels=Labels(),
                labels=labels,
                blocks=blocks,
                port_owner=None,
            )
            if len(self._by_address) >= self._cache_size:
                self._by_address.pop(next(iter(self._by_address)))
            self._by_address[ip] = identity
        return identity

    def _selector_id(self, selector: LabelSelector) -> int:
        sid = self._selector_ids.get(selector)
        if sid is None:
            sid = len(self._selectors)
            self._selectors.append(selector)
            self._selector_ids[selector] = sid
        return sid

    def _selects(self, selector_id: int, identity: _Identity) -> bool:
        hit = identity.memo.get(selector_id)
        if hit is None:
            hit = self._selectors[selector_id].matches(identity.labels)
            identity.memo[selector_id] = hit
        return hit

    def _peer_positions(self, identity: _Identity, direction: Direction) -> frozenset[int]:
        positions = identity.peer_positions.get(direction)
        if positions is None:
            found: set[int] = set(self._peer_unindexed[direction])
            index = self._peer_index[direction]
            for pair in identity.labels.items():
                found.update(index.get(pair, ()))
            positions = frozenset(found)
            identity.peer_positions[direction] = positions
        return positions

    # ------------------------------------------------------------------ compilation

    def _compiled(self, identity: _Identity, direction: Direction) -> _CompiledDirection:
        compiled = identity.directions.get(direction)
        if compiled is None:
            compiled = self._compile(identity, direction)
            identity.directions[direction] = compiled
        return compiled

    def _compile(self, identity: _Identity, direction: Direction) -> _CompiledDirection:
        assert identity.namespace is not None
        isolating: list[_CompiledK8sPolicy] = []
        if identity.pod:
            for policy in self._k8s_by_namespace.get(identity.namespace, ()):
                if direction in policy.policy_types and policy.pod_selector.matches(
                    identity.k8s_labels
                ):
                    isolating.append(self._compile_k8s(policy, direction))
        isolating.sort(key=lambda p: p.key)

        candidates: set[int] = set(self._unindexed[direction])
        index = self._index[direction]
        for pair in identity.labels.items():
            candidates.update(index.get(pair, ()))
        rules = self._compiled_rules[direction]
        positions = [
            i for i in sorted(candidates) if self._selects(rules[i].own_selector, identity)
        ]
        return _CompiledDirection(
            isolating=tuple(isolating),
            isolating_key=isolating[0].key if isolating else None,
            rules=tuple(rules[i] for i in positions),
            default=self.cluster.namespace(identity.namespace).default_action,
            positions=frozenset(positions),
        )

    def _compile_k8s(
        self, policy: KubernetesNetworkPolicy, direction: Direction
    ) -> _CompiledK8sPolicy:
        cache_key = f"{direction.value}:{policy.key}"
        compiled = self._k8s_compiled.get(cache_key)
        if compiled is not None:
            return compiled
        rules: list[_CompiledK8sRule] = []
        for index, rule in enumerate(policy.rules(direction)):
            peer_ids: set[int] = set()
            block_ids: set[int] = set()
            for peer in rule.peers:
                if peer.ip_block is not None:
                    block_ids.add(self._block_ids[peer.ip_block])
                    continue
                if peer.namespace_selector is None:
                    namespaces = [policy.namespace]
                else:
                    ns_selector = peer.namespace_selector
                    namespaces = [
                        name
                        for name in self._by_namespace
                        if ns_selector.matches(self.cluster.namespace(name).labels)
                    ]
                for name in namespaces:
                    for ident in self._by_namespace.get(name, ()):
                        if ident.pod and (
                            peer.pod_selector is None or peer.pod_selector.matches(ident.k8s_labels)
                        ):
                            peer_ids.add(ident.id)
            rules.append(
                _CompiledK8sRule(
                    index=index,
                    all_peers=not rule.peers,
                    peer_ids=frozenset(peer_ids),
                    block_ids=frozenset(block_ids),
                    ports=rule.ports,
                )
            )
        compiled = _CompiledK8sPolicy(key=policy.key, rules=tuple(rules))
        self._k8s_compiled[cache_key] = compiled
        return compiled

    # ------------------------------------------------------------------ deciding

    def decide(
        self,
        source: Endpoint,
        destination: Endpoint,
        protocol: Protocol,
        port: int,
        *,
        source_scores: Scores | None = None,
        destination_scores: Scores | None = None,
    ) -> Decision:
        revision = self.cluster.revision
        sw, dw = source.workload, destination.workload
        # Same workload: compared by (namespace, name) without formatting ``key`` strings.
        if (
            sw is not None
            and dw is not None
            and (sw is dw or (sw.name == dw.name and sw.namespace == dw.namespace))
        ):
            return Decision.self_traffic(revision)
        # Decided before the cache: it depends on the exact address, not on identities.
        if dw is not None and sw is None and dw.host_ips and is_node_local(source, destination):
            return Decision.node_local(revision)
        src = self._endpoint_identity(source)
        dst = self._endpoint_identity(destination)
        src_scores = source_scores or GOOD_CITIZEN
        dst_scores = destination_scores or GOOD_CITIZEN
        key: tuple[object, ...]
        # Scores only key the cache when a policy has conditions and a caller passed scores:
        # hashing two dataclasses per lookup is a third of a cached decision otherwise.
        if self._has_conditions and (source_scores is not None or destination_scores is not None):
            key = (src.id, dst.id, protocol, port, revision, src_scores, dst_scores)
        else:
            key = (src.id, dst.id, protocol, port, revision)
        cached = self._cache.get(key)
        if cached is not None:
            self.cache_hits += 1
            return cached
        self.cache_misses += 1
        egress = (
            self._direction(Direction.EGRESS, src, dst, protocol, port, dst_scores)
            if src.port_owner is not None
            else None
        )
        ingress = (
            self._direction(Direction.INGRESS, dst, src, protocol, port, src_scores)
            if dst.port_owner is not None
            else None
        )
        decision = Decision.combine(egress, ingress, revision)
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = decision
        return decision

    def _direction(
        self,
        direction: Direction,
        own: _Identity,
        peer: _Identity,
        protocol: Protocol,
        port: int,
        peer_scores: Scores,
    ) -> DirectionDecision:
        compiled = self._compiled(own, direction)
        destination = peer if direction is Direction.EGRESS else own
        source = own if direction is Direction.EGRESS else peer
        enforced, observed = self._first_rules(
            direction, compiled, source, destination, peer, protocol, port, peer_scores
        )
        if compiled.isolating:
            found = self._kubernetes(compiled, peer, destination, protocol, port)
            allowed = found is not None
            policy_key, rule_index = found if found is not None else (compiled.isolating_key, None)
            observed_is_observe = observed is not None and observed.observe
            return DirectionDecision(
                direction=direction,
                allowed=allowed,
                encrypted=allowed and enforced is not None and enforced.action is Action.ENCRYPT,
                reason=ReasonCode.K8S_ALLOWED if allowed else ReasonCode.K8S_ISOLATED_NO_MATCH,
                tier=KUBERNETES_TIER,
                policy=policy_key,
                rule=rule_index,
                observed_allowed=allowed,
                observed_encrypted=(
                    allowed and observed is not None and observed.action is Action.ENCRYPT
                ),
                observed_policy=observed.policy.key if observed_is_observe and observed else None,
                overridden_policy=(
                    enforced.policy.key
                    if enforced is not None and (enforced.action is Action.REJECT) == allowed
                    else None
                ),
            )
        e_allowed, e_encrypted, reason = _outcome(enforced, compiled.default)
        o_allowed, o_encrypted, _ = _outcome(observed, compiled.default)
        return DirectionDecision(
            direction=direction,
            allowed=e_allowed,
            encrypted=e_encrypted,
            reason=reason,
            tier=enforced.policy.tier if enforced is not None else None,
            policy=enforced.policy.key if enforced is not None else None,
            rule=0 if enforced is not None else None,
            observed_allowed=o_allowed,
            observed_encrypted=o_encrypted,
            observed_policy=(
                observed.policy.key if observed is not None and observed.observe else None
            ),
        )

    def _first_rules(
        self,
        direction: Direction,
        compiled: _CompiledDirection,
        source: _Identity,
        destination: _Identity,
        peer: _Identity,
        protocol: Protocol,
        port: int,
        peer_scores: Scores,
    ) -> tuple[_CompiledRule | None, _CompiledRule | None]:
        """(first matching enforcing rule, first matching rule counting observe rules)."""
        observed: _CompiledRule | None = None
        # Only rules whose own side selects ``own`` and whose peer side may select ``peer``:
        # two set intersections in C instead of a Python-level test per own-side rule.
        candidates = compiled.positions & self._peer_positions(peer, direction)
        if not candidates:
            return None, None
        rules = self._compiled_rules[direction]
        memo = peer.memo
        selectors = self._selectors
        for position in sorted(candidates):
            rule = rules[position]
            selected = memo.get(rule.peer_selector)
            if selected is None:
                selected = selectors[rule.peer_selector].matches(peer.labels)
                memo[rule.peer_selector] = selected
            if not selected:
                continue
            policy = rule.policy
            if policy.namespace is not None and policy.namespace not in (
                source.namespace,
                destination.namespace,
            ):
                continue
            if policy.ports and not any(
                p.matches(protocol, port, destination.port_owner) for p in policy.ports
            ):
                continue
            if not policy.conditions.hold(peer_scores):
                continue
            if observed is None:
                observed = rule
            if not rule.observe:
                return rule, observed
        return None, observed

    @staticmethod
    def _kubernetes(
        compiled: _CompiledDirection,
        peer: _Identity,
        destination: _Identity,
        protocol: Protocol,
        port: int,
    ) -> tuple[str, int] | None:
        for policy in compiled.isolating:
            for rule in policy.rules:
                # Peer first: a set lookup rejects most rules before any port is matched.
                if not (
                    rule.all_peers
                    or peer.id in rule.peer_ids
                    or (rule.block_ids and not rule.block_ids.isdisjoint(peer.blocks))
                ):
                    continue
                if rule.ports and not any(
                    p.matches(protocol, port, destination.port_owner) for p in rule.ports
                ):
                    continue
                return policy.key, rule.index
        return None

    # ------------------------------------------------------------------ introspection

    @property
    def identity_count(self) -> int:
        return len(self._identities)

    def clear_cache(self) -> None:
        self._cache.clear()


def _outcome(rule: _CompiledRule | None, default: Action) -> tuple[bool, bool, ReasonCode]:
    if rule is None:
        if default is Action.REJECT:
            return False, False, ReasonCode.NAMESPACE_DEFAULT_REJECT
        return True, False, ReasonCode.NAMESPACE_DEFAULT_ALLOW
    if rule.action is Action.REJECT:
        return False, False, ReasonCode.POLICY_REJECT
    if rule.action is Action.ENCRYPT:
        return True, True, ReasonCode.POLICY_ENCRYPT
    return True, False, ReasonCode.POLICY_ALLOW
