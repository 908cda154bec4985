"""A whole Trustwire deployment on this machine, started in dependency order:

1. etcd (loopback ports, data in the state directory);
2. the identity service (writes the admin credential on first start);
3. two policy replicas, enrolled with service join tokens like any Trustwire service;
4. the network (``topology``): hosts a and b and one namespace per example pod;
5. one enforcer per host (root network namespace, loopback, as in the enforcer's end-to-end
   harness), enrolled with enforcer join tokens;
6. the example PUs: each pod's namespace registered through its host's enforcer's local API,
   a server on its ports; each process PU started with the real ``trustwire run`` inside its
   host's namespace (the enforcer attests it and creates its cgroup), running
   ``process_agent.py``;
7. the example policies applied, and every enforcer's ack of that revision awaited.

Each step is bounded in time and fails with one line naming the log to read. Everything
started is recorded in the state directory's manifest first, so ``down`` (run by ``up`` itself
on failure) can always undo it.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from trustwire.errors import FailedPrecondition
from trustwire.flows import FlowRecord
from trustwire.policy.model import RESERVED_LABELS
from trustwire_enforcer.datapath.cgroups import CgroupError, TrustwireCgroups

from .control_plane import SERVER_NAME, Admin, enroll_service, local_pus, register_pu
from .processes import Child, eventually, spawn, stop_recorded
from .report import Row, build_rows
from .scenario import Probe, PuSpec, Scenario
from .state import Manifest
from .topology import HOSTS, build_topology, destroy_namespaces
from .traffic import Outcome, PuServers, agent_serving, attempt, attempt_from_agent

__all__ = ["LocalDeployment", "down"]

TRUST_DOMAIN = "local.trustwire.example"
START_TIMEOUT_S = 30.0  # one service to become ready
ACK_TIMEOUT_S = 30.0  # every enforcer to apply the example policies
FLOW_TIMEOUT_S = 15.0  # the flow records of every probe to reach the policy service
# One connection at a time. Concurrent first connections between two enforcers sometimes
# fail with EXPIRED at the source while their channel session is being set up (an enforcer
# race, reported); one at a time the demo's 16 connections still take under a second.
PROBE_CONCURRENCY = 4
RUN_STOP_TIMEOUT_S = 10.0  # a process PU's command to exit and its enforcer to remove the PU
CGROUP_EMPTY_TIMEOUT_S = 5.0  # a killed cgroup's processes to be gone
# Stop order: what depends on others first. A process PU's ``trustwire run`` goes before its
# enforcer, which removes the PU (rules, cgroup, record) when the command exits; enforcers
# report to the policy replicas, which need identity's certificates and etcd.
STOP_ORDER = ("pu", "enforcer", "policy", "identity", "etcd")
AGENT = Path(__file__).with_name("process_agent.py")


def free_ports(count: int) -> list[int]:
    """Loopback ports free a moment ago (held together so they differ). Another process could
    take one before the service binds it; that start then fails naming the port."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _environment(drop_prefix: str) -> dict[str, str]:
    # The caller's own settings for a service must not leak into the demo's instance of it.
    return {k: v for k, v in os.environ.items() if not k.startswith(drop_prefix)}


def _trustwire_cli() -> list[str]:
    """The ``trustwire`` entry point of this installation (the one running ``up``)."""
    script = Path(sys.executable).parent / "trustwire"
    if os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "trustwire_cli.main"]


@dataclass
class ProcessPu:
    """A running process PU: its ``trustwire run`` (the recorded child) and what its enforcer
    attested once it was served."""

    spec: PuSpec
    child: Child
    control: Path  # the agent's request socket
    pu_id: str
    cgroup: Path
    pid: int = 0
    attested: dict[str, str] = field(default_factory=dict)


