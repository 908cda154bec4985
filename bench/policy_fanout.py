"""Policy fan-out benchmark: real etcd, real policy replicas, N simulated enforcers.

    python -m bench.policy_fanout            # N = 1 (baseline), 100, 1000; 10,000 rules
    python -m bench.policy_fanout --quick    # small: N = 1, 20; 1,000 rules (smoke test)

Layout: this process runs etcd (a child process), two policy replicas (repository, state
mirror, distribution, gRPC on loopback) and the writer. The enforcers are ``PolicyClient``s in
a *separate* process (``--client-process``), so client work never competes with the server's
event loop; the two talk JSON lines over the child's stdin/stdout. Both read
``time.monotonic()`` (CLOCK_MONOTONIC, system-wide on Linux), so latencies cross processes.

Measured:
- fan-out latency: a policy write that changes every enforcer's view, to each enforcer's
  applied-and-acked update (client-side, at ack time); p50/p99 over enforcers and rounds, and
  the per-round time until the *last* enforcer acked;
- cold-start snapshot: a new enforcer whose PU 10,000 rules select subscribes; time to its
  applied snapshot, and the snapshot's size;
- server memory per connected enforcer: replica-process RSS growth from before the enforcers
  connect to after they all converged, divided by N;
- stalled enforcers: the same fan-out with 10 % of enforcers that never ack after their first
  snapshot; the others' p99 compared with the run without stalled ones.

Every loop is bounded (rounds, timeouts). Ratios are against the same run's N = 1 baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = "/bench/trustwire/v1/"
GOAL_P99_S = 1.0
GOAL_BYTES_PER_ENFORCER = 50 * 1024
GOAL_STALL_COST = 0.20


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    stalled_size: int
    rounds: int
    cold_rules: int
    timeout_s: float = 120.0


FULL = Plan(sizes=(1, 100, 1000), stalled_size=1000, rounds=10, cold_rules=10_000)
QUICK = Plan(sizes=(1, 20), stalled_size=20, rounds=3, cold_rules=1_000, timeout_s=60.0)


@dataclass
class FanoutResult:
    enforcers: int
    stalled: int
    rounds: int
    p50_s: float
    p99_s: float
    last_ack_p50_s: float
    last_ack_max_s: float
    connect_s: float
    rss_bytes_per_enforcer: float


@dataclass
class Report:
    fanout: list[FanoutResult] = field(default_factory=list)
    cold_rules: int = 0
    cold_snapshot_s: float = 0.0
    cold_snapshot_bytes: int = 0
    ratios: dict[str, float] = field(default_factory=dict)
    goals: dict[str, bool] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; getrusage gives only the peak)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ============================================================================ client process


async def client_process(addresses: list[str], ids: list[str], stalled: int) -> None:
    """Run one PolicyClient per id; answer ``wait REV`` with each enforcer's ack time."""
    from trustwire.policy.views import EnforcerView
    from trustwire_policy.distribution import Backoff, PolicyClient

    applied_at: dict[str, list[tuple[int, float]]] = {i: [] for i in ids}
    never = asyncio.Event()
    stalled_ids = set(ids[:stalled])

    def make(enforcer_id: str) -> PolicyClient:
        async def on_apply(view: EnforcerView, revision: int) -> None:
            if enforcer_id in stalled_ids and applied_at[enforcer_id]:
                await never.wait()  # stalled: applies nothing more, never acks again
            applied_at[enforcer_id].append((revision, time.monotonic()))

        return PolicyClient(
            enforcer_id,
            addresses,
            on_apply=on_apply,
            backoff=Backoff(0.05, 1.0),
            seed=hash(enforcer_id) & 0xFFFF,
            keep_log=False,
        )

    clients = [make(i) for i in ids]
    started = time.monotonic()
    for client in clients:
        client.start()
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    async def wait_all(revision: int, timeout: float) -> dict[str, float]:  # noqa: ASYNC109 - a bound, not cancellation
        deadline = time.monotonic() + timeout
        live = [i for i in ids if i not in stalled_ids]
        # Bounded polling of in-memory state of this process (no I/O is waited for here).
        while time.monotonic() < deadline:
            if all(applied_at[i] and applied_at[i][-1][0] >= revision for i in live):
                break
            await asyncio.sleep(0.005)
        return {i: next((t for r, t in applied_at[i] if r >= revision), float("nan")) for i in live}

    say({"event": "started"})
    while line := await reader.readline():
        command = json.loads(line)
        if command["op"] == "wait":
            times = await wait_all(command["revision"], command["timeout"])
            say({"event": "acked", "times": times, "since_start": time.monotonic() - started})
        elif command["op"] == "stop":
            break
    for client in clients:
        await client.stop()


