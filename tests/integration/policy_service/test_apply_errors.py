"""A rejected Apply lists every problem: INVALID_ARGUMENT, ErrorInfo reason INVALID_DOCUMENT and
a ``policy.v1.ApplyErrors`` detail with one entry per bad document, as the proto promises; the
client gets them back as one DocumentError; nothing is written. Real replica, real etcd."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2, status_pb2

from trustwire.api.common.v1 import resource_pb2 as common_resource_pb2
from trustwire.api.policy.v1 import meta_pb2, namespace_pb2, resource_pb2, tier_pb2
from trustwire.api.policy.v1 import policy_service_pb2 as pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire.errors import DocumentError
from trustwire.runtime import MAX_STATUS_BYTES, create_channel
from trustwire.store.etcd import EtcdStore
from trustwire_policy.server import PolicyReplica

from .fixtures import K8S_POLICY, SHOP, yaml_apply

pytestmark = pytest.mark.etcd

BAD_NETWORK_POLICY = K8S_POLICY.replace("port: 5432", "port: 70000")
BAD_ACCESS_POLICY = SHOP.split("---\n")[1].replace("action: encrypt", "action: allw")
BAD_TIER = "apiVersion: trustwire.io/v1\nkind: Tier\nmetadata: {name: gold}\nspec: {order: -1}\n"
# Valid documents around and between the bad ones: the request must still write nothing.
INPUT = "---\n".join([SHOP, BAD_NETWORK_POLICY, BAD_ACCESS_POLICY, "kind: [\n", BAD_TIER])
# Documents: 1 Namespace, 2 NetworkAccessPolicy (fine), 3..6 bad.
EXPECTED = [
    # (document_index (0-based), kind, namespace, name, field, message starts)
    (2, "NetworkPolicy", "shop", "db-ingress", "spec.ingress[0].ports[0].port", "must be between"),
    (3, "NetworkAccessPolicy", "shop", "web-to-db", "spec.action", "unknown action 'allw'"),
    (4, "", "", "", "", "line 37 column 1: invalid YAML"),
    (5, "Tier", "", "gold", "spec.order", "must be between 0 and 1000000, got -1"),
]


@pytest.fixture
async def raw_stub(replica: PolicyReplica) -> AsyncIterator[service_grpc.PolicyServiceStub]:
    async with create_channel(replica.address, translate_errors=False) as channel:
        yield service_grpc.PolicyServiceStub(channel)


def status_of(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    trailers: Any = error.trailing_metadata()
    [details] = [v for k, v in trailers if k == "grpc-status-details-bin"]
    return status_pb2.Status.FromString(details)


def apply_errors_of(status: status_pb2.Status) -> pb.ApplyErrors:
    [packed] = [d for d in status.details if d.Is(pb.ApplyErrors.DESCRIPTOR)]
    detail = pb.ApplyErrors()
    packed.Unpack(detail)
    return detail


async def assert_nothing_stored(stub: service_grpc.PolicyServiceStub) -> None:
    listed = await stub.ListPolicies(pb.ListPoliciesRequest())
    assert list(listed.resources) == []
    namespaces = await stub.ListPolicies(
        pb.ListPoliciesRequest(kinds=[common_resource_pb2.RESOURCE_KIND_NAMESPACE])
    )
    assert list(namespaces.resources) == []


@pytest.mark.parametrize("dry_run", [False, True])
async def test_status_carries_apply_errors_with_every_problem(
    raw_stub: service_grpc.PolicyServiceStub, store: EtcdStore, dry_run: bool
) -> None:
    before = await store.revision()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await raw_stub.Apply(yaml_apply(INPUT, dry_run=dry_run))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == (
        "4 problems in 4 documents; the first: test.yaml: document 3 "
        "(NetworkPolicy shop/db-ingress): spec.ingress[0].ports[0].port: "
        "must be between 1 and 65535, got 70000"
    )
    status = status_of(raised.value)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "INVALID_DOCUMENT"
    assert info.metadata["problems"] == "4"
    entries = apply_errors_of(status).errors
    assert [(e.document_index, e.kind, e.namespace, e.name, e.field) for e in entries] == [
        row[:5] for row in EXPECTED
    ]
    for entry, row in zip(entries, EXPECTED, strict=True):
        assert entry.source_name == "test.yaml"
        assert entry.message.startswith(row[5]), entry.message
        assert entry.reason == "INVALID_DOCUMENT"
    assert await store.revision() == before
    await assert_nothing_stored(raw_stub)


async def test_client_gets_one_document_error_listing_every_problem(
    stub: service_grpc.PolicyServiceStub, store: EtcdStore
) -> None:
    before = await store.revision()
    with pytest.raises(DocumentError) as raised:
        await stub.Apply(yaml_apply(INPUT))
    err = raised.value
    assert [p.message for p in err.errors] == [
        "test.yaml: document 3 (NetworkPolicy shop/db-ingress): spec.ingress[0].ports[0].port: "
        "must be between 1 and 65535, got 70000",
        "test.yaml: document 4 (NetworkAccessPolicy shop/web-to-db): spec.action: "
        "unknown action 'allw' (allow, reject, encrypt, observe)",
        "test.yaml: document 5: line 37 column 1: invalid YAML: did not find expected node content",
        "test.yaml: document 6 (Tier gold): spec.order: must be between 0 and 1000000, got -1",
    ]
    assert (err.total, err.omitted, err.summary) == (4, 0, "4 problems in 4 documents")
    assert (err.source, err.index, err.field) == ("test.yaml", 3, "spec.ingress[0].ports[0].port")
    assert await store.revision() == before


async def test_structured_resources_list_every_problem_by_resource_index(
    stub: service_grpc.PolicyServiceStub, store: EtcdStore
) -> None:
    resources = [
        resource_pb2.Resource(namespace=namespace_pb2.Namespace(metadata=meta_pb2.ObjectMeta(
            name="shop"))),
        resource_pb2.Resource(tier=tier_pb2.Tier(metadata=meta_pb2.ObjectMeta(
            name="kubernetes"), order=5)),
        resource_pb2.Resource(namespace=namespace_pb2.Namespace(metadata=meta_pb2.ObjectMeta(
            name="Not_A_Label"))),
    ]  # fmt: skip
    before = await store.revision()
    with pytest.raises(DocumentError) as raised:
        await stub.Apply(pb.ApplyRequest(resources=pb.ResourceList(resources=resources)))
    assert [(p.index, p.kind, p.name, p.field) for p in raised.value.errors] == [
        (2, "Tier", "kubernetes", "metadata.name"),
        (3, "Namespace", "", "metadata.name"),
    ]
    assert await store.revision() == before


async def test_many_problems_stay_within_the_trailer_budget(
    raw_stub: service_grpc.PolicyServiceStub,
    stub: service_grpc.PolicyServiceStub,
    store: EtcdStore,
) -> None:
    # 100 documents (limits.max_documents), every one bad: the detail lists what fits in the
    # trailers and the total says how many there are; the call still fails INVALID_ARGUMENT,
    # not RESOURCE_EXHAUSTED for oversize metadata.
    text = "---\n".join(
        BAD_ACCESS_POLICY.replace("name: web-to-db", f"name: p{i}") for i in range(100)
    )
    before = await store.revision()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await raw_stub.Apply(yaml_apply(text))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_of(raised.value)
    assert status.ByteSize() <= MAX_STATUS_BYTES
    entries = apply_errors_of(status).errors
    assert 10 <= len(entries) < 100
    assert [e.document_index for e in entries] == list(range(len(entries)))
    with pytest.raises(DocumentError) as translated:
        await stub.Apply(yaml_apply(text))
    err = translated.value
    assert (len(err.errors), err.omitted, err.total) == (len(entries), 100 - len(entries), 100)
    assert err.summary == "100 problems in 100 documents"
    assert await store.revision() == before
