"""A replica whose store is unreachable serves, but reports NOT_SERVING until it has state."""

from __future__ import annotations

import socket

from grpc_health.v1 import health_pb2, health_pb2_grpc

from trustwire.runtime import create_channel
from trustwire.store.etcd import EtcdStore
from trustwire_policy.server import PolicyReplica
from trustwire_policy.settings import PolicySettings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_not_serving_until_first_load() -> None:
    store = EtcdStore([f"127.0.0.1:{_closed_port()}"], timeout=0.5, connect_timeout=0.2)
    settings = PolicySettings(listen_address="127.0.0.1:0")
    async with PolicyReplica(settings, store, close_store=True) as replica:
        async with create_channel(replica.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert not replica.mirror.ready
