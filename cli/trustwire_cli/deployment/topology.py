"""The demo's network: two "hosts" and one network namespace per PU.

::

    tw-frontend 10.20.1.10/32 ─veth─ tw-host-a ─link0─ tw-host-b ─veth─ tw-db 10.20.1.30/32
    tw-api      10.20.1.20/32 ─veth─┘ 10.233.0.1       10.233.0.2 └─veth─ tw-prometheus

PUs keep the addresses the examples give them (so ``trustwire simulate -f examples/`` and the
live deployment talk about the same IPs), even where two PUs of one /24 sit on different hosts.
So every PU address is a /32 routed to its veth (as Calico does): the PU's default route is a
link-local gateway address that the host side of every PU link carries, and each host routes
the other's PUs over ``link0``. Every address lives inside namespaces made here, so nothing
on the machine's own network changes. Enforcers run in the root namespace (as in the
enforcer's end-to-end harness) and intercept inside the PU namespaces.

Deleting a namespace deletes its links, routes and nft tables: ``destroy_namespaces`` is the
whole cleanup, idempotent.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence

from trustwire.errors import FailedPrecondition
from trustwire_enforcer.datapath.netns import run_in_netns

from .scenario import PuSpec
from .state import Manifest

__all__ = [
    "HOSTS",
    "LINK_IF",
    "build_topology",
    "check_namespaces_free",
    "destroy_namespaces",
    "host_netns",
    "planned_namespaces",
]

HOSTS = ("a", "b")
LINK_IF = "link0"
LINK_NET = "10.233.0"  # the wire between the hosts (a private test range)
GATEWAY = "169.254.1.1"  # every PU's default gateway: the host end of its veth


def host_netns(key: str) -> str:
    return f"tw-host-{key}"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=10)
    if done.returncode != 0:
        raise FailedPrecondition(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _sysctl(netns: str, key: str, value: str) -> None:
    # /proc/sys/net resolves in the opening thread's namespace, so a thread inside will do.
    path = "/proc/sys/" + key.replace(".", "/")

    def write() -> None:
        with open(path, "w") as fh:
            fh.write(value)

    run_in_netns(netns, write)


def existing_namespaces() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def planned_namespaces(pus: Iterable[PuSpec]) -> list[str]:
    return [host_netns(k) for k in HOSTS] + [pu.netns for pu in pus]


def _add_netns(manifest: Manifest, name: str) -> None:
    _ip("netns", "add", name)
    manifest.add_namespace(name)
    _ip("-n", name, "link", "set", "lo", "up")


def check_namespaces_free(pus: Iterable[PuSpec]) -> None:
    """Refuse to start when a namespace of ours exists: another deployment (or a crashed one)
    owns it, and deleting it here would break that one."""
    clash = sorted(existing_namespaces() & set(planned_namespaces(pus)))
    if clash:
        raise FailedPrecondition(
            f"network namespace {clash[0]} already exists (another 'trustwire up'?): "
            "run 'trustwire down' with its --state-dir, or 'ip netns del' it"
        )


def build_topology(manifest: Manifest, pus: Sequence[PuSpec]) -> None:
    """Create the hosts, the wire and every PU namespace (recorded in ``manifest`` as they
    are made, so a failure half way is cleaned up by ``down``)."""
    check_namespaces_free(pus)
    a, b = (host_netns(k) for k in HOSTS)
    link_ip = {a: f"{LINK_NET}.1", b: f"{LINK_NET}.2"}
    for host in (a, b):
        _add_netns(manifest, host)
        _sysctl(host, "net.ipv4.ip_forward", "1")
    _ip("-n", a, "link", "add", LINK_IF, "type", "veth", "peer", "name", LINK_IF, "netns", b)
    for host in (a, b):
        _ip("-n", host, "addr", "add", f"{link_ip[host]}/24", "dev", LINK_IF)
        _ip("-n", host, "link", "set", LINK_IF, "up")
    for index, pu in enumerate(pus):
        host = host_netns(pu.host)
        other = b if host == a else a
        _add_netns(manifest, pu.netns)
        veth = f"pu{index}"
        _ip(
            "-n",
            host,
            "link",
            "add",
            veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            pu.netns,
        )
        _ip("-n", host, "link", "set", veth, "up")
        # The host side owns the gateway address on every PU link (the same /32 on each).
        _ip("-n", host, "addr", "add", f"{GATEWAY}/32", "dev", veth)
        _ip("-n", host, "route", "add", f"{pu.ip}/32", "dev", veth)
        _ip("-n", other, "route", "add", f"{pu.ip}/32", "via", link_ip[host])
        _ip("-n", pu.netns, "addr", "add", f"{pu.ip}/32", "dev", "eth0")
        _ip("-n", pu.netns, "link", "set", "eth0", "up")
        _ip("-n", pu.netns, "route", "add", GATEWAY, "dev", "eth0", "scope", "link")
        _ip("-n", pu.netns, "route", "add", "default", "via", GATEWAY, "dev", "eth0")


def destroy_namespaces(names: Iterable[str]) -> list[str]:
    """Delete each existing namespace of ``names`` (PUs before hosts: reverse order); return
    the ones that could not be deleted."""
    failed: list[str] = []
    present = existing_namespaces()
    for name in reversed(list(names)):
        if name not in present:
            continue
        done = subprocess.run(
            ["ip", "netns", "del", name], capture_output=True, check=False, timeout=10
        )
        if done.returncode != 0:
            failed.append(name)
    return failed