@dataclass
class LocalDeployment:
    state_dir: Path
    manifest: Manifest
    scenario: Scenario
    etcd_binary: str
    children: dict[str, Child] = field(default_factory=dict)
    etcd_endpoint: str = ""
    identity_address: str = ""
    enroll_address: str = ""
    policy_addresses: list[str] = field(default_factory=list)
    enforcer_sockets: dict[str, Path] = field(default_factory=dict)
    # Prometheus endpoints (``GET /metrics``) by service name, e.g. "enforcer-a".
    metrics_addresses: dict[str, str] = field(default_factory=dict)
    pu_ids: dict[str, str] = field(default_factory=dict)
    servers: list[PuServers] = field(default_factory=list)
    process_pus: dict[str, ProcessPu] = field(default_factory=dict)
    admin: Admin | None = None

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "config"

    def _spawn(self, name: str, argv: Sequence[str], env: dict[str, str]) -> Child:
        child = spawn(self.manifest, name, argv, log_dir=self.logs, env=env)
        self.children[name] = child
        return child

    # ------------------------------------------------------------------ control plane

    async def start_etcd(self) -> None:
        client, peer = free_ports(2)
        self.etcd_endpoint = f"127.0.0.1:{client}"
        data = self.state_dir / "etcd"
        data.mkdir(mode=0o700)
        env = _environment("ETCD_")
        child = self._spawn(
            "etcd",
            [
                self.etcd_binary,
                "--name=trustwire-up",
                f"--data-dir={data}",
                f"--listen-client-urls=http://{self.etcd_endpoint}",
                f"--advertise-client-urls=http://{self.etcd_endpoint}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=trustwire-up=http://127.0.0.1:{peer}",
                "--initial-cluster-state=new",
                "--logger=zap",
                "--log-outputs=stderr",
            ],
            env,
        )
        await eventually(
            f"etcd on {self.etcd_endpoint}",
            lambda: _http_healthy(f"http://{self.etcd_endpoint}/health"),
            START_TIMEOUT_S,
            child=child,
        )

    async def start_identity(self) -> None:
        listen, enrol = free_ports(2)
        self.identity_address = f"127.0.0.1:{listen}"
        self.enroll_address = f"127.0.0.1:{enrol}"
        state = self.state_dir / "identity"
        env = _environment("TRUSTWIRE_IDENTITY_")
        env.update(
            {
                "TRUSTWIRE_IDENTITY_TRUST_DOMAIN": TRUST_DOMAIN,
                "TRUSTWIRE_IDENTITY_STATE_DIR": str(state),
                "TRUSTWIRE_IDENTITY_LISTEN_ADDRESS": self.identity_address,
                "TRUSTWIRE_IDENTITY_ENROLL_ADDRESS": self.enroll_address,
                "TRUSTWIRE_IDENTITY_ETCD_ENDPOINTS": self.etcd_endpoint,
            }
        )
        child = self._spawn("identity", [sys.executable, "-m", "trustwire_identity"], env)
        admin_dir = state / "admin"
        self.admin = Admin(
            admin_dir / "bundle.pem", admin_dir / "admin.crt", admin_dir / "admin.key"
        )
        admin = self.admin

        async def ready() -> bool:
            return (admin_dir / "config").is_file() and await admin.serving(self.identity_address)

        await eventually(
            f"the identity service on {self.identity_address}",
            ready,
            START_TIMEOUT_S,
            child=child,
        )

    async def start_policy(self, replicas: int = 2) -> None:
        admin = self._admin()
        # One call for both kinds, so that no gRPC port is also a metrics port.
        ports = free_ports(2 * replicas)
        starting: list[tuple[str, Child]] = []
        for index, (port, metrics_port) in enumerate(
            zip(ports[:replicas], ports[replicas:], strict=True), start=1
        ):
            name = f"policy-{index}"
            self.metrics_addresses[name] = f"127.0.0.1:{metrics_port}"
            token = await admin.join_token(self.identity_address, name, service=True)
            directory = self.state_dir / name
            tls = await enroll_service(
                self.enroll_address, token.token, token.ca_sha256, directory / "tls"
            )
            address = f"127.0.0.1:{port}"
            env = _environment("TRUSTWIRE_POLICY_")
            env.update(
                {
                    "TRUSTWIRE_POLICY_LISTEN_ADDRESS": address,
                    "TRUSTWIRE_POLICY_TRUST_DOMAIN": TRUST_DOMAIN,
                    "TRUSTWIRE_POLICY_TLS__CERTIFICATE": str(tls.certificate),
                    "TRUSTWIRE_POLICY_TLS__KEY": str(tls.key),
                    "TRUSTWIRE_POLICY_TLS__CLIENT_CA": str(tls.bundle),
                    # The replica renews its certificate there (at half life) and rewrites the
                    # three files above, which its server re-reads on the next connection.
                    "TRUSTWIRE_POLICY_IDENTITY__ADDRESS": self.identity_address,
                    "TRUSTWIRE_POLICY_IDENTITY__SERVER_NAME": SERVER_NAME,
                    "TRUSTWIRE_POLICY_ETCD__ENDPOINTS": self.etcd_endpoint,
                    "TRUSTWIRE_POLICY_FLOWS__PATH": str(directory / "flows.sqlite"),
                    "TRUSTWIRE_POLICY_METRICS_ADDRESS": self.metrics_addresses[name],
                }
            )
            starting.append(
                (address, self._spawn(name, [sys.executable, "-m", "trustwire_policy"], env))
            )
            self.policy_addresses.append(address)
        for address, child in starting:
            await eventually(
                f"policy replica {child.name} on {address}",
                functools.partial(admin.serving, address),
                START_TIMEOUT_S,
                child=child,
            )
        self._write_cli_config()

    def _write_cli_config(self) -> None:
        """The CLI connection file for this deployment (``TRUSTWIRE_CONFIG``): the identity
        service's, plus the policy address that ``apply``/``get``/``flows`` use."""
        identity_port = self.identity_address.rsplit(":", 1)[1]
        enroll_port = self.enroll_address.rsplit(":", 1)[1]
        policy_port = self.policy_addresses[0].rsplit(":", 1)[1]
        data = {
            "trust_domain": TRUST_DOMAIN,
            "identity": {
                "address": f"{SERVER_NAME}:{identity_port}",
                "enroll_address": f"{SERVER_NAME}:{enroll_port}",
            },
            "policy": {"address": f"{SERVER_NAME}:{policy_port}"},
            "ca_bundle": "identity/admin/bundle.pem",
            "certificate": "identity/admin/admin.crt",
            "key": "identity/admin/admin.key",
        }
        self.config_path.write_text(
            "# Trustwire CLI connection settings for 'trustwire up' (paths relative to here)\n"
            + yaml.safe_dump(data, sort_keys=False)
        )
        self.config_path.chmod(0o600)

    def _admin(self) -> Admin:
        if self.admin is None:
            raise FailedPrecondition("the identity service is not started")
        return self.admin

    # ------------------------------------------------------------------ hosts and PUs

    def build_network(self) -> None:
        build_topology(self.manifest, self.scenario.pus)

    async def start_enforcers(self) -> None:
        admin = self._admin()
        # One call for both kinds, so that no channel port is also a metrics port.
        ports = free_ports(2 * len(HOSTS))
        starting: list[Child] = []
        for key, port, metrics_port in zip(
            HOSTS, ports[: len(HOSTS)], ports[len(HOSTS) :], strict=True
        ):
            node = f"node-{key}"
            name = f"enforcer-{key}"
            self.metrics_addresses[name] = f"127.0.0.1:{metrics_port}"
            token = await admin.join_token(self.identity_address, node, service=False)
            state = self.state_dir / name
            state.mkdir(mode=0o700)
            sock = state / "enforcer.sock"
            self.enforcer_sockets[key] = sock
            env = _environment("TRUSTWIRE_ENFORCER_")
            env.update(
                {
                    "TRUSTWIRE_ENFORCER_NODE_NAME": node,
                    "TRUSTWIRE_ENFORCER_STATE_DIR": str(state),
                    "TRUSTWIRE_ENFORCER_JOIN_TOKEN": token.token,
                    "TRUSTWIRE_ENFORCER_IDENTITY__ADDRESS": self.identity_address,
                    "TRUSTWIRE_ENFORCER_IDENTITY__ENROLL_ADDRESS": self.enroll_address,
                    "TRUSTWIRE_ENFORCER_IDENTITY__CA_SHA256": token.ca_sha256,
                    "TRUSTWIRE_ENFORCER_IDENTITY__SERVER_NAME": SERVER_NAME,
                    "TRUSTWIRE_ENFORCER_POLICY__ADDRESSES": ",".join(self.policy_addresses),
                    "TRUSTWIRE_ENFORCER_POLICY__SERVER_NAME": SERVER_NAME,
                    "TRUSTWIRE_ENFORCER_LISTEN_ADDRESS": f"127.0.0.1:{port}",
                    "TRUSTWIRE_ENFORCER_LOCAL_SOCKET": str(sock),
                    "TRUSTWIRE_ENFORCER_METRICS_ADDRESS": self.metrics_addresses[name],
                    # Short windows so the demo's table has its flow records within a second.
                    "TRUSTWIRE_ENFORCER_FLOWS__INTERVAL": "0.5",
                    "TRUSTWIRE_ENFORCER_FLOWS__WINDOW": "1",
                }
            )
            starting.append(self._spawn(name, [sys.executable, "-m", "trustwire_enforcer"], env))
        for child in starting:

            async def ready(log: Path = child.log) -> bool:
                # The enforcer prints its ready line on stdout, which goes to its log.
                text = await asyncio.to_thread(log.read_text, errors="replace")
                return "trustwire-enforcer ready" in text

            await eventually(f"{child.name} to be ready", ready, START_TIMEOUT_S, child=child)

    def metrics_summary(self) -> list[str]:
        """One line per service that serves metrics, for the ``trustwire up`` summary."""
        return [
            f"{name} metrics on http://{address}/metrics"
            for name, address in sorted(self.metrics_addresses.items())
        ]

    async def start_pus(self) -> None:
        # Process PUs first: their ``trustwire run`` starts while the namespaces register.
        for pu in self.scenario.pus:
            if pu.is_process:
                self._start_run(pu)
        for pu in self.scenario.pus:
            if pu.is_process:
                continue
            servers = PuServers(pu)
            await servers.start()
            self.servers.append(servers)
            self.pu_ids[pu.key] = await asyncio.wait_for(
                register_pu(self.enforcer_sockets[pu.host], pu), START_TIMEOUT_S
            )
        for run in self.process_pus.values():
            await self._served(run)

    def _start_run(self, pu: PuSpec) -> None:
        """``trustwire run`` inside the host's namespace. ``nsenter --net`` and not ``ip netns
        exec``, which remounts /sys and so would hide the cgroup2 mount from it."""
        node = f"node-{pu.host}"
        directory = self.state_dir / f"pu-{pu.name}"
        directory.mkdir(mode=0o700)
        control = directory / "agent.sock"
        # The enforcer names the cgroup after the PU id (<node>.<name>): recorded before it
        # exists, so ``down`` finds it whatever happens from here on.
        try:
            cgroup = TrustwireCgroups().path(f"{node}.{pu.name}")
        except CgroupError as error:
            raise FailedPrecondition(f"process PU {pu.key} needs cgroup v2: {error}") from None
        self.manifest.add_cgroup(cgroup)
        labels = [arg for k, v in sorted(pu.labels.items()) for arg in ("--label", f"{k}={v}")]
        ports = [arg for p in pu.ports for arg in ("--port", f"{p.name}:{p.number}")]
        argv = [
            "nsenter",
            f"--net=/run/netns/{pu.netns}",
            *_trustwire_cli(),
            "run",
            "--socket",
            str(self.enforcer_sockets[pu.host]),
            "--namespace",
            pu.namespace,
            "--name",
            pu.name,
            *labels,
            *ports,
            "--",
            # The interpreter itself (not the venv's symlink) is the attested executable; -I:
            # the agent needs only the standard library, and no environment may change it.
            os.path.realpath(sys.executable),
            "-I",
            "-u",
            str(AGENT),
            "--name",
            pu.key,
            *(arg for p in pu.ports for arg in ("--port", str(p.number))),
            "--control",
            str(control),
        ]
        child = self._spawn(f"pu-{pu.name}", argv, dict(os.environ))
        self.process_pus[pu.key] = ProcessPu(pu, child, control, f"{node}.{pu.name}", cgroup)

    async def _served(self, run: ProcessPu) -> None:
        """Until the agent answers (it runs only once its PU is enforced), then check that the
        enforcer registered what simulate evaluates: address, labels, ``pu-type``."""
        pu = run.spec
        await eventually(
            f"process PU {pu.key} (trustwire run) to be served",
            functools.partial(agent_serving, run.control),
            START_TIMEOUT_S,
            child=run.child,
        )
        listed = {p.pu.id: p for p in await local_pus(self.enforcer_sockets[pu.host])}
        local = listed.get(run.pu_id)
        if local is None:
            raise FailedPrecondition(f"node-{pu.host} does not list process PU {run.pu_id}")
        attested = dict(local.attested_labels)
        registered = sorted(local.pu.ips)
        differences = []
        if registered != [pu.ip]:
            differences.append(f"addresses {registered}, examples {[pu.ip]}")
        if attested.get("pu-type") != "process":
            differences.append(f"pu-type {attested.get('pu-type')!r}")
        own = {k: v for k, v in local.pu.labels.items() if k not in RESERVED_LABELS}
        if own != pu.labels:
            differences.append(f"labels {own}, examples {pu.labels}")
        if differences:
            raise FailedPrecondition(
                f"process PU {pu.key} is not what the examples declare: " + "; ".join(differences)
            )
        run.pid, run.attested = local.pid, attested
        if local.cgroup_path and Path(local.cgroup_path) != run.cgroup:
            run.cgroup = Path(local.cgroup_path)
            self.manifest.add_cgroup(run.cgroup)
        self.pu_ids[pu.key] = run.pu_id

    async def apply_policies(self) -> int:
        admin = self._admin()
        revision = await admin.apply(
            self.policy_addresses[0], self.scenario.policy_yaml, str(self.scenario.examples)
        )
        nodes = [f"node-{k}" for k in HOSTS]
        await eventually(
            f"every enforcer to apply revision {revision}",
            lambda: admin.acked(self.policy_addresses[0], nodes, revision),
            ACK_TIMEOUT_S,
        )
        return revision

    # ------------------------------------------------------------------ the demo

    async def drive(self) -> list[Row]:
        """Every probe once, then the flow records of all of them."""
        probes = self.scenario.probes()
        limit = asyncio.Semaphore(PROBE_CONCURRENCY)

        async def one(probe: Probe) -> Outcome:
            async with limit:
                run = self.process_pus.get(probe.source.key)
                if run is not None:
                    return await attempt_from_agent(run.control, probe)
                return await attempt(probe)

        outcomes = await asyncio.gather(*(one(p) for p in probes))
        records = await self._records_for(probes)
        expectations = [self.scenario.expect(p) for p in probes]
        return build_rows(probes, outcomes, records, expectations)

    async def _records_for(self, probes: Sequence[Probe]) -> list[FlowRecord]:
        """Poll the replicas until every probe has a flow record (bounded): enforcers report
        every half second, so a record arrives within about a second of its connection."""
        admin = self._admin()
        wanted = {(p.source.ip, p.destination.ip, p.port) for p in probes}
        records: list[FlowRecord] = []
        deadline = time.monotonic() + FLOW_TIMEOUT_S
        while True:
            records = await admin.flows(self.policy_addresses)
            seen = {(r.source.ip, r.destination.ip, r.port) for r in records}
            if wanted <= seen or time.monotonic() >= deadline:
                return records
            await asyncio.sleep(0.25)

    async def stop_process_pus(self) -> list[str]:
        """Stop each process PU's command as ``down`` does (SIGTERM to ``trustwire run``,
        which forwards it) and wait, bounded, until its enforcer removed the PU and its cgroup.
        Returns one line per PU saying so."""
        done: list[str] = []
        for run in self.process_pus.values():
            process = run.child.process
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                status = await asyncio.to_thread(process.wait, RUN_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise FailedPrecondition(
                    f"trustwire run of {run.spec.key} did not exit in {RUN_STOP_TIMEOUT_S:g} s "
                    f"(log: {run.child.log})"
                ) from None
            socket_path = self.enforcer_sockets[run.spec.host]

            async def removed(run: ProcessPu = run, socket_path: Path = socket_path) -> bool:
                listed = await local_pus(socket_path)
                return all(p.pu.id != run.pu_id for p in listed) and not run.cgroup.exists()

            await eventually(
                f"node-{run.spec.host} to remove process PU {run.pu_id}",
                removed,
                RUN_STOP_TIMEOUT_S,
            )
            done.append(
                f"{run.spec.key}: its command exited (trustwire run status {status}); "
                f"node-{run.spec.host} removed PU {run.pu_id}, its rules and its cgroup"
            )
        return done

    async def close_servers(self) -> None:
        for servers in self.servers:
            await servers.close()
        self.servers.clear()


async def _http_healthy(url: str) -> bool:
    import urllib.request

    def get() -> bool:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL
            return b'"true"' in response.read()

    return await asyncio.to_thread(get)


def down(state_dir: Path) -> list[str]:
    """Stop every recorded process (dependents first) and delete every recorded namespace.
    Idempotent: what is already gone is skipped. Returns what could not be cleaned."""
    manifest = Manifest.load(state_dir)
    problems: list[str] = []
    for group in STOP_ORDER:
        stop_recorded([p for p in manifest.processes if p.name.split("-")[0] == group])
    others = [p for p in manifest.processes if p.name.split("-")[0] not in STOP_ORDER]
    stop_recorded(others)
    problems += [f"process {p.name} (pid {p.pid})" for p in manifest.processes if p.alive()]
    problems += [f"cgroup {c}" for c in remove_cgroups(manifest)]
    problems += [f"network namespace {n}" for n in destroy_namespaces(manifest.namespaces)]
    # The manifest stays as the record of what ran (a recorded pid is only ever signalled
    # while its start time matches, so a later ``down`` touches nothing).
    return problems


def remove_cgroups(manifest: Manifest) -> list[str]:
    """Remove the process PUs' cgroups that are still there (their enforcer removes them when
    their command exits; this is for a command that outlived its ``trustwire run`` or an
    enforcer that was gone): SIGKILL what is left inside, wait (bounded) until it is empty,
    rmdir. Then the parent directories ``up`` caused to exist, if empty. Returns the PU
    cgroups that could not be removed."""
    failed: list[str] = []
    for name in reversed(manifest.cgroups):
        path = Path(name)
        if not path.exists():
            continue
        try:
            TrustwireCgroups.kill(path)
            deadline = time.monotonic() + CGROUP_EMPTY_TIMEOUT_S
            while TrustwireCgroups.populated(path) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not TrustwireCgroups.remove(path):
                failed.append(name)
        except CgroupError:
            failed.append(name)
    for name in reversed(manifest.cgroup_parents):
        try:
            Path(name).rmdir()
        except OSError as error:
            # Not empty (EBUSY: another user's cgroups in it now) or already gone: not ours.
            if error.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.ENOENT):
                failed.append(name)
    return failed


def pu_summary(pus: Sequence[PuSpec]) -> str:
    return ", ".join(
        f"{p.key} {p.ip} (host {p.host}{', process' if p.is_process else ''})" for p in pus
    )
