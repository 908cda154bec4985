"""Join tokens: stored hashed, expiring, single use (also under concurrency)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import pytest

from trustwire.errors import InvalidArgument, Unauthenticated
from trustwire.store.memory import MemoryStore
from trustwire_identity.records import JOIN_TOKENS, EnrollmentKind
from trustwire_identity.tokens import JoinTokens

from .conftest import FixedClock


async def test_only_the_hash_of_the_secret_is_stored(store: MemoryStore, clock: FixedClock) -> None:
    created = await JoinTokens(store, clock).create(
        EnrollmentKind.ENFORCER, "node-1", created_by="admin"
    )
    token_id, secret = created.token.split(".")
    entry = await store.get(JOIN_TOKENS + token_id)
    assert entry is not None
    assert secret.encode() not in entry.value
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in entry.value
    assert created.record.expires_at == clock() + timedelta(hours=1)


@pytest.mark.parametrize(
    ("mutation", "reason"),
    [
        ("unknown-id", "TOKEN_UNKNOWN"),
        ("wrong-secret", "TOKEN_UNKNOWN"),
        ("garbage", "TOKEN_UNKNOWN"),
        ("expired", "TOKEN_EXPIRED"),
        ("used", "TOKEN_USED"),
        ("wrong-node", "TOKEN_WRONG_NODE"),
    ],
)
async def test_refusals(store: MemoryStore, clock: FixedClock, mutation: str, reason: str) -> None:
    tokens = JoinTokens(store, clock)
    created = await tokens.create(
        EnrollmentKind.ENFORCER, "node-1", ttl=timedelta(minutes=15), created_by="admin"
    )
    token, name = created.token, "node-1"
    token_id, secret = token.split(".")
    if mutation == "unknown-id":
        token = "0" * 16 + "." + secret
    elif mutation == "wrong-secret":
        token = token_id + "." + "A" * 43
    elif mutation == "garbage":
        token = "not a token"
    elif mutation == "expired":
        clock.advance(timedelta(minutes=15))
    elif mutation == "used":
        await tokens.redeem(token, name="node-1")
    else:
        name = "node-2"
    with pytest.raises(Unauthenticated) as refused:
        await tokens.redeem(token, name=name)
    assert refused.value.reason == reason


async def test_a_wrong_node_does_not_spend_the_token(store: MemoryStore, clock: FixedClock) -> None:
    tokens = JoinTokens(store, clock)
    created = await tokens.create(EnrollmentKind.ENFORCER, "node-1", created_by="admin")
    with pytest.raises(Unauthenticated):
        await tokens.redeem(created.token, name="node-2")
    used = await tokens.redeem(created.token, name="node-1")
    assert used.used_at == clock()


async def test_concurrent_redemptions_have_exactly_one_winner(
    store: MemoryStore, clock: FixedClock
) -> None:
    tokens = JoinTokens(store, clock)
    created = await tokens.create(EnrollmentKind.ENFORCER, "", created_by="admin")
    results = await asyncio.gather(
        *(tokens.redeem(created.token, name=f"node-{i}") for i in range(8)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(
        isinstance(r, Unauthenticated) and r.reason == "TOKEN_USED"
        for r in results
        if isinstance(r, BaseException)
    )


@pytest.mark.parametrize("ttl", [timedelta(hours=25), timedelta(seconds=-1)])
async def test_ttl_bounds(store: MemoryStore, clock: FixedClock, ttl: timedelta) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await JoinTokens(store, clock).create(
            EnrollmentKind.ENFORCER, "", ttl=ttl, created_by="admin"
        )
    assert refused.value.field == "ttl"
