"""Proxy-mode datapath benchmark: two enforcers vs a direct connection (issue 5's goals).

    sudo .venv/bin/python -m bench.datapath [--quick]

One topology (two host namespaces on a veth "wire", two PU namespaces each; see
tests/support/netns.py). Four processes so no GIL or event loop is shared across roles: this one
runs the clients, one runs the servers in PUs b1 and b2, and each enforcer (ProxyDatapath for
a1, and for b1) runs in a process of its own, as one daemon per host does in a deployment
(``--one-process`` puts both enforcers on one loop, as this bench did before). The handshake is
a fixed verdict on both sides: the source names the destination enforcer, the destination's
``no_grant`` decider names the source enforcer (no Authorize round trip: this measures the
datapath, not the handshake). a2 and b2 are never enforced. Measures, first direct (no rules
installed), then through both enforcers (plain, then encrypt):

* setup latency: connect + 1-byte echo round trip, sequential; p50/p99, and added vs direct;
* new connections/s: 4 client threads doing connect + 1-byte echo + close;
* bulk throughput: one connection sending ``--bulk-mb`` MiB to a sink, until the sink's FIN.

Every loop is bounded in count and in time. Goals: added p50 <= 1 ms, p99 <= 3 ms;
>= 1,000 new connections/s; plain >= 0.45x direct; encrypted >= 0.3x direct.

Paired measurement: in the plain and encrypt phases every figure is also taken on the direct
path a2 -> b2 (same hosts, same wire, no enforcer), alternating in blocks with the proxied path
a1 -> b1, and "added" latency and throughput ratios are computed against that reference. On a
shared 2-vCPU machine other jobs come and go within seconds (direct bulk alone varied 0.6-2.2
GB/s between runs); comparing against a direct figure taken earlier put that drift into the
ratio (the same build measured 0.22x-1.02x). The load average is printed before and after; still
report the median of several runs.
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

from tests.e2e.datapath.pki import Credential, ThrowawayCa
from tests.support.netns import EchoServer, Topology, build_topology, connect_in, unique_prefix
from trustwire_enforcer.datapath import (
    Action,
    Decider,
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
LATENCY_BLOCKS = 10  # alternations of proxied/direct latency blocks per phase
ROUNDS = 3  # alternations of proxied/direct conn/s and bulk runs per phase


# ------------------------------------------------------------------ child processes


def _servers(targets: list[tuple[str, str]], pipe: multiprocessing.connection.Connection) -> None:
    """targets: (netns, ip) of each server PU; every phase's echo and sink ports in each."""
    servers = []
    for netns, ip in targets:
        for base in PHASE_PORTS.values():
            servers.append(EchoServer(netns, ip, base + ECHO_PORT))
            servers.append(EchoServer(netns, ip, base + SINK_PORT, echo=False, threads=2))
    pipe.send("ready")
    pipe.recv()  # "stop"
    for server in servers:
        server.close()


async def _enforcers_main(
    pus: dict[str, tuple[str, str]],
    hosts: tuple[str, ...],
    creds: dict[str, Credential],
    peer_ips: dict[str, str],
    pipe: multiprocessing.connection.Connection,
) -> None:
    """Serve the PUs of ``hosts`` (key -> (netns, ip); a PU's host is its key's first letter).
    ``peer_ips``: PU ip -> host, for every enforced PU (both processes)."""
    action = [Action.ALLOW]

    def outbound_for(host: str) -> Decider:
        async def outbound(conn: InterceptedConnection) -> Verdict:
            assert conn.direction is Direction.EGRESS
            dest = peer_ips.get(str(conn.five_tuple.destination_ip))
            if dest is None:
                return Verdict.reject("unknown_destination")
            return Verdict(action[0], peer_identity=creds[dest].spiffe_id)

        return outbound

    async def inbound(conn: InterceptedConnection) -> Verdict:
        # What the Authorize handler would have granted: the source enforcer as TLS peer.
        source = peer_ips.get(str(conn.five_tuple.source_ip))
        if source is None:
            return Verdict.reject("unknown_source")
        return Verdict(action[0], peer_identity=creds[source].spiffe_id)

    datapaths = {
        host: ProxyDatapath(
            inbound_decider(PreAuthorizations(), outbound_for(host), inbound),
            tls=creds[host].tls(),
        )
        for host in hosts
    }
    for key, (netns, _) in pus.items():
        if key[0] in datapaths:
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
    stats = {host: datapath.tls_stats() for host, datapath in datapaths.items()}
    for datapath in datapaths.values():
        await datapath.close(rules="remove")
    pipe.send(("stopped", stats))


