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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.enforcer.conftest import HostFactory
from tests.e2e.enforcer.harness import (
    PORT,
    WAIT,
    ControlPlane,
    Host,
    attempt,
    converge,
    flows_between,
    flush_flows,
    knows,
    names_policy,
    serves,
)
from tests.support.netns import EchoServer, Topology
from trustwire.api.common.v1 import envelope_pb2
from trustwire.api.enforcer.v1 import enforcer_local_service_pb2 as local_pb
from trustwire.errors import InvalidArgument, TrustwireError
from trustwire.identity._codec import decode_document
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


async def start_run(host: Host, netns: str, name: str, labels: dict[str, str]) -> Run:
    socket_path = host.enforcer.settings.local_socket
    label_args = [x for k, v in labels.items() for x in ("--label", f"{k}={v}")]
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
    run = Run(process, f"{host.enforcer.enforcer_id}.{name}")
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
