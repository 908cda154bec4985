"""Network-namespace topologies for end-to-end tests: "hosts" and PUs as real namespaces.

::

    PU a1 (eth0 10.231.11.2) ──veth── host a (pu1 10.231.11.1, link0 10.231.0.1)
                                          │ veth (the "wire" between hosts; capture here)
    PU b1 (eth0 10.231.21.2) ──veth── host b (pu1 10.231.21.1, link0 10.231.0.2)

Host i's PUs are ``10.231.(10*(i+1)+n).2`` with the host side at ``.1``; hosts forward and
route each other's PU ranges over ``link0``. Every address lives inside namespaces this module
creates, so parallel runs (each with its own name prefix) never see each other's traffic.
:meth:`Topology.destroy` deletes every namespace (which deletes their links, addresses and nft
tables); it is safe to call twice and after a partial build.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from trustwire_enforcer.datapath.netns import run_in_netns, socket_in_netns

__all__ = [
    "EchoServer",
    "HostNs",
    "PuNs",
    "Sniffer",
    "Topology",
    "build_topology",
    "connect_in",
    "existing_namespaces",
    "unique_prefix",
]

LINK_IF = "link0"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _sysctl(netns: str, key: str, value: str) -> None:
    # /proc/sys/net is resolved in the opener's namespace, so a thread inside the PU will do.
    path = "/proc/sys/" + key.replace(".", "/")

    def write() -> None:
        with open(path, "w") as fh:
            fh.write(value)

    run_in_netns(netns, write)


def unique_prefix() -> str:
    """Short, unique per run (pid + random), so parallel runs never collide."""
    return f"tw{os.getpid() % 0xFFFF:x}{secrets.token_hex(2)}"


def existing_namespaces() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


@dataclass
class PuNs:
    name: str  # netns name
    host: str
    ip: str
    gateway: str


@dataclass
class HostNs:
    name: str  # netns name
    key: str  # "a", "b"
    link_ip: str
    pus: list[PuNs] = field(default_factory=list)


@dataclass
class Topology:
    prefix: str
    hosts: dict[str, HostNs] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)

    @property
    def pus(self) -> dict[str, PuNs]:
        return {
            pu.name.removeprefix(self.prefix + "-"): pu for h in self.hosts.values() for pu in h.pus
        }

    def pu(self, key: str) -> PuNs:
        """``pu("a1")``: first PU of host a."""
        return self.pus[key]

    def destroy(self) -> None:
        for name in reversed(self.created):
            subprocess.run(
                ["ip", "netns", "del", name], capture_output=True, check=False, timeout=10
            )
        self.created.clear()


def _add_netns(topo: Topology, name: str) -> None:
    _ip("netns", "add", name)
    topo.created.append(name)
    _ip("-n", name, "link", "set", "lo", "up")


def build_topology(
    prefix: str, pus_per_host: int = 1, hosts: tuple[str, ...] = ("a", "b")
) -> Topology:
    """Two (or more) hosts on one wire, each with ``pus_per_host`` PU namespaces."""
    if len(hosts) != 2:
        raise ValueError("the wire is one veth pair: exactly two hosts")
    topo = Topology(prefix)
    try:
        for index, key in enumerate(hosts):
            host = HostNs(f"{prefix}-{key}", key, f"10.231.0.{index + 1}")
            _add_netns(topo, host.name)
            _sysctl(host.name, "net.ipv4.ip_forward", "1")
            topo.hosts[key] = host
        a, b = (topo.hosts[k] for k in hosts)
        _ip(
            "-n",
            a.name,
            "link",
            "add",
            LINK_IF,
            "type",
            "veth",
            "peer",
            "name",
            LINK_IF,
            "netns",
            b.name,
        )
        for host in (a, b):
            _ip("-n", host.name, "addr", "add", f"{host.link_ip}/24", "dev", LINK_IF)
            _ip("-n", host.name, "link", "set", LINK_IF, "up")
        for index, host in enumerate((a, b)):
            base = 10 * (index + 1)
            for n in range(1, pus_per_host + 1):
                subnet = f"10.231.{base + n}"
                pu = PuNs(f"{prefix}-{host.key}{n}", host.key, f"{subnet}.2", f"{subnet}.1")
                _add_netns(topo, pu.name)
                hif = f"pu{n}"
                _ip(
                    "-n",
                    host.name,
                    "link",
                    "add",
                    hif,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    pu.name,
                )
                _ip("-n", host.name, "addr", "add", f"{pu.gateway}/24", "dev", hif)
                _ip("-n", host.name, "link", "set", hif, "up")
                _ip("-n", pu.name, "addr", "add", f"{pu.ip}/24", "dev", "eth0")
                _ip("-n", pu.name, "link", "set", "eth0", "up")
                _ip("-n", pu.name, "route", "add", "default", "via", pu.gateway)
                host.pus.append(pu)
        for host, other in ((a, b), (b, a)):
            for pu in other.pus:
                subnet = pu.ip.rsplit(".", 1)[0] + ".0/24"
                _ip("-n", host.name, "route", "add", subnet, "via", other.link_ip)
    except BaseException:
        topo.destroy()
        raise
    return topo


def connect_in(netns: str, address: tuple[str, int], timeout: float = 2.0) -> socket.socket:
    """A TCP client socket created in ``netns`` and connected to ``address``."""
    sock = socket_in_netns(netns)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


class EchoServer:
    """Echoes every byte back; on the client's FIN it finishes echoing and sends FIN (so a test
    can check half-close). ``threads`` pre-started threads each accept and serve one connection
    at a time (starting a thread per connection costs ~1 ms on small VMs and would dominate
    latency figures). :meth:`close` stops it. Records every accepted peer address."""

    def __init__(
        self, netns: str, host: str, port: int, *, echo: bool = True, threads: int = 8
    ) -> None:
        self.echo = echo
        self.peers: list[tuple[str, int]] = []
        self.received = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._sock = socket_in_netns(netns)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(1024)
        self.address = self._sock.getsockname()
        self._threads = [
            threading.Thread(target=self._accept_loop, daemon=True, name="echo")
            for _ in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, peer = self._sock.accept()
            except OSError:
                return  # closed by close()
            with self._lock:
                self.peers.append(peer)
                self._conns.append(conn)
            self._serve(conn)
            with self._lock:
                self._conns.remove(conn)
            conn.close()

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray(256 * 1024)
        try:
            while n := conn.recv_into(buf):
                with self._lock:
                    self.received += n
                if self.echo:
                    conn.sendall(memoryview(buf)[:n])
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
        for thread in self._threads:
            thread.join(timeout=5)
        self._sock.close()
        with self._lock:
            for conn in self._conns:
                conn.close()


ETH_P_ALL = 0x0003


class Sniffer:
    """Captures every frame on ``ifname`` inside ``netns`` (AF_PACKET, both directions) until
    stopped; :meth:`contains` searches the raw bytes. Bounded: at most ``max_bytes`` kept."""

    def __init__(self, netns: str, ifname: str, max_bytes: int = 256 * 1024 * 1024) -> None:
        self._sock = socket_in_netns(
            netns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)
        )
        self._sock.bind((ifname, 0))
        self._sock.settimeout(0.05)
        self._max = max_bytes
        self._data = bytearray()
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sniffer")
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray(256 * 1024)
        while not self._stop.is_set():
            try:
                n = self._sock.recv_into(buf)
            except TimeoutError:
                continue
            except OSError:
                return
            self.frames += 1
            if len(self._data) + n <= self._max:
                self._data += buf[:n]

    def stop(self) -> bytes:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        return bytes(self._data)

    def wait_for_frames(self, count: int, timeout: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.frames < count and time.monotonic() < deadline:
            self._stop.wait(0.01)
        return self.frames >= count


@contextlib.contextmanager
def topology(pus_per_host: int = 1) -> Iterator[Topology]:
    topo = build_topology(unique_prefix(), pus_per_host)
    try:
        yield topo
    finally:
        topo.destroy()
