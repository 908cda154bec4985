"""`trustwire up --once` as a user runs it: a subprocess that starts the whole deployment,
drives the example connections, prints the table and tears everything down.

Asserts the exit status (0: every verdict equals `trustwire simulate -f examples/`), a few key
rows of the table, every verdict against `trustwire simulate -o json` run separately, the
process PU's rows (marked, enforced, as simulated), and that nothing is left behind: no
namespace of the demo, no live recorded process nor any process started for it, no process
PU cgroup, no new nftables table in the root namespace.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from trustwire_cli.deployment.scenario import load_scenario
from trustwire_cli.deployment.state import MANIFEST, Manifest
from trustwire_cli.deployment.topology import existing_namespaces, planned_namespaces
from trustwire_enforcer.datapath.cgroups import TrustwireCgroups

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]

REPO = Path(__file__).resolve().parents[3]
TIMEOUT_S = 180.0


def _root_nft_tables() -> str:
    done = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10)
    return done.stdout


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that name ``text`` (the test's own state directory:
    every process the demo starts names it in its arguments)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # exited meanwhile
        if text in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def _simulated() -> dict[tuple[str, str, str], str]:
    """`trustwire simulate -f examples/ -o json`, by (from, to, port): allow/encrypt/reject."""
    done = subprocess.run(
        [sys.executable, "-m", "trustwire_cli.main", "simulate", "-f", "examples", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    return {(r["from"], r["to"], str(r["port"])): r["action"] for r in json.loads(done.stdout)}


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


def _reclaim_namespaces(ours: set[str]) -> None:
    """Namespaces left by an interrupted run (a killed session, a killed CI job) hold no
    process: reclaim those. A live demo's namespaces do: never touch them, fail instead."""
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


def _cli(*argv: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustwire_cli.main", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
    )


