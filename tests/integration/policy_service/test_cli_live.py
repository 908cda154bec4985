"""`trustwire apply|get|delete|explain|simulate` against a live replica, in process."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from trustwire.api.policy.v1 import policy_service_pb2 as pb
from trustwire.api.policy.v1 import policy_service_pb2_grpc as service_grpc
from trustwire_cli.main import main
from trustwire_policy.server import PolicyReplica

from .fixtures import K8S_POLICY, SHOP, pu

pytestmark = pytest.mark.etcd


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # The server runs on this event loop; the CLI runs its own in a thread.
    status = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRUSTWIRE_CONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("TRUSTWIRE_SERVER", raising=False)


async def test_apply_get_delete(
    replica: PolicyReplica, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = ("--server", replica.address)
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP + "---\n" + K8S_POLICY)
    status, out, err = await cli(capsys, "apply", "-f", str(path), "--dry-run", *server)
    assert status == 0, err
    assert "networkaccesspolicy/shop/web-to-db created (dry run)" in out
    status, out, err = await cli(capsys, "apply", "-f", str(path), "--wait", *server)
    assert status == 0, err
    assert "every enforcer applied revision" in out  # no enforcers: at once
    status, out, _ = await cli(capsys, "get", "policies", "-n", "shop", *server)
    assert "web-to-db" in out
    assert "db-ingress" in out
    assert "encrypt" in out
    status, out, _ = await cli(
        capsys, "get", "nap", "web-to-db", "-n", "shop", "-o", "yaml", *server
    )
    assert "resourceVersion:" in out
    assert "action: encrypt" in out
    status, out, _ = await cli(capsys, "get", "namespaces", "-o", "json", *server)
    assert json.loads(out)[0]["namespace"]["metadata"]["name"] == "shop"
    status, out, err = await cli(capsys, "delete", "nap", "web-to-db", "-n", "shop", *server)
    assert status == 0, err
    status, _, err = await cli(capsys, "delete", "nap", "web-to-db", "-n", "shop", *server)
    assert status == 1
    assert "not found" in err


async def test_explain_and_simulate_live_match_the_file_mode_shape(
    replica: PolicyReplica, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trustwire.runtime import create_channel

    async with create_channel(replica.address) as channel:
        stub = service_grpc.PolicyServiceStub(channel)
        await stub.RegisterPu(pb.RegisterPuRequest(pu=pu("web", "web", "10.0.0.1")))
        await stub.RegisterPu(pb.RegisterPuRequest(pu=pu("db", "db", "10.0.0.2")))
        await stub.Apply(pb.ApplyRequest(yaml=pb.YamlDocuments(text=SHOP + "---\n" + K8S_POLICY)))
    args = ("--from", "shop/web", "--to", "shop/db", "--port", "TCP/5432")
    status, out, err = await cli(
        capsys, "explain", *args, "-o", "json", "--server", replica.address
    )
    assert status == 0, err
    live = json.loads(out)
    assert (live["allowed"], live["encrypted"], live["reason"]) == (True, True, "K8S_ALLOWED")
    assert live["ingress"]["policy"] == "shop/db-ingress"
    status, out, err = await cli(capsys, "explain", *args, "--server", replica.address)
    assert "ALLOWED (encrypted)" in out
    status, out, err = await cli(
        capsys, "simulate", "--port", "TCP/5432", "-o", "json", "--server", replica.address
    )
    assert status == 0, err
    rows = json.loads(out)
    assert {(r["from"], r["to"]) for r in rows} == {
        (a, b) for a in ("shop/db", "shop/web") for b in ("shop/db", "shop/web")
    }


async def test_bad_input_and_unreachable_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHOP.replace("action: encrypt", "action: maybe"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    status, _, err = await cli(capsys, "apply", "-f", str(bad), "--server", address)
    assert status == 2
    assert "spec.action" in err
    assert err.count("\n") == 1
    good = tmp_path / "good.yaml"
    good.write_text(SHOP)
    status, _, err = await cli(capsys, "apply", "-f", str(good), "--server", address)
    assert status == 1
    assert address in err
    status, _, err = await cli(capsys, "get", "policies")
    assert status == 2
    assert "--server" in err
