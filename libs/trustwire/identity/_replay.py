"""The replay cache: which nonces were accepted recently, bounded in time and in size.

Time: a nonce is remembered until its profile's own timestamp plus the skew window has passed
on the verifier's clock. After that instant the same profile fails the timestamp check
(CLOCK_SKEW), so remembering longer buys nothing and remembering shorter opens a replay gap.

Size: when the cache is full of unexpired nonces it *refuses* the new profile
(``ResourceExhausted``, reason ``REPLAY_CACHE_FULL``) instead of forgetting one. Forgetting an
unexpired nonce would make exactly that profile replayable, and an attacker able to fill the
cache could choose when. Refusing fails closed and is loud; the bound is sized from the peak
accepted rate (``capacity >= rate x 2 x skew``; the default holds ~4,000 new connections/s
under a 30 s skew), and only fully verified profiles are recorded, so filling it takes an
enforcer with a valid certificate.

Keys are (signer SPIFFE ID, nonce): one enforcer cannot burn another's nonces.
"""

from __future__ import annotations

import heapq
import threading
from datetime import datetime

from trustwire.errors import ResourceExhausted

from ._reasons import ReasonCode, VerificationError

__all__ = ["DEFAULT_REPLAY_CAPACITY", "ReplayCache"]

DEFAULT_REPLAY_CAPACITY = 262_144

_Key = tuple[str, bytes]


class ReplayCache:
    def __init__(self, capacity: int = DEFAULT_REPLAY_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._expiry: dict[_Key, datetime] = {}
        self._heap: list[tuple[datetime, _Key]] = []
        # verify() is synchronous, but an enforcer may verify from a thread pool too.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def admit(self, signer: str, nonce: bytes, forget_after: datetime, now: datetime) -> None:
        """Record the nonce until ``forget_after``, or raise REPLAYED when it is still
        remembered, or ``ResourceExhausted`` when the cache is full of unexpired nonces."""
        key = (signer, nonce)
        with self._lock:
            self._purge(now)
            if key in self._expiry:
                raise VerificationError(
                    ReasonCode.REPLAYED,
                    "nonce already accepted within the replay window",
                    metadata={"signer": signer},
                )
            if len(self._expiry) >= self.capacity:
                raise ResourceExhausted(
                    f"replay cache full ({self.capacity} unexpired nonces); refusing rather "
                    "than forgetting a nonce that could then be replayed",
                    reason="REPLAY_CACHE_FULL",
                )
            self._expiry[key] = forget_after
            heapq.heappush(self._heap, (forget_after, key))

    def _purge(self, now: datetime) -> None:
        heap = self._heap
        while heap and heap[0][0] < now:
            _, key = heapq.heappop(heap)
            self._expiry.pop(key, None)
