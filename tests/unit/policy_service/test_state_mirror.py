"""State mirror recovery paths on the in-memory store (the etcd paths are integration tests)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

from tests.integration.policy_service.fixtures import DENY_DB, SHOP
from trustwire.errors import FailedPrecondition
from trustwire.store import Event
from trustwire.store.memory import MemoryStore
from trustwire_policy.manifests import parse_yaml
from trustwire_policy.repository import PolicyRepository
from trustwire_policy.settings import LimitSettings, load
from trustwire_policy.state import StateMirror

LIMITS = LimitSettings()


class CompactedOnce(MemoryStore):
    """A memory store whose first watch fails as if its start revision had been compacted."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def watch(self, prefix: str, *, start_revision: int) -> AsyncGenerator[Sequence[Event], None]:
        if not self.failed:
            self.failed = True
            return self._fail()
        return super().watch(prefix, start_revision=start_revision)

    async def _fail(self) -> AsyncGenerator[Sequence[Event], None]:
        raise FailedPrecondition("compacted", reason="REVISION_COMPACTED")
        yield ()  # pragma: no cover - makes this an async generator


async def test_compacted_watch_reloads_and_converges() -> None:
    store = CompactedOnce()
    repository = PolicyRepository(store)
    mirror = StateMirror(store)
    await repository.apply(parse_yaml(SHOP, "a.yaml", LIMITS))
    await mirror.start()
    try:
        written = await repository.apply(parse_yaml(DENY_DB, "b.yaml", LIMITS))
        snapshot = await mirror.wait_for_revision(written.revision)
        assert len(snapshot.cluster.access_policies) == 2
        assert mirror.loads == 2
    finally:
        await mirror.stop()


async def test_latest_wins_for_slow_subscribers() -> None:
    store = MemoryStore()
    repository = PolicyRepository(store)
    mirror = StateMirror(store)
    await mirror.start()
    try:
        first = await mirror.wait_ready()
        await repository.apply(parse_yaml(SHOP, "a.yaml", LIMITS))
        last = await repository.apply(parse_yaml(DENY_DB, "b.yaml", LIMITS))
        await mirror.wait_for_revision(last.revision)
        # A subscriber that slept through both writes gets only the newest state.
        newest = await mirror.next_snapshot(first.revision)
        assert newest.revision == last.revision
    finally:
        await mirror.stop()


def test_settings_from_environment() -> None:
    settings = load(
        environ={
            "TRUSTWIRE_POLICY_ETCD__ENDPOINTS": "a:2379,b:2379",
            "TRUSTWIRE_POLICY_LIMITS__MAX_DOCUMENTS": "7",
        }
    )
    assert settings.etcd.endpoints == ("a:2379", "b:2379")
    assert settings.limits.max_documents == 7
