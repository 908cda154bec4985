"""The policy-engine benchmark runs end to end in --quick mode.

No timing assertions (project rule: performance goals live in the harness, against a baseline
measured in the same run). This only keeps the harness working: it completes, measures what
each phase claims (the cache counters agree), and the engine agrees with the reference
evaluator on every sampled probe.
"""

from __future__ import annotations

import json
import math

import pytest

from bench.policy_engine import QUICK, main, run, to_json
from bench.rpc_metrics import main as rpc_main
from bench.synthetic_cluster import generate


def test_quick_run_completes_with_sane_figures_and_agreement() -> None:
    report = run(QUICK)

    assert report.problems == []
    assert report.disagreements == []
    assert report.agreement_checked > 0
    assert report.counts.rules == QUICK.rules
    assert report.counts.workloads == QUICK.identities
    assert report.identities == QUICK.identities  # every workload its own identity
    assert report.construction_seconds > 0
    for key in ("first", "cold", "uncached", "cached", "uncached2", "reference"):
        phase = report.phases[key]
        assert phase.decisions > 0, key
        assert phase.seconds > 0, key
        assert math.isfinite(phase.per_second), key
        assert phase.per_second > 0, key
    assert all(math.isfinite(r) and r > 0 for r in report.ratios.values())
    assert len(report.goals) == 3
    # The JSON form carries the same figures and is serialisable.
    document = json.loads(json.dumps(to_json(report)))
    assert document["ok"] is True
    assert document["phases"]["cached"]["decisions"] == report.phases["cached"].decisions


def test_generator_is_deterministic_and_mixes_rule_kinds() -> None:
    first = generate(rules=400, identities=80, seed=7)
    second = generate(rules=400, identities=80, seed=7)
    assert first.cluster == second.cluster
    counts = first.counts
    assert counts.rules == 400
    assert counts.kubernetes_rules > 0
    assert counts.access_policies > 0
    assert set(counts.access_by_action) == {"allow", "reject", "encrypt", "observe"}
    assert counts.access_with_expressions > 0
    assert counts.external_networks > 0
    assert len({w.identity_labels() for w in first.cluster.workloads}) == 80


def test_main_quick_json_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--json", "--seed", "3"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["config"]["seed"] == 3
    assert document["disagreements"] == []


def test_rpc_metrics_bench_runs_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    assert rpc_main(["--calls", "20", "--rounds", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("unary call p50 without metrics")
    assert lines[1].startswith("unary call p50 with metrics")
    assert lines[2].startswith("added ")
