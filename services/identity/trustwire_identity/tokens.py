"""Join tokens: single-use, expiring credentials that let one enforcer or service enrol.

A token reads ``<token_id>.<secret>``. The id (64 random bits, hex) is the store key and is
safe to log; the secret (256 random bits, URL-safe base64) is returned once by ``create`` and
only its SHA-256 is stored. A plain hash suffices because the secret is uniformly random with
256 bits of entropy: there is no dictionary to attack, so a slow KDF would buy nothing.

Redemption is a compare-and-swap on the token's ``mod_revision``: of two concurrent
enrolments with one token exactly one transaction commits; the other sees the changed revision,
re-reads the token as used, and fails ``TOKEN_USED``. Every refusal is ``Unauthenticated``
(the token is the caller's only credential) with one of the reasons below; an unknown id and a
wrong secret are the same ``TOKEN_UNKNOWN`` so the refusal does not reveal which ids exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta

from trustwire.errors import Conflict, InvalidArgument, Unauthenticated
from trustwire.store import Compare, Delete, KeyValueStore, Put

from .clock import Clock
from .names import check_name
from .records import JOIN_TOKENS, EnrollmentKind, JoinTokenRecord, decode, encode

__all__ = [
    "DEFAULT_TOKEN_TTL",
    "MAX_TOKEN_TTL",
    "TOKEN_EXPIRED",
    "TOKEN_RETENTION",
    "TOKEN_UNKNOWN",
    "TOKEN_USED",
    "TOKEN_WRONG_NODE",
    "CreatedToken",
    "JoinTokens",
]

DEFAULT_TOKEN_TTL = timedelta(hours=1)
MAX_TOKEN_TTL = timedelta(hours=24)
# How long a token's record outlives its expiry (audit: who used it, when), then it is deleted.
# A deleted token is refused as TOKEN_UNKNOWN instead of TOKEN_EXPIRED/TOKEN_USED: still refused.
TOKEN_RETENTION = timedelta(days=7)
_GC_PAGE = 500

# Reasons of the refusals (ErrorInfo.reason), not secrets.
TOKEN_UNKNOWN = "TOKEN_UNKNOWN"  # noqa: S105
TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105
TOKEN_USED = "TOKEN_USED"  # noqa: S105
TOKEN_WRONG_NODE = "TOKEN_WRONG_NODE"  # noqa: S105

_TOKEN = re.compile(r"([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CreatedToken:
    token: str
    """``<token_id>.<secret>``: shown once, never stored."""
    record: JoinTokenRecord


class JoinTokens:
    """Creation and single-use redemption of join tokens in ``store``."""

    def __init__(self, store: KeyValueStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self,
        kind: EnrollmentKind,
        name: str,
        *,
        ttl: timedelta = timedelta(0),
        created_by: str,
    ) -> CreatedToken:
        """A new token. ``name`` binds it to one node/service (empty: any); ``ttl`` zero
        means :data:`DEFAULT_TOKEN_TTL`; at most :data:`MAX_TOKEN_TTL`."""
        if name:
            check_name(name, "name")
        if ttl < timedelta(0) or ttl > MAX_TOKEN_TTL:
            raise InvalidArgument(
                f"ttl must be between 0 and {MAX_TOKEN_TTL}", field="ttl", reason="INVALID_TTL"
            )
        now = self._clock()
        token_id = secrets.token_hex(8)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        record = JoinTokenRecord(
            token_id=token_id,
            secret_sha256=_hash(secret),
            kind=kind,
            name=name,
            created_at=now,
            expires_at=now + (ttl or DEFAULT_TOKEN_TTL),
            created_by=created_by,
        )
        key = JOIN_TOKENS + token_id
        result = await self._store.txn([Compare(key, 0)], [Put(key, encode(record))])
        if not result.succeeded:  # 64 random bits colliding: practically never
            raise Conflict("token id collision; retry", reason="TOKEN_ID_COLLISION")
        return CreatedToken(f"{token_id}.{secret}", record)

    async def peek(self, token: str) -> JoinTokenRecord:
        """The record of a valid, unused, unexpired ``token`` without consuming it."""
        record, _ = await self._valid(token)
        return record

    async def redeem(self, token: str, *, name: str, spiffe_id_for: str = "") -> JoinTokenRecord:
        """Consume ``token`` for ``name`` (the node or service enrolling; empty: the token's).

        Returns the consumed record (``used_at`` set). Raises ``Unauthenticated`` with reason
        ``TOKEN_UNKNOWN``, ``TOKEN_USED``, ``TOKEN_EXPIRED`` or ``TOKEN_WRONG_NODE`` (the
        token names another node; it is left unused).
        """
        record, mod_revision = await self._valid(token)
        if record.name and name and name != record.name:
            raise Unauthenticated(
                f"join token {record.token_id} is for {record.kind.value} {record.name!r}, "
                f"not {name!r}",
                reason=TOKEN_WRONG_NODE,
                metadata={"token_id": record.token_id},
            )
        used = replace(record, used_at=self._clock(), used_by=spiffe_id_for)
        key = JOIN_TOKENS + record.token_id
        result = await self._store.txn([Compare(key, mod_revision)], [Put(key, encode(used))])
        if not result.succeeded:
            # Someone else changed the token between our read and write: they redeemed it.
            raise Unauthenticated(
                f"join token {record.token_id} was already used",
                reason=TOKEN_USED,
                metadata={"token_id": record.token_id},
            )
        return used

    async def collect_garbage(self, *, retention: timedelta = TOKEN_RETENTION) -> int:
        """Delete the records of tokens that expired more than ``retention`` ago, used or not
        (without this the store grows by one record per enrolment forever). Each delete is
        guarded by the record's revision, so a record changed meanwhile is left for the next
        round. Returns how many were deleted."""
        cutoff = self._clock() - retention
        deleted = 0
        start_after = ""
        while True:
            page = await self._store.list(JOIN_TOKENS, start_after=start_after, limit=_GC_PAGE)
            for entry in page.entries:
                if decode(JoinTokenRecord, entry.value).expires_at >= cutoff:
                    continue
                result = await self._store.txn(
                    [Compare(entry.key, entry.mod_revision)], [Delete(entry.key)]
                )
                deleted += int(result.succeeded)
            if len(page.entries) < _GC_PAGE:
                return deleted
            start_after = page.entries[-1].key

    async def _valid(self, token: str) -> tuple[JoinTokenRecord, int]:
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise Unauthenticated("unknown join token", reason=TOKEN_UNKNOWN)
        token_id, secret = match.groups()
        entry = await self._store.get(JOIN_TOKENS + token_id)
        if entry is None:
            raise Unauthenticated("unknown join token", reason=TOKEN_UNKNOWN)
        record = decode(JoinTokenRecord, entry.value)
        if not hmac.compare_digest(record.secret_sha256, _hash(secret)):
            raise Unauthenticated("unknown join token", reason=TOKEN_UNKNOWN)
        metadata = {"token_id": token_id}
        if record.used_at is not None:
            raise Unauthenticated(
                f"join token {token_id} was already used", reason=TOKEN_USED, metadata=metadata
            )
        if self._clock() >= record.expires_at:
            raise Unauthenticated(
                f"join token {token_id} expired at {record.expires_at.isoformat()}",
                reason=TOKEN_EXPIRED,
                metadata=metadata,
            )
        return record, entry.mod_revision
