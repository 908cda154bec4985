"""The policy engine: loading, Kubernetes NetworkPolicy semantics, Trustwire tiers, decisions.

Domain code: no gRPC, no etcd. The public surface is re-exported here; everything else is an
implementation detail. Typical use::

    cluster = load_cluster(read_sources(["examples/"]))
    engine = PolicyEngine(cluster)
    decision = engine.decide(cluster.endpoint("shop/web"), cluster.endpoint("shop/db"),
                             Protocol.TCP, 5432)
    decision.allowed, decision.reason, decision.deciding.policy
"""

from .compiler import PolicyEngine
from .decision import Decision, DirectionDecision, ReasonCode
from .labels import Labels, LabelSelector, Operator, Requirement
from .loader import Document, build_cluster, load_cluster, parse_documents, read_sources
from .model import (
    Action,
    Cluster,
    Conditions,
    ContainerPort,
    Direction,
    Endpoint,
    ExternalNetwork,
    IPBlock,
    KubernetesNetworkPolicy,
    KubernetesPeer,
    KubernetesRule,
    Namespace,
    NetworkAccessPolicy,
    PortMatch,
    Protocol,
    PuType,
    Scores,
    Tier,
    Workload,
)

__all__ = [
    "Action",
    "Cluster",
    "Conditions",
    "ContainerPort",
    "Decision",
    "Direction",
    "DirectionDecision",
    "Document",
    "Endpoint",
    "ExternalNetwork",
    "IPBlock",
    "KubernetesNetworkPolicy",
    "KubernetesPeer",
    "KubernetesRule",
    "LabelSelector",
    "Labels",
    "Namespace",
    "NetworkAccessPolicy",
    "Operator",
    "PolicyEngine",
    "PortMatch",
    "Protocol",
    "PuType",
    "ReasonCode",
    "Requirement",
    "Scores",
    "Tier",
    "Workload",
    "build_cluster",
    "load_cluster",
    "parse_documents",
    "read_sources",
]
