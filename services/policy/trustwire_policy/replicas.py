"""Membership of the policy replicas: who is up, and where to ask it for its flow records.

Flow records stay in each replica's own store (``flowstore.py``); a cluster-wide query asks
every member (``cluster_flows.py``). This module keeps the member list in etcd.

Contract:

- **Registration**: a replica puts ``<key_root>replicas/<replica_id>`` with its advertised
  flow address and a heartbeat time at start, rewrites it every ``heartbeat_interval``, and
  deletes it on an orderly stop (guarded by the revision it last wrote, so a stop never removes
  a key another process rewrote since).
- **Liveness by heartbeat, not leases**: a member whose heartbeat is older than
  ``stale_after`` is *stale*: queries skip it without dialling and name it as not reached (a
  crashed replica's records are missing, and the answer says so). Keys stale for longer than
  ``forget_after`` are deleted by whichever replica sees them (guarded by their revision), so a
  crashed replica with a generated id does not stay named forever. Heartbeats compare clocks of
  different hosts: ``stale_after`` must exceed the interval plus the clock skew (NTP keeps it
  far below the default bounds). See docs/decisions/0013-cluster-wide-flow-queries.md.
- **Not policy state**: ``replicas/`` keys are unknown to the state mirror (``codec.Keyspace``
  ignores them), so heartbeats never advance the revision enforcers ack.
- **etcd down**: heartbeats fail and are retried on the next tick (logged); readers fall back
  to the last member list read, so flow queries (which do not depend on etcd otherwise) keep
  working with the peers known.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from trustwire.errors import InvalidArgument, TrustwireError
from trustwire.store import ABSENT, Compare, Delete, KeyValueStore, Put

__all__ = ["ReplicaMember", "ReplicaMembership", "Roster", "advertised_address", "new_replica_id"]

_log = logging.getLogger("trustwire.policy.replicas")

_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})
_LIST_PAGE = 1000


def new_replica_id() -> str:
    """``<host name>-<8 hex>``: readable in ``unreachable_replicas``, unique per process."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64] or "policy"
    return f"{host}-{secrets.token_hex(4)}"


def advertised_address(configured: str, bound: str) -> str:
    """The address peers dial: ``configured``, else the bound listen address unless it is a
    wildcard (peers cannot dial ``0.0.0.0``; the operator must say which address reaches us)."""
    address = configured or bound
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or host in _WILDCARD_HOSTS:
        raise InvalidArgument(
            f"cluster.advertise_address: {address!r} is not an address peers can dial; set "
            "host:port of this replica (required when listening on a wildcard address)",
            field="cluster.advertise_address",
        )
    return address


