"""Fixtures for the runtime tests (helpers live in ``.runtime_testkit``)."""

from __future__ import annotations

import pytest

from .runtime_testkit import ThrowawayCA


@pytest.fixture(scope="session")
def ca() -> ThrowawayCA:
    return ThrowawayCA.create()
