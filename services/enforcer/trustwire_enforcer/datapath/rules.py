"""nftables rules installed *inside* a PU's network namespace.

Two shapes of the same table (``inet trustwire`` by default):

* ``INTERCEPT``: new outgoing TCP from the PU (not via ``lo``, not from the enforcer's own
  marked sockets) is REDIRECTed to the enforcer's outbound listener (``127.0.0.1:15001`` in the
  PU's namespace); new incoming TCP addressed to one of the PU's local addresses is REDIRECTed
  to the inbound listener (``:15006``). REDIRECT keeps the original destination in conntrack,
  where ``SO_ORIGINAL_DST`` reads it back. A ``blocked_out4`` set lets the daemon reject
  pre-decided (ip, port) pairs in the kernel with a TCP reset, before userspace is involved.
* ``CLOSED``: no listener is expected; every non-loopback TCP packet from or to the PU is
  rejected with a TCP reset (the application sees ``ECONNREFUSED`` at once).

Fail-closed holds in both shapes without help from a live enforcer: when the enforcer process
dies its listening sockets die with it, and a SYN REDIRECTed to a port nobody listens on is
answered by the kernel with a reset. Fail-*open* is therefore an action, not a rule: whoever
notices the enforcer is gone (the daemon on orderly stop, a supervisor after a crash) must call
:func:`remove_ruleset` so the PU's packets flow untouched. Until then an ``open`` PU is closed.

IPv6 TCP is not intercepted yet; it is rejected (fail-closed) rather than leaked. UDP and other
protocols are not touched (DNS keeps working); policy for them is out of scope for proxy mode.

Every change is one ``nft -f -`` transaction run inside the namespace, so a PU is never seen
half-configured, and apply/remove are idempotent ("add table; delete table; define table").

Process PUs (``PuRuleset.cgroup`` set) share a network namespace with the host's other
processes, and several may share one namespace, so their rules differ in three ways: each PU
has its own table (the daemon names it after the PU), every rule that catches the PU's traffic
also requires ``socket cgroupv2 level N "<path>"`` (the socket belongs to a process of the PU's
cgroup; for incoming packets nft looks the socket up: the listening socket for a SYN), and the
listener ports are the ones the enforcer was given by the kernel for that PU (no fixed ports to
reserve in a shared namespace). Forwarded traffic (namespace PUs behind this host) and the
host's other processes match no socket of the cgroup and pass untouched.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from trustwire_enforcer.datapath.cgroups import CgroupMatch
from trustwire_enforcer.datapath.errors import RulesetError
from trustwire_enforcer.datapath.netns import run_command_in_netns

__all__ = [
    "DEFAULT_INBOUND_PORT",
    "DEFAULT_MARK",
    "DEFAULT_MARK_MASK",
    "DEFAULT_OUTBOUND_PORT",
    "DEFAULT_TABLE",
    "PuRuleset",
    "RulesetMode",
    "apply_ruleset",
    "installed_ruleset",
    "remove_ruleset",
    "render_ruleset",
    "set_blocked_outbound",
]

DEFAULT_TABLE = "trustwire"
DEFAULT_OUTBOUND_PORT = 15001
DEFAULT_INBOUND_PORT = 15006
# The enforcer's own sockets carry this mark (SO_MARK) so its rules let them through. Matching
# under a mask leaves the other bits to CNIs and other agents that also use packet marks.
DEFAULT_MARK = 0x7477
DEFAULT_MARK_MASK = 0xFFFF


class RulesetMode(enum.Enum):
    INTERCEPT = "intercept"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class PuRuleset:
    mode: RulesetMode = RulesetMode.INTERCEPT
    table: str = DEFAULT_TABLE
    outbound_port: int = DEFAULT_OUTBOUND_PORT
    inbound_port: int = DEFAULT_INBOUND_PORT
    mark: int = DEFAULT_MARK
    mark_mask: int = DEFAULT_MARK_MASK
    blocked_outbound: frozenset[tuple[ipaddress.IPv4Address, int]] = field(
        default_factory=frozenset
    )
    # Process PUs: only sockets of this cgroup are caught (see the module docstring).
    cgroup: CgroupMatch | None = None

    def __post_init__(self) -> None:
        if not self.table.isidentifier():
            raise ValueError(f"table name must be an identifier, got {self.table!r}")
        for port in (self.outbound_port, self.inbound_port):
            if not 0 < port < 65536:
                raise ValueError(f"listener port out of range: {port}")
        if self.outbound_port == self.inbound_port:
            raise ValueError("outbound and inbound listener ports must differ")
        if self.mark & ~self.mark_mask or not self.mark:
            raise ValueError("mark must be non-zero and inside mark_mask")


def _elements(entries: Iterable[tuple[ipaddress.IPv4Address, int]]) -> str:
    return ", ".join(f"{ip} . {port}" for ip, port in sorted(entries))


def render_ruleset(spec: PuRuleset) -> str:
    """The table's full text (without the replace preamble), deterministic for a given spec."""
    if spec.cgroup is not None:
        return _render_cgroup_ruleset(spec, spec.cgroup)
    mine = f"meta mark & {spec.mark_mask:#010x} == {spec.mark:#010x}"
    lines = [f"table inet {spec.table} {{"]
    if spec.mode is RulesetMode.INTERCEPT:
        blocked = _elements(spec.blocked_outbound)
        lines += [
            "  set blocked_out4 {",
            "    type ipv4_addr . inet_service",
            *([f"    elements = {{ {blocked} }}"] if blocked else []),
            "  }",
            # Filter chains run before NAT (-150 < -100) so they see the original destination.
            "  chain guard_out {",
            "    type filter hook output priority -150; policy accept;",
            f"    {mine} return",
            '    oifname "lo" return',
            "    ip daddr . tcp dport @blocked_out4 reject with tcp reset",
            "    meta nfproto ipv6 meta l4proto tcp reject with tcp reset",
            "  }",
            "  chain guard_in {",
            "    type filter hook input priority -150; policy accept;",
            '    iifname "lo" return',
            "    meta nfproto ipv6 meta l4proto tcp reject with tcp reset",
            "  }",
            # NAT chains see only the first packet of each connection; conntrack does the rest.
            "  chain intercept_out {",
            "    type nat hook output priority -100; policy accept;",
            f"    {mine} return",
            '    oifname "lo" return',
            f"    meta nfproto ipv4 meta l4proto tcp redirect to :{spec.outbound_port}",
            "  }",
            "  chain intercept_in {",
            "    type nat hook prerouting priority -100; policy accept;",
            '    iifname "lo" return',
            # A direct connection to a listener port is left un-NATed; the listener sees that
            # it was not redirected (no original destination) and resets it.
            f"    tcp dport {{ {spec.outbound_port}, {spec.inbound_port} }} return",
            "    meta nfproto ipv4 meta l4proto tcp fib daddr type local "
            f"redirect to :{spec.inbound_port}",
            "  }",
        ]
    else:
        lines += [
            "  chain closed_out {",
            "    type filter hook output priority -150; policy accept;",
            f"    {mine} return",
            '    oifname "lo" return',
            "    meta l4proto tcp reject with tcp reset",
            "  }",
            "  chain closed_in {",
            "    type filter hook input priority -150; policy accept;",
            '    iifname "lo" return',
            "    meta l4proto tcp reject with tcp reset",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _render_cgroup_ruleset(spec: PuRuleset, cgroup: CgroupMatch) -> str:
    """A process PU's table: the namespace-PU shapes, each catching rule restricted to sockets
    of ``cgroup``. The cheap matches come first; the socket lookup runs last, only for TCP."""
    mine = f"meta mark & {spec.mark_mask:#010x} == {spec.mark:#010x}"
    owned = cgroup.expression
    lines = [f"table inet {spec.table} {{"]
    if spec.mode is RulesetMode.INTERCEPT:
        blocked = _elements(spec.blocked_outbound)
        lines += [
            "  set blocked_out4 {",
            "    type ipv4_addr . inet_service",
            *([f"    elements = {{ {blocked} }}"] if blocked else []),
            "  }",
            "  chain guard_out {",
            "    type filter hook output priority -150; policy accept;",
            f"    {mine} return",
            '    oifname "lo" return',
            f"    ip daddr . tcp dport @blocked_out4 {owned} reject with tcp reset",
            f"    meta nfproto ipv6 meta l4proto tcp {owned} reject with tcp reset",
            "  }",
            "  chain guard_in {",
            "    type filter hook input priority -150; policy accept;",
            '    iifname "lo" return',
            f"    meta nfproto ipv6 meta l4proto tcp {owned} reject with tcp reset",
            "  }",
            "  chain intercept_out {",
            "    type nat hook output priority -100; policy accept;",
            f"    {mine} return",
            '    oifname "lo" return',
            f"    meta nfproto ipv4 meta l4proto tcp {owned} redirect to :{spec.outbound_port}",
            "  }",
            # The enforcer's listeners are not in the cgroup, so a connection straight to one
            # matches no rule here and is reset by the listener (not redirected).
            "  chain intercept_in {",
            "    type nat hook prerouting priority -100; policy accept;",
            '    iifname "lo" return',
            "    meta nfproto ipv4 meta l4proto tcp fib daddr type local "
            f"{owned} redirect to :{spec.inbound_port}",
            "  }",
        ]
    else:
        lines += [
            "  chain closed_out {",
            "    type filter hook output priority -150; policy accept;",
            f"    {mine} return",
            '    oifname "lo" return',
            f"    meta l4proto tcp {owned} reject with tcp reset",
            "  }",
            "  chain closed_in {",
            "    type filter hook input priority -150; policy accept;",
            '    iifname "lo" return',
            f"    meta l4proto tcp {owned} reject with tcp reset",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _nft(netns: str | os.PathLike[str] | int, script: str, what: str) -> None:
    done = run_command_in_netns(netns, ["nft", "-f", "-"], input=script)
    if done.returncode != 0:
        raise RulesetError(f"nft {what} failed in {netns}: {done.stderr.strip()}")


def apply_ruleset(netns: str | os.PathLike[str] | int, spec: PuRuleset) -> None:
    """Install or replace the table atomically (one nft transaction). Idempotent."""
    # "table X" creates it if absent, so the delete never fails; the new definition follows in
    # the same transaction, so no packet sees the namespace without the table.
    script = f"table inet {spec.table}\ndelete table inet {spec.table}\n" + render_ruleset(spec)
    _nft(netns, script, "apply")


def remove_ruleset(netns: str | os.PathLike[str] | int, table: str = DEFAULT_TABLE) -> None:
    """Remove the table if present. Idempotent. Established, already-redirected connections
    keep their NAT (it lives in conntrack) until they end."""
    _nft(netns, f"table inet {table}\ndelete table inet {table}\n", "remove")


def set_blocked_outbound(
    netns: str | os.PathLike[str] | int,
    entries: Iterable[tuple[ipaddress.IPv4Address, int]],
    table: str = DEFAULT_TABLE,
) -> None:
    """Replace the kernel-rejected (ip, port) set in one transaction."""
    items = _elements(entries)
    script = f"flush set inet {table} blocked_out4\n"
    if items:
        script += f"add element inet {table} blocked_out4 {{ {items} }}\n"
    _nft(netns, script, "set update")


def installed_ruleset(
    netns: str | os.PathLike[str] | int, table: str = DEFAULT_TABLE
) -> dict[str, list[dict[str, Any]]] | None:
    """The table as nft's JSON (``{"chains": [...], "rules": [...], "sets": [...]}``), or
    ``None`` when it is not installed. For tests and ``trustwire get pus``."""
    done = run_command_in_netns(netns, ["nft", "-j", "list", "table", "inet", table])
    if done.returncode != 0:
        if "No such file" in done.stderr or "does not exist" in done.stderr:
            return None
        raise RulesetError(f"nft list failed in {netns}: {done.stderr.strip()}")
    doc = json.loads(done.stdout)
    grouped: dict[str, list[dict[str, Any]]] = {"chains": [], "rules": [], "sets": []}
    for item in doc.get("nftables", []):
        for kind, key in (("chain", "chains"), ("rule", "rules"), ("set", "sets")):
            if kind in item:
                grouped[key].append(item[kind])
    return grouped
