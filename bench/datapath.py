"""Proxy-mode datapath benchmark: two enforcers vs a direct connection (issue 5's goals).

    sudo .venv/bin/python -m bench.datapath [--quick]

One topology (two host namespaces on a veth "wire", one PU namespace each; see
tests/support/netns.py). Three processes so no GIL is shared across roles: this one runs the
clients, one runs the servers in PU b1, one runs both enforcers (ProxyDatapath for a1 and b1
with a fixed-verdict handshake that pre-authorizes like the real one). Measures, first direct
(no rules installed), then through both enforcers (plain, then encrypt):

* setup latency: connect + 1-byte echo round trip, sequential; p50/p99, and added vs direct;
* new connections/s: 4 client threads doing connect + 1-byte echo + close;
* bulk throughput: one connection sending ``--bulk-mb`` MiB to a sink, until the sink's FIN.

Every loop is bounded in count and in time. Goals: added p50 <= 1 ms, p99 <= 3 ms;
>= 1,000 new connections/s; plain >= 0.45x direct; encrypted >= 0.3x direct.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tests.e2e.datapath.pki import ThrowawayCa
from tests.support.netns import EchoServer, Topology, build_topology, connect_in, unique_prefix
from trustwire_enforcer.datapath import (
    Action,
    Direction,
    InterceptedConnection,
    PreAuthorizations,
    ProxyDatapath,
    Verdict,
    inbound_decider,
)
from trustwire_enforcer.datapath.netns import enter_netns, open_netns, run_in_netns

_T = TypeVar("_T")
# One echo/sink pair per phase: each phase leaves thousands of TIME_WAIT entries in a1, and
# connect()'s port search slows down markedly against TIME_WAIT entries to the *same*
# destination (measured: 0.2 ms -> 7 ms). Fresh ports keep the phases independent.
PHASE_PORTS = {"direct": 7000, "plain": 7010, "encrypt": 7020}
ECHO_PORT = 0
SINK_PORT = 1


# ------------------------------------------------------------------ child processes


def _servers(netns: str, ip: str, pipe: multiprocessing.connection.Connection) -> None:
    servers = []
    for base in PHASE_PORTS.values():
        servers.append(EchoServer(netns, ip, base + ECHO_PORT))
        servers.append(EchoServer(netns, ip, base + SINK_PORT, echo=False, threads=2))
    pipe.send("ready")
    pipe.recv()  # "stop"
    for server in servers:
        server.close()


async def _enforcers_main(
    pus: dict[str, tuple[str, str]], pipe: multiprocessing.connection.Connection
) -> None:
    """pus: key -> (netns, ip); host of a PU = its key's first letter."""
    ca = ThrowawayCa()
    action = [Action.ALLOW]
    grants = {host: PreAuthorizations() for host in ("a", "b")}
    ids = {host: f"spiffe://td/enforcer/{host}" for host in ("a", "b")}
    host_of_ip = {ip: key[0] for key, (_, ip) in pus.items()}

    def outbound_for(host: str) -> object:
        async def outbound(conn: InterceptedConnection) -> Verdict:
            assert conn.direction is Direction.EGRESS
            assert conn.upstream is not None
            dest = host_of_ip.get(str(conn.five_tuple.destination_ip))
            if dest is None:
                return Verdict.reject("unknown_destination")
            grants[dest].grant(conn.upstream, Verdict(action[0], peer_identity=ids[host]))
            return Verdict(action[0], peer_identity=ids[dest])

        return outbound

    datapaths = {
        host: ProxyDatapath(
            inbound_decider(grants[host], outbound_for(host)),  # type: ignore[arg-type]
            tls=ca.enforcer(host).tls(),
        )
        for host in ("a", "b")
    }
    for key, (netns, _) in pus.items():
        await datapaths[key[0]].add_pu(key, netns)
    for datapath in datapaths.values():
        await datapath.prewarm(16)
    loop = asyncio.get_running_loop()
    pipe.send("ready")
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "stop":
            break
        action[0] = Action(command)
        pipe.send("ok")
    for datapath in datapaths.values():
        await datapath.close(rules="remove")
    pipe.send("stopped")


def _enforcers(
    pus: dict[str, tuple[str, str]], pipe: multiprocessing.connection.Connection
) -> None:
    asyncio.run(_enforcers_main(pus, pipe))


# ------------------------------------------------------------------------ clients


def _in_netns(netns: str, fn: Callable[[], _T]) -> _T:
    """Run ``fn`` on one thread that entered ``netns`` once, so that creating client sockets
    costs nothing extra (``connect_in`` would start a thread per socket)."""
    return run_in_netns(netns, fn)


def _rtt(address: tuple[str, int]) -> float:
    started = time.perf_counter()
    sock = socket.create_connection(address, timeout=3.0)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"x")
        if sock.recv(1) != b"x":
            raise RuntimeError("echo mismatch")
    finally:
        sock.close()
    return time.perf_counter() - started


