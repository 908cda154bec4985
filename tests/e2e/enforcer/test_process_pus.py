"""Process PUs end to end: ``trustwire run`` (the real CLI, as a subprocess inside a test host's
network namespace) starts commands in cgroups the enforcer attests and intercepts; policies by
label decide their real TCP connections to and from namespace PUs on the other host.

The command is a small Python agent that obeys lines on its stdin (``connect IP PORT``,
``listen PORT``, ``exit N``) and answers on its stdout, so the test drives it step by step.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.enforcer.conftest import HostFactory
from tests.e2e.enforcer.harness import (
    PORT,
    WAIT,
    ControlPlane,
    EnforcerProcess,
    Host,
    attempt,
    converge,
    enforcer_settings,
    flows_between,
    flush_flows,
    knows,
    names_policy,
    serves,
)
from tests.e2e.enforcer.test_restart import free_port, status
from tests.support.netns import EchoServer, Topology
from tests.support.waiting import eventually
from trustwire.api.common.v1 import envelope_pb2
from trustwire.api.enforcer.v1 import enforcer_local_service_pb2 as local_pb
from trustwire.errors import InvalidArgument, TrustwireError
from trustwire.identity._codec import decode_document
from trustwire_enforcer.datapath.cgroups import TrustwireCgroups
from trustwire_enforcer.datapath.rules import installed_ruleset
from trustwire_enforcer.local_api import LocalApiClient

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]

REPO = Path(__file__).resolve().parents[3]
CLI = REPO / ".venv" / "bin" / "trustwire"
PYTHON = os.path.realpath(sys.executable)

AGENT = r"""
import socket, sys, threading, time

