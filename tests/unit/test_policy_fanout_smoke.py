"""The policy fan-out benchmark runs end to end in --quick mode (real etcd, replicas and a
client process). No timing assertions: goals live in the harness against a same-run baseline;
this keeps the harness working and its figures well-formed."""

from __future__ import annotations

import math

import pytest

from bench.policy_fanout import QUICK, run

pytestmark = pytest.mark.etcd


async def test_quick_fanout_run_completes_with_sane_figures(etcd_binary: str) -> None:
    report = await run(QUICK)
    sizes = [(r.enforcers, r.stalled) for r in report.fanout]
    assert sizes == [(1, 0), (20, 0), (20, 2)]
    for result in report.fanout:
        assert result.rounds == QUICK.rounds
        assert 0 < result.p50_s <= result.p99_s <= result.last_ack_max_s
        assert result.rss_bytes_per_enforcer >= 0
    assert report.cold_rules == QUICK.cold_rules
    assert report.cold_snapshot_s > 0
    assert report.cold_snapshot_bytes > 0
    assert all(math.isfinite(r) and r > 0 for r in report.ratios.values())
    assert len(report.goals) == 3
