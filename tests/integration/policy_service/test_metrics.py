"""A policy replica's Prometheus endpoint: Apply results, the mirror's revision, WatchPolicy
streams, views sent and acks, scraped over real HTTP from a replica on a real etcd."""

from __future__ import annotations

import dataclasses

import pytest

from tests.e2e.enforcer.test_metrics import samples, value
from trustwire.api.policy.v1 import enforcer_pb2
from trustwire.api.policy.v1 import policy_service_pb2 as pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire.errors import DocumentError
from trustwire.runtime import create_channel
from trustwire.store.etcd import EtcdStore
from trustwire_policy.distribution import PolicyClient
from trustwire_policy.server import PolicyReplica
from trustwire_policy.settings import PolicySettings

from .fixtures import SHOP, pu

pytestmark = pytest.mark.etcd

WAIT = 10.0
BAD = (
    "apiVersion: trustwire.io/v1\nkind: NetworkAccessPolicy\n"
    "metadata: {name: bad, namespace: shop}\nspec: {subject: {}, object: {}, action: allw}\n"
)


async def test_replica_metrics_count_applies_streams_and_acks(
    settings: PolicySettings, store: EtcdStore
) -> None:
    settings = dataclasses.replace(settings, metrics_address="127.0.0.1:0")
    async with PolicyReplica(settings, store) as replica:
        await replica.mirror.wait_ready()
        address = replica.metrics_address
        assert address.startswith("127.0.0.1:")
        before = await samples(address)
        assert value(before, "trustwire_policy_watch_streams") == 0

        async with create_channel(replica.address) as channel:
            stub = service_grpc.PolicyServiceStub(channel)
            apply = pb.ApplyRequest(yaml=pb.YamlDocuments(text=SHOP, source_name="shop.yaml"))
            await stub.Apply(apply, timeout=WAIT)
            bad = pb.ApplyRequest(yaml=pb.YamlDocuments(text=BAD, source_name="bad.yaml"))
            with pytest.raises(DocumentError) as refused:
                await stub.Apply(bad, timeout=WAIT)

        await replica.repository.register_enforcer(enforcer_pb2.Enforcer(id="node-1"))
        await replica.repository.register_pu(pu("web", "web", "10.0.0.1", "node-1"))
        client = PolicyClient("node-1", [replica.address])
        client.start()
        try:
            await client.wait_for(lambda c: c.view is not None, WAIT)
            await replica.servicer.distribution.flush()  # type: ignore[union-attr]
            during = await samples(address)
        finally:
            await client.stop()

    apply_ok = value(during, "trustwire_policy_apply_total", mode="write", result="OK")
    assert apply_ok - value(before, "trustwire_policy_apply_total", mode="write", result="OK") == 1
    # The refused one, under the reason the caller got.
    reason = refused.value.reason
    assert value(during, "trustwire_policy_apply_total", mode="write", result=reason) == 1
    assert value(before, "trustwire_policy_apply_total", mode="write", result=reason) == 0
    assert value(during, "trustwire_policy_state_revision") > 0
    assert value(during, "trustwire_policy_watch_streams") == 1
    # The generic per-RPC metric of the runtime, with the final status codes.
    rpc = "trustwire_rpc_requests_total"
    service = "trustwire.api.policy.v1.PolicyService"
    assert value(during, rpc, service=service, method="Apply", code="OK") == 1
    assert value(during, rpc, service=service, method="Apply", code="INVALID_ARGUMENT") == 1
    assert value(during, "trustwire_policy_watch_responses_total", kind="snapshot") >= 1
    assert value(during, "trustwire_policy_watch_acks_total", result="ack") >= 1
    assert value(during, "trustwire_policy_watch_acks_total", result="nack") == 0
