"""Fixtures: a real control plane per test, a two-host topology, in-process enforcers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from tests.e2e.enforcer.harness import (
    ControlPlane,
    Host,
    enforcer_settings,
    start_control_plane,
    stop_all,
    stop_control_plane,
)
from tests.support.etcd import EtcdServer
from tests.support.netns import Topology, build_topology, unique_prefix
from trustwire_enforcer.daemon import Enforcer
from trustwire_enforcer.local_api import LocalApiClient

HostFactory = Callable[..., Awaitable[Host]]


@pytest.fixture
def topo() -> Iterator[Topology]:
    topology = build_topology(unique_prefix(), pus_per_host=2)
    try:
        yield topology
    finally:
        topology.destroy()


@pytest.fixture
async def plane(
    tmp_path: Path, etcd: EtcdServer, etcd_prefix: bytes
) -> AsyncIterator[ControlPlane]:
    control = await start_control_plane(tmp_path, etcd.endpoint, etcd_prefix.decode())
    try:
        yield control
    finally:
        await stop_control_plane(control)


@pytest.fixture
async def hosts(plane: ControlPlane, tmp_path: Path) -> AsyncIterator[HostFactory]:
    """``await hosts("a")``: an enforcer for topology host ``a`` (node ``node-a``)."""
    started: list[Host] = []

    async def make(
        key: str, *, tracer_provider: TracerProvider | None = None, **overrides: Any
    ) -> Host:
        node = f"node-{key}"
        settings = await enforcer_settings(plane, node, tmp_path / node, **overrides)
        enforcer = Enforcer(settings, tracer_provider=tracer_provider or TracerProvider())
        await enforcer.start()
        host = Host(key, enforcer, LocalApiClient(settings.local_socket))
        started.append(host)
        return host

    try:
        yield make
    finally:
        await stop_all(started)