def latency(netns: str, address: tuple[str, int], count: int, budget: float) -> list[float]:
    def run() -> list[float]:
        for _ in range(20):  # warm up (caches, first handshake contexts)
            _rtt(address)
        samples: list[float] = []
        deadline = time.monotonic() + budget
        while len(samples) < count and time.monotonic() < deadline:
            samples.append(_rtt(address))
        return samples

    return _in_netns(netns, run)


def connections_per_second(
    netns: str, address: tuple[str, int], threads: int, seconds: float
) -> float:
    # Each client thread enters the namespace once (see _in_netns).
    done = [0] * threads
    errors = [0] * threads
    stop = time.monotonic() + seconds
    fd = open_netns(netns)

    def client(index: int) -> None:
        enter_netns(fd)
        while time.monotonic() < stop:
            try:
                with socket.create_connection(address, timeout=3.0) as sock:
                    sock.sendall(b"x")
                    if sock.recv(1) == b"x":
                        done[index] += 1
            except OSError:
                errors[index] += 1

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=seconds + 10)
    elapsed = time.monotonic() - started
    os.close(fd)
    if sum(errors):
        print(f"    ({sum(errors)} failed connections)", file=sys.stderr)
    return sum(done) / elapsed


def bulk(netns: str, address: tuple[str, int], megabytes: int, budget: float) -> float:
    """Bytes/s for one connection; stops early (bounded) after ``budget`` seconds."""
    chunk = memoryview(bytes(1 << 20))
    sock = connect_in(netns, address, 5.0)
    sock.settimeout(budget + 5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sent = 0
    started = time.perf_counter()
    deadline = time.monotonic() + budget
    try:
        for _ in range(megabytes):
            sock.sendall(chunk)
            sent += len(chunk)
            if time.monotonic() > deadline:
                break
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # the sink's FIN: everything was delivered
    finally:
        sock.close()
    return sent / (time.perf_counter() - started)


# -------------------------------------------------------------------------- main


@dataclass
class Figures:
    p50: float
    p99: float
    cps: float
    throughput: float


def _measure(
    topo: Topology, args: argparse.Namespace, label: str, with_bulk: bool = True
) -> Figures:
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    base = PHASE_PORTS[label]
    samples = latency(a1.name, (b1.ip, base + ECHO_PORT), args.samples, budget=20)
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    cps = connections_per_second(a1.name, (b1.ip, base + ECHO_PORT), 4, args.cps_seconds)
    tput = bulk(a1.name, (b1.ip, base + SINK_PORT), args.bulk_mb, budget=15) if with_bulk else 0.0
    print(
        f"{label:<10} setup p50 {p50 * 1e3:7.3f} ms  p99 {p99 * 1e3:7.3f} ms  "
        f"({len(samples)} samples)  {cps:8.0f} conn/s  bulk {tput / 1e6:8.1f} MB/s"
    )
    return Figures(p50, p99, cps, tput)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--cps-seconds", type=float, default=3.0)
    parser.add_argument("--bulk-mb", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.cps_seconds, args.bulk_mb = 200, 1.0, 128
    ctx = multiprocessing.get_context("spawn")
    topo = build_topology(unique_prefix(), pus_per_host=1)
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        a1, b1 = topo.pu("a1"), topo.pu("b1")
        srv_pipe, srv_child = ctx.Pipe()
        srv = ctx.Process(target=_servers, args=(b1.name, b1.ip, srv_child), daemon=True)
        srv.start()
        procs.append(srv)
        if not srv_pipe.poll(10) or srv_pipe.recv() != "ready":
            raise RuntimeError("servers did not start")
        direct = _measure(topo, args, "direct")

        enf_pipe, enf_child = ctx.Pipe()
        pus = {"a1": (a1.name, a1.ip), "b1": (b1.name, b1.ip)}
        enf = ctx.Process(target=_enforcers, args=(pus, enf_child), daemon=True)
        enf.start()
        procs.append(enf)
        if not enf_pipe.poll(20) or enf_pipe.recv() != "ready":
            raise RuntimeError("enforcers did not start")
        plain = _measure(topo, args, "plain")
        enf_pipe.send("encrypt")
        if not enf_pipe.poll(5) or enf_pipe.recv() != "ok":
            raise RuntimeError("enforcers did not switch to encrypt")
        encrypted = _measure(topo, args, "encrypt")
        enf_pipe.send("stop")
        if enf_pipe.poll(15):
            enf_pipe.recv()
        srv_pipe.send("stop")

        print()
        for label, fig in (("plain", plain), ("encrypt", encrypted)):
            print(
                f"{label:<8} added setup p50 {(fig.p50 - direct.p50) * 1e3:6.3f} ms (goal <= 1)  "
                f"p99 {(fig.p99 - direct.p99) * 1e3:6.3f} ms (goal <= 3)  "
                f"conn/s {fig.cps:6.0f} (goal >= 1000)  "
                f"throughput {fig.throughput / direct.throughput:5.2f}x direct "
                f"(goal >= {0.45 if label == 'plain' else 0.3})"
            )
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        topo.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
