"""A policy replica on the session etcd (own key root per test) and a client stub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from tests.support.etcd import EtcdServer
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire.runtime import create_channel
from trustwire.store.etcd import EtcdStore
from trustwire_policy.codec import Keyspace
from trustwire_policy.server import PolicyReplica
from trustwire_policy.settings import EtcdSettings, PolicySettings


@pytest.fixture
def settings(etcd: EtcdServer, etcd_prefix: bytes) -> PolicySettings:
    return PolicySettings(
        listen_address="127.0.0.1:0",
        trust_domain="td.example",
        etcd=EtcdSettings(
            endpoints=(etcd.endpoint,), key_root=etcd_prefix.decode() + "trustwire/v1/"
        ),
    )


@pytest.fixture
def keys(settings: PolicySettings) -> Keyspace:
    return Keyspace(settings.etcd.key_root)


@pytest.fixture
async def store(etcd: EtcdServer) -> AsyncIterator[EtcdStore]:
    s = await EtcdStore.connect([etcd.endpoint], timeout=5.0)
    yield s
    await s.close()


@pytest.fixture
async def replica(settings: PolicySettings, store: EtcdStore) -> AsyncIterator[PolicyReplica]:
    async with PolicyReplica(settings, store) as r:
        await r.mirror.wait_ready()
        yield r


@pytest.fixture
async def stub(replica: PolicyReplica) -> AsyncIterator[service_grpc.PolicyServiceStub]:
    async with create_channel(replica.address) as channel:
        yield service_grpc.PolicyServiceStub(channel)


def with_limits(settings: PolicySettings, **limits: int) -> PolicySettings:
    return replace(settings, limits=replace(settings.limits, **limits))
