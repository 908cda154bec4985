"""Fixtures for the identity service's unit tests: a fixed clock and an in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trustwire.identity import TrustDomain
from trustwire.store.memory import MemoryStore
from trustwire_identity.ca import CertificateAuthority, create_root

TRUST_DOMAIN = TrustDomain("cluster-a.example")
START = datetime(2030, 1, 1, tzinfo=UTC)


class FixedClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture(scope="session")
def authority() -> CertificateAuthority:
    return CertificateAuthority(
        TRUST_DOMAIN, create_root(TRUST_DOMAIN, now=START, ttl=timedelta(days=365))
    )
