"""Expired join tokens and revocation entries are deleted after their retention, and nothing
that still matters is: against the real service and etcd, with a movable clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from trustwire.errors import Unauthenticated
from trustwire_identity.client import enroll
from trustwire_identity.records import JOIN_TOKENS, REVOCATIONS
from trustwire_identity.revocation import REVOCATION_RETENTION
from trustwire_identity.server import IdentityServer
from trustwire_identity.tokens import TOKEN_RETENTION

from .identity_testkit import MovableClock, PrefixedStore, create_token
from .test_revocation_and_documents import enrolled, revoke

pytestmark = pytest.mark.etcd


async def keys(store: PrefixedStore, prefix: str) -> list[str]:
    return [entry.key for entry in (await store.list(prefix)).entries]


async def test_expired_tokens_are_deleted_after_their_retention(
    identity: IdentityServer, store: PrefixedStore, clock: MovableClock
) -> None:
    used = await create_token(identity, "node-1", ttl_s=60)
    await enroll(identity.enroll_address, used.token, ca_sha256=used.ca_sha256)
    unused = await create_token(identity, "node-2", ttl_s=60)
    long_lived = await create_token(identity, "node-3", ttl_s=24 * 3600)
    assert len(await keys(store, JOIN_TOKENS)) == 3

    # Expired, but inside the retention: kept (the audit trail of who enrolled when).
    clock.advance(timedelta(hours=2))
    assert await identity.collect_garbage() == (0, 0)
    assert len(await keys(store, JOIN_TOKENS)) == 3

    # The two short tokens are now past expiry + retention; the 24 h one is not yet.
    clock.advance(TOKEN_RETENTION - timedelta(minutes=30))
    assert await identity.collect_garbage() == (2, 0)
    remaining = await keys(store, JOIN_TOKENS)
    assert [k.rsplit("/", 1)[-1] for k in remaining] == [long_lived.token.split(".")[0]]
    # A deleted token is still refused, now as unknown.
    with pytest.raises(Unauthenticated) as refused:
        await identity.tokens.peek(unused.token)
    assert refused.value.reason == "TOKEN_UNKNOWN"


async def test_revocations_of_expired_certificates_are_deleted_list_unchanged(
    identity: IdentityServer, store: PrefixedStore, clock: MovableClock
) -> None:
    credential = await enrolled(identity, "node-1")
    revoked = await revoke(identity, "node-1")
    before = await identity.revocations.snapshot()
    assert len(before.entries) == 1

    # Still within the certificate's life plus the retention: kept.
    clock.advance(credential.not_after - clock() + REVOCATION_RETENTION - timedelta(minutes=1))
    assert await identity.collect_garbage() == (0, 0)
    assert len(await keys(store, REVOCATIONS)) == 1

    clock.advance(timedelta(minutes=2))
    assert await identity.collect_garbage() == (0, 1)
    after = await identity.revocations.snapshot()
    assert after.entries == ()
    # What verifiers enforce did not change: the entry had expired from the list already,
    # and the list's sequence number (its version) is the same.
    assert after.sequence == before.sequence == revoked.revocation_list_sequence_number