def serve(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(16)
    def echo(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
    def accept():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=echo, args=(conn,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()

print("ready", flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "listen":
        serve(int(args[0]))
        print("listening", flush=True)
    elif cmd == "connect":
        started = time.monotonic()
        try:
            sock = socket.create_connection((args[0], int(args[1])), timeout=3)
            sock.sendall(b"hello")
            data = sock.recv(100)
            sock.close()
            print("ok" if data == b"hello" else "err -2 0", flush=True)
        except OSError as exc:
            print(f"err {exc.errno or -1} {time.monotonic() - started:.3f}", flush=True)
    elif cmd == "exit":
        sys.exit(int(args[0]))
"""

SHOP = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations: {trustwire.io/default-action: reject}
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: web-to-db, namespace: shop}
spec:
  subject: {matchLabels: {app: web}}
  object: {matchLabels: {app: db}}
  ports: [{protocol: TCP, port: 7000}]
  action: allow
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: batch-never-db, namespace: shop}
spec:
  tier: security
  subject: {matchLabels: {app: batch}}
  object: {matchLabels: {app: db}}
  action: reject
"""


@dataclass
class Run:
    """One ``trustwire run`` subprocess and its agent."""

    process: subprocess.Popen[str]
    pu_id: str

    async def line(self) -> str:
        assert self.process.stdout is not None
        text = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), WAIT)
        if not text:
            err = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"trustwire run ended: {self.process.poll()} {err}")
        return text.strip()

    async def ask(self, command: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return await self.line()

    async def wait(self) -> int:
        return await asyncio.wait_for(asyncio.to_thread(self.process.wait), WAIT)

    def kill_all(self) -> None:
        """SIGKILL the CLI and the command together (their process group)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(WAIT)


def cli(socket_path: Path, verb: list[str], *args: str, netns: str | None = None) -> list[str]:
    """The real ``trustwire`` entry point; ``nsenter --net``, not ``ip netns exec``: the
    latter remounts /sys and would hide the cgroup2 mount from the command."""
    prefix = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
    return [*prefix, str(CLI), *verb, "--socket", str(socket_path), *args]


async def start_run(
    host: Host,
    netns: str,
    name: str,
    labels: dict[str, str],
    ports: dict[str, int] | None = None,
    *,
    socket_path: Path | None = None,
    enforcer_id: str = "",
) -> Run:
    """``host``'s enforcer, or the one at ``socket_path`` named ``enforcer_id``."""
    socket_path = socket_path or host.enforcer.settings.local_socket
    enforcer_id = enforcer_id or host.enforcer.enforcer_id
    label_args = [x for k, v in labels.items() for x in ("--label", f"{k}={v}")]
    label_args += [x for k, v in (ports or {}).items() for x in ("--port", f"{k}:{v}")]
    argv = cli(
        socket_path,
        ["run"],
        "--namespace",
        "shop",
        "--name",
        name,
        *label_args,
        "--",
        PYTHON,
        "-u",
        "-c",
        AGENT,
        netns=netns,
    )
    process = subprocess.Popen(  # noqa: ASYNC220 - starting it does not wait for it
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: kill_all reaches CLI and command
    )
    run = Run(process, f"{enforcer_id}.{name}")
    assert await run.line() == "ready"  # printed only after StartRun: the PU is served
    return run


@pytest.fixture
async def runs() -> AsyncIterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.process.poll() is None:
            run.kill_all()


def table_of(host: Host, netns: str, pu_id: str) -> object:
    table = host.enforcer.datapath.table_for(pu_id)
    return installed_ruleset(f"/run/netns/{netns}", table)


async def test_process_pus_egress_by_label_per_cgroup_with_flows_and_attested_identity(
    plane: ControlPlane, hosts: HostFactory, topo: Topology, runs: list[Run]
) -> None:
    a, b = await hosts("a"), await hosts("b")
    host_a = topo.hosts["a"].name
    b1 = topo.pu("b1")
    db = await b.add_pu(b1.name, labels={"app": "db"})
    web = await start_run(a, host_a, "web", {"app": "web"})
    batch = await start_run(a, host_a, "batch", {"app": "batch"})
    runs += [web, batch]
    await plane.apply(SHOP)
    await converge([a], lambda v: serves(web.pu_id, batch.pu_id)(v) and knows(db)(v))
    await converge([b], lambda v: serves(db)(v) and knows(web.pu_id, batch.pu_id)(v))
    await converge([a, b], names_policy("batch-never-db"))

    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        # Same namespace, same address, different cgroups: different verdicts.
        assert await web.ask(f"connect {b1.ip} {PORT}") == "ok"
        refused = (await batch.ask(f"connect {b1.ip} {PORT}")).split()
        assert refused[0] == "err"
        assert int(refused[1]) in (errno.ECONNRESET, errno.EPIPE)
        assert float(refused[2]) < 1.0, "a rejection is a fast reset"
        assert await web.ask(f"connect {b1.ip} {PORT}") == "ok"
    finally:
        server.close()

    await flush_flows(a, b)
    records = await plane.flows()
    allowed = flows_between(records, web.pu_id, db)
    assert allowed["egress"].decision.verdict.value == "allow"
    assert allowed["egress"].connection_count == 2
    assert allowed["ingress"].decision.verdict.value == "allow"
    assert allowed["ingress"].source.labels.get("pu-type") == "process"
    rejected = flows_between(records, batch.pu_id, db)
    assert rejected["egress"].decision.verdict.value == "reject"
    assert rejected["egress"].connection_count == 1
    # Nothing of one PU's traffic is recorded under the other.
    for record in records:
        if record.source.pu_id == web.pu_id:
            assert record.decision.verdict.value == "allow"
        if record.source.pu_id == batch.pu_id:
            assert record.decision.verdict.value == "reject"

    # Attested labels: in the identity document and in `trustwire pu list`.
    envelope = a.enforcer.pus.document(web.pu_id)
    assert envelope is not None
    document = decode_document(envelope_pb2.SignedEnvelope.FromString(envelope).payload)
    exe_sha256 = hashlib.sha256(await asyncio.to_thread(Path(PYTHON).read_bytes)).hexdigest()
    labels = document.policy_labels
    assert labels["exe-sha256"] == exe_sha256
    assert labels["user"] == str(os.getuid())
    assert labels["pu-type"] == "process"
    assert labels["app"] == "web"
    listed = await asyncio.to_thread(
        subprocess.run,
        cli(a.enforcer.settings.local_socket, ["pu", "list"], "-o", "json"),
        capture_output=True,
        text=True,
        check=True,
        timeout=WAIT,
    )
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert rows[web.pu_id]["type"] == "process"
    assert rows[web.pu_id]["fail_mode"] == "closed"
    assert rows[web.pu_id]["attested_labels"]["exe-sha256"] == exe_sha256
    assert rows[web.pu_id]["attested_labels"]["user"] == str(os.getuid())
    assert rows[batch.pu_id]["labels"] == {"app": "batch"}

    # The command's exit ends the PU: exit status passed through; rules, cgroup, record gone.
    web_cgroup = Path(rows[web.pu_id]["cgroup"])
    assert web_cgroup.is_dir()  # noqa: ASYNC240 - a stat, in a test
    assert table_of(a, host_a, web.pu_id) is not None
    assert web.process.stdin is not None
    web.process.stdin.write("exit 3\n")
    web.process.stdin.flush()
    assert await web.wait() == 3
    await a.enforcer.pus.wait_removed(web.pu_id, WAIT)
    assert a.enforcer.pus.get(web.pu_id) is None
    assert table_of(a, host_a, web.pu_id) is None
    assert not web_cgroup.exists()  # noqa: ASYNC240
    # The other PU of the namespace is untouched.
    assert table_of(a, host_a, batch.pu_id) is not None

    # CLI and command SIGKILLed together: the enforcer notices the exit by itself.
    batch_cgroup = Path(rows[batch.pu_id]["cgroup"])
    batch.kill_all()
    await a.enforcer.pus.wait_removed(batch.pu_id, WAIT)
    assert table_of(a, host_a, batch.pu_id) is None
    assert not batch_cgroup.exists()  # noqa: ASYNC240
    assert a.enforcer.pus.all() == []


async def test_namespace_pu_reaches_a_process_pu_listening_port_by_policy(
    plane: ControlPlane, hosts: HostFactory, topo: Topology, runs: list[Run]
) -> None:
    a, b = await hosts("a"), await hosts("b")
    host = topo.hosts["a"]
    b1, b2 = topo.pu("b1"), topo.pu("b2")
    web = await b.add_pu(b1.name, labels={"app": "web"})
    batch = await b.add_pu(b2.name, labels={"app": "batch"})
    db = await start_run(a, host.name, "db", {"app": "db"})
    runs.append(db)
    assert await db.ask(f"listen {PORT}") == "listening"
    await plane.apply(SHOP)
    await converge([a], lambda v: serves(db.pu_id)(v) and knows(web, batch)(v))
    await converge([b], lambda v: serves(web, batch)(v) and knows(db.pu_id)(v))
    await converge([a, b], names_policy("batch-never-db"))

    assert (await asyncio.to_thread(attempt, b1.name, (host.link_ip, PORT)))[0] == 0
    code, seconds = await asyncio.to_thread(attempt, b2.name, (host.link_ip, PORT))
    assert code in (errno.ECONNRESET, errno.EPIPE, errno.ECONNREFUSED)
    assert seconds < 1.0

    await flush_flows(a, b)
    records = await plane.flows()
    inbound = flows_between(records, web, db.pu_id)
    assert inbound["ingress"].decision.verdict.value == "allow"
    assert inbound["ingress"].destination.pu_id == db.pu_id
    assert flows_between(records, batch, db.pu_id)["egress"].decision.verdict.value == "reject"


API_ONLY = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations: {trustwire.io/default-action: reject}
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: web-to-api, namespace: shop}
spec:
  subject: {matchLabels: {app: web}}
  object: {matchLabels: {app: api}}
  action: allow
---
apiVersion: trustwire.io/v1
kind: NetworkAccessPolicy
metadata: {name: web-never-admin, namespace: shop}
spec:
  tier: security
  subject: {matchLabels: {app: web}}
  object: {matchLabels: {app: admin}}
  action: reject
"""


async def test_process_pus_sharing_an_address_are_reached_by_their_own_port(
    plane: ControlPlane, hosts: HostFactory, topo: Topology, runs: list[Run]
) -> None:
    """Two process PUs of one host namespace share its address and listen on different ports.
    A namespace PU on the other host is admitted at the one policy allows and refused (a fast
    reset) at the other; each side's flow records name the PU that owns the port. ``api``
    declares its port (the source picks it from the directory); ``admin`` declares none (the
    source asks about both, and the destination enforcer answers for the PU whose cgroup owns
    the listening socket). Before, the address resolved to one of them for both ports."""
    a, b = await hosts("a"), await hosts("b")
    host = topo.hosts["a"]
    b1 = topo.pu("b1")
    web = await b.add_pu(b1.name, labels={"app": "web"})
    api = await start_run(a, host.name, "api", {"app": "api"}, ports={"http": PORT})
    admin = await start_run(a, host.name, "admin", {"app": "admin"})
    runs += [api, admin]
    assert await api.ask(f"listen {PORT}") == "listening"
    assert await admin.ask(f"listen {PORT + 1}") == "listening"
    await plane.apply(API_ONLY)
    await converge([a], lambda v: serves(api.pu_id, admin.pu_id)(v) and knows(web)(v))
    await converge([b], lambda v: serves(web)(v) and knows(api.pu_id, admin.pu_id)(v))
    await converge(
        [a, b], lambda v: names_policy("web-to-api")(v) and names_policy("web-never-admin")(v)
    )

    for _ in range(2):
        assert (await asyncio.to_thread(attempt, b1.name, (host.link_ip, PORT)))[0] == 0
        code, seconds = await asyncio.to_thread(attempt, b1.name, (host.link_ip, PORT + 1))
        assert code in (errno.ECONNRESET, errno.EPIPE, errno.ECONNREFUSED)
        assert seconds < 1.0, "a rejection is a fast reset"

    await flush_flows(a, b)
    records = await plane.flows()
    allowed = flows_between(records, web, api.pu_id)
    assert set(allowed) == {"egress", "ingress"}
    for side in allowed.values():
        assert side.decision.verdict.value == "allow"
        assert side.decision.policy == "shop/web-to-api"
        assert side.destination.port == PORT
        assert side.connection_count == 2
    assert allowed["ingress"].destination.labels.get("app") == "api"
    refused = flows_between(records, web, admin.pu_id)
    assert set(refused) == {"egress", "ingress"}
    for side in refused.values():
        assert side.decision.verdict.value == "reject"
        assert side.decision.policy == "shop/web-never-admin"
        assert side.destination.port == PORT + 1
        assert side.connection_count == 2
    assert refused["egress"].destination.labels.get("app") == "admin"
    # Nothing was admitted or refused under the other PU's name.
    for record in records:
        if record.destination.pu_id == api.pu_id:
            assert record.destination.port == PORT
        if record.destination.pu_id == admin.pu_id:
            assert record.destination.port == PORT + 1


async def test_trustwire_run_refuses_bad_input_in_one_line_with_exit_code_2(
    tmp_path: Path,
) -> None:
    socket_path = tmp_path / "none.sock"  # validation happens before any enforcer is asked
    cases = {
        "no command": (["run", "--label", "app=web"], "no command"),
        "no command after --": (["run", "--label", "app=web", "--"], "no command"),
        "malformed label": (["run", "--label", "app", "--", "true"], "--label"),
        "reserved label": (["run", "--label", "exe-sha256=x", "--", "true"], "exe-sha256"),
        "missing executable": (
            ["run", "--label", "app=web", "--", "/nonexistent/trustwire-test"],
            "/nonexistent/trustwire-test",
        ),
    }
    for case, (args, needle) in cases.items():
        done = await asyncio.to_thread(
            subprocess.run,
            cli(socket_path, args[:1], *args[1:]),
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (case, done.stderr)
        assert len(lines) == 1, (case, done.stderr)
        assert "Traceback" not in done.stderr, (case, done.stderr)
        assert needle in lines[0], (case, lines[0])


async def test_the_enforcer_refuses_reserved_labels_and_foreign_processes(
    plane: ControlPlane, hosts: HostFactory
) -> None:
    a = await hosts("a")
    client = LocalApiClient(a.enforcer.settings.local_socket)
    request = local_pb.PrepareRunRequest(
        executable="/bin/true", namespace="shop", labels={"user": "0"}
    )
    with pytest.raises(InvalidArgument, match=r"labels\.user"):
        await client.call("PrepareRun", request.SerializeToString())
    request = local_pb.PrepareRunRequest(executable="/bin/true", namespace="shop")
    prepared = local_pb.PrepareRunResponse.FromString(
        await client.call("PrepareRun", request.SerializeToString())
    )
    assert Path(prepared.cgroup_path).is_dir()  # noqa: ASYNC240
    # A process that is not the caller's stopped child (here: the enforcer's own test process)
    # is refused, and the prepared cgroup is discarded.
    start = local_pb.StartRunRequest(pu_id=prepared.pu_id, pid=os.getpid())
    with pytest.raises(TrustwireError, match=r"not a child of the caller|not stopped"):
        await client.call("StartRun", start.SerializeToString())
    assert a.enforcer.pus.get(prepared.pu_id) is None


async def test_policy_selects_a_process_pu_by_its_attested_executable(
    plane: ControlPlane, hosts: HostFactory, topo: Topology, runs: list[Run]
) -> None:
    """`exe-sha256` is attested by the enforcer, not claimed by the workload: a policy naming
    the binary's digest admits the process PU on both sides (the destination's own ingress
    and the source's egress to it), a wrong digest does not."""
    a, b = await hosts("a"), await hosts("b")
    host = topo.hosts["a"]
    b1 = topo.pu("b1")
    web = await b.add_pu(b1.name, labels={"app": "web"})
    db = await start_run(a, host.name, "db", {"app": "db"})
    runs.append(db)
    assert await db.ask(f"listen {PORT}") == "listening"
    digest = hashlib.sha256(await asyncio.to_thread(Path(PYTHON).read_bytes)).hexdigest()
    by_binary = SHOP.split("---")[0] + (
        "---\napiVersion: trustwire.io/v1\nkind: NetworkAccessPolicy\n"
        "metadata: {name: web-to-python, namespace: shop}\n"
        "spec:\n  subject: {matchLabels: {app: web}}\n"
        f"  object: {{matchLabels: {{exe-sha256: '{digest}'}}}}\n"
        f"  ports: [{{protocol: TCP, port: {PORT}}}]\n  action: allow\n"
    )
    await plane.apply(by_binary)
    await converge([a], lambda v: serves(db.pu_id)(v) and names_policy("web-to-python")(v))
    await converge([b], lambda v: knows(db.pu_id)(v) and names_policy("web-to-python")(v))
    assert (await asyncio.to_thread(attempt, b1.name, (host.link_ip, PORT)))[0] == 0

    revision = await plane.apply(by_binary.replace(digest, "0" * 64))
    # db's enforcer drops the policy (it no longer selects db); web's keeps it, at the new
    # revision, where it names no PU of host a.
    await converge([a], lambda v: not names_policy("web-to-python")(v))
    await asyncio.gather(
        *(
            h.enforcer.wait_for(
                lambda e: e.policy is not None and e.policy.revision >= revision, WAIT
            )
            for h in (a, b)
        )
    )
    code, seconds = await asyncio.to_thread(attempt, b1.name, (host.link_ip, PORT))
    assert code in (errno.ECONNRESET, errno.EPIPE, errno.ECONNREFUSED)
    assert seconds < 1.0

    await flush_flows(a, b)
    pair = flows_between(await plane.flows(), web, db.pu_id)
    assert pair["ingress"].destination.labels.get("exe-sha256") == digest


async def listed_pus(client: LocalApiClient) -> dict[str, local_pb.LocalPu]:
    listed = local_pb.ListPusResponse.FromString(await client.call("ListPus", b""))
    return {p.pu.id: p for p in listed.pus}


async def test_a_restarted_enforcer_serves_its_live_process_pus_again_and_drops_dead_ones(
    plane: ControlPlane, hosts: HostFactory, topo: Topology, runs: list[Run], tmp_path: Path
) -> None:
    """Enforcer b runs as its own process (SIGKILLed for real) and serves two `trustwire run`
    PUs. While b is down, db fails closed (its connections fail at once, both ways) and keeps
    running; `gone` dies. The restarted b serves db again from disk (same PU, same process,
    connections its policy allows work again), and cleans up after `gone`: its table, its
    cgroup, its record on disk and in the policy service (peers stop listing it)."""
    a = await hosts("a")
    settings = await enforcer_settings(
        plane, "node-b", tmp_path / "node-b", listen_address=f"127.0.0.1:{free_port()}"
    )
    b = EnforcerProcess(settings, log=tmp_path / "node-b.log")
    local_b = LocalApiClient(settings.local_socket)
    host_b = topo.hosts["b"]
    a1 = topo.pu("a1")
    outside = EchoServer(a1.name, a1.ip, PORT + 1)
    try:
        await b.start()
        await a.add_pu(a1.name, labels={"app": "web"})
        db = await start_run(
            a,
            host_b.name,
            "db",
            {"app": "db"},
            socket_path=settings.local_socket,
            enforcer_id="node-b",
        )
        gone = await start_run(
            a,
            host_b.name,
            "gone",
            {"app": "db"},
            socket_path=settings.local_socket,
            enforcer_id="node-b",
        )
        runs += [db, gone]
        assert await db.ask(f"listen {PORT}") == "listening"
        revision = await plane.apply(SHOP)
        await converge(
            [a], lambda v: knows(db.pu_id, gone.pu_id)(v) and names_policy("web-to-db")(v)
        )

        async def b_applied() -> bool:
            return (await status(local_b)).applied_revision >= revision

        await eventually(b_applied)
        before = await listed_pus(local_b)
        gone_cgroup = Path(before[gone.pu_id].cgroup_path)
        gone_table = a.enforcer.datapath.table_for(gone.pu_id)
        assert installed_ruleset(f"/run/netns/{host_b.name}", gone_table) is not None
        assert (await asyncio.to_thread(attempt, a1.name, (host_b.link_ip, PORT)))[0] == 0

        b.kill()
        # Fail closed: db is not reached and reaches nothing, at once; it keeps running.
        code, seconds = await asyncio.to_thread(attempt, a1.name, (host_b.link_ip, PORT))
        assert code != 0
        assert seconds < 1.0
        out = (await db.ask(f"connect {a1.ip} {PORT + 1}")).split()
        assert out[0] == "err"
        assert int(out[1]) == errno.ECONNREFUSED
        assert float(out[2]) < 1.0
        gone.kill_all()  # CLI and command die while nobody watches

        await b.start()
        after = await listed_pus(local_b)
        assert list(after) == [db.pu_id]
        assert after[db.pu_id].state == local_pb.LOCAL_PU_STATE_ENFORCED
        assert after[db.pu_id].pid == before[db.pu_id].pid  # the same process, not re-run
        assert (await asyncio.to_thread(attempt, a1.name, (host_b.link_ip, PORT)))[0] == 0
        assert db.process.poll() is None
        assert await db.ask(f"connect {a1.ip} {PORT + 1}") != "ok"  # still enforced: no rule

        # The dead PU: rules gone from the shared namespace, cgroup removed, record dropped
        # on disk and deregistered (a's directory stops listing it).
        assert installed_ruleset(f"/run/netns/{host_b.name}", gone_table) is None
        stored = json.loads((settings.state_dir / "pus.json").read_text())
        assert [p["pu_id"] for p in stored["pus"]] == [db.pu_id]
        await converge([a], lambda v: knows(db.pu_id)(v) and not knows(gone.pu_id)(v))

        async def cgroup_removed() -> bool:
            return not gone_cgroup.exists()  # noqa: ASYNC240

        await eventually(cgroup_removed)

        # And b still removes db when its command ends.
        db_cgroup = Path(after[db.pu_id].cgroup_path)
        assert db.process.stdin is not None
        db.process.stdin.write("exit 0\n")
        db.process.stdin.flush()
        assert await db.wait() == 0

        async def db_removed() -> bool:
            return db.pu_id not in await listed_pus(local_b) and not db_cgroup.exists()  # noqa: ASYNC240

        await eventually(db_removed)
        assert (
            installed_ruleset(f"/run/netns/{host_b.name}", a.enforcer.datapath.table_for(db.pu_id))
            is None
        )
    finally:
        for run in runs:
            if run.process.poll() is None:
                run.kill_all()
        b.terminate()  # an orderly stop keeps PUs (their fail mode): clean up after them
        discard_cgroups("node-b.")
        outside.close()


def discard_cgroups(prefix: str) -> None:
    """Empty and remove the Trustwire cgroups named ``prefix*`` (bounded wait)."""
    tree = TrustwireCgroups()
    for path in tree.root.glob(f"{prefix}*"):
        TrustwireCgroups.kill(path)
        deadline = time.monotonic() + WAIT
        while TrustwireCgroups.populated(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        TrustwireCgroups.remove(path)
