"""Which cgroup owns the socket listening on a local (address, port): the kernel's answer.

Process PUs share their network namespace's addresses, so an address alone does not say which
PU a connection is for. The kernel does know: an incoming SYN goes to the socket listening on
(address, port), that socket belongs to a cgroup, and the PU's nft rules (``socket cgroupv2``)
redirect the SYN to that PU's listener exactly when the socket is in the PU's cgroup. This
module asks the kernel the same question ahead of the SYN, at ``Authorize`` time, with one
``sock_diag`` netlink dump of the namespace's listening TCP sockets: each comes with its bound
address and cgroup id (``INET_DIAG_CGROUP_ID``, Linux 5.9+; the cgroup v2 id is the inode
number of the cgroup's directory). Listening sockets are few, so the dump is small, unlike
``/proc/net/tcp`` (every connection of the namespace) or scanning processes' file descriptors.

A netlink socket belongs to the namespace it was created in and answers for that namespace
from any thread: one is kept per namespace (by inode) and closed when no PU uses it any more
(holding it keeps the namespace alive).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from trustwire_enforcer.datapath.netns import socket_in_netns

__all__ = ["Listener", "ListenerIndex", "cgroup_ids", "listeners_on"]

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_TCP_LISTEN = 10
_INET_DIAG_CGROUP_ID = 21
_NLMSG_HDR = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid (zeroed: dump).
_REQ = struct.Struct("=BBBBI48x")
# inet_diag_msg: family, state, timer, retrans, sockid (sport, dport big-endian, src[16],
# dst[16], if, cookie[2]), expires, rqueue, wqueue, uid, inode; then attributes.
_MSG_LEN = 72
_SIOCGSKNS = 0x894C  # ioctl: an fd on the network namespace of a socket


@dataclass(frozen=True, slots=True)
class Listener:
    """A listening TCP socket: its bound address (unspecified: every address) and cgroup."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    cgroup_id: int


def _dump(sock: socket.socket, family: int) -> list[Listener]:
    request = _REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
    header = _NLMSG_HDR.pack(
        _NLMSG_HDR.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0
    )
    sock.send(header + request)
    found: list[Listener] = []
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + _NLMSG_HDR.size <= len(data):
            length, kind, _, _, _ = _NLMSG_HDR.unpack_from(data, offset)
            if length < _NLMSG_HDR.size:
                return found
            body = data[offset + _NLMSG_HDR.size : offset + length]
            offset += (length + 3) & ~3
            if kind == _NLMSG_DONE:
                return found
            if kind == _NLMSG_ERROR:
                errno_ = -struct.unpack_from("=i", body)[0]
                if errno_:
                    raise OSError(errno_, os.strerror(errno_))
                continue
            if kind != _SOCK_DIAG_BY_FAMILY or len(body) < _MSG_LEN:
                continue
            msg_family = body[0]
            port = struct.unpack_from(">H", body, 4)[0]
            raw = body[8:24] if msg_family == socket.AF_INET6 else body[8:12]
            address = ipaddress.ip_address(bytes(raw))
            cgroup = 0
            attr = _MSG_LEN
            while attr + 4 <= len(body):
                attr_len, attr_type = struct.unpack_from("=HH", body, attr)
                if attr_len < 4:
                    break
                if attr_type == _INET_DIAG_CGROUP_ID and attr_len >= 12:
                    cgroup = struct.unpack_from("=Q", body, attr + 4)[0]
                attr += (attr_len + 3) & ~3
            found.append(Listener(address, port, cgroup))


def listeners_on(sock: socket.socket, address: ipaddress.IPv4Address, port: int) -> list[Listener]:
    """The listening sockets of ``sock``'s namespace that a SYN to ``address:port`` can reach,
    as the kernel chooses: those bound to ``address`` itself if any (the kernel prefers the
    exact match), else the wildcard ones (``0.0.0.0``, and dual-stack ``::``)."""
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    exact: list[Listener] = []
    wildcard: list[Listener] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for listener in _dump(sock, family):
            if listener.port != port:
                continue
            if listener.address in (address, mapped):
                exact.append(listener)
            elif listener.address.is_unspecified:
                wildcard.append(listener)
    return exact or wildcard


def cgroup_ids(cgroup: Path) -> frozenset[int]:
    """The ids of ``cgroup`` and of every cgroup below it: nft's ``socket cgroupv2 level N``
    matches a socket of any of them."""
    ids: set[int] = set()
    with contextlib.suppress(OSError):
        ids.add(os.stat(cgroup).st_ino)
        for root, dirs, _ in os.walk(cgroup):
            for name in dirs:
                with contextlib.suppress(OSError):
                    ids.add(os.stat(os.path.join(root, name)).st_ino)
    return frozenset(ids)


class ListenerIndex:
    """Netlink ``sock_diag`` sockets, one per network namespace (by inode)."""

    def __init__(self) -> None:
        self._sockets: dict[int, socket.socket] = {}

    def listeners(
        self, netns: str, netns_inode: int, address: ipaddress.IPv4Address, port: int
    ) -> list[Listener]:
        """Raises ``OSError`` when the namespace cannot be asked (then nothing is known)."""
        sock = self._sockets.get(netns_inode)
        if sock is None:
            sock = socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
            # The path may name another namespace by now (the process of /proc/<pid>/ns/net
            # exited, its pid reused): keep the socket only if it is where it was meant to be.
            if _inode_of(sock) != netns_inode:
                sock.close()
                raise OSError(f"network namespace {netns} is not {netns_inode} any more")
            sock.settimeout(1.0)
            self._sockets[netns_inode] = sock
        try:
            return listeners_on(sock, address, port)
        except OSError:
            # A dump cut short leaves its remaining messages queued: never reuse the socket.
            self._sockets.pop(netns_inode).close()
            raise

    def keep_only(self, netns_inodes: Iterable[int]) -> None:
        """Close the sockets of namespaces no PU is in any more."""
        keep = set(netns_inodes)
        for inode in [i for i in self._sockets if i not in keep]:
            self._sockets.pop(inode).close()

    def close(self) -> None:
        self.keep_only(())


def _inode_of(sock: socket.socket) -> int:
    """The inode of the network namespace ``sock`` lives in."""
    fd = fcntl.ioctl(sock.fileno(), _SIOCGSKNS)
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)