def test_up_once_runs_the_examples_as_simulated_and_leaves_nothing(tmp_path: Path) -> None:
    pus = load_scenario(REPO / "examples").pus
    ours = set(planned_namespaces(pus))
    _reclaim_namespaces(ours)
    tables_before = _root_nft_tables()
    cgroups = TrustwireCgroups()
    cgroup_root_existed = cgroups.root.exists()
    process_pus = [pu for pu in pus if pu.is_process]
    assert [pu.key for pu in process_pus] == ["shop/backup"]
    state = tmp_path / "state"

    done = _cli("up", "--once", "--state-dir", str(state))
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

    # The process PU: started by `trustwire run` in host a's namespace, attested.
    assert re.search(
        r"shop/backup: process PU node-a\.backup, pid \d+ in cgroup \S+/trustwire/"
        r"node-a\.backup, started by 'trustwire run' in tw-host-a; attested pu-type=process "
        r"exe-sha256=[0-9a-f]{12}",
        done.stdout,
    ), done.stdout
    backup = "shop/backup (process)"
    process_rows = {k: r for k, r in rows.items() if backup in (k[0], k[1])}
    # Every other PU to its metrics port, and from it to every other PU's port.
    assert len(process_rows) == 2 * (len(pus) - 1)
    via_api = rows[(backup, "shop/api", "8080")]
    assert (via_api["VERDICT"], via_api["CLIENT"]) == ("allowed", "allowed")
    assert via_api["POLICY"] == "shop/backup-via-api"  # selected by its label, app=backup
    scrape_process = rows[("monitoring/prometheus", backup, "9090")]
    assert (scrape_process["VERDICT"], scrape_process["CLIENT"]) == ("allowed", "allowed")
    assert scrape_process["POLICY"] == "prometheus-scrapes-processes"  # by pu-type: process
    backup_db = rows[(backup, "shop/db", "5432")]
    assert backup_db["VERDICT"] == "rejected"
    assert backup_db["CLIENT"].startswith("rejected")
    assert backup_db["REASON"] == "K8S_ISOLATED_NO_MATCH"  # NetworkPolicy cannot admit it
    assert rows[("shop/frontend", backup, "9090")]["VERDICT"] == "rejected"
    assert "(process): a Linux process PU" in done.stdout

    # Every row, as `trustwire simulate` computes it on its own.
    simulated = _simulated()
    for (source, destination, port), row in rows.items():
        key = (source.removesuffix(" (process)"), destination.removesuffix(" (process)"), port)
        allowed = simulated[key] != "reject"
        assert (row["VERDICT"] == "allowed") == allowed, (key, row)
        assert row["CLIENT"].startswith("allowed" if allowed else "rejected"), (key, row)
        assert (row["ENCRYPTED"] == "yes") == (simulated[key] == "encrypt"), (key, row)
        assert row["SIMULATE"] == simulated[key], (key, row)

    report = json.loads((state / "report.json").read_text())
    assert len(report) == len(rows)
    assert all(r["match"] for r in report)
    types = {
        (r["source"], r["destination"]): (r["source_type"], r["destination_type"]) for r in report
    }
    assert types[("shop/backup", "shop/api")] == ("process", "pod")
    assert types[("monitoring/prometheus", "shop/backup")] == ("pod", "process")
    assert types[("shop/api", "shop/db")] == ("pod", "pod")

    # --once stopped the process PU itself, and its enforcer removed it.
    assert (
        "shop/backup: its command exited (trustwire run status 0); node-a removed PU "
        "node-a.backup, its rules and its cgroup" in done.stdout
    ), done.stdout

    # Nothing left: namespaces, processes (by recorded pid and start time), root nft tables.
    assert not existing_namespaces() & ours
    manifest = Manifest.load(state)
    assert (state / MANIFEST).is_file()
    assert len(manifest.processes) == 7  # etcd, identity, 2 replicas, 2 enforcers, 1 run
    assert not [p.name for p in manifest.processes if p.alive()]
    # ... nor the process PU's command (not recorded: a child of its `trustwire run`).
    assert not _processes_mentioning(str(state))
    assert manifest.cgroups == [str(cgroups.path("node-a.backup"))]
    assert not [c for c in manifest.cgroups if Path(c).exists()]
    if not cgroup_root_existed:
        assert not cgroups.root.exists()
    assert _root_nft_tables() == tables_before

    # down after a finished --once is a no-op that succeeds (idempotent).
    again = _cli("down", "--state-dir", str(state), timeout=60)
    assert again.returncode == 0, again.stderr


def test_down_removes_a_process_pu_whose_command_outlived_its_trustwire_run(
    tmp_path: Path,
) -> None:
    """`up --keep` leaves the process PU running; its `trustwire run` is then SIGKILLed, so
    its command runs on (no longer traced, it survives) and nothing removes its PU. `down`
    must still leave nothing: the command killed through its cgroup, the cgroup removed."""
    pus = load_scenario(REPO / "examples").pus
    ours = set(planned_namespaces(pus))
    _reclaim_namespaces(ours)
    state = tmp_path / "state"
    up = _cli("up", "--once", "--keep", "--state-dir", str(state))
    try:
        assert up.returncode == 0, f"stdout:\n{up.stdout}\nstderr:\n{up.stderr}"
        manifest = Manifest.load(state)
        run = next(p for p in manifest.processes if p.name == "pu-backup")
        cgroup = Path(manifest.cgroups[0])
        members = TrustwireCgroups.procs(cgroup)
        assert members, "the process PU's command runs in its cgroup"
        assert run.alive()
        os.kill(run.pid, signal.SIGKILL)
        assert [m for m in TrustwireCgroups.procs(cgroup) if m in members], "it runs on"
    finally:
        down = _cli("down", "--state-dir", str(state), timeout=60)
    assert down.returncode == 0, down.stderr
    assert not existing_namespaces() & ours
    assert not [p.name for p in Manifest.load(state).processes if p.alive()]
    assert not _processes_mentioning(str(state))
    assert not cgroup.exists()
