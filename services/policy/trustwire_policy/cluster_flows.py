"""Cluster-wide flow queries: this replica's store plus every live peer's, merged (fan-out at
query time, as Thanos queries its stores; storage stays per replica).

Contract:

- **Who is asked**: this replica and every live member (``replicas.py``), in parallel, each
  with a deadline. A member that is stale, unreachable, too slow or refuses is *not reached*:
  the answer holds everything else and names it (``ClusterPage.unreachable``).
- **Order**: newest ``window_end`` first; ties by replica id, then each store's own order
  (newest stored first). A total order, so pages never overlap or skip.
- **Merging pages**: every replica returns up to a page in that order. A record is emitted
  only when no replica with more records can still hold an earlier one: it must come before
  the last record each such replica returned (a replica that returned none but has more
  blocks everything this call; it advances, and the page may be short while more follow, as
  ``common.v1.PageRequest`` allows). At least one replica's page is emitted whole otherwise,
  so every call makes progress.
- **Page token**: opaque; carries the resolved time range, what it is bound to (filter and
  explicit range, as the store's), and per replica its own page token positioned right after
  the last record used from it (``FlowPage.resume_tokens``). A replica whose records are all
  used leaves the token; a replica not reached leaves it too and is named on every later page
  (continuing it later would put its records out of order; retry the same token instead). The
  set of replicas is fixed by the first page: a replica that joins during a listing is not in
  it.
- **Peers are asked with LOCAL scope** and an explicit time range (no recursion, every store
  reads the same range).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import heapq
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from trustwire.errors import InvalidArgument, TrustwireError
from trustwire.flows import FlowFilter, FlowRecord

from .flowstore import CollectedFlows, FlowStore
from .replicas import ReplicaMember, ReplicaMembership, Roster

__all__ = ["ClusterFlows", "ClusterPage", "FlowPeers", "ReplicaPage"]

_log = logging.getLogger("trustwire.policy.cluster_flows")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR_VERSION = "c1"
_PAGE_FIELD = "page.page_token"
_ANSWER_MARGIN_S = 0.1


def _micros(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


def _at(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, slots=True)
class ReplicaPage:
    """One replica's page: records in its store's order, the token after each, and the token
    of its next page ("" when it has no more)."""

    records: tuple[FlowRecord, ...]
    resume_tokens: tuple[str, ...]
    next_token: str


@dataclass(frozen=True, slots=True)
class ClusterPage:
    records: tuple[FlowRecord, ...]
    next_token: str
    # Replica ids whose records this listing lacks (sorted).
    unreachable: tuple[str, ...]


class FlowPeers(Protocol):
    """How a peer is asked for its local records (the gRPC client lives in ``api/``)."""

    async def query(
        self,
        member: ReplicaMember,
        flow_filter: FlowFilter,
        *,
        start: datetime,
        end: datetime,
        page_size: int,
        page_token: str,
        time_limit: float,
    ) -> ReplicaPage: ...


@dataclass(frozen=True, slots=True)
class _Cursor:
    binding: str
    start: int
    end: int
    positions: dict[str, str]  # replica id -> its own page token ("": from its first page)
    lost: tuple[str, ...]

    def encode(self) -> str:
        raw = json.dumps(
            [_CURSOR_VERSION, self.binding, self.start, self.end, self.positions, self.lost],
            separators=(",", ":"),
            sort_keys=True,
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def decode(token: str, binding: str) -> _Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            version, bound, start, end, positions, lost = json.loads(raw)
            if (
                version != _CURSOR_VERSION
                or not isinstance(bound, str)
                or not all(isinstance(v, int) for v in (start, end))
                or not isinstance(positions, dict)
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in positions.items())
                or not isinstance(lost, list)
                or not all(isinstance(v, str) for v in lost)
            ):
                raise ValueError("bad token")
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise InvalidArgument(
                f"{_PAGE_FIELD}: not a token of this query", field=_PAGE_FIELD
            ) from None
        if bound != binding:
            raise InvalidArgument(
                f"{_PAGE_FIELD}: issued for another filter or time range; restart from the "
                "first page",
                field=_PAGE_FIELD,
            )
        return _Cursor(binding, start, end, positions, tuple(lost))


class ClusterFlows:
    """Flow queries over the whole cluster. Without ``membership`` (a lone replica, tests) it
    answers from the local store alone, with the same tokens and order."""

    def __init__(
        self,
        store: FlowStore,
        *,
        replica_id: str,
        membership: ReplicaMembership | None = None,
        peers: FlowPeers | None = None,
        peer_timeout: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.replica_id = replica_id
        self.membership = membership
        self.peers = peers
        self.peer_timeout = peer_timeout
        self._clock = clock

    async def query(
        self,
        flow_filter: FlowFilter,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        page_size: int = 100,
        page_token: str = "",
        deadline: float | None = None,
    ) -> ClusterPage:
        """One page of the cluster-wide listing (see the module docstring). ``deadline``: the
        caller's remaining time in seconds, which caps each peer's."""
        binding = (
            f"{flow_filter.digest()}:{_micros(start) if start else 0}:{_micros(end) if end else 0}"
        )
        # A malformed token fails before anything is read.
        cursor = _Cursor.decode(page_token, binding) if page_token else None
        roster = await self._roster()
        if cursor is None:
            end_at = end or self._clock()
            start_at = start or end_at - timedelta(hours=1)
            positions = {self.replica_id: ""} | {m.replica_id: "" for m in roster.live}
            stale = tuple(m.replica_id for m in roster.stale)
            cursor = _Cursor(binding, _micros(start_at), _micros(end_at), positions, stale)
        page_size = max(1, page_size)
        # Peers get what is left of the caller's deadline, minus a margin to merge and answer.
        time_limit = self.peer_timeout
        if deadline is not None:
            time_limit = max(0.0, min(time_limit, deadline - _ANSWER_MARGIN_S))

        ids = sorted(cursor.positions)
        results = await asyncio.gather(
            *(
                self._fetch(
                    replica_id,
                    roster,
                    flow_filter,
                    cursor,
                    page_size,
                    cursor.positions[replica_id],
                    time_limit,
                )
                for replica_id in ids
            )
        )
        pages: dict[str, ReplicaPage] = {}
        lost = set(cursor.lost)
        for replica_id, result in zip(ids, results, strict=True):
            if result is None:
                lost.add(replica_id)
            else:
                pages[replica_id] = result
        records, positions = _merge(pages, cursor.positions, page_size)
        next_token = ""
        if positions:
            next_token = _Cursor(
                binding, cursor.start, cursor.end, positions, tuple(sorted(lost))
            ).encode()
        return ClusterPage(tuple(records), next_token, tuple(sorted(lost)))

    async def collect(
        self, flow_filter: FlowFilter, *, start: datetime, end: datetime, limit: int
    ) -> CollectedFlows:
        """Every matching record of the range cluster-wide, newest first, at most ``limit``
        (for Suggest), and the replicas not reached (the suggestion rests on the rest)."""
        out: list[FlowRecord] = []
        token = ""
        unreachable: set[str] = set()
        while len(out) < limit:
            page = await self.query(
                flow_filter, start=start, end=end, page_size=1000, page_token=token
            )
            out.extend(page.records)
            unreachable.update(page.unreachable)
            token = page.next_token
            if not token:
                break
        if unreachable:
            _log.warning(
                "flows of some replicas were not reached", extra={"replicas": sorted(unreachable)}
            )
        return CollectedFlows(out[:limit], tuple(sorted(unreachable)))

    # ------------------------------------------------------------------------ internals

    async def _roster(self) -> Roster:
        if self.membership is None:
            return Roster((), ())
        return await self.membership.roster()

    async def _fetch(
        self,
        replica_id: str,
        roster: Roster,
        flow_filter: FlowFilter,
        cursor: _Cursor,
        page_size: int,
        token: str,
        time_limit: float,
    ) -> ReplicaPage | None:
        """``replica_id``'s page, or ``None`` when it was not reached."""
        start, end = _at(cursor.start), _at(cursor.end)
        if replica_id == self.replica_id:
            local = await self.store.query(
                flow_filter, start=start, end=end, page_size=page_size, page_token=token
            )
            return ReplicaPage(
                tuple(f.record for f in local.flows), local.resume_tokens, local.next_token
            )
        member = roster.member(replica_id)
        if member is None or self.peers is None:
            return None  # stale, or gone since the listing began
        try:
            page = await asyncio.wait_for(
                self.peers.query(
                    member,
                    flow_filter,
                    start=start,
                    end=end,
                    page_size=page_size,
                    page_token=token,
                    time_limit=time_limit,
                ),
                time_limit,
            )
        except InvalidArgument as error:
            if token:
                # Our token for that peer is not one it issued: the caller's token was forged
                # or corrupted.
                raise InvalidArgument(
                    f"{_PAGE_FIELD}: not a token of this query", field=_PAGE_FIELD
                ) from error
            _log.warning(
                "peer refused a flow query", extra={"replica_id": replica_id, "error": str(error)}
            )
            return None
        except (TrustwireError, TimeoutError) as error:
            _log.warning(
                "peer not reached for a flow query",
                extra={"replica_id": replica_id, "address": member.address, "error": str(error)},
            )
            return None
        if len(page.resume_tokens) != len(page.records):
            _log.warning(
                "peer answered without resume tokens (another version?); left out",
                extra={"replica_id": replica_id},
            )
            return None
        return page