# ============================================================================ server side


class ClientProcess:
    def __init__(self, addresses: list[str], ids: list[str], stalled: int) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.policy_fanout",
                "--client-process",
                "--addresses",
                ",".join(addresses),
                "--ids",
                ",".join(ids),
                "--stalled",
                str(stalled),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        line = await asyncio.to_thread(self.process.stdout.readline)
        if not line:
            raise RuntimeError("client process ended")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def started(self) -> None:
        assert self.process.stdout is not None
        line = await asyncio.to_thread(self.process.stdout.readline)
        if not line:
            raise RuntimeError("client process failed to start")

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(json.dumps({"op": "stop"}) + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def _pu(pu_id: str, enforcer: str, labels: dict[str, str], ip: str) -> Any:
    from trustwire.api.common.v1 import network_pb2, workload_pb2
    from trustwire.api.policy.v1 import processing_unit_pb2

    return processing_unit_pb2.ProcessingUnit(
        id=pu_id,
        name=pu_id,
        namespace="bench",
        labels=labels,
        type=workload_pb2.PROCESSING_UNIT_TYPE_POD,
        ips=[ip],
        ports=[
            processing_unit_pb2.NamedPort(name="http", protocol=network_pb2.PROTOCOL_TCP, number=80)
        ],
        enforcer_id=enforcer,
    )


def _ip(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255 or 1}"


def _policy(name: str, subject: str, obj: str, port: int) -> str:
    return (
        "apiVersion: trustwire.io/v1\nkind: NetworkAccessPolicy\n"
        f"metadata: {{name: {name}}}\n"
        f"spec:\n  subject: {{matchLabels: {subject}}}\n  object: {{matchLabels: {obj}}}\n"
        f"  ports: [{{protocol: TCP, port: {port}}}]\n  action: allow\n"
    )


async def _apply(repository: Any, text: str) -> int:
    from trustwire_policy.manifests import parse_yaml
    from trustwire_policy.settings import LimitSettings

    result = await repository.apply(parse_yaml(text, "bench.yaml", LimitSettings()))
    return int(result.revision)


async def fanout(endpoint: str, size: int, stalled: int, plan: Plan) -> FanoutResult:
    """One deployment of ``size`` enforcers (``stalled`` of them stall): ``plan.rounds`` writes
    that change every view, timed to each enforcer's ack."""
    from trustwire.store.etcd import EtcdStore
    from trustwire_policy.codec import Keyspace
    from trustwire_policy.distribution import distribution_factory
    from trustwire_policy.repository import PolicyRepository
    from trustwire_policy.server import PolicyReplica
    from trustwire_policy.settings import EtcdSettings, PolicySettings

    root = f"{ROOT}fanout-{size}-{stalled}/"
    writer = await EtcdStore.connect([endpoint], timeout=10.0)
    repository = PolicyRepository(writer, Keyspace(root))
    ids = [f"e{i:05d}" for i in range(size)]
    # One PU per enforcer; three DNS PUs everyone may reach. The measured write changes the
    # cluster-wide DNS policy: every enforcer's view changes, by one rule. (A full mesh, where
    # every view names every PU, is O(N^2) by nature: see docs/benchmarks.md.)
    for i, enforcer in enumerate(ids):
        await repository.register_pu(
            _pu(f"pu-{enforcer}", enforcer, {"app": f"svc-{i // 10}", "tier": "all"}, _ip(i + 1))
        )
    for d in range(3):
        await repository.register_pu(
            _pu(f"dns-{d}", ids[d % size], {"role": "dns"}, _ip(60000 + d))
        )
    if os.environ.get("FANOUT_FULL_MESH"):
        await _apply(repository, _policy("mesh", "{tier: all}", "{tier: all}", 8080))
    await _apply(repository, _policy("dns", "{tier: all}", "{role: dns}", 53))

    settings = PolicySettings(
        listen_address="127.0.0.1:0",
        etcd=EtcdSettings(endpoints=(endpoint,), key_root=root),
    )
    replicas = []
    for _ in range(2):
        store = await EtcdStore.connect([endpoint], timeout=10.0)
        replica = PolicyReplica(
            settings, store, distribution=distribution_factory(), close_store=True
        )
        await replica.start()
        await replica.mirror.wait_ready()
        replicas.append(replica)
    rss_before = rss_bytes()
    clients = ClientProcess([r.address for r in replicas], ids, stalled)
    try:
        await clients.started()
        revision = await writer.revision()
        ready = await clients.ask({"op": "wait", "revision": 1, "timeout": plan.timeout_s})
        connect_s = float(ready["since_start"])
        rss_after = rss_bytes()
        latencies: list[float] = []
        last: list[float] = []
        for round_ in range(plan.rounds):
            started = time.monotonic()
            revision = await _apply(
                repository, _policy("dns", "{tier: all}", "{role: dns}", 1000 + round_)
            )
            answer = await clients.ask(
                {"op": "wait", "revision": revision, "timeout": plan.timeout_s}
            )
            times = [t - started for t in answer["times"].values()]
            latencies.extend(times)
            last.append(max(times))
        return FanoutResult(
            enforcers=size,
            stalled=stalled,
            rounds=plan.rounds,
            p50_s=percentile(latencies, 0.50),
            p99_s=percentile(latencies, 0.99),
            last_ack_p50_s=percentile(last, 0.50),
            last_ack_max_s=max(last),
            connect_s=connect_s,
            rss_bytes_per_enforcer=max(0, rss_after - rss_before) / size,
        )
    finally:
        clients.close()
        for replica in replicas:
            await replica.stop(grace=0)
            distribution = replica.servicer.distribution
            if distribution is not None:
                await distribution.close()  # type: ignore[attr-defined]
        await writer.close()


async def cold_start(endpoint: str, rules: int) -> tuple[float, int]:
    """Seconds from subscribing to an applied snapshot whose PU ``rules`` rules select, and
    the snapshot's encoded size."""
    from trustwire.api.policy.v1 import distribution_pb2
    from trustwire.store.etcd import EtcdStore
    from trustwire_policy.codec import Keyspace
    from trustwire_policy.distribution import PolicyClient, distribution_factory
    from trustwire_policy.distribution.codec import snapshot_to_proto
    from trustwire_policy.repository import PolicyRepository
    from trustwire_policy.server import PolicyReplica
    from trustwire_policy.settings import EtcdSettings, PolicySettings

    root = f"{ROOT}cold-{rules}/"
    writer = await EtcdStore.connect([endpoint], timeout=10.0)
    repository = PolicyRepository(writer, Keyspace(root))
    await repository.register_pu(_pu("web", "cold", {"app": "web"}, _ip(1)))
    for s in range(100):
        await repository.register_pu(
            _pu(f"svc-{s}", f"n{s % 10}", {"app": f"svc-{s}"}, _ip(s + 10))
        )
    batch = 100  # one etcd transaction holds at most 128 operations
    for start in range(0, rules, batch):
        text = "\n---\n".join(
            _policy(f"r{i}", "{app: web}", f"{{app: svc-{i % 100}}}", 1 + i % 60000)
            for i in range(start, min(rules, start + batch))
        )
        await _apply(repository, text)
    settings = PolicySettings(
        listen_address="127.0.0.1:0", etcd=EtcdSettings(endpoints=(endpoint,), key_root=root)
    )
    store = await EtcdStore.connect([endpoint], timeout=10.0)
    replica = PolicyReplica(settings, store, distribution=distribution_factory(), close_store=True)
    await replica.start()
    await replica.mirror.wait_ready()
    try:
        done = asyncio.Event()
        size = 0

        def on_apply(view: Any, revision: int) -> None:
            nonlocal size
            size = snapshot_to_proto(view, distribution_pb2.SNAPSHOT_REASON_INITIAL).ByteSize()
            done.set()

        client = PolicyClient("cold", [replica.address], on_apply=on_apply)
        started = time.monotonic()
        client.start()
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.monotonic() - started
        await client.stop()
        return elapsed, size
    finally:
        await replica.stop(grace=0)
        distribution = replica.servicer.distribution
        if distribution is not None:
            await distribution.close()  # type: ignore[attr-defined]
        await writer.close()


async def run(plan: Plan) -> Report:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # noqa: ASYNC240
    from tests.support.etcd import EtcdServer

    report = Report()
    with tempfile.TemporaryDirectory(prefix="fanout-etcd-") as tmp, EtcdServer(Path(tmp)) as etcd:
        for size in plan.sizes:
            report.fanout.append(await fanout(etcd.endpoint, size, 0, plan))
        stalled = plan.stalled_size // 10
        report.fanout.append(await fanout(etcd.endpoint, plan.stalled_size, stalled, plan))
        report.cold_rules = plan.cold_rules
        report.cold_snapshot_s, report.cold_snapshot_bytes = await cold_start(
            etcd.endpoint, plan.cold_rules
        )
    baseline = report.fanout[0]
    largest = next(r for r in report.fanout if r.enforcers == max(plan.sizes) and not r.stalled)
    with_stalled = report.fanout[-1]
    without = next(
        r for r in report.fanout if r.enforcers == with_stalled.enforcers and not r.stalled
    )
    report.ratios = {
        f"p99_{largest.enforcers}_vs_1": largest.p99_s / baseline.p99_s,
        "stalled_p99_vs_none": with_stalled.p99_s / without.p99_s,
    }
    report.goals = {
        f"p99 <= {GOAL_P99_S} s at {largest.enforcers}": largest.p99_s <= GOAL_P99_S,
        "<= 50 KB per enforcer": largest.rss_bytes_per_enforcer <= GOAL_BYTES_PER_ENFORCER,
        "stalled cost <= 20 %": with_stalled.p99_s <= without.p99_s * (1 + GOAL_STALL_COST),
    }
    return report


def print_report(report: Report) -> None:
    print(
        f"{'N':>6} {'stalled':>7} {'p50 ms':>8} {'p99 ms':>8} {'last p50':>9} {'last max':>9}"
        f" {'connect s':>9} {'KB/enf':>7}"
    )
    for r in report.fanout:
        print(
            f"{r.enforcers:>6} {r.stalled:>7} {r.p50_s * 1e3:>8.1f} {r.p99_s * 1e3:>8.1f}"
            f" {r.last_ack_p50_s * 1e3:>9.1f} {r.last_ack_max_s * 1e3:>9.1f}"
            f" {r.connect_s:>9.2f} {r.rss_bytes_per_enforcer / 1024:>7.1f}"
        )
    print(
        f"cold start: {report.cold_rules} rules -> snapshot of "
        f"{report.cold_snapshot_bytes / 1024:.0f} KB applied in "
        f"{report.cold_snapshot_s * 1e3:.0f} ms"
    )
    for name, ratio in report.ratios.items():
        print(f"ratio {name}: {ratio:.2f}")
    for goal, ok in report.goals.items():
        print(f"goal {goal}: {'met' if ok else 'MISSED'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--client-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--addresses", default="", help=argparse.SUPPRESS)
    parser.add_argument("--ids", default="", help=argparse.SUPPRESS)
    parser.add_argument("--stalled", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client_process:
        asyncio.run(client_process(args.addresses.split(","), args.ids.split(","), args.stalled))
        return 0
    report = asyncio.run(run(QUICK if args.quick else FULL))
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
