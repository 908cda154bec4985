"""Real etcd servers for tests: one member (``EtcdServer``) or a loopback cluster (``EtcdCluster``).

Each member runs the installed ``etcd`` binary with its own ports and data directory. Readiness
is etcd's ``/health`` endpoint answering ``{"health": "true"}``, which etcd 3.4 only does once
the member has a leader and can serve a linearizable read; every wait is bounded. Members stop
by PID: SIGTERM, a bounded wait, then SIGKILL.

Free ports come from binding 127.0.0.1:0 and releasing the socket, so another process can take
the port before etcd binds it. A first start that fails with "address already in use" is
retried on fresh ports. A restart keeps its ports, because clients hold the endpoint.

This module does not import pytest or an etcd client, so scripts and benchmarks can use it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ETCD_BIN_ENV = "TRUSTWIRE_ETCD_BIN"
FALLBACK_BINARY = "/usr/bin/etcd"  # Debian's etcd-server, when PATH lacks /usr/bin
READY_TIMEOUT = 15.0  # seconds for a member (or a whole cluster) to become healthy
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
START_ATTEMPTS = 5  # fresh port sets tried when a port is taken before etcd binds it
LOG_TAIL_LINES = 40

# etcd 3.4 refuses to start on architectures other than amd64 and ppc64le unless
# ETCD_UNSUPPORTED_ARCH names the Go architecture it runs on.
_SUPPORTED_GOARCH = {"amd64", "ppc64le"}
_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "i386": "386",
    "i686": "386",
    "armv7l": "arm",
    "armv6l": "arm",
    "mips64": "mips64",
    "loongarch64": "loong64",
}


class EtcdNotFoundError(RuntimeError):
    """No etcd binary: the machine was not bootstrapped."""


class EtcdStartError(RuntimeError):
    """A member exited or did not become healthy in time; the message has its log tail."""


class PortInUseError(EtcdStartError):
    """A member could not bind one of its ports (someone took it after we picked it)."""


class EtcdRequestError(RuntimeError):
    """etcd answered a gateway request with an error."""


def find_etcd_binary() -> str:
    """``$TRUSTWIRE_ETCD_BIN``, else ``etcd`` on PATH, else ``/usr/bin/etcd``."""
    configured = os.environ.get(ETCD_BIN_ENV)
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured
        raise EtcdNotFoundError(
            f"etcd not found: {ETCD_BIN_ENV}={configured!r} is not an executable file "
            "(unset it or run scripts/bootstrap)"
        )
    for candidate in (shutil.which("etcd"), FALLBACK_BINARY):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise EtcdNotFoundError(
        f"etcd not found: run scripts/bootstrap (looked at ${ETCD_BIN_ENV}, PATH and "
        f"{FALLBACK_BINARY})"
    )


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (all held at once)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _etcd_environment() -> dict[str, str]:
    # etcd reads every ETCD_* variable as a flag and refuses to start when one conflicts with
    # a command-line flag, so the caller's etcd settings must not leak into test members.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    if "ETCD_UNSUPPORTED_ARCH" in os.environ:
        env["ETCD_UNSUPPORTED_ARCH"] = os.environ["ETCD_UNSUPPORTED_ARCH"]
    else:
        goarch = _GOARCH.get(platform.machine().lower())
        if goarch is not None and goarch not in _SUPPORTED_GOARCH:
            env["ETCD_UNSUPPORTED_ARCH"] = goarch
    return env


class EtcdMember:
    """One etcd process. Its name, ports and directory are fixed for its whole life.

    Layout under ``base_dir``: ``data/`` (etcd's ``--data-dir``) and ``etcd.log`` (stdout and
    stderr of every launch, each preceded by a ``=== launch`` line with the command).
    """

    def __init__(
        self,
        *,
        binary: str,
        name: str,
        base_dir: Path,
        client_port: int,
        peer_port: int,
        initial_cluster: str,
        cluster_token: str,
        heartbeat_ms: int = 50,
        election_ms: int = 500,
    ) -> None:
        self.binary = binary
        self.name = name
        self.base_dir = base_dir
        self.client_port = client_port
        self.peer_port = peer_port
        self.initial_cluster = initial_cluster
        self.cluster_token = cluster_token
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self.client_port

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT`` of the client (gRPC) listener."""
        return f"{self.host}:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "etcd.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        return [
            self.binary,
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            self.client_url,
            "--advertise-client-urls",
            self.client_url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            self.initial_cluster,
            # Ignored once the data dir holds a WAL, so a restart rejoins the same cluster.
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            self.cluster_token,
            "--heartbeat-interval",
            str(self.heartbeat_ms),
            "--election-timeout",
            str(self.election_ms),
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ]

    def launch(self) -> None:
        """Start the process without waiting for it; see ``wait_ready``."""
        if self.running:
            raise EtcdStartError(f"etcd member {self.name} is already running (pid {self.pid})")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        command = self.command()
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"=== launch: {' '.join(command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_etcd_environment(),
            )

    def healthy(self, timeout: float = 1.0) -> bool:
        """Whether ``/health`` answers ``"true"`` (a leader exists and a read succeeds)."""
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=timeout) as resp:
                body = json.load(resp)
        except (OSError, ValueError):
            return False
        return isinstance(body, dict) and body.get("health") == "true"

    def peer_serving(self, timeout: float = 1.0) -> bool:
        """Whether the peer listener answers HTTP (``/version``), i.e. the server is up."""
        try:
            with urllib.request.urlopen(f"{self.peer_url}/version", timeout=timeout) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_peer_serving(self, deadline: float) -> None:
        """Poll ``peer_serving`` until true; raise with the log tail on exit or at ``deadline``."""
        interval = 0.01
        while not self.peer_serving(timeout=max(0.05, min(0.5, deadline - time.monotonic()))):
            self.check_alive()
            if time.monotonic() >= deadline:
                raise EtcdStartError(
                    f"etcd member {self.name} (pid {self.pid}) does not serve {self.peer_url} in "
                    f"time; log {self.log_path}:\n{self.log_tail(since_launch=True)}"
                )
            self.pause(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, 0.2)

    def wait_ready(self, deadline: float) -> None:
        """Poll ``/health`` until healthy; raise with the log tail on exit or at ``deadline``.

        ``deadline`` is a ``time.monotonic()`` value.
        """
        wait_healthy([self], deadline)

    def check_alive(self) -> None:
        """Raise ``EtcdStartError`` (``PortInUseError`` for a bind failure) if it exited."""
        returncode = self._require_proc().poll()
        if returncode is None:
            return
        tail = self.log_tail(since_launch=True)
        error = PortInUseError if "address already in use" in tail else EtcdStartError
        raise error(
            f"etcd member {self.name} exited with {returncode} before it was healthy; "
            f"log {self.log_path}:\n{tail}"
        )

    def pause(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the process to exit: a poll interval that ends early."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._require_proc().wait(timeout=seconds)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. No-op when not running."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL right away: a crash, no graceful shutdown."""
        self._signal(signal.SIGKILL, STOP_TIMEOUT)

    def log_tail(self, lines: int = LOG_TAIL_LINES, *, since_launch: bool = False) -> str:
        try:
            with self.log_path.open("rb") as log:
                if since_launch:
                    log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except OSError as exc:
            return f"<no log: {exc}>"
        return "\n".join(text.splitlines()[-lines:])

    def gateway(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON to etcd's gRPC gateway (``/v3/...``); int64 fields are JSON strings."""
        request = urllib.request.Request(
            f"{self.client_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5.0) as resp:
                payload = json.load(resp)
        except urllib.error.HTTPError as exc:
            payload = json.load(exc)
        if not isinstance(payload, dict):
            raise EtcdRequestError(f"{path}: unexpected answer {payload!r}")
        if "error" in payload:
            raise EtcdRequestError(f"{path}: {payload['error']}")
        return payload

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise EtcdStartError(f"etcd member {self.name} was never launched")
        return self._proc

    def _signal(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"EtcdMember({self.name}, {self.endpoint}, {state})"


def wait_healthy(members: Sequence[EtcdMember], deadline: float) -> None:
    """Poll every member's ``/health`` until all are healthy (they may need each other for a
    quorum). Raise at once when one exits, or with every pending member's log at ``deadline``.
    """
    pending = list(members)
    interval = 0.01
    # etcd binds its listeners before it serves them, and a request sent in between hangs
    # until the client gives up. A short timeout, grown when the machine is slow, retries
    # sooner than a fixed one would.
    request_timeout = 0.2
    while True:
        for m in list(pending):
            started = time.monotonic()
            if m.healthy(timeout=max(0.05, min(request_timeout, deadline - started))):
                pending.remove(m)
                continue
            m.check_alive()
            if time.monotonic() - started >= request_timeout:
                request_timeout = min(request_timeout * 1.5, 1.0)
        if not pending:
            return
        if time.monotonic() >= deadline:
            logs = "\n".join(
                f"--- {m.name} (pid {m.pid}) log {m.log_path}:\n{m.log_tail(since_launch=True)}"
                for m in pending
            )
            names = ", ".join(m.endpoint for m in pending)
            raise EtcdStartError(f"etcd not healthy in time at {names}\n{logs}")
        pending[0].pause(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 2, 0.2)


class EtcdCluster:
    """``size`` members on loopback, one static cluster. ``start()`` waits until all are healthy.

    Members are addressed by index (0-based). ``kill``/``stop`` leave the data dir in place, so
    ``start``/``restart`` bring the same member back with its data.
    """

    def __init__(self, base_dir: Path, *, size: int = 3, binary: str | None = None) -> None:
        if size < 1:
            raise ValueError("an etcd cluster needs at least one member")
        self.base_dir = base_dir
        self.size = size
        self.binary = binary if binary is not None else find_etcd_binary()
        self.members: list[EtcdMember] = []

    @property
    def endpoints(self) -> list[str]:
        return [member.endpoint for member in self.members]

    def start(self, member: int | None = None, *, timeout: float = READY_TIMEOUT) -> None:
        """Start every member (first call: create the cluster), or just ``member``."""
        if member is not None:
            target = self.members[member]
            target.launch()
            target.wait_ready(time.monotonic() + timeout)
            return
        if not self.members:
            self._bootstrap(timeout)
            return
        for m in self.members:
            if not m.running:
                m.launch()
        wait_healthy(self.members, time.monotonic() + timeout)

    def stop(self, member: int | None = None) -> None:
        """Gracefully stop one member; or all of them, as ``close`` does."""
        if member is None:
            self.close()
        else:
            self.members[member].stop()

    def kill(self, member: int) -> None:
        """SIGKILL one member (a crash)."""
        self.members[member].kill()

    def restart(self, member: int | None = None, *, timeout: float = READY_TIMEOUT) -> None:
        """Stop and start one member (or all), waiting until it is healthy again."""
        self.stop(member)
        self.start(member, timeout=timeout)

    def leader(self) -> int:
        """Index of the member that currently leads, as its own status reports."""
        for index, m in enumerate(self.members):
            if not m.running:
                continue
            try:
                status = m.gateway("/v3/maintenance/status", {})
            except (OSError, ValueError, EtcdRequestError):
                continue
            if status.get("leader") and status["leader"] == status["header"]["member_id"]:
                return index
        raise EtcdRequestError("no running member reports itself as leader")

    def wait_for_leader(self, *, timeout: float = READY_TIMEOUT) -> int:
        """Poll until a running member leads (e.g. after killing the leader); its index.

        Write only after this: a proposal sent while followers still believe in a dead leader
        waits out etcd's request timeout (about 5 s) instead of failing fast.
        """
        deadline = time.monotonic() + timeout
        interval = 0.01
        while True:
            try:
                return self.leader()
            except EtcdRequestError:
                if time.monotonic() >= deadline:
                    raise EtcdRequestError(
                        f"no leader among {self.endpoints} within {timeout} s"
                    ) from None
            running = [m for m in self.members if m.running]
            if not running:
                raise EtcdRequestError("no member is running")
            running[0].pause(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, 0.2)

    def close(self) -> None:
        """Stop every member. Data dirs stay (for post-mortems and a later ``start()``).

        A leader that gets SIGTERM hands leadership to the peer it has been connected to
        longest. If that peer is stopping too, or was stopped a moment ago and still looks
        connected, the leader waits out etcd's request timeout (about 6 s) before exiting. So
        the leader and then all but one member are killed (etcd's WAL makes that safe for the
        data), and the last one, a follower without a leader, stops gracefully at once.
        """
        running = [m for m in self.members if m.running]
        if len(running) > 1:
            with contextlib.suppress(EtcdRequestError):
                leader = self.members[self.leader()]
                running.remove(leader)
                running.insert(0, leader)
        for m in running[:-1]:
            m.kill()
        for m in running[-1:]:
            m.stop()

    def _bootstrap(self, timeout: float) -> None:
        last_error: EtcdStartError | None = None
        for _ in range(START_ATTEMPTS):
            members = self._new_members()
            deadline = time.monotonic() + timeout
            try:
                # One at a time: a new member first asks every peer URL whether it is already
                # in a cluster, allowing 1 s per peer. A peer that is listening but not yet
                # serving swallows that whole second, so launching all members together takes
                # 0.4 s or 2.4 s at random. A member whose peer port answers HTTP is past it.
                for m in members:
                    m.launch()
                    m.wait_peer_serving(deadline)
                wait_healthy(members, deadline)
            except PortInUseError as exc:
                last_error = exc
                for m in members:
                    m.kill()
                    shutil.rmtree(m.base_dir, ignore_errors=True)
                continue
            except BaseException:
                for m in members:
                    m.kill()
                raise
            self.members = members
            return
        raise EtcdStartError(
            f"could not find free ports for etcd after {START_ATTEMPTS} attempts"
        ) from last_error

    def _new_members(self) -> list[EtcdMember]:
        ports = free_ports(2 * self.size)
        names = [f"m{i}" for i in range(self.size)]
        peers = [f"http://127.0.0.1:{ports[2 * i + 1]}" for i in range(self.size)]
        initial_cluster = ",".join(f"{n}={p}" for n, p in zip(names, peers, strict=True))
        token = f"trustwire-test-{secrets.token_hex(4)}"
        # Shorter than etcd's 100 ms / 1000 ms defaults: on loopback a re-election after a
        # killed leader then takes about half a second. A lone member has nobody to disagree
        # with, and etcd 3.4 restarts it only after a full election timeout, so it gets less.
        heartbeat_ms, election_ms = (25, 250) if self.size == 1 else (50, 500)
        return [
            EtcdMember(
                binary=self.binary,
                name=names[i],
                base_dir=self.base_dir / names[i],
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
                initial_cluster=initial_cluster,
                cluster_token=token,
                heartbeat_ms=heartbeat_ms,
                election_ms=election_ms,
            )
            for i in range(self.size)
        ]

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EtcdServer:
    """A single-member etcd: the usual test backend.

    ``endpoint`` (``"127.0.0.1:PORT"``), ``host`` and ``port`` stay the same across
    ``stop``/``start``/``restart``, and so does the data.
    """

    def __init__(self, base_dir: Path, *, binary: str | None = None) -> None:
        self._cluster = EtcdCluster(base_dir, size=1, binary=binary)

    @property
    def member(self) -> EtcdMember:
        if not self._cluster.members:
            raise EtcdStartError("etcd server was never started")
        return self._cluster.members[0]

    @property
    def endpoint(self) -> str:
        return self.member.endpoint

    @property
    def host(self) -> str:
        return self.member.host

    @property
    def port(self) -> int:
        return self.member.port

    @property
    def data_dir(self) -> Path:
        return self.member.data_dir

    @property
    def log_path(self) -> Path:
        return self.member.log_path

    @property
    def pid(self) -> int | None:
        return self.member.pid

    @property
    def running(self) -> bool:
        return bool(self._cluster.members) and self.member.running

    def start(self, *, timeout: float = READY_TIMEOUT) -> None:
        """Start (first time: on fresh ports) and wait until healthy."""
        self._cluster.start(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM, bounded wait, SIGKILL."""
        self._cluster.stop()

    def kill(self) -> None:
        """SIGKILL: a crash."""
        self.member.kill()

    def restart(self, *, timeout: float = READY_TIMEOUT) -> None:
        self._cluster.restart(timeout=timeout)

    def healthy(self) -> bool:
        return self.running and self.member.healthy()

    def revision(self) -> int:
        """The store's current revision."""
        answer = self.member.gateway("/v3/kv/range", {"key": "AA==", "count_only": True})
        return int(answer["header"]["revision"])

    def compact(self, revision: int, *, physical: bool = True) -> None:
        """Compact history below ``revision``; watches and reads before it then fail.

        ``physical=True`` returns only once the compaction is applied to the backend, so the
        next request sees it.
        """
        self.member.gateway("/v3/kv/compaction", {"revision": str(revision), "physical": physical})

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return self.member.log_tail(lines)

    def close(self) -> None:
        self._cluster.close()

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EtcdServer({self.member!r})" if self._cluster.members else "EtcdServer(new)"
