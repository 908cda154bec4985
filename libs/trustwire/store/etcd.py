"""``EtcdStore``: the contract over etcd v3 (3.4+), the only module that imports ``aetcd``.

It speaks etcd's gRPC API through aetcd's generated stubs (``aetcd.rpc``) rather than
``aetcd.Client``, whose high-level API cannot express the contract:

- ``Client`` takes one host and port: no cluster endpoints, no failover.
- ``get_range``/``get_prefix`` build range requests without ``limit`` and ``revision`` (a TODO
  in aetcd 1.0.0): no pagination and no read at an old revision.
- ``watch`` delivers events one by one through a callback, which loses etcd's per-response
  (per-revision) grouping, buffers them in an unbounded ``asyncio.Queue`` per watch, multiplexes
  every watch over one stream whose reader awaits each consumer, and, without a timeout, waits
  forever for a watch to be created.
- gRPC ``OUT_OF_RANGE`` (compacted or future revision on range/compact) is not mapped: it
  arrives as the base ``ClientError``.

What this module does instead:

- Endpoints: a list (``host:port``); one gRPC channel at a time, to the current endpoint. A
  call first makes sure the channel is connected (bounded by ``connect_timeout``); an endpoint
  that cannot connect is skipped for the next one, so nothing was sent to it. After a call fails
  with a connection-class error the channel is dropped and the next call starts on the next
  endpoint with a fresh channel (no gRPC reconnect backoff to wait out).
- Retries: reads (``get``, ``list``, ``revision``) are retried once per endpoint on
  ``UNAVAILABLE``. Writes (``txn``, ``compact``) are sent once: when they fail after being
  sent, their outcome is unknown, so the caller gets ``Unavailable`` and re-reads (a CAS retry
  then either sees its own write or conflicts, both correct).
- Timeouts: every unary call has a gRPC deadline of ``timeout`` seconds; creating a watch too.
  An open watch has no deadline (it may be idle for hours); gRPC keepalive pings detect a dead
  peer and the watch is created with etcd's ``hasleader`` requirement, so a member that loses
  its quorum cancels it instead of going silent.
- Errors: connection-class gRPC codes (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ``CANCELLED``,
  ``UNKNOWN``) become ``Unavailable`` (reason ``STORE_UNAVAILABLE``); compacted revisions
  ``FailedPrecondition`` (``REVISION_COMPACTED``); nothing from grpc or aetcd escapes.
- Watch: one gRPC stream per ``watch`` call, created with ``prev_kv``; each response's events
  are split into one batch per revision (etcd never splits a revision across responses unless
  ``fragment`` is requested, which this module does not). Closing the iterator cancels the
  stream, which makes etcd drop the watch. etcd buffers for slow consumers on its side and
  cancels a watch whose start revision gets compacted; that arrives here as
  ``REVISION_COMPACTED``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Final

import grpc
import grpc.aio
from aetcd import rpc as _rpc
from grpc.aio import EOF as _EOF  # type: ignore[attr-defined]  # missing from grpc-stubs

from trustwire.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    TrustwireError,
    Unavailable,
)

from . import _keyspace
from ._interface import (
    ABSENT,
    Compare,
    Delete,
    Entry,
    Event,
    EventType,
    Page,
    Put,
    TxnResult,
)

__all__ = ["EtcdStore"]

DEFAULT_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 1.0

_CHANNEL_OPTIONS: Final[list[tuple[str, Any]]] = [
    # A restarted member is found within about a second, not after gRPC's default backoff of
    # up to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Detect a dead peer on an idle watch stream. etcd's server refuses pings more often than
    # every 5 s (--grpc-keepalive-min-time), so stay above that.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # A catch-up watch response may bundle many revisions; etcd's own limit is the bound.
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
]

# etcd clientv3's WithRequireLeader: the member cancels the watch when it has no leader.
_WATCH_METADATA: Final[tuple[tuple[str, str], ...]] = (("hasleader", "true"),)

_CONNECTION_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
    }
)


class _Connection:
    """One channel to one endpoint. ``users`` counts calls and watch streams in flight, so a
    retired connection is closed only once nobody uses it (closing a channel cancels its calls,
    which would reach other tasks as ``CancelledError``)."""

    def __init__(self, endpoint: str, credentials: grpc.ChannelCredentials | None) -> None:
        self.endpoint = endpoint
        if credentials is None:
            self.channel = grpc.aio.insecure_channel(endpoint, options=_CHANNEL_OPTIONS)
        else:
            self.channel = grpc.aio.secure_channel(endpoint, credentials, options=_CHANNEL_OPTIONS)
        self.kv: Any = _rpc.KVStub(self.channel)
        self.watch: Any = _rpc.WatchStub(self.channel)
        self.users = 0
        self.retired = False
        self.closed = False

    async def wait_ready(self, within: float) -> bool:
        """Whether this fresh channel connects within ``within`` s; ``False`` at once when the
        first attempt fails (a fresh channel goes IDLE -> CONNECTING -> TRANSIENT_FAILURE,
        and only a failed attempt leads to TRANSIENT_FAILURE)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            state = self.channel.get_state(try_to_connect=True)
            if state == grpc.ChannelConnectivity.READY:
                return True
            remaining = deadline - loop.time()
            if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE or remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    await self.channel.wait_for_state_change(state)
            except TimeoutError:
                return False

    async def release(self) -> None:
        self.users -= 1
        if self.retired and self.users == 0:
            await self.close()

    async def retire(self) -> None:
        """No new users; closed as soon as the current ones are done."""
        self.retired = True
        if self.users == 0:
            await self.close()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.channel.close(None)


