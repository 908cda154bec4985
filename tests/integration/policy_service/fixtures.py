"""YAML and PUs shared by the policy service tests."""

from __future__ import annotations

from typing import Any

from trustwire.api.common.v1 import network_pb2, workload_pb2
from trustwire.api.policy.v1 import policy_service_pb2 as pb
from trustwire.api.policy.v1 import processing_unit_pb2 as pu_pb

SHOP = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: web-to-db, namespace: shop, labels: {team: payments}}
spec:
  tier: application
  priority: 100
  subject: {matchLabels: {app: web}}
  object: {matchLabels: {app: db}}
  ports: [{protocol: TCP, port: 5432}]
  action: encrypt
"""

DENY_DB = """\
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: deny-db, namespace: shop}
spec:
  tier: security
  priority: 10
  subject: {matchLabels: {app: web}}
  object: {matchLabels: {app: db}}
  ports: [{protocol: TCP, port: 5432}]
  action: reject
"""

K8S_POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{protocol: TCP, port: 5432}]
"""


def yaml_apply(text: str, *, dry_run: bool = False, source: str = "test.yaml") -> Any:
    return pb.ApplyRequest(yaml=pb.YamlDocuments(text=text, source_name=source), dry_run=dry_run)


def pu(name: str, app: str, ip: str, enforcer: str = "node-1", port: int = 5432) -> Any:
    return pu_pb.ProcessingUnit(
        id=f"{name}-id",
        name=name,
        namespace="shop",
        labels={"app": app},
        type=workload_pb2.PROCESSING_UNIT_TYPE_POD,
        ips=[ip],
        ports=[pu_pb.NamedPort(name="pg", protocol=network_pb2.PROTOCOL_TCP, number=port)],
        enforcer_id=enforcer,
    )


def connection(source: str, destination: str, port: int = 5432) -> Any:
    return network_pb2.Connection(
        source=network_pb2.Endpoint(pu_id=source),
        destination=network_pb2.Endpoint(pu_id=destination),
        protocol=network_pb2.PROTOCOL_TCP,
        destination_port=port,
    )
