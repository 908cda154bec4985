"""`trustwire pu add|list|rm` against a running enforcer's local API (root, Unix socket)."""

from __future__ import annotations

import asyncio
import json
import stat

import pytest

from tests.e2e.enforcer.conftest import HostFactory
from tests.e2e.enforcer.harness import ControlPlane, converge, serves
from tests.support.netns import Topology
from trustwire_cli.main import main

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = await asyncio.to_thread(main, list(argv))
    return status, capsys.readouterr().out


async def test_pu_add_list_rm_through_the_local_socket(
    plane: ControlPlane,
    hosts: HostFactory,
    topo: Topology,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a = await hosts("a")
    socket_path = a.enforcer.settings.local_socket
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    a1 = topo.pu("a1")
    common = ("--socket", str(socket_path))

    status, out = await cli(
        capsys, "pu", "add", "--netns", a1.name, "--namespace", "shop",
        "--label", "app=web", "--port", "http:8080", "--fail-mode", "open", "-o", "json",
        *common,
    )  # fmt: skip
    assert status == 0, out
    added = json.loads(out)[0]
    assert added["ips"] == [a1.ip]
    assert added["fail_mode"] == "open"
    await converge([a], serves(added["id"]))

    status, out = await cli(capsys, "pu", "list", "-o", "json", *common)
    assert status == 0
    [listed] = json.loads(out)
    assert listed["id"] == added["id"]
    assert listed["state"] == "enforced"
    assert listed["labels"]["app"] == "web"

    status, out = await cli(capsys, "pu", "add", "--netns", a1.name, "--namespace", "shop",
                            "--label", "namespace=x", *common)  # fmt: skip
    assert status == 2  # reserved label: bad input

    status, _ = await cli(capsys, "pu", "rm", added["id"], *common)
    assert status == 0
    status, out = await cli(capsys, "pu", "list", "-o", "json", *common)
    assert json.loads(out) == []