def _enforcers(
    pus: dict[str, tuple[str, str]],
    hosts: tuple[str, ...],
    creds: dict[str, Credential],
    peer_ips: dict[str, str],
    pipe: multiprocessing.connection.Connection,
) -> None:
    asyncio.run(_enforcers_main(pus, hosts, creds, peer_ips, pipe))


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


def latency(
    netns: str, address: tuple[str, int], count: int, budget: float, warmup: int = 20
) -> list[float]:
    def run() -> list[float]:
        for _ in range(warmup):  # warm up (caches, first handshake contexts)
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


def _figures(label: str, samples: list[float], cps: float, tput: float) -> Figures:
    samples = sorted(samples)
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(
        f"{label:<10} setup p50 {p50 * 1e3:7.3f} ms  p99 {p99 * 1e3:7.3f} ms  "
        f"({len(samples)} samples)  {cps:8.0f} conn/s  bulk {tput / 1e6:8.1f} MB/s"
    )
    return Figures(p50, p99, cps, tput)


def _measure(topo: Topology, args: argparse.Namespace, label: str) -> Figures:
    """Direct a1 -> b1 before any rule exists (the headline direct figures)."""
    a1, b1 = topo.pu("a1"), topo.pu("b1")
    base = PHASE_PORTS[label]
    samples = latency(a1.name, (b1.ip, base + ECHO_PORT), args.samples, budget=20)
    cps = connections_per_second(a1.name, (b1.ip, base + ECHO_PORT), 4, args.cps_seconds)
    tput = bulk(a1.name, (b1.ip, base + SINK_PORT), args.bulk_mb, budget=15)
    return _figures(label, samples, cps, tput)


