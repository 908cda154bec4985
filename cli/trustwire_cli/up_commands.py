"""`trustwire up` (a whole local deployment and a demo on it) and `trustwire down`.

``up`` needs root (network namespaces, nftables) and etcd (``scripts/bootstrap`` installs it).
It prints each step, then the table of the demo's connections; with ``--once`` it stops the
process PUs (checking that their enforcer removed them), tears down and exits 0 when every
observed verdict equals ``trustwire simulate -f examples/`` (1 and the differing connections
otherwise); without, it keeps the deployment until Ctrl-C or SIGTERM.
See docs/local-deployment.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from trustwire.errors import FailedPrecondition, TrustwireError

from .deployment.deployment import LocalDeployment, down, pu_summary
from .deployment.report import mismatches, render
from .deployment.scenario import load_scenario
from .deployment.state import prepare_state_dir
from .deployment.topology import check_namespaces_free

__all__ = ["register"]

DEFAULT_STATE_DIR = Path("/run/trustwire/up")
ETCD_BIN_ENV = "TRUSTWIRE_ETCD_BIN"
_REPO = Path(__file__).resolve().parents[2]


def register(sub: Any) -> None:
    up = sub.add_parser(
        "up", help="start a whole local deployment (etcd, identity, policy, 2 hosts) and a demo"
    )
    up.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"logs, pids and service state (default {DEFAULT_STATE_DIR})",
    )
    up.add_argument(
        "--examples",
        type=Path,
        default=None,
        help="example cluster to run (default: ./examples, else the repository's)",
    )
    up.add_argument("--once", action="store_true", help="exit after the table (0: as simulated)")
    up.add_argument(
        "--keep",
        action="store_true",
        help="leave everything running on exit (then: trustwire down)",
    )
    up.set_defaults(handler=run_up)

    dn = sub.add_parser("down", help="stop what 'trustwire up' started and delete its namespaces")
    dn.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    dn.set_defaults(handler=run_down)


# ---------------------------------------------------------------------------- checks


def _etcd_binary() -> str:
    configured = os.environ.get(ETCD_BIN_ENV)
    if configured:
        if os.access(configured, os.X_OK):
            return configured
        raise FailedPrecondition(
            f"{ETCD_BIN_ENV}={configured} is not executable: run scripts/bootstrap"
        )
    for candidate in (shutil.which("etcd"), "/usr/bin/etcd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FailedPrecondition("etcd not found: run scripts/bootstrap")


def _preflight() -> str:
    if os.geteuid() != 0:
        raise FailedPrecondition(
            "trustwire up needs root (it creates network namespaces and nftables rules): "
            "run it with sudo"
        )
    for tool in ("ip", "nft", "nsenter"):
        if shutil.which(tool) is None:
            raise FailedPrecondition(f"'{tool}' not found: run scripts/bootstrap")
    return _etcd_binary()


def _examples(flag: Path | None) -> Path:
    if flag is not None:
        return flag
    here = Path.cwd() / "examples"
    return here if here.is_dir() else _REPO / "examples"


# -------------------------------------------------------------------------------- up


def run_up(args: argparse.Namespace) -> int:
    etcd = _preflight()
    scenario = load_scenario(_examples(args.examples))
    check_namespaces_free(scenario.pus)
    state_dir: Path = args.state_dir.resolve()
    manifest = prepare_state_dir(state_dir)
    deployment = LocalDeployment(state_dir, manifest, scenario, etcd)
    return asyncio.run(_up(deployment, once=args.once, keep=args.keep))


async def _up(deployment: LocalDeployment, *, once: bool, keep: bool) -> int:
    loop = asyncio.get_running_loop()
    job = asyncio.current_task()
    assert job is not None
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        job.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt)
    status = 1
    ready = False
    try:
        await _start(deployment)
        ready = True
        status = await _demo(deployment)
        if once and not keep and deployment.process_pus:
            # The process PUs' lifecycle, shown: what ``down`` would do, checked.
            print("\nstopping the process PUs", flush=True)
            for line in await deployment.stop_process_pus():
                print(f"  {line}", flush=True)
        if not once:
            print("\nRunning. Ctrl-C (or SIGTERM) stops everything.", flush=True)
            await asyncio.Event().wait()
    except asyncio.CancelledError:
        if not interrupted:
            raise
        print("\nstopping...", file=sys.stderr, flush=True)
        status = status if ready else 130
    except TrustwireError as error:
        print(f"trustwire: {error}", file=sys.stderr)
        status = 1
    except Exception as error:
        # A bug of ours or an unexpected state: one line here, the traceback in the log.
        log = deployment.logs / "up.log"
        with log.open("a") as out:
            traceback.print_exc(file=out)
        print(
            f"trustwire: up failed: {type(error).__name__}: {error} (details: {log})",
            file=sys.stderr,
        )
        status = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        with contextlib.suppress(Exception):
            await deployment.close_servers()
        if keep:
            print(f"kept running; stop with: trustwire down --state-dir {deployment.state_dir}")
        else:
            problems = down(deployment.state_dir)
            if problems:
                print(f"trustwire: could not clean up: {', '.join(problems)}", file=sys.stderr)
                status = status or 1
            else:
                print("everything stopped and removed", flush=True)
    return status


async def _start(deployment: LocalDeployment) -> None:
    started = time.monotonic()
    print(f"trustwire up: state in {deployment.state_dir}", flush=True)
    await deployment.start_etcd()
    print(f"  etcd on {deployment.etcd_endpoint} ({time.monotonic() - started:.1f} s)", flush=True)
    await deployment.start_identity()
    print(
        f"  identity service on {deployment.identity_address} ({time.monotonic() - started:.1f} s)",
        flush=True,
    )
    await deployment.start_policy()
    print(
        f"  policy replicas on {', '.join(deployment.policy_addresses)} "
        f"({time.monotonic() - started:.1f} s)",
        flush=True,
    )
    deployment.build_network()
    print("  hosts tw-host-a, tw-host-b; PUs " + pu_summary(deployment.scenario.pus), flush=True)
    await deployment.start_enforcers()
    print(f"  enforcers node-a, node-b ({time.monotonic() - started:.1f} s)", flush=True)
    for line in deployment.metrics_summary():
        print(f"    {line}", flush=True)
    await deployment.start_pus()
    print(f"  PUs registered ({time.monotonic() - started:.1f} s)", flush=True)
    for run in deployment.process_pus.values():
        digest = run.attested.get("exe-sha256", "")
        print(
            f"    {run.spec.key}: process PU {run.pu_id}, pid {run.pid} in cgroup {run.cgroup}, "
            f"started by 'trustwire run' in {run.spec.netns}; attested pu-type="
            f"{run.attested.get('pu-type', '?')} exe-sha256={digest[:12]}... "
            f"user={run.attested.get('user', '?')}",
            flush=True,
        )
    revision = await deployment.apply_policies()
    print(
        f"  policies of {deployment.scenario.examples} applied; every enforcer acked revision "
        f"{revision} ({time.monotonic() - started:.1f} s)",
        flush=True,
    )


async def _demo(deployment: LocalDeployment) -> int:
    probes = deployment.scenario.probes()
    print(f"\ndriving {len(probes)} connections (every PU pair, every declared port)\n", flush=True)
    rows = await deployment.drive()
    sys.stdout.write(render(rows))
    (deployment.state_dir / "report.json").write_text(
        json.dumps([r.to_json() for r in rows], indent=2) + "\n"
    )
    config = deployment.config_path
    print(
        f"\nlogs: {deployment.logs}/*.log; table as JSON: {deployment.state_dir / 'report.json'}\n"
        f"query the live deployment: export TRUSTWIRE_CONFIG={config}; trustwire flows; "
        "trustwire get enforcers\n"
        "traces: start a Jaeger (OTLP gRPC on 4317) and run with "
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 trustwire up; each connection is "
        "one trace, its id in the table",
        flush=True,
    )
    differing = mismatches(rows)
    if differing:
        print(
            f"\n{len(differing)} connection(s) differ from 'trustwire simulate -f "
            f"{deployment.scenario.examples}':",
            file=sys.stderr,
        )
        for line in differing:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(
        f"\nall {len(rows)} verdicts equal 'trustwire simulate -f {deployment.scenario.examples}'"
    )
    return 0


# ------------------------------------------------------------------------------ down


def run_down(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise FailedPrecondition("trustwire down needs root: run it with sudo")
    problems = down(args.state_dir.resolve())
    if problems:
        print(f"trustwire: could not clean up: {', '.join(problems)}", file=sys.stderr)
        return 1
    print("everything stopped and removed")
    return 0
