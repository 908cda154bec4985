"""What the datapath hands to the decision seam, and what it reports back.

These are plain frozen values (no sockets), so the daemon can log them, put them in flow
records, and build Trust Profiles from them. ``FiveTuple`` is the Trust Profile's own type, so
the tuple the source enforcer signs is exactly the one the destination's listener observes.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from trustwire.identity import FiveTuple
from trustwire.policy.model import Direction, Protocol

__all__ = [
    "Action",
    "ConnectionReport",
    "Decider",
    "Direction",
    "FiveTuple",
    "InterceptedConnection",
    "Outcome",
    "Verdict",
    "tcp_tuple",
]


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # Parsing costs ~20 us in pure Python and the datapath builds three tuples per connection
    # from the same few addresses; address objects are immutable, so sharing them is safe.
    return ipaddress.ip_address(text)


def tcp_tuple(source: tuple[str, int], destination: tuple[str, int]) -> FiveTuple:
    return FiveTuple(
        Protocol.TCP,
        _address(source[0]),
        source[1],
        _address(destination[0]),
        destination[1],
    )


class Action(enum.StrEnum):
    ALLOW = "allow"
    REJECT = "reject"
    ENCRYPT = "encrypt"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for one connection.

    ``peer_identity`` is the SPIFFE ID of the other enforcer (from the handshake). For
    ``encrypt`` it is the identity the data connection's TLS peer must present; ``None`` accepts
    any enforcer certificate chained to the bundle (only for tests and bring-up).
    ``reason`` is a stable reason code for flow records; ``rule`` names the deciding policy.
    """

    action: Action
    reason: str = ""
    rule: str = ""
    peer_identity: str | None = None
    revision: int = 0

    @classmethod
    def allow(cls, reason: str = "allowed", *, rule: str = "", revision: int = 0) -> Verdict:
        return cls(Action.ALLOW, reason, rule, None, revision)

    @classmethod
    def reject(cls, reason: str = "rejected", *, rule: str = "", revision: int = 0) -> Verdict:
        return cls(Action.REJECT, reason, rule, None, revision)

    @classmethod
    def encrypt(
        cls,
        peer_identity: str | None,
        reason: str = "encrypted",
        *,
        rule: str = "",
        revision: int = 0,
    ) -> Verdict:
        return cls(Action.ENCRYPT, reason, rule, peer_identity, revision)


@dataclass(frozen=True, slots=True)
class InterceptedConnection:
    """One connection the kernel redirected to an enforcer listener.

    * ``five_tuple``: as the listener saw it: source = the connecting side, destination = the
      original destination (from ``SO_ORIGINAL_DST``). Outbound: the application's own
      connection. Inbound: the connection that arrived from the network, i.e. the source
      enforcer's upstream socket (the tuple the source signed in its Trust Profile).
    * ``upstream``: outbound only: the tuple of the socket the enforcer already created and bound
      in the PU's namespace and will connect if allowed. This is the tuple that travels on the
      wire and that the destination will observe; put *this* one in the Trust Profile.
    * ``id``: unique per datapath instance, for logs and for correlating reports.
    """

    id: int
    pu_id: str
    direction: Direction
    five_tuple: FiveTuple
    upstream: FiveTuple | None = None

    @property
    def original_destination(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
        return self.five_tuple.destination_ip, self.five_tuple.destination_port

    @property
    def wire_tuple(self) -> FiveTuple:
        """The tuple seen between the hosts (what Authorize must name)."""
        return self.upstream if self.upstream is not None else self.five_tuple


Decider = Callable[[InterceptedConnection], Awaitable[Verdict]]


class Outcome(enum.StrEnum):
    REJECTED = "rejected"  # verdict reject: reset sent to the connecting side
    CLOSED = "closed"  # both directions ended normally (FIN both ways)
    RESET = "reset"  # one side reset or errored; the other side was reset
    ABORTED = "aborted"  # closed by close_where / PU removal / shutdown
    UPSTREAM_FAILED = "upstream_failed"  # allowed, but the destination could not be reached
    PEER_REJECTED = "peer_rejected"  # TLS handshake or peer identity check failed
    DECIDE_FAILED = "decide_failed"  # the decision seam raised or timed out: failed closed
    NOT_REDIRECTED = "not_redirected"  # reached a listener directly: refused


@dataclass(frozen=True, slots=True)
class ConnectionReport:
    """Emitted once per intercepted connection, on the event loop, when it is finished.
    ``bytes_from_pu``/``bytes_to_pu`` count application bytes (before TLS)."""

    connection: InterceptedConnection
    verdict: Verdict | None
    outcome: Outcome
    detail: str
    bytes_from_pu: int
    bytes_to_pu: int
    started: float  # time.monotonic()
    ended: float