class EtcdStore:
    """``KeyValueStore`` over an etcd cluster.

    ``endpoints``: ``host:port`` of each member (one is enough for a single member).
    ``timeout``: deadline of every call, in seconds. ``connect_timeout``: how long to wait for
    one endpoint to connect before trying the next. ``credentials``: gRPC channel credentials
    for TLS (``None``: plaintext). The constructor does no I/O; ``connect`` also checks that
    the cluster answers.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        if isinstance(endpoints, str) or not endpoints:
            raise InvalidArgument("endpoints must be a non-empty list", field="endpoints")
        if timeout <= 0 or connect_timeout <= 0:
            raise InvalidArgument("timeouts must be positive", field="timeout")
        self._endpoints = tuple(endpoints)
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._credentials = credentials
        self._next = 0  # index of the endpoint the next connection goes to
        self._conn: _Connection | None = None
        self._open: set[_Connection] = set()
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def connect(
        cls,
        endpoints: Sequence[str],
        *,
        # Not this coroutine's own limit: the per-call deadline of the store it returns.
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> EtcdStore:
        """A store whose cluster answered a read (else ``Unavailable``, and nothing leaks)."""
        store = cls(
            endpoints, timeout=timeout, connect_timeout=connect_timeout, credentials=credentials
        )
        try:
            await store.revision()
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def endpoint(self) -> str | None:
        """The endpoint in use (``None`` between connections); for logs and tests."""
        return self._conn.endpoint if self._conn is not None else None

    # -- reads ---------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        request = _rpc.RangeRequest(key=_keyspace.encode_key(key))
        response = await self._unary("Range", request, idempotent=True)
        kvs = list(response.kvs)
        return _entry(kvs[0]) if kvs else None

    async def list(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> Page:
        raw_prefix = _keyspace.encode_prefix(prefix)
        _keyspace.check_list(start_after, limit, revision)
        start = raw_prefix or b"\x00"  # etcd: an empty key is "key not provided"
        if start_after >= prefix:
            start = start_after.encode("utf-8") + b"\x00"  # the first key after start_after
        # sort_order stays NONE: etcd returns ranges in key order anyway, and in 3.4 any other
        # sort order makes the server read the whole range before applying the limit.
        request = _rpc.RangeRequest(
            key=start,
            range_end=_keyspace.prefix_range_end(raw_prefix),
            limit=limit,
            revision=revision,
        )
        response = await self._unary("Range", request, idempotent=True, revision=revision)
        return Page(
            entries=tuple(_entry(kv) for kv in response.kvs),
            revision=revision or int(response.header.revision),
            more=bool(response.more),
        )

    async def revision(self) -> int:
        request = _rpc.RangeRequest(key=b"\x00", count_only=True)
        response = await self._unary("Range", request, idempotent=True)
        return int(response.header.revision)

    # -- writes --------------------------------------------------------------------------

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        _keyspace.check_txn(compares, ops)
        compared = list(dict.fromkeys(c.key for c in compares))
        request = _rpc.TxnRequest(
            compare=[_compare(c) for c in compares],
            success=[_request_op(op) for op in ops],
            # etcd does not say which compare failed; the failure branch reads every compared
            # key in the same revision, so the failed ones can be named exactly.
            failure=[
                _rpc.RequestOp(request_range=_rpc.RangeRequest(key=k.encode("utf-8")))
                for k in compared
            ],
        )
        response = await self._unary("Txn", request, idempotent=False)
        revision = int(response.header.revision)
        if response.succeeded:
            return TxnResult(succeeded=True, revision=revision)
        current: dict[str, int] = {}
        for op_response in response.responses:
            for kv in op_response.response_range.kvs:
                current[_decode(kv.key)] = int(kv.mod_revision)
        failed = tuple(
            dict.fromkeys(c.key for c in compares if current.get(c.key, ABSENT) != c.mod_revision)
        )
        return TxnResult(succeeded=False, revision=revision, failed=failed)

    async def compact(self, revision: int) -> None:
        """Forget history before ``revision`` and wait until etcd applied it (``physical``),
        so the next request sees it. At or below an earlier compaction: a no-op."""
        _keyspace.check_compact(revision)
        request = _rpc.CompactionRequest(revision=revision, physical=True)
        try:
            await self._unary("Compact", request, idempotent=False, revision=revision)
        except FailedPrecondition as exc:
            if exc.reason != _keyspace.REVISION_COMPACTED:
                raise

    # -- watch ---------------------------------------------------------------------------

    def watch(self, prefix: str, *, start_revision: int) -> AsyncGenerator[Sequence[Event], None]:
        return self._watch(prefix, start_revision)

    async def _watch(
        self, prefix: str, start_revision: int
    ) -> AsyncGenerator[Sequence[Event], None]:
        raw_prefix = _keyspace.encode_prefix(prefix)
        _keyspace.check_watch(start_revision)
        create = _rpc.WatchRequest(
            create_request=_rpc.WatchCreateRequest(
                key=raw_prefix or b"\x00",
                range_end=_keyspace.prefix_range_end(raw_prefix),
                start_revision=start_revision,
                prev_kv=True,
            )
        )
        conn = await self._ready_connection()
        conn.users += 1
        call: Any = None
        try:
            call = conn.watch.Watch(metadata=_WATCH_METADATA)
            try:
                async with asyncio.timeout(self._timeout):
                    await call.write(create)
                    created = await call.read()
            except TimeoutError:
                await self._drop(conn)
                raise _unavailable(conn, "the watch was not created in time") from None
            response = created
            while True:
                error = _watch_error(conn, response, start_revision)
                if error is not None:
                    if isinstance(error, Unavailable):
                        await self._drop(conn)
                    raise error
                for batch in _batches(response.events):
                    yield batch
                response = await call.read()
        except grpc.aio.AioRpcError as exc:
            if self._closed:
                return
            error = _store_error(exc, conn.endpoint, revision=start_revision)
            if isinstance(error, Unavailable):
                await self._drop(conn)
            raise error from exc
        except asyncio.CancelledError:
            # close() cancels open streams; that ends the watch. A cancelled consumer task
            # (``cancelling()``) must still see its CancelledError.
            task = asyncio.current_task()
            if self._closed and (task is None or not task.cancelling()):
                return
            raise
        finally:
            if call is not None:
                call.cancel()  # ends the stream: etcd drops every watch on it
            await conn.release()

    # -- lifecycle -----------------------------------------------------------------------

    async def close(self) -> None:
        """Close every channel; open watches end (their iterators stop)."""
        self._closed = True
        self._conn = None
        conns, self._open = self._open, set()
        for conn in conns:
            conn.retired = True
            await conn.close()

    # -- connection management -----------------------------------------------------------

    async def _unary(
        self, method: str, request: Any, *, idempotent: bool, revision: int = 0
    ) -> Any:
        attempts = len(self._endpoints) if idempotent else 1
        for attempt in range(attempts):
            conn = await self._ready_connection()
            conn.users += 1
            try:
                return await getattr(conn.kv, method)(request, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                error = _store_error(exc, conn.endpoint, revision=revision)
                if not isinstance(error, Unavailable):
                    raise error from exc
                await self._drop(conn)
                # A deadline means the request may still be running; do not pile on.
                if attempt + 1 == attempts or exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise error from exc
            finally:
                await conn.release()
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _ready_connection(self) -> _Connection:
        """The current connection if it is connected; else a fresh channel to the first
        endpoint (from the next one on) that connects within ``connect_timeout``."""
        if self._closed:
            raise Unavailable("the store is closed", reason=_keyspace.STORE_UNAVAILABLE)
        conn = self._conn
        if conn is not None and conn.channel.get_state() == grpc.ChannelConnectivity.READY:
            return conn
        async with self._lock:  # one task reconnects; the others use its result
            conn = self._conn
            if conn is not None:
                if conn.channel.get_state() == grpc.ChannelConnectivity.READY:
                    return conn
                # Not connected (idle, or failing since the last call): a fresh channel
                # connects at once, an old one may be waiting out a reconnect backoff.
                await self._drop(conn)
            for _ in self._endpoints:
                if self._closed:
                    break
                endpoint = self._endpoints[self._next]
                self._next = (self._next + 1) % len(self._endpoints)
                fresh = _Connection(endpoint, self._credentials)
                self._open.add(fresh)
                if await fresh.wait_ready(self._connect_timeout):
                    # Stay on this endpoint until it fails.
                    self._next = self._endpoints.index(endpoint)
                    self._conn = fresh
                    return fresh
                self._open.discard(fresh)
                await fresh.retire()
        raise Unavailable(
            f"no etcd endpoint reachable ({', '.join(self._endpoints)})",
            reason=_keyspace.STORE_UNAVAILABLE,
            metadata={"endpoints": ",".join(self._endpoints)},
        )

    async def _drop(self, conn: _Connection) -> None:
        """Stop using ``conn``: the next call connects afresh, starting with the endpoint
        after it. Closed once its last call or watch is done."""
        if self._conn is conn:
            self._conn = None
            self._next = (self._endpoints.index(conn.endpoint) + 1) % len(self._endpoints)
        if not conn.retired:
            self._open.discard(conn)
            await conn.retire()


def _unavailable(conn: _Connection, message: str) -> Unavailable:
    return Unavailable(
        f"etcd at {conn.endpoint}: {message}",
        reason=_keyspace.STORE_UNAVAILABLE,
        metadata={"endpoint": conn.endpoint},
    )


def _watch_error(conn: _Connection, response: Any, start_revision: int) -> TrustwireError | None:
    """The error a watch response carries, if any."""
    if response is _EOF:
        return _unavailable(conn, "etcd ended the watch stream")
    compact_revision = int(response.compact_revision)
    if compact_revision:
        return _keyspace.compacted(start_revision, compact_revision)
    if response.canceled:  # e.g. "etcdserver: no leader" (the hasleader requirement)
        return _unavailable(conn, str(response.cancel_reason) or "etcd cancelled the watch")
    return None


# -- typed conversions to and from the untyped aetcd messages --------------------------------


def _decode(key: Any) -> str:
    return bytes(key).decode("utf-8")


def _entry(kv: Any) -> Entry:
    return Entry(
        key=_decode(kv.key),
        value=bytes(kv.value),
        create_revision=int(kv.create_revision),
        mod_revision=int(kv.mod_revision),
        version=int(kv.version),
    )


def _event(raw: Any) -> Event:
    kv = raw.kv
    deleted = raw.type == _rpc.Event.DELETE
    return Event(
        type=EventType.DELETE if deleted else EventType.PUT,
        key=_decode(kv.key),
        value=b"" if deleted else bytes(kv.value),
        mod_revision=int(kv.mod_revision),
        prev_value=bytes(raw.prev_kv.value) if raw.HasField("prev_kv") else None,
    )


def _batches(raw_events: Any) -> list[tuple[Event, ...]]:
    """One response's events split into one batch per revision (they arrive in order)."""
    batches: list[list[Event]] = []
    for raw in raw_events:
        event = _event(raw)
        if batches and batches[-1][0].mod_revision == event.mod_revision:
            batches[-1].append(event)
        else:
            batches.append([event])
    return [tuple(b) for b in batches]


