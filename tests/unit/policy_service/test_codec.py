"""Round trips: YAML document -> stored Resource -> domain object and canonical YAML."""

from __future__ import annotations

import yaml

from tests.integration.policy_service.fixtures import K8S_POLICY, SHOP
from trustwire.policy import parse_documents
from trustwire_policy import codec
from trustwire_policy.codec import Keyspace, Kind
from trustwire_policy.manifests import parse_resources, parse_yaml
from trustwire_policy.settings import LimitSettings

LIMITS = LimitSettings()


def test_yaml_and_structured_inputs_agree() -> None:
    from_yaml = parse_yaml(SHOP + "---\n" + K8S_POLICY, "x.yaml", LIMITS)
    from_structured = parse_resources([m.resource for m in from_yaml], LIMITS)
    assert [codec.content_bytes(m.resource) for m in from_yaml] == [
        codec.content_bytes(m.resource) for m in from_structured
    ]
    for m in from_yaml:
        assert codec.domain_from_resource(m.resource) == m.obj


def test_canonical_yaml_reloads_to_the_same_object() -> None:
    for m in parse_yaml(SHOP + "---\n" + K8S_POLICY, "x.yaml", LIMITS):
        text = codec.document_yaml(m.resource)
        (doc,) = parse_documents([("again", text)])
        assert doc.obj == m.obj


def test_resource_version_in_yaml_is_an_expectation() -> None:
    text = SHOP.replace("namespace: shop, labels", "namespace: shop, resourceVersion: '42', labels")
    policy = parse_yaml(text, "x.yaml", LIMITS)[1]
    assert policy.resource_version == "42"
    assert "resourceVersion" not in yaml.safe_dump(codec.resource_to_document(policy.resource))


def test_keys_round_trip() -> None:
    keys = Keyspace("/r/")
    key = keys.resource(Kind.NETWORK_ACCESS_POLICY, "", "global")
    assert key == "/r/policies/NetworkAccessPolicy/_cluster/global"
    parsed = keys.parse(key)
    assert parsed is not None
    assert (parsed.kind, parsed.namespace, parsed.name) == (
        Kind.NETWORK_ACCESS_POLICY,
        "",
        "global",
    )
    assert keys.parse(keys.status("n1")).section == "status"  # type: ignore[union-attr]
    assert keys.parse(keys.pu("n1", "p1")).enforcer_id == "n1"  # type: ignore[union-attr]
