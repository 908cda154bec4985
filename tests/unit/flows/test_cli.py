"""`trustwire flows|suggest` input handling: bad input exits 2 with one line; an unreachable
server exits 1 naming it."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import pytest

from trustwire.errors import InvalidArgument
from trustwire_cli.flow_commands import parse_duration
from trustwire_cli.main import main


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRUSTWIRE_CONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("TRUSTWIRE_SERVER", raising=False)


def test_parse_duration() -> None:
    assert parse_duration("10m", flag="--since") == timedelta(minutes=10)
    assert parse_duration("1h30m", flag="--since") == timedelta(minutes=90)
    assert parse_duration("250ms", flag="--since") == timedelta(milliseconds=250)
    for bad in ("", "10", "m", "-5m", "10x", "0s", "1h 5m"):
        with pytest.raises(InvalidArgument):
            parse_duration(bad, flag="--since")


@pytest.mark.parametrize(
    "argv",
    [
        ["flows", "--since", "ten", "--server", "127.0.0.1:1"],
        ["flows", "-o", "yaml", "--server", "127.0.0.1:1"],
        ["flows", "--limit", "0", "--server", "127.0.0.1:1"],
        ["suggest", "--since", "1y", "--server", "127.0.0.1:1"],
        ["flows"],  # no server anywhere
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("trustwire")
    assert err.count("\n") == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", ["flows", "suggest"])
def test_unreachable_server_exits_1_naming_it(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    assert main([command, "--server", address]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the policy server at {address}" in err