@dataclass(frozen=True, slots=True)
class ReplicaMember:
    """One registered replica as last written: its id, flow address and heartbeat time."""

    replica_id: str
    address: str
    heartbeat_at: datetime
    mod_revision: int = 0

    def encode(self) -> bytes:
        return json.dumps(
            {"v": 1, "address": self.address, "heartbeat_at": self.heartbeat_at.isoformat()},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()

    @staticmethod
    def decode(replica_id: str, value: bytes, mod_revision: int) -> ReplicaMember | None:
        """``None`` for a value this version cannot read (logged; never fatal to readers)."""
        try:
            data = json.loads(value)
            at = datetime.fromisoformat(data["heartbeat_at"])
            if data["v"] != 1 or not isinstance(data["address"], str) or at.tzinfo is None:
                raise ValueError("unknown shape")
        except (ValueError, KeyError, TypeError):
            _log.warning("unreadable replica member; ignored", extra={"replica_id": replica_id})
            return None
        return ReplicaMember(replica_id, data["address"], at, mod_revision)


@dataclass(frozen=True, slots=True)
class Roster:
    """The members as read at one time: ``live`` ones to ask, ``stale`` ones to name as not
    reached. This replica is in neither (it answers from its own store)."""

    live: tuple[ReplicaMember, ...]
    stale: tuple[ReplicaMember, ...]

    def member(self, replica_id: str) -> ReplicaMember | None:
        return next((m for m in self.live if m.replica_id == replica_id), None)


class ReplicaMembership:
    """This replica's registration and the reading of everyone's. ``start`` after the server
    is bound (its address is advertised), ``stop`` first on an orderly shutdown."""

    def __init__(
        self,
        store: KeyValueStore,
        key_root: str,
        *,
        replica_id: str,
        address: str,
        heartbeat_interval: float = 5.0,
        stale_after: float = 15.0,
        forget_after: float = 600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not _ID.fullmatch(replica_id):
            raise InvalidArgument(
                f"cluster.replica_id: {replica_id!r} must be 1-128 of [A-Za-z0-9._-]",
                field="cluster.replica_id",
            )
        if not 0 < heartbeat_interval < stale_after <= forget_after:
            raise InvalidArgument(
                "cluster: need 0 < heartbeat_interval < stale_after <= forget_after",
                field="cluster.stale_after",
            )
        self.store = store
        self.prefix = f"{key_root}replicas/"
        self.replica_id = replica_id
        self.address = address
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = timedelta(seconds=stale_after)
        self.forget_after = timedelta(seconds=forget_after)
        self._clock = clock
        self._written = ABSENT  # mod_revision of our key as we last wrote it
        self._known: tuple[ReplicaMember, ...] = ()
        self._task: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        return self.prefix + self.replica_id

    # ------------------------------------------------------------------------ running

    async def start(self) -> None:
        """Register now (so a query right after start sees us), then heartbeat in the
        background. An unreachable etcd at start is retried by the loop, not fatal: flows are
        served either way."""
        with contextlib.suppress(TrustwireError):
            await self.heartbeat()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="policy-replica-heartbeat")

    async def stop(self) -> None:
        """Stop heartbeating and remove our key, unless another process rewrote it since."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._written == ABSENT:
            return
        try:
            result = await self.store.txn([Compare(self.key, self._written)], [Delete(self.key)])
        except TrustwireError as error:
            _log.warning("cannot deregister; peers skip us once stale", extra={"error": str(error)})
            return
        if not result.succeeded:
            _log.warning("replica key rewritten by another process; left in place")
        self._written = ABSENT

    async def heartbeat(self) -> None:
        """Write our key with the current time; forget long-stale members."""
        now = self._clock()
        me = ReplicaMember(self.replica_id, self.address, now)
        result = await self.store.txn([], [Put(self.key, me.encode())])
        self._written = result.revision
        for member in await self._read():
            if (
                member.replica_id != self.replica_id
                and now - member.heartbeat_at > self.forget_after
            ):
                # Guarded: a member that came back and heartbeat since keeps its key.
                await self.store.txn(
                    [Compare(self.prefix + member.replica_id, member.mod_revision)],
                    [Delete(self.prefix + member.replica_id)],
                )
                _log.info("forgot a long-stale replica", extra={"replica_id": member.replica_id})

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self.heartbeat()
            except TrustwireError as error:
                _log.warning("replica heartbeat failed; retrying", extra={"error": str(error)})

    # ------------------------------------------------------------------------ reading

    async def roster(self) -> Roster:
        """The other members now: live and stale. Falls back to the last list read when etcd
        cannot be reached (logged)."""
        try:
            members = await self._read()
        except TrustwireError as error:
            _log.warning(
                "cannot read replica members; using the last known", extra={"error": str(error)}
            )
            members = self._known
        now = self._clock()
        live: list[ReplicaMember] = []
        stale: list[ReplicaMember] = []
        for member in members:
            if member.replica_id == self.replica_id:
                continue
            (stale if now - member.heartbeat_at > self.stale_after else live).append(member)
        return Roster(tuple(live), tuple(stale))

    async def _read(self) -> tuple[ReplicaMember, ...]:
        members: list[ReplicaMember] = []
        after = ""
        while True:
            page = await self.store.list(self.prefix, start_after=after, limit=_LIST_PAGE)
            for entry in page.entries:
                after = entry.key
                member = ReplicaMember.decode(
                    entry.key[len(self.prefix) :], entry.value, entry.mod_revision
                )
                if member is not None:
                    members.append(member)
            if not page.more:
                break
        self._known = tuple(members)
        return self._known
