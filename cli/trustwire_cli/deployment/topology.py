"""The demo's network: two "hosts" and one network namespace per PU.

::

    tw-frontend 10.20.1.10/32 ─veth─ tw-host-a ─link0─ tw-host-b ─veth─ tw-db 10.20.1.30/32
    tw-api      10.20.1.20/32 ─veth─┘ 10.233.0.1       10.233.0.2 └─veth─ tw-prometheus
                                      └ backup (a process PU: the host's address)

PUs keep the addresses the examples give them (so ``trustwire simulate -f examples/`` and the
live deployment talk about the same IPs), even where two PUs of one /24 sit on different hosts.
So every PU address is a /32 routed to its veth (as Calico does): the PU's default route is a
link-local gateway address the host holds on its loopback (so it answers the PU's ARP for it on
every PU link), and each host routes the other's PUs over ``link0``. The gateway is kept off
the links so that a host's only address off ``lo`` is its ``link0`` address: a process PU
(``trustwire run`` inside the host's namespace) registers the addresses of its namespace, and
so gets exactly the host address the examples declare for it; the host's routes to its PUs
name that address as their source for the same reason. Every address lives inside namespaces
made here, so nothing on the machine's own network changes. Enforcers run in the root
namespace (as in the enforcer's end-to-end harness) and intercept inside the PU namespaces.

Deleting a namespace deletes its links, routes and nft tables: ``destroy_namespaces`` is the
whole cleanup, idempotent.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from trustwire.errors import FailedPrecondition
from trustwire_enforcer.datapath.netns import run_in_netns

from .state import Manifest

if TYPE_CHECKING:
    from .scenario import PuSpec

__all__ = [
    "HOSTS",
    "HOST_ADDRESSES",
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
# Each host's address on the wire: also the address of the process PUs it runs.
HOST_ADDRESSES = {"a": f"{LINK_NET}.1", "b": f"{LINK_NET}.2"}
GATEWAY = "169.254.1.1"  # every PU's default gateway: on each host's loopback


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
    # A process PU lives in its host's namespace: it adds none.
    return [host_netns(k) for k in HOSTS] + [pu.netns for pu in pus if not pu.is_process]


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
    link_ip = {host_netns(k): HOST_ADDRESSES[k] for k in HOSTS}
    for host in (a, b):
        _add_netns(manifest, host)
        _sysctl(host, "net.ipv4.ip_forward", "1")
        # scope link: never chosen as a source address for a routed destination.
        _ip("-n", host, "addr", "add", f"{GATEWAY}/32", "dev", "lo", "scope", "link")
    _ip("-n", a, "link", "add", LINK_IF, "type", "veth", "peer", "name", LINK_IF, "netns", b)
    for host in (a, b):
        _ip("-n", host, "addr", "add", f"{link_ip[host]}/24", "dev", LINK_IF)
        _ip("-n", host, "link", "set", LINK_IF, "up")
    for index, pu in enumerate(pus):
        if pu.is_process:
            continue  # started later by ``trustwire run`` inside its host's namespace
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
        _ip("-n", host, "route", "add", f"{pu.ip}/32", "dev", veth, "src", link_ip[host])
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
