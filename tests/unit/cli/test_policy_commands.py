"""`trustwire simulate` / `explain`: the scripted interface (flags, JSON fields, exit codes)
and the README's demo output over examples/."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trustwire_cli.main import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = str(ROOT / "examples")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_simulate_json_covers_every_ordered_pair_and_probe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(
        capsys,
        "simulate",
        "-f",
        EXAMPLES,
        "--port",
        "TCP/8080",
        "--port",
        "tcp/5432",
        "--probe",
        "shop/api,203.0.113.10,TCP/443",
        "-o",
        "json",
    )
    assert status == 0, err
    rows = json.loads(out)
    assert len(rows) == 5 * 5 * 2 + 1
    for row in rows:
        assert {"from", "to", "protocol", "port", "allowed", "reason", "policy", "tier"} <= set(row)
        assert isinstance(row["port"], int)
        assert isinstance(row["allowed"], bool)
    pairs = {(r["from"], r["to"], r["protocol"], r["port"]) for r in rows[:50]}
    assert len(pairs) == 50
    probe = rows[-1]
    assert (probe["from"], probe["to"], probe["port"], probe["allowed"]) == (
        "shop/api",
        "203.0.113.10",
        443,
        True,
    )
    assert probe["policy"] == "shop/api-to-payments"
    assert probe["ingress"] is None  # no enforcer outside the cluster


# The examples' expected reachability, written out by hand from the policies' comments.
EXPECTED_EXAMPLES = {
    # (from, to, port): action
    ("shop/api", "shop/db", 5432): "encrypt",  # Kubernetes allows, Trustwire encrypts
    ("shop/frontend", "shop/db", 5432): "reject",  # security-tier reject
    ("shop/backup", "shop/db", 5432): "reject",  # Trustwire allow cannot override Kubernetes
    ("shop/frontend", "shop/api", 8080): "allow",
    ("monitoring/prometheus", "shop/api", 8080): "allow",
    ("monitoring/prometheus", "shop/frontend", 8080): "allow",
    ("monitoring/prometheus", "shop/db", 8080): "reject",  # db is isolated by Kubernetes
    ("monitoring/prometheus", "shop/backup", 8080): "reject",  # no `http` port on the process
    ("shop/api", "shop/frontend", 8080): "reject",  # shop's default is reject
}


def test_examples_matrix_is_what_the_policies_say(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "simulate", "-f", EXAMPLES, "-o", "json")
    assert status == 0, err
    rows = json.loads(out)
    # Without --port: every declared port (5432, 8080, 9090) for all 25 ordered pairs.
    assert sorted({r["port"] for r in rows}) == [5432, 8080, 9090]
    actions = {(r["from"], r["to"], r["port"]): r["action"] for r in rows}
    for key, action in EXPECTED_EXAMPLES.items():
        assert actions[key] == action, key
    for r in rows:
        if r["from"] == r["to"]:
            assert r["allowed"]
            assert r["reason"] == "SELF_TRAFFIC"
    audit = next(
        r
        for r in rows
        if (r["from"], r["to"], r["port"]) == ("monitoring/prometheus", "shop/api", 8080)
    )
    assert audit["observedAllowed"] is False  # the observe policy would reject it


def test_simulate_table_prints_a_matrix_per_port(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "simulate", "-f", EXAMPLES, "--port", "TCP/5432")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "TCP/5432  (6/25 allowed)"
    api_row = next(line for line in lines if " shop/api " in line)
    assert api_row.split()[-5:] == ["X", ".", "X", "E", "X"]
    assert "legend:" in out


def test_explain_text_names_policy_tier_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys,
        "explain",
        "-f",
        EXAMPLES,
        "--from",
        "shop/backup",
        "--to",
        "shop/db",
        "--port",
        "TCP/5432",
    )
    assert status == 0
    assert out.startswith("shop/backup -> shop/db TCP/5432: DENIED")
    assert "K8S_ISOLATED_NO_MATCH" in out
    assert "shop/db-ingress" in out
    assert "shop/backup-reads-db would allow it" in out


def test_explain_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys,
        "explain",
        "-f",
        EXAMPLES,
        "--from",
        "10.20.1.20",
        "--to",
        "shop/db",
        "--port",
        "TCP/5432",
        "-o",
        "json",
    )
    assert status == 0
    doc = json.loads(out)
    # An IP that belongs to exactly one workload is that workload.
    assert doc["from"] == "10.20.1.20"
    assert doc["egress"]["policy"] == "shop/api-to-db-encrypted"
    assert doc["ingress"] == {
        "allowed": True,
        "action": "encrypt",
        "encrypted": True,
        "reason": "K8S_ALLOWED",
        "tier": "kubernetes",
        "policy": "shop/db-ingress",
        "rule": 0,
        "observedAllowed": True,
        "observedPolicy": None,
        "overriddenPolicy": None,
    }


def test_stdin_input(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "examples" / "10-workloads.yaml").read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    status, out, _ = run(capsys, "simulate", "-f", "-", "--port", "TCP/8080", "-o", "json")
    assert status == 0
    assert len(json.loads(out)) == 25


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "-f", "missing.yaml"], "missing.yaml: no such file or directory"),
        (["simulate", "-f", EXAMPLES, "--port", "TCP/0"], "--port 'TCP/0'"),
        (["simulate", "-f", EXAMPLES, "--port", "ICMP/1"], "unknown protocol 'ICMP'"),
        (
            ["simulate", "-f", EXAMPLES, "--probe", "shop/api,shop/db"],
            "expected FROM,TO,PROTO/PORT",
        ),
        (
            ["explain", "-f", EXAMPLES, "--from", "shop/nope", "--to", "shop/db", "--port", "80"],
            "no such workload",
        ),
        (["simulate"], "required: -f/--filename"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


def test_bad_yaml_names_file_document_and_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\n"
        "spec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 99999}]\n"
    )
    status, _, err = run(capsys, "simulate", "-f", str(bad), "--port", "80")
    assert status == 2
    assert (
        f"{bad}: document 2 (NetworkPolicy x/p): "
        "spec.ingress[0].ports[0].port: must be between 1 and 65535" in err
    )
    assert "Traceback" not in err


def test_malformed_yaml_reports_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n")
    status, _, err = run(capsys, "simulate", "-f", str(bad), "--port", "80")
    assert status == 2
    assert "broken.yaml: document 1: line" in err
    assert "invalid YAML" in err


def test_installed_command_runs_the_readme_demo() -> None:
    # The console script itself, as the README runs it (a real process, real exit code).
    exe = Path(sys.executable).with_name("trustwire")
    proc = subprocess.run(
        [
            str(exe),
            "explain",
            "-f",
            EXAMPLES,
            "--from",
            "shop/frontend",
            "--to",
            "shop/db",
            "--port",
            "TCP/5432",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "DENIED" in proc.stdout
    assert "shop/frontend-never-db" in proc.stdout
