"""Fixtures: a real identity service on loopback over a real etcd (the session's, under a
per-test key prefix)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.etcd import EtcdServer
from trustwire.store.etcd import EtcdStore
from trustwire_identity.server import IdentityServer

from .identity_testkit import MovableClock, PrefixedStore, settings_for


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def store(etcd: EtcdServer, etcd_prefix: bytes) -> AsyncIterator[PrefixedStore]:
    inner = await EtcdStore.connect([etcd.endpoint])
    try:
        yield PrefixedStore(inner, etcd_prefix.decode())
    finally:
        await inner.close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "identity"


@pytest.fixture
async def identity(
    store: PrefixedStore, clock: MovableClock, state_dir: Path
) -> AsyncIterator[IdentityServer]:
    server = await IdentityServer.start(settings_for(state_dir), store=store, clock=clock)
    try:
        yield server
    finally:
        await server.stop()
