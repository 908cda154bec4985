"""Placeholder until the compiled engine lands: delegates to the reference evaluator."""

from __future__ import annotations

from .reference import ReferenceEvaluator


class PolicyEngine(ReferenceEvaluator):
    pass