def _measure_paired(
    topo: Topology, args: argparse.Namespace, label: str
) -> tuple[Figures, Figures]:
    """(proxied a1 -> b1, direct a2 -> b2), measured alternately in blocks so that both see the
    same machine load. Same ports on both paths: each has its own TIME_WAIT population."""
    base = PHASE_PORTS[label]
    a1, b1, a2, b2 = (topo.pu(k) for k in ("a1", "b1", "a2", "b2"))
    paths = {"proxied": (a1.name, b1.ip), "direct": (a2.name, b2.ip)}
    samples: dict[str, list[float]] = {key: [] for key in paths}
    rates: dict[str, list[float]] = {key: [] for key in paths}
    tputs: dict[str, list[float]] = {key: [] for key in paths}
    block = max(1, args.samples // LATENCY_BLOCKS)
    for i in range(LATENCY_BLOCKS):
        for key, (netns, ip) in paths.items():
            samples[key] += latency(
                netns,
                (ip, base + ECHO_PORT),
                block,
                budget=20 / LATENCY_BLOCKS,
                warmup=20 if i == 0 else 0,
            )
    for _ in range(ROUNDS):
        for key, (netns, ip) in paths.items():
            rates[key].append(
                connections_per_second(netns, (ip, base + ECHO_PORT), 4, args.cps_seconds / ROUNDS)
            )
    for _ in range(ROUNDS):
        for key, (netns, ip) in paths.items():
            tputs[key].append(bulk(netns, (ip, base + SINK_PORT), args.bulk_mb, budget=15))
    proxied = _figures(
        label,
        samples["proxied"],
        statistics.mean(rates["proxied"]),
        statistics.median(tputs["proxied"]),
    )
    direct = _figures(
        "  direct",
        samples["direct"],
        statistics.mean(rates["direct"]),
        statistics.median(tputs["direct"]),
    )
    return proxied, direct


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--cps-seconds", type=float, default=3.0)
    parser.add_argument("--bulk-mb", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="both enforcers in one process on one event loop (this bench before 2026-11-27)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.cps_seconds, args.bulk_mb = 200, 1.0, 128
    print("load average (1, 5, 15 min) at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    ctx = multiprocessing.get_context("spawn")
    topo = build_topology(unique_prefix(), pus_per_host=2)
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        a1, b1, b2 = topo.pu("a1"), topo.pu("b1"), topo.pu("b2")
        srv_pipe, srv_child = ctx.Pipe()
        targets = [(b1.name, b1.ip), (b2.name, b2.ip)]
        srv = ctx.Process(target=_servers, args=(targets, srv_child), daemon=True)
        srv.start()
        procs.append(srv)
        if not srv_pipe.poll(10) or srv_pipe.recv() != "ready":
            raise RuntimeError("servers did not start")
        direct = _measure(topo, args, "direct")

        ca = ThrowawayCa()
        creds = {host: ca.enforcer(host) for host in ("a", "b")}
        pus = {"a1": (a1.name, a1.ip), "b1": (b1.name, b1.ip)}
        peer_ips = {ip: key[0] for key, (_, ip) in pus.items()}
        groups = [("a", "b")] if args.one_process else [("a",), ("b",)]
        enf_pipes = []
        for hosts in groups:
            enf_pipe, enf_child = ctx.Pipe()
            enf = ctx.Process(
                target=_enforcers, args=(pus, hosts, creds, peer_ips, enf_child), daemon=True
            )
            enf.start()
            procs.append(enf)
            enf_pipes.append(enf_pipe)
        for enf_pipe in enf_pipes:
            if not enf_pipe.poll(20) or enf_pipe.recv() != "ready":
                raise RuntimeError("enforcers did not start")
        plain, plain_ref = _measure_paired(topo, args, "plain")
        for enf_pipe in enf_pipes:
            enf_pipe.send("encrypt")
        for enf_pipe in enf_pipes:
            if not enf_pipe.poll(5) or enf_pipe.recv() != "ok":
                raise RuntimeError("enforcers did not switch to encrypt")
        encrypted, encrypted_ref = _measure_paired(topo, args, "encrypt")
        for enf_pipe in enf_pipes:
            enf_pipe.send("stop")
        for enf_pipe in enf_pipes:
            if enf_pipe.poll(15):
                _, stats = enf_pipe.recv()
                for host, tls in stats.items():
                    print(f"enforcer {host}: TLS handshakes {tls}")
        srv_pipe.send("stop")

        print("\n(added / x direct: against the direct path measured alongside)")
        for label, fig, ref in (
            ("plain", plain, plain_ref),
            ("encrypt", encrypted, encrypted_ref),
        ):
            print(
                f"{label:<8} added setup p50 {(fig.p50 - ref.p50) * 1e3:6.3f} ms (goal <= 1)  "
                f"p99 {(fig.p99 - ref.p99) * 1e3:6.3f} ms (goal <= 3)  "
                f"conn/s {fig.cps:6.0f} (goal >= 1000)  "
                f"throughput {fig.throughput / ref.throughput:5.2f}x direct "
                f"(goal >= {0.45 if label == 'plain' else 0.3})"
            )
            print(
                f"{'':<8} (vs the direct phase at the start, as before this bench was paired: "
                f"added p50 {(fig.p50 - direct.p50) * 1e3:.3f} ms, "
                f"p99 {(fig.p99 - direct.p99) * 1e3:.3f} ms, "
                f"{fig.throughput / direct.throughput:.2f}x)"
            )
        print("load average (1, 5, 15 min) at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
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
