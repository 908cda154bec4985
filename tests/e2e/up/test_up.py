"""`trustwire up --once` as a user runs it: a subprocess that starts the whole deployment,
drives the example connections, prints the table and tears everything down.

Asserts the exit status (0: every verdict equals `trustwire simulate -f examples/`), a few key
rows of the table, and that nothing is left behind: no namespace of the demo, no live recorded
process, no new nftables table in the root namespace.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trustwire_cli.deployment.scenario import load_scenario
from trustwire_cli.deployment.state import MANIFEST, Manifest
from trustwire_cli.deployment.topology import existing_namespaces, planned_namespaces

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]

REPO = Path(__file__).resolve().parents[3]
TIMEOUT_S = 180.0


def _root_nft_tables() -> str:
    done = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10)
    return done.stdout


def _table(stdout: str) -> dict[tuple[str, str, str], dict[str, str]]:
    """Rows of the printed table by (source, destination, port); columns split on 2+ spaces."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SOURCE "))
    headers = re.split(r"\s{2,}", lines[start].strip())
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        cells = dict(zip(headers, re.split(r"\s{2,}", line.strip()), strict=True))
        rows[(cells["SOURCE"], cells["DESTINATION"], cells["PORT"])] = cells
    return rows


def test_up_once_runs_the_examples_as_simulated_and_leaves_nothing(tmp_path: Path) -> None:
    pus = load_scenario(REPO / "examples").pus
    ours = set(planned_namespaces(pus))
    # Namespaces left by an interrupted run (a killed session, a killed CI job) hold no
    # process: reclaim those. A live demo's namespaces do: never touch them, fail instead.
    for name in sorted(existing_namespaces() & ours):
        pids = subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
        ).stdout.split()
        if not pids:
            subprocess.run(["ip", "netns", "delete", name], check=False)
    if existing_namespaces() & ours:
        pytest.fail(
            f"demo namespaces exist before the test: {sorted(existing_namespaces() & ours)}"
        )
    tables_before = _root_nft_tables()
    state = tmp_path / "state"

    done = subprocess.run(
        [sys.executable, "-m", "trustwire_cli.main", "up", "--once", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr

    rows = _table(done.stdout)
    api_db = rows[("shop/api", "shop/db", "5432")]
    assert api_db["VERDICT"] == "allowed"
    assert api_db["CLIENT"] == "allowed"
    assert api_db["ENCRYPTED"] == "yes"
    frontend_db = rows[("shop/frontend", "shop/db", "5432")]
    assert frontend_db["VERDICT"] == "rejected"
    assert frontend_db["CLIENT"].startswith("rejected")
    assert frontend_db["POLICY"] == "shop/frontend-never-db"
    assert frontend_db["REASON"] == "POLICY_REJECT"
    frontend_api = rows[("shop/frontend", "shop/api", "8080")]
    assert frontend_api["VERDICT"] == "allowed"
    assert frontend_api["ENCRYPTED"] == "no"
    scrape = rows[("monitoring/prometheus", "shop/api", "8080")]
    assert scrape["VERDICT"] == "allowed"
    assert "audit-cross-namespace-scrapes" in scrape["OBSERVE"]
    assert all(re.fullmatch(r"[0-9a-f]{32}", row["TRACE ID"]) for row in rows.values())
    assert all("DIFFERS" not in row["SIMULATE"] for row in rows.values())

    report = json.loads((state / "report.json").read_text())
    assert len(report) == len(rows)
    assert all(r["match"] for r in report)

    # Nothing left: namespaces, processes (by recorded pid and start time), root nft tables.
    assert not existing_namespaces() & ours
    manifest = Manifest.load(state)
    assert (state / MANIFEST).is_file()
    assert len(manifest.processes) == 6
    assert not [p.name for p in manifest.processes if p.alive()]
    assert _root_nft_tables() == tables_before

    # down after a finished --once is a no-op that succeeds (idempotent).
    again = subprocess.run(
        [sys.executable, "-m", "trustwire_cli.main", "down", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
