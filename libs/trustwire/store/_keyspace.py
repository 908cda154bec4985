"""Request rules shared by every backend, so that each rejects the same input the same way.

etcd is the reference: these checks reproduce what an etcd 3.4 server with default settings
rejects (empty key, one key written twice in a transaction, more than 128 operations), but
raise Trustwire errors before anything is sent. A backend that passes these checks behaves
identically on the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from trustwire.errors import FailedPrecondition, InvalidArgument, ResourceExhausted

from ._interface import Compare, Delete, Put

# etcd's --max-txn-ops default: more compares or operations in one transaction are refused.
MAX_TXN_OPS = 128

REVISION_COMPACTED = "REVISION_COMPACTED"
FUTURE_REVISION = "FUTURE_REVISION"
STORE_UNAVAILABLE = "STORE_UNAVAILABLE"


def encode_key(key: str, *, field: str = "key") -> bytes:
    """The key's bytes (UTF-8). Keys are non-empty strings; Python orders ``str`` by code
    point, which is exactly the byte order of their UTF-8 encodings, i.e. etcd's key order."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"{field} must be a non-empty string", field=field)
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"{field} is not valid Unicode: {exc.reason}", field=field) from exc


def encode_prefix(prefix: str) -> bytes:
    """A prefix may be empty (the whole keyspace). It is a raw string prefix: ``/a/b`` also
    matches ``/a/bc``; end prefixes with ``/`` to select one directory."""
    return encode_key(prefix, field="prefix") if prefix else b""


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's ``range_end`` that selects every key starting with ``prefix``: the prefix with its
    last byte below 0xff incremented (and the rest dropped); ``\\0`` (no upper bound) for the
    empty prefix or one made only of 0xff bytes (etcd clientv3 ``GetPrefixRangeEnd``)."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


def check_list(start_after: str, limit: int, revision: int) -> None:
    if not isinstance(start_after, str):
        raise InvalidArgument("start_after must be a string", field="start_after")
    if start_after:
        encode_key(start_after, field="start_after")
    if limit < 0:
        raise InvalidArgument("limit must be >= 0 (0: no limit)", field="limit")
    if revision < 0:
        raise InvalidArgument("revision must be >= 0 (0: current)", field="revision")


def check_watch(start_revision: int) -> None:
    # etcd reads start_revision 0 as "from now", which the contract (mod_revision >=
    # start_revision) cannot express; callers always know where they resume.
    if start_revision < 1:
        raise InvalidArgument(
            "start_revision must be >= 1 (use revision() + 1 for new events only)",
            field="start_revision",
        )


def check_compact(revision: int) -> None:
    if revision < 1:
        raise InvalidArgument("revision must be >= 1", field="revision")


def check_txn(compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> None:
    """Reject what etcd would reject, with no partial effect: too many compares or operations,
    an empty key, a negative revision, a key written twice (etcd: "duplicate key given in txn
    request", also for a put and a delete of the same key)."""
    if len(compares) > MAX_TXN_OPS or len(ops) > MAX_TXN_OPS:
        raise ResourceExhausted(
            f"a transaction holds at most {MAX_TXN_OPS} compares and {MAX_TXN_OPS} operations",
            reason="TOO_MANY_TXN_OPS",
            metadata={"compares": str(len(compares)), "ops": str(len(ops))},
        )
    for i, compare in enumerate(compares):
        encode_key(compare.key, field=f"compares[{i}].key")
        if compare.mod_revision < 0:
            raise InvalidArgument(
                "mod_revision must be >= 0 (ABSENT: the key must not exist)",
                field=f"compares[{i}].mod_revision",
            )
    seen: set[str] = set()
    for i, op in enumerate(ops):
        encode_key(op.key, field=f"ops[{i}].key")
        if isinstance(op, Put) and not isinstance(op.value, bytes):
            raise InvalidArgument("value must be bytes", field=f"ops[{i}].value")
        if op.key in seen:
            raise InvalidArgument(
                f"key {op.key!r} is written twice in one transaction", field=f"ops[{i}].key"
            )
        seen.add(op.key)


def compacted(revision: int, compact_revision: int | None) -> FailedPrecondition:
    """The error for a read or watch at ``revision`` below the compacted revision. Callers
    resync from a snapshot: ``list`` at revision 0, then ``watch`` from ``page.revision + 1``."""
    metadata = {"revision": str(revision)}
    if compact_revision is not None:
        metadata["compact_revision"] = str(compact_revision)
    below = f" (compacted up to {compact_revision})" if compact_revision is not None else ""
    return FailedPrecondition(
        f"revision {revision} was compacted{below}; resync from a snapshot",
        reason=REVISION_COMPACTED,
        metadata=metadata,
    )


def future_revision(revision: int, current: int | None) -> InvalidArgument:
    now = f" (current revision {current})" if current is not None else ""
    return InvalidArgument(
        f"revision {revision} is in the future{now}", field="revision", reason=FUTURE_REVISION
    )
