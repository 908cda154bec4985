"""What per-RPC metrics cost a served call: unary round trips on loopback to a server built
with ``metrics=registry`` against the same server without, interleaved in rounds so machine
load affects both alike. Prints the added latency per call and the ratio.

    python -m bench.rpc_metrics [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence

import grpc

from trustwire.runtime import MetricsRegistry, Service, build_server, create_channel

_SERVICE = "bench.v1.Echo"


def _echo_service() -> Service:
    async def echo(request: bytes, context: object) -> bytes:
        return request

    handler = grpc.unary_unary_rpc_method_handler(echo)
    return Service.from_handlers(_SERVICE, {"Echo": handler})


async def _round(with_metrics: bool, calls: int) -> float:
    """Median microseconds per call of ``calls`` sequential unary calls."""
    server = build_server([_echo_service()], metrics=MetricsRegistry() if with_metrics else None)
    async with server as running, create_channel(running.address) as channel:
        call = channel.unary_unary(f"/{_SERVICE}/Echo", None, None)
        for _ in range(50):  # warm up the channel and the server
            await call(b"x", timeout=5)
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await call(b"x", timeout=5)
            samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


async def _run(calls: int, rounds: int) -> tuple[float, float]:
    without, with_ = [], []
    for _ in range(rounds):
        without.append(await _round(False, calls))
        with_.append(await _round(True, calls))
    return statistics.median(without), statistics.median(with_)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="per-RPC metrics overhead")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (bounded)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args(argv)
    calls, rounds = min(max(args.calls, 10), 100_000), min(max(args.rounds, 1), 50)
    without, with_ = asyncio.run(_run(calls, rounds))
    print(f"unary call p50 without metrics {without:8.1f} us")
    print(f"unary call p50 with metrics    {with_:8.1f} us")
    print(f"added {with_ - without:+.1f} us per call, ratio {with_ / without:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
