"""``python -m trustwire_identity [--config FILE]``: run the identity service until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from trustwire.runtime import configure_logging, configure_telemetry

from .server import IdentityServer
from .settings import load


async def _run(config: Path | None) -> None:
    settings = load(config)
    configure_logging(settings.log_level, "identity")
    telemetry = configure_telemetry("identity")
    server = await IdentityServer.start(settings, tracer_provider=telemetry.tracer_provider)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop(grace=5.0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="trustwire-identity", description=__doc__)
    parser.add_argument("--config", type=Path, default=None, help="settings YAML file")
    args = parser.parse_args()
    asyncio.run(_run(args.config))


if __name__ == "__main__":
    main()
