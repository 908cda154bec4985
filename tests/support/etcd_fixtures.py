"""pytest fixtures for real etcd servers (re-exported by ``tests/conftest.py``).

- ``etcd``: one server for the whole session. Tests share it, so give each test its own key
  prefix (``etcd_prefix``) and never stop, restart or compact it.
- ``fresh_etcd``: a server of the test's own, for tests that stop, restart, kill or compact.
- ``etcd_cluster``: three members on loopback, for quorum and failover tests.

A missing etcd binary fails these fixtures instead of skipping them: a skipped integration test
would hide a machine that was never bootstrapped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from tests.support.etcd import EtcdCluster, EtcdNotFoundError, EtcdServer, find_etcd_binary


@pytest.fixture(scope="session")
def etcd_binary() -> str:
    """Path of the etcd binary; fails the test with a bootstrap hint when there is none."""
    try:
        return find_etcd_binary()
    except EtcdNotFoundError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)  # outside the except: no chained traceback


@pytest.fixture(scope="session")
def etcd(etcd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """A running single-member etcd shared by the session (do not stop or compact it)."""
    with EtcdServer(tmp_path_factory.mktemp("etcd"), binary=etcd_binary) as server:
        yield server


@pytest.fixture
def fresh_etcd(etcd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """A running single-member etcd owned by this test; stopped at teardown."""
    with EtcdServer(tmp_path_factory.mktemp("fresh-etcd"), binary=etcd_binary) as server:
        yield server


@pytest.fixture
def etcd_cluster(
    etcd_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EtcdCluster]:
    """A running three-member etcd cluster owned by this test; stopped at teardown."""
    with EtcdCluster(tmp_path_factory.mktemp("etcd-cluster"), size=3, binary=etcd_binary) as c:
        yield c


@pytest.fixture
def etcd_prefix(request: pytest.FixtureRequest) -> bytes:
    """A key prefix unique to this test, so tests can share the session ``etcd``."""
    digest = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    return f"/test/{digest}/".encode()
