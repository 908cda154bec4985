"""A policy replica on the session etcd, over mutual TLS, with a flow store in a temp file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.etcd import EtcdServer
from tests.unit.runtime.runtime_testkit import TRUST_DOMAIN, ThrowawayCA
from trustwire.store.etcd import EtcdStore
from trustwire_policy.server import PolicyReplica
from trustwire_policy.settings import EtcdSettings, FlowSettings, PolicySettings, TlsSettings

ADMIN = f"spiffe://{TRUST_DOMAIN}/admin/alice"
VIEWER = f"spiffe://{TRUST_DOMAIN}/viewer/victor"
NODE_1 = f"spiffe://{TRUST_DOMAIN}/enforcer/node-1"
NODE_2 = f"spiffe://{TRUST_DOMAIN}/enforcer/node-2"


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()


@pytest.fixture
async def replica(
    ca: ThrowawayCA, tmp_path: Path, etcd: EtcdServer, etcd_prefix: bytes
) -> AsyncIterator[PolicyReplica]:
    leaf = ca.issue([f"spiffe://{TRUST_DOMAIN}/service/policy"], server=True)
    (tmp_path / "cert.pem").write_bytes(leaf.certificate)
    (tmp_path / "key.pem").write_bytes(leaf.private_key)
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    settings = PolicySettings(
        listen_address="127.0.0.1:0",
        trust_domain=TRUST_DOMAIN,
        tls=TlsSettings(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"),
        etcd=EtcdSettings(
            endpoints=(etcd.endpoint,), key_root=etcd_prefix.decode() + "trustwire/v1/"
        ),
        flows=FlowSettings(path=tmp_path / "flows" / "flows.db", watch_buffer=100),
    )
    store = await EtcdStore.connect([etcd.endpoint], timeout=5.0)
    async with PolicyReplica(settings, store, close_store=True) as r:
        await r.mirror.wait_ready()
        yield r