def _merge(
    pages: dict[str, ReplicaPage], positions: dict[str, str], page_size: int
) -> tuple[list[FlowRecord], dict[str, str]]:
    """The records to emit (merged order, at most ``page_size``) and each replica's position
    after them; replicas with nothing left (or not reached: absent from ``pages``) drop out."""

    def key(replica_id: str, index: int) -> tuple[int, str, int]:
        record = pages[replica_id].records[index]
        return (-_micros(record.window_end), replica_id, index)

    # A replica with more to come bounds what may be emitted: nothing after its last record,
    # and nothing at all when it returned none (its next records could come first).
    blocked = any(p.next_token and not p.records for p in pages.values())
    limit = min(
        (key(rid, len(p.records) - 1) for rid, p in pages.items() if p.next_token and p.records),
        default=None,
    )
    merged = heapq.merge(
        *([key(rid, i) for i in range(len(p.records))] for rid, p in pages.items())
    )
    used: dict[str, int] = dict.fromkeys(pages, 0)
    records: list[FlowRecord] = []
    if not blocked:
        for k in merged:
            if len(records) == page_size or (limit is not None and k > limit):
                break
            _, rid, index = k
            records.append(pages[rid].records[index])
            used[rid] += 1

    out: dict[str, str] = {}
    for rid, page in pages.items():
        n = used[rid]
        if n == len(page.records):
            if page.next_token:
                out[rid] = page.next_token
        elif n == 0:
            out[rid] = positions[rid]
        else:
            out[rid] = page.resume_tokens[n - 1]
    return records, out
