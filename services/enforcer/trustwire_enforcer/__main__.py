"""``python -m trustwire_enforcer [--config FILE]``: run the host's enforcer until SIGTERM.

Runs as root (it installs kernel rules in PU network namespaces). Settings: the file (YAML),
then ``TRUSTWIRE_ENFORCER_*`` variables (see ``settings.py``). When it serves, it prints one
line ``trustwire-enforcer ready <node> <enforcer-channel address>`` on stdout (supervisors and
tests wait for it). On SIGTERM/SIGINT each PU is left in its fail mode.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from trustwire.runtime import configure_logging, configure_telemetry

from .daemon import Enforcer
from .settings import load


async def _run(config: Path | None) -> None:
    settings = load(config)
    configure_logging(settings.log_level, "enforcer")
    telemetry = configure_telemetry(
        "enforcer", resource_attributes={"host.name": settings.node_name}
    )
    enforcer = Enforcer(settings, tracer_provider=telemetry.tracer_provider)
    await enforcer.start()
    print(f"trustwire-enforcer ready {enforcer.enforcer_id} {enforcer.address}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await enforcer.stop(rules="fail_mode")
    telemetry.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(prog="trustwire-enforcer", description=__doc__)
    parser.add_argument("--config", type=Path, default=None, help="settings YAML file")
    args = parser.parse_args()
    try:
        asyncio.run(_run(args.config))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
