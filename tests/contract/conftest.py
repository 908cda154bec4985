"""Backends for the store contract suite.

Every test gets a ``Backend``: a store plus a key prefix of its own, so the etcd backend can
share the session's etcd. Tests that compact or count watches need a server nobody else
touches: ``isolated`` gives them a module-wide etcd of this suite's own (compaction is global
and never undone, so those tests only ever compact forward, at revisions they wrote).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.support.etcd import EtcdServer
from trustwire.store import KeyValueStore
from trustwire.store.etcd import EtcdStore
from trustwire.store.memory import MemoryStore

BACKENDS = ["memory", pytest.param("etcd", marks=pytest.mark.etcd)]


@dataclass(frozen=True)
class Backend:
    name: str
    store: KeyValueStore
    prefix: str  # every key a test writes lives under it
    # Watches open on the backend's server (etcd counts them server-wide: only meaningful on
    # the isolated server).
    open_watches: Callable[[], Awaitable[int]]

    def key(self, name: str) -> str:
        return self.prefix + name


def _prefix(request: pytest.FixtureRequest) -> str:
    return f"/test/{hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]}/"


async def _memory_watches(store: MemoryStore) -> int:
    return store.active_watches


_WATCHER_METRIC = re.compile(r"^etcd_debugging_mvcc_watcher_total (\d+)", re.MULTILINE)


async def _etcd_watches(server: EtcdServer) -> int:
    def scrape() -> int:
        with urllib.request.urlopen(f"{server.member.client_url}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        found = _WATCHER_METRIC.search(text)
        assert found, "etcd /metrics lacks etcd_debugging_mvcc_watcher_total"
        return int(found.group(1))

    return await asyncio.to_thread(scrape)


async def _backend(name: str, request: pytest.FixtureRequest, server: EtcdServer | None) -> Backend:
    if name == "memory":
        memory = MemoryStore()
        return Backend(name, memory, _prefix(request), lambda: _memory_watches(memory))
    assert server is not None
    store = await EtcdStore.connect([server.endpoint], timeout=5.0)
    return Backend(name, store, _prefix(request), lambda: _etcd_watches(server))


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """A store on the shared backend (session etcd): do not compact or count watches."""
    server = request.getfixturevalue("etcd") if request.param == "etcd" else None
    b = await _backend(request.param, request, server)
    yield b
    await b.store.close()


@pytest.fixture(scope="module")
def isolated_etcd(
    etcd_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EtcdServer]:
    with EtcdServer(tmp_path_factory.mktemp("contract-etcd"), binary=etcd_binary) as server:
        yield server


@pytest.fixture(params=BACKENDS)
async def isolated(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """A store on a server only this suite uses: may compact forward and count watches."""
    server = request.getfixturevalue("isolated_etcd") if request.param == "etcd" else None
    b = await _backend(request.param, request, server)
    yield b
    await b.store.close()


@pytest.fixture(params=BACKENDS)
async def fresh(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """A store on a brand-new server (nothing written yet)."""
    server = request.getfixturevalue("fresh_etcd") if request.param == "etcd" else None
    b = await _backend(request.param, request, server)
    yield b
    await b.store.close()
