"""Pre-authorized 5-tuples at the destination enforcer.

The handshake (DESIGN.md step 5) runs *before* the source enforcer connects: the destination
enforcer verifies the Trust Profile, decides ingress, and records the verdict here under the
5-tuple the profile names (the source's already-bound upstream socket). When that connection's
SYN arrives and the kernel redirects it to the inbound listener, the listener observes the same
tuple (no NAT between the PU namespaces) and :func:`inbound_decider` takes the grant.

Grants are single-use (a second connection with a reused tuple needs a new handshake) and
expire after a few seconds, so a granted but never-used tuple cannot be replayed later.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from trustwire_enforcer.datapath.connection import (
    Decider,
    Direction,
    FiveTuple,
    InterceptedConnection,
    Verdict,
)

__all__ = ["PreAuthorizations", "inbound_decider"]

DEFAULT_GRANT_TTL = 5.0


class PreAuthorizations:
    """Thread-safe table ``FiveTuple -> Verdict`` with expiry; bounded in size (oldest grants
    are dropped first, which fails closed: the connection is then decided by the fallback)."""

    def __init__(
        self,
        ttl: float = DEFAULT_GRANT_TTL,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        # Insertion order is expiry order when every grant uses the same TTL, so purging only
        # looks at the front.
        self._grants: OrderedDict[FiveTuple, tuple[float, Verdict]] = OrderedDict()

    def grant(self, five_tuple: FiveTuple, verdict: Verdict, ttl: float | None = None) -> None:
        now = self._clock()
        with self._lock:
            self._purge(now)
            self._grants.pop(five_tuple, None)
            self._grants[five_tuple] = (now + (self._ttl if ttl is None else ttl), verdict)
            while len(self._grants) > self._max:
                self._grants.popitem(last=False)

    def take(self, five_tuple: FiveTuple) -> Verdict | None:
        now = self._clock()
        with self._lock:
            entry = self._grants.pop(five_tuple, None)
        if entry is None or entry[0] < now:
            return None
        return entry[1]

    def revoke_where(self, predicate: Callable[[FiveTuple, Verdict], bool]) -> int:
        """Drop grants a new policy revision no longer supports (not yet connected ones)."""
        with self._lock:
            doomed = [ft for ft, (_, v) in self._grants.items() if predicate(ft, v)]
            for ft in doomed:
                del self._grants[ft]
        return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._grants)

    def _purge(self, now: float) -> None:
        while self._grants:
            first = next(iter(self._grants.values()))
            if first[0] >= now:
                break
            self._grants.popitem(last=False)


async def _reject_unauthorized(conn: InterceptedConnection) -> Verdict:
    return Verdict.reject("no_authorization")


def inbound_decider(
    grants: PreAuthorizations,
    outbound: Decider,
    no_grant: Decider = _reject_unauthorized,
) -> Decider:
    """A datapath decider: outbound connections go to ``outbound`` (which runs the handshake);
    inbound ones use the grant for their tuple, else ``no_grant`` (a source without an enforcer:
    ingress CIDR rules; default: reject, reason ``no_authorization``)."""

    async def decide(conn: InterceptedConnection) -> Verdict:
        if conn.direction is Direction.EGRESS:
            return await outbound(conn)
        verdict = grants.take(conn.five_tuple)
        return verdict if verdict is not None else await no_grant(conn)

    return decide
