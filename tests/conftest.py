"""Fixtures for every test directory. Keep this small: fixtures live in ``tests/support`` and
are re-exported here; directory-specific ones belong in that directory's ``conftest.py``."""

from __future__ import annotations

from tests.support.etcd_fixtures import etcd, etcd_binary, etcd_cluster, etcd_prefix, fresh_etcd

__all__ = ["etcd", "etcd_binary", "etcd_cluster", "etcd_prefix", "fresh_etcd"]
