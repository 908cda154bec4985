"""The default-deny table covers every rpc; roles and own-id rules hold over real mTLS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.policy_service.fixtures import SHOP, pu, yaml_apply
from tests.unit.runtime.runtime_testkit import TRUST_DOMAIN, ThrowawayCA
from trustwire.api.policy.v1 import policy_service_pb2 as pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire.errors import PermissionDenied
from trustwire.runtime import Role, assert_table_covers, create_channel
from trustwire.store.memory import MemoryStore
from trustwire_policy.api.authorization import AUTHORIZATION, POLICY_SERVICE, method
from trustwire_policy.server import PolicyReplica
from trustwire_policy.settings import PolicySettings, TlsSettings

ADMIN = f"spiffe://{TRUST_DOMAIN}/admin/alice"
VIEWER = f"spiffe://{TRUST_DOMAIN}/viewer/victor"
NODE_1 = f"spiffe://{TRUST_DOMAIN}/enforcer/node-1"


def test_table_covers_every_rpc() -> None:
    assert_table_covers(AUTHORIZATION, [POLICY_SERVICE])


def test_roles() -> None:
    rules = AUTHORIZATION.rules
    assert Role.VIEWER not in rules[method("Apply")]
    assert rules[method("WatchPolicy")] == {Role.ENFORCER}
    assert rules[method("RegisterPu")] == {Role.ENFORCER}
    assert Role.SERVICE in rules[method("Apply")]  # the gateway acts for admins


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


@pytest.fixture
async def replica(ca: ThrowawayCA, tmp_path: Path) -> AsyncIterator[PolicyReplica]:
    leaf = ca.issue([f"spiffe://{TRUST_DOMAIN}/service/policy"], server=True)
    (tmp_path / "cert.pem").write_bytes(leaf.certificate)
    (tmp_path / "key.pem").write_bytes(leaf.private_key)
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    settings = PolicySettings(
        listen_address="127.0.0.1:0",
        trust_domain=TRUST_DOMAIN,
        tls=TlsSettings(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"),
    )
    async with PolicyReplica(settings, MemoryStore()) as r:
        await r.mirror.wait_ready()
        yield r


async def test_viewer_may_not_apply(replica: PolicyReplica, ca: ThrowawayCA) -> None:
    async with create_channel(replica.address, ca.client_tls(VIEWER)) as channel:
        stub = service_grpc.PolicyServiceStub(channel)
        with pytest.raises(PermissionDenied) as raised:
            await stub.Apply(yaml_apply(SHOP))
        assert raised.value.reason == "ROLE_NOT_ALLOWED"
        await stub.ListPolicies(pb.ListPoliciesRequest())  # reads are fine
    async with create_channel(replica.address, ca.client_tls(ADMIN)) as channel:
        await service_grpc.PolicyServiceStub(channel).Apply(yaml_apply(SHOP))


async def test_enforcer_registers_only_its_own_pus(replica: PolicyReplica, ca: ThrowawayCA) -> None:
    async with create_channel(replica.address, ca.client_tls(NODE_1)) as channel:
        stub = service_grpc.PolicyServiceStub(channel)
        with pytest.raises(PermissionDenied) as raised:
            await stub.RegisterPu(pb.RegisterPuRequest(pu=pu("web", "web", "10.0.0.1", "node-2")))
        assert raised.value.reason == "ENFORCER_MISMATCH"
        own = pu("web", "web", "10.0.0.1", "")
        stored = await stub.RegisterPu(pb.RegisterPuRequest(pu=own))
        assert stored.pu.enforcer_id == "node-1"
        with pytest.raises(PermissionDenied):
            await stub.ListPus(pb.ListPusRequest(enforcer_id="node-2"))
        with pytest.raises(PermissionDenied):
            await stub.Apply(yaml_apply(SHOP))
