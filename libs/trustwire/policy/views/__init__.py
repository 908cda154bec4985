"""Per-enforcer compiled views of the policy state (DESIGN.md "Policy distribution").

``ViewBuilder(cluster, topology).view(enforcer_id)`` computes what one enforcer needs;
``diff``/``apply_delta`` move between views; ``ViewEvaluator`` decides over one view exactly as
the reference evaluator decides over the whole cluster. Domain code: no protobuf, gRPC or etcd
(the protobuf codec lives in ``trustwire_policy.distribution.codec``).
"""

from .builder import ViewBuilder, build_views
from .delta import apply_delta, diff
from .evaluator import Peer, ViewEvaluator
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
    ViewDelta,
)

__all__ = [
    "DirectoryEntry",
    "EnforcerEndpoint",
    "EnforcerView",
    "ExternalNetworkView",
    "Peer",
    "PeerSet",
    "PolicyKind",
    "PolicyRef",
    "PuPlacement",
    "PuView",
    "RuleSetView",
    "RuleView",
    "Topology",
    "ViewBuilder",
    "ViewDelta",
    "ViewEvaluator",
    "apply_delta",
    "build_views",
    "diff",
]
