"""``python -m trustwire_policy [--config FILE]``: run one policy replica until SIGTERM.

Settings: the file (YAML), then ``TRUSTWIRE_POLICY_*`` variables (see ``settings.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from trustwire.runtime import configure_logging, configure_telemetry
from trustwire.store.etcd import EtcdStore

from .server import PolicyReplica
from .settings import load


async def _run(config: Path | None) -> None:
    settings = load(config)
    configure_logging(settings.log_level, "policy")
    telemetry = configure_telemetry("policy")
    # No connect(): the replica starts while etcd is down and its mirror retries with backoff.
    store = EtcdStore(settings.etcd.endpoints, timeout=settings.etcd.timeout)
    replica = PolicyReplica(
        settings, store, tracer_provider=telemetry.tracer_provider, close_store=True
    )
    await replica.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await replica.stop(grace=5.0)
    telemetry.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(prog="trustwire-policy", description=__doc__)
    parser.add_argument("--config", type=Path, default=None, help="settings YAML file")
    args = parser.parse_args()
    asyncio.run(_run(args.config))


if __name__ == "__main__":
    main()