def _compare(compare: Compare) -> Any:
    key = compare.key.encode("utf-8")
    if compare.mod_revision == ABSENT:
        # version == 0 holds exactly for a key that does not exist.
        return _rpc.Compare(
            key=key, target=_rpc.Compare.VERSION, result=_rpc.Compare.EQUAL, version=0
        )
    return _rpc.Compare(
        key=key,
        target=_rpc.Compare.MOD,
        result=_rpc.Compare.EQUAL,
        mod_revision=compare.mod_revision,
    )


def _request_op(op: Put | Delete) -> Any:
    key = op.key.encode("utf-8")
    if isinstance(op, Put):
        return _rpc.RequestOp(request_put=_rpc.PutRequest(key=key, value=op.value))
    return _rpc.RequestOp(request_delete_range=_rpc.DeleteRangeRequest(key=key))


def _store_error(exc: grpc.aio.AioRpcError, endpoint: str, *, revision: int) -> TrustwireError:
    """The Trustwire error for a gRPC error from etcd (messages as etcd 3.4 words them)."""
    code = exc.code()
    details = exc.details() or ""
    metadata = {"endpoint": endpoint}
    if code in _CONNECTION_CODES:
        return Unavailable(
            f"etcd at {endpoint}: {code.name}: {details}",
            reason=_keyspace.STORE_UNAVAILABLE,
            metadata=metadata,
        )
    if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
        return _keyspace.compacted(revision, None)
    if code == grpc.StatusCode.OUT_OF_RANGE and "future revision" in details:
        return _keyspace.future_revision(revision, None)
    if code == grpc.StatusCode.INVALID_ARGUMENT and (
        "too many operations" in details or "too large" in details
    ):
        return ResourceExhausted(f"etcd: {details}", metadata=metadata)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # e.g. the NOSPACE alarm
        return ResourceExhausted(f"etcd: {details}", metadata=metadata)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(f"etcd: {details}", metadata=metadata)
    return TrustwireError(f"etcd: {code.name}: {details}", reason="STORE_ERROR", metadata=metadata)
