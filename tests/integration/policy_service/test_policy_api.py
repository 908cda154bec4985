"""The policy API against a real replica on real etcd, over gRPC on loopback."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from trustwire.api.common.v1 import decision_pb2 as dpb
from trustwire.api.common.v1 import labels_pb2, pagination_pb2, resource_pb2
from trustwire.api.policy.v1 import policy_service_pb2 as pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire.errors import (
    Conflict,
    DocumentError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from trustwire.runtime import create_channel
from trustwire.store.etcd import EtcdStore
from trustwire_policy.server import PolicyReplica
from trustwire_policy.settings import PolicySettings

from .conftest import with_limits
from .fixtures import DENY_DB, K8S_POLICY, SHOP, connection, pu, yaml_apply

pytestmark = pytest.mark.etcd

NAP = resource_pb2.RESOURCE_KIND_NETWORK_ACCESS_POLICY
KNP = resource_pb2.RESOURCE_KIND_KUBERNETES_NETWORK_POLICY


def ref(kind: Any, name: str, namespace: str = "shop") -> resource_pb2.ResourceRef:
    return resource_pb2.ResourceRef(kind=kind, namespace=namespace, name=name)


async def test_apply_get_list_delete(stub: service_grpc.PolicyServiceStub) -> None:
    applied = await stub.Apply(yaml_apply(SHOP + "---\n" + K8S_POLICY))
    assert [c.change for c in applied.changes] == [pb.CHANGE_TYPE_CREATED] * 3
    got = await stub.GetPolicy(pb.GetPolicyRequest(ref=ref(NAP, "web-to-db")))
    policy = got.resource.network_access_policy
    assert policy.spec.action == dpb.ACTION_ENCRYPT
    assert policy.metadata.labels["team"] == "payments"
    assert policy.metadata.resource_version == str(applied.revision)
    # Re-applying the same documents writes nothing.
    again = await stub.Apply(yaml_apply(SHOP + "---\n" + K8S_POLICY))
    assert [c.change for c in again.changes] == [pb.CHANGE_TYPE_UNCHANGED] * 3
    assert again.revision == applied.revision
    # The imported NetworkPolicy round-trips its original document.
    k8s = (await stub.GetPolicy(pb.GetPolicyRequest(ref=ref(KNP, "db-ingress")))).resource
    assert b"podSelector" in k8s.kubernetes_network_policy.original
    listed = await stub.ListPolicies(pb.ListPoliciesRequest())
    assert [r.WhichOneof("kind") for r in listed.resources] == [
        "network_access_policy",
        "kubernetes_network_policy",
    ]
    kubernetes_only = await stub.ListPolicies(pb.ListPoliciesRequest(tier="kubernetes"))
    assert len(kubernetes_only.resources) == 1
    by_label = await stub.ListPolicies(
        pb.ListPoliciesRequest(label_selector=labels_pb2.LabelSelector(match_labels={"team": "x"}))
    )
    assert not by_label.resources
    deleted = await stub.DeletePolicy(pb.DeletePolicyRequest(ref=ref(NAP, "web-to-db")))
    assert deleted.change.change == pb.CHANGE_TYPE_DELETED
    with pytest.raises(NotFound):
        await stub.GetPolicy(pb.GetPolicyRequest(ref=ref(NAP, "web-to-db")))


async def test_update_shows_a_diff_and_stale_version_is_aborted(
    replica: PolicyReplica,
) -> None:
    async with create_channel(replica.address, translate_errors=False) as channel:
        raw = service_grpc.PolicyServiceStub(channel)
        first = await raw.Apply(yaml_apply(SHOP))
        changed = SHOP.replace("action: encrypt", "action: allow")
        second = await raw.Apply(yaml_apply(changed))
        update = second.changes[1]
        assert update.change == pb.CHANGE_TYPE_UPDATED
        assert "-  action: encrypt" in update.diff
        assert "+  action: allow" in update.diff
        stale = changed.replace(
            "name: web-to-db, namespace: shop,",
            f"name: web-to-db, namespace: shop, resourceVersion: '{first.revision}',",
        ).replace("action: allow", "action: reject")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await raw.Apply(yaml_apply(stale))
        assert raised.value.code() is grpc.StatusCode.ABORTED
        current = await raw.GetPolicy(pb.GetPolicyRequest(ref=ref(NAP, "web-to-db")))
        assert current.resource.network_access_policy.spec.action == dpb.ACTION_ALLOW


BAD_INPUTS = [
    pytest.param("kind: [unclosed\n", "", id="malformed-yaml"),
    pytest.param(
        "apiVersion: trustwire.io/v1\nkind: Gadget\nmetadata: {name: x}\n",
        "kind",
        id="unknown-kind",
    ),
    pytest.param(
        SHOP.replace(
            "subject: {matchLabels: {app: web}}",
            "subject: {matchExpressions: [{key: app, operator: Near}]}",
        ),
        "spec.subject.matchExpressions[0].operator",
        id="invalid-selector",
    ),
    pytest.param(
        SHOP.replace("tier: application", "tier: kubernetes"), "spec.tier", id="kubernetes-tier"
    ),
    pytest.param(SHOP.replace("tier: application", "tier: nosuch"), "spec.tier", id="unknown-tier"),
    pytest.param(
        "apiVersion: trustwire.io/v1\nkind: Tier\nmetadata: {name: kubernetes}\nspec: {order: 1}\n",
        "metadata.name",
        id="kubernetes-tier-resource",
    ),
]


@pytest.mark.parametrize(("text", "field"), BAD_INPUTS)
async def test_invalid_input_writes_nothing(
    stub: service_grpc.PolicyServiceStub, store: EtcdStore, text: str, field: str
) -> None:
    # A valid document first: the whole request must still write nothing.
    before = await store.revision()
    with pytest.raises(InvalidArgument) as raised:
        await stub.Apply(yaml_apply(K8S_POLICY + "---\n" + text))
    assert isinstance(raised.value, DocumentError)
    assert raised.value.field == field
    assert raised.value.message.startswith("test.yaml: document ")
    assert await store.revision() == before


async def test_oversize_requests_name_the_limit(settings: PolicySettings, store: EtcdStore) -> None:
    small = with_limits(settings, max_documents=2, max_request_bytes=2000)
    async with PolicyReplica(small, store) as replica, create_channel(replica.address) as channel:
        stub = service_grpc.PolicyServiceStub(channel)
        before = await store.revision()
        with pytest.raises(InvalidArgument) as raised:
            await stub.Apply(yaml_apply(SHOP + "---\n" + K8S_POLICY))
        assert raised.value.field == "yaml.text"
        assert "limits.max_documents" in raised.value.message
        with pytest.raises(InvalidArgument) as raised:
            await stub.Apply(yaml_apply(SHOP + "#" * 3000))
        assert "limits.max_request_bytes" in raised.value.message
        assert await store.revision() == before


async def test_kubernetes_policies_cannot_be_deleted_as_trustwire_kind(
    stub: service_grpc.PolicyServiceStub,
) -> None:
    await stub.Apply(yaml_apply(K8S_POLICY))
    with pytest.raises(FailedPrecondition) as raised:
        await stub.DeletePolicy(pb.DeletePolicyRequest(ref=ref(NAP, "db-ingress")))
    assert raised.value.reason == "KUBERNETES_TIER_READ_ONLY"
    await stub.GetPolicy(pb.GetPolicyRequest(ref=ref(KNP, "db-ingress")))  # still there


async def test_tier_in_use_cannot_be_deleted(stub: service_grpc.PolicyServiceStub) -> None:
    tier = "apiVersion: trustwire.io/v1\nkind: Tier\nmetadata: {name: gold}\nspec: {order: 50}\n"
    await stub.Apply(yaml_apply(tier + "---\n" + SHOP.replace("tier: application", "tier: gold")))
    with pytest.raises(FailedPrecondition) as raised:
        await stub.DeletePolicy(
            pb.DeletePolicyRequest(
                ref=resource_pb2.ResourceRef(kind=resource_pb2.RESOURCE_KIND_TIER, name="gold")
            )
        )
    assert raised.value.reason == "TIER_IN_USE"


async def test_pagination_is_stable_at_one_revision(stub: service_grpc.PolicyServiceStub) -> None:
    docs = "---\n".join(DENY_DB.replace("name: deny-db", f"name: p{i}") for i in range(7))
    await stub.Apply(yaml_apply(docs))
    names: list[str] = []
    token = ""
    revisions = set()
    pages = 0
    while True:
        page = await stub.ListPolicies(
            pb.ListPoliciesRequest(
                namespace="shop", page=pagination_pb2.PageRequest(page_size=3, page_token=token)
            )
        )
        pages += 1
        names += [r.network_access_policy.metadata.name for r in page.resources]
        revisions.add(page.page.revision)
        if pages == 1:  # a write between pages does not change the listing
            await stub.Apply(yaml_apply(DENY_DB.replace("name: deny-db", "name: p99")))
        token = page.page.next_page_token
        if not token:
            break
    assert names == [f"p{i}" for i in range(7)]
    assert len(revisions) == 1
    first = await stub.ListPolicies(
        pb.ListPoliciesRequest(page=pagination_pb2.PageRequest(page_size=3))
    )
    other_filter = pb.ListPoliciesRequest(
        tier="security",
        page=pagination_pb2.PageRequest(page_size=3, page_token=first.page.next_page_token),
    )
    with pytest.raises(InvalidArgument) as raised:
        await stub.ListPolicies(other_filter)
    assert raised.value.reason == "INVALID_PAGE_TOKEN"


async def test_dry_run_returns_the_diff_and_the_flows_that_flip(
    replica: PolicyReplica, stub: service_grpc.PolicyServiceStub, store: EtcdStore
) -> None:
    await stub.RegisterPu(pb.RegisterPuRequest(pu=pu("web", "web", "10.0.0.1")))
    reg = await stub.RegisterPu(pb.RegisterPuRequest(pu=pu("db", "db", "10.0.0.2")))
    await replica.mirror.wait_for_revision(reg.pu.revision)
    before = await store.revision()
    response = await stub.Apply(yaml_apply(DENY_DB, dry_run=True))
    assert await store.revision() == before
    (change,) = response.changes
    assert change.change == pb.CHANGE_TYPE_CREATED
    assert "+  action: reject" in change.diff
    flips = {
        (i.connection.source.pu_id, i.connection.destination.pu_id, i.connection.destination_port)
        for i in response.impacts
    }
    assert flips == {("web-id", "db-id", 5432)}
    (impact,) = response.impacts
    assert impact.before.verdict == dpb.VERDICT_ALLOW
    assert impact.after.verdict == dpb.VERDICT_REJECT
    assert impact.after.egress.policy.name == "deny-db"


async def test_explain_and_simulate_against_live_state(
    replica: PolicyReplica, stub: service_grpc.PolicyServiceStub
) -> None:
    await stub.RegisterPu(pb.RegisterPuRequest(pu=pu("web", "web", "10.0.0.1")))
    await stub.RegisterPu(pb.RegisterPuRequest(pu=pu("db", "db", "10.0.0.2")))
    applied = await stub.Apply(yaml_apply(SHOP + "---\n" + K8S_POLICY))
    explained = await stub.Explain(pb.ExplainRequest(connection=connection("web-id", "db-id")))
    e = explained.explanation
    assert e.verdict == dpb.VERDICT_ALLOW
    assert e.encrypted
    assert e.revision == applied.revision
    assert e.ingress.reason == dpb.REASON_CODE_K8S_ALLOWED
    assert e.ingress.policy.name == "db-ingress"
    # By namespace/name too (what the CLI sends), and a port Kubernetes does not allow.
    other = await stub.Explain(pb.ExplainRequest(connection=connection("shop/web", "shop/db", 80)))
    assert other.explanation.verdict == dpb.VERDICT_REJECT
    assert other.explanation.ingress.reason == dpb.REASON_CODE_K8S_ISOLATED_NO_MATCH
    with pytest.raises(InvalidArgument) as raised:
        await stub.Explain(pb.ExplainRequest(connection=connection("nobody", "db-id")))
    assert raised.value.field == "connection.source.pu_id"
    # Simulate removing the Kubernetes policy: port 80 flips to allowed.
    simulated = await stub.Simulate(
        pb.SimulateRequest(
            deletions=[ref(KNP, "db-ingress")],
            connections=[connection("web-id", "db-id", 80)],
        )
    )
    (impact,) = simulated.impacts
    assert impact.before.verdict == dpb.VERDICT_REJECT
    assert impact.after.verdict == dpb.VERDICT_ALLOW
    assert simulated.revision == applied.revision


async def test_pus_and_enforcer_status(
    replica: PolicyReplica, stub: service_grpc.PolicyServiceStub
) -> None:
    from trustwire.api.policy.v1 import enforcer_pb2

    await stub.RegisterEnforcer(
        pb.RegisterEnforcerRequest(
            enforcer=enforcer_pb2.Enforcer(id="node-1", addresses=["10.0.0.9:9000"])
        )
    )
    registered = await stub.RegisterPu(pb.RegisterPuRequest(pu=pu("web", "web", "10.0.0.1")))
    assert registered.pu.labels["enforcer"] == "node-1"
    assert registered.pu.labels["trust-domain"] == "td.example"
    snapshot = await replica.mirror.wait_for_revision(registered.pu.revision)
    assert snapshot.pus_by_enforcer == {"node-1": ("web-id",)}
    listed = await stub.ListEnforcers(pb.ListEnforcersRequest())
    (enforcer,) = listed.enforcers
    assert enforcer.status.pu_count == 1
    assert enforcer.status.lag_revisions == listed.current_revision
    await replica.repository.record_ack("node-1", snapshot.revision)
    listed = await stub.ListEnforcers(pb.ListEnforcersRequest(only_lagging=True))
    assert not listed.enforcers  # acks do not move the state revision
    await replica.repository.record_ack("node-1", snapshot.revision, ("BAD", "no"))
    (enforcer,) = (await stub.ListEnforcers(pb.ListEnforcersRequest())).enforcers
    assert enforcer.status.acked_revision == snapshot.revision
    assert enforcer.status.last_error.reason == "BAD"
    pus = await stub.ListPus(pb.ListPusRequest(namespace="shop"))
    assert [p.id for p in pus.pus] == ["web-id"]
    gone = await stub.DeregisterPu(pb.DeregisterPuRequest(pu_id="web-id"))
    assert not (await replica.mirror.wait_for_revision(gone.revision)).pus
    again = await stub.DeregisterPu(pb.DeregisterPuRequest(pu_id="web-id"))
    assert again.revision >= gone.revision


async def test_conflict_type_is_aborted() -> None:
    from trustwire.runtime import status_code_for

    assert status_code_for(Conflict("x")) is grpc.StatusCode.ABORTED
