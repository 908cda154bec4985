"""Fixtures: every scenario runs once against each evaluator of the engine contract."""

from __future__ import annotations

import pytest

from .harness import EVALUATORS, Harness


@pytest.fixture(params=sorted(EVALUATORS))
def run(request: pytest.FixtureRequest) -> Harness:
    """A harness bound to one evaluator (``engine`` or ``reference``)."""
    return Harness(request.param)
