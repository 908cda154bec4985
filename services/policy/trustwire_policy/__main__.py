"""``python -m trustwire_policy [--config FILE]``: run one policy replica until SIGTERM.

Settings: the file (YAML), then ``TRUSTWIRE_POLICY_*`` variables (see ``settings.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from trustwire.errors import TrustwireError
from trustwire.runtime import configure_logging, configure_telemetry
from trustwire.store.etcd import EtcdStore

from .server import PolicyReplica
from .settings import load

_log = logging.getLogger("trustwire.policy")


async def _run(config: Path | None) -> None:
    settings = load(config)
    configure_logging(settings.log_level, "policy")
    telemetry = configure_telemetry("policy")
    # No connect(): the replica starts while etcd is down and its mirror retries with backoff.
    store = EtcdStore(settings.etcd.endpoints, timeout=settings.etcd.timeout)
    replica = PolicyReplica(
        settings, store, tracer_provider=telemetry.tracer_provider, close_store=True
    )
    try:
        await replica.start()
    except TrustwireError as error:
        # A configuration problem (e.g. an expired certificate file): one log line naming it,
        # which is what `trustwire up` and an operator read, rather than a traceback.
        _log.error(
            f"cannot start: {error.message}", extra={"reason": error.reason, **error.metadata}
        )
        await replica.stop(grace=0)
        telemetry.shutdown()
        sys.exit(1)
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
