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
from datetime import UTC, datetime, timedelta

from trustwire.errors import ResourceExhausted

from ._reasons import ReasonCode, VerificationError

__all__ = ["DEFAULT_REPLAY_CAPACITY", "ReplayCache"]

DEFAULT_REPLAY_CAPACITY = 262_144

_Key = tuple[str, bytes]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


class ReplayCache:
    def __init__(self, capacity: int = DEFAULT_REPLAY_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        # Times are integer microseconds since the Unix epoch: exact, and cheap to compare on
        # the verifier's hot path (``admit_us``).
        self._expiry: dict[_Key, int] = {}
        # (forget_after_us, insertion counter, key): the counter keeps equal times from ever
        # comparing keys, and makes the order total.
        self._heap: list[tuple[int, int, _Key]] = []
        self._counter = 0
        # verify() is synchronous, but an enforcer may verify from a thread pool too.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def admit(self, signer: str, nonce: bytes, forget_after: datetime, now: datetime) -> None:
        """Record the nonce until ``forget_after``, or raise REPLAYED when it is still
        remembered, or ``ResourceExhausted`` when the cache is full of unexpired nonces."""
        self.admit_us(signer, nonce, (forget_after - _EPOCH) // _ONE_US, (now - _EPOCH) // _ONE_US)

    def admit_us(self, signer: str, nonce: bytes, forget_after_us: int, now_us: int) -> None:
        """``admit`` with times as integer microseconds since the Unix epoch."""
        key = (signer, nonce)
        with self._lock:
            self._purge(now_us)
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
            self._expiry[key] = forget_after_us
            self._counter += 1
            heapq.heappush(self._heap, (forget_after_us, self._counter, key))

    def _purge(self, now_us: int) -> None:
        heap = self._heap
        while heap and heap[0][0] < now_us:
            _, _, key = heapq.heappop(heap)
            self._expiry.pop(key, None)
