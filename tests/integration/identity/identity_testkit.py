"""Helpers for the identity service's integration tests: a movable clock, a key-prefixing
view of the shared etcd (so tests sharing one etcd never see each other's keys), and calls as
the admin or an enrolled enforcer."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf import duration_pb2

from trustwire.api.identity.v1 import (
    enrollment_pb2,
    identity_service_pb2,
    identity_service_pb2_grpc,
)
from trustwire.runtime import ClientTLS, create_channel
from trustwire.store import Compare, Delete, Entry, Event, KeyValueStore, Page, Put, TxnResult
from trustwire_identity.admin import ClientConfig
from trustwire_identity.server import IdentityServer
from trustwire_identity.settings import IdentitySettings

TRUST_DOMAIN = "cluster-a.example"


class MovableClock:
    """Real time plus an offset that tests advance (never sleep)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class PrefixedStore:
    """``KeyValueStore`` under ``prefix`` of another store (keys are translated both ways)."""

    def __init__(self, inner: KeyValueStore, prefix: str) -> None:
        self._inner = inner
        self._prefix = prefix.rstrip("/")

    def _in(self, key: str) -> str:
        return self._prefix + key

    def _out(self, key: str) -> str:
        return key[len(self._prefix) :]

    def _entry(self, entry: Entry) -> Entry:
        return replace(entry, key=self._out(entry.key))

    async def get(self, key: str) -> Entry | None:
        entry = await self._inner.get(self._in(key))
        return self._entry(entry) if entry is not None else None

    async def list(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> Page:
        page = await self._inner.list(
            self._in(prefix),
            start_after=self._in(start_after) if start_after else "",
            limit=limit,
            revision=revision,
        )
        return Page(tuple(self._entry(e) for e in page.entries), page.revision, page.more)

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        result = await self._inner.txn(
            [Compare(self._in(c.key), c.mod_revision) for c in compares],
            [
                Put(self._in(op.key), op.value) if isinstance(op, Put) else Delete(self._in(op.key))
                for op in ops
            ],
        )
        return replace(result, failed=tuple(self._out(k) for k in result.failed))

    async def revision(self) -> int:
        return await self._inner.revision()

    def watch(self, prefix: str, *, start_revision: int) -> AsyncGenerator[Sequence[Event], None]:
        return self._watch(prefix, start_revision)

    async def _watch(
        self, prefix: str, start_revision: int
    ) -> AsyncGenerator[Sequence[Event], None]:
        async for batch in self._inner.watch(self._in(prefix), start_revision=start_revision):
            yield [replace(event, key=self._out(event.key)) for event in batch]

    async def compact(self, revision: int) -> None:
        await self._inner.compact(revision)

    async def close(self) -> None:
        pass  # the inner store belongs to the fixture


def settings_for(state_dir: Path, **overrides: Any) -> IdentitySettings:
    values: dict[str, Any] = {
        "trust_domain": TRUST_DOMAIN,
        "state_dir": state_dir,
        "listen_address": "127.0.0.1:0",
        "enroll_address": "127.0.0.1:0",
        "advertise_host": "127.0.0.1",
        "server_names": ("localhost", "127.0.0.1"),
    }
    values.update(overrides)
    return IdentitySettings(**values)


def admin_tls(server: IdentityServer) -> ClientTLS:
    assert server.config_path is not None
    config = ClientConfig.load(server.config_path)
    return ClientTLS.from_files(config.ca_bundle, config.certificate, config.key)


async def admin_call(server: IdentityServer, method: str, request: Any) -> Any:
    async with create_channel(server.address, admin_tls(server)) as channel:
        stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
        return await getattr(stub, method)(request, timeout=10)


async def create_token(
    server: IdentityServer,
    node: str = "",
    *,
    kind: Any = enrollment_pb2.ENROLLMENT_KIND_ENFORCER,
    ttl_s: int = 900,
) -> identity_service_pb2.CreateJoinTokenResponse:
    response: identity_service_pb2.CreateJoinTokenResponse = await admin_call(
        server,
        "CreateJoinToken",
        identity_service_pb2.CreateJoinTokenRequest(
            kind=kind, name=node, ttl=duration_pb2.Duration(seconds=ttl_s)
        ),
    )
    return response
