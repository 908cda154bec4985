"""FlowAggregator: windows, keys, bounds and trace sampling, on an injected clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from trustwire.errors import InvalidArgument
from trustwire.flows import FlowAggregator, FlowDecision, Verdict
from trustwire.policy import Direction, DirectionDecision, ReasonCode

from .factory import T0, TRACE_A, TRACE_B, FakeClock, facts, pu, reject


def aggregator(clock: FakeClock, **kwargs: int) -> FlowAggregator:
    return FlowAggregator("node-1", window=timedelta(seconds=10), clock=clock, **kwargs)


def test_connections_of_one_key_and_window_become_one_record() -> None:
    clock = FakeClock(T0 + timedelta(seconds=1))
    agg = aggregator(clock)
    agg.record(facts(trace_id=TRACE_A, sent=10, received=20))
    clock.advance(3)
    agg.record(facts(trace_id=TRACE_B, sent=5, received=1))
    assert agg.flush() == []  # window [T0, T0+10s) still open
    clock.advance(6)  # T0+10s: the window ended
    (rec,) = agg.flush()
    assert rec.connection_count == 2
    assert (rec.bytes_sent, rec.bytes_received) == (15, 21)
    assert rec.trace_id == TRACE_A  # the first connection's
    assert rec.trace_sample == (TRACE_A, TRACE_B)
    assert (rec.window_start, rec.window_end) == (T0, T0 + timedelta(seconds=10))
    assert rec.reporter == "node-1"
    assert rec.source.port == 0  # ephemeral ports are not aggregated
    assert rec.port == 5432
    assert agg.open_keys == 0
    assert agg.flush() == []


def test_windows_are_epoch_aligned_and_separate() -> None:
    clock = FakeClock(T0 + timedelta(seconds=9.5))
    agg = aggregator(clock)
    agg.record(facts())
    clock.advance(1)  # next window
    agg.record(facts())
    clock.advance(20)
    first, second = agg.flush()
    assert first.window_start == T0
    assert second.window_start == T0 + timedelta(seconds=10)


def test_verdict_policy_revision_and_port_split_keys() -> None:
    clock = FakeClock()
    agg = aggregator(clock)
    agg.record(facts())
    agg.record(facts(decision=reject()))
    agg.record(facts(revision=8))
    agg.record(facts(port=443))
    agg.record(facts(source=replace(pu("web", "web"), port=40000)))  # same key as the first
    clock.advance(10)
    records = agg.flush()
    assert len(records) == 4
    assert records[0].connection_count == 2
    assert {r.verdict for r in records} == {Verdict.ALLOW, Verdict.REJECT}


def test_open_keys_are_bounded_and_drops_counted() -> None:
    clock = FakeClock()
    agg = aggregator(clock, max_open_keys=2)
    assert agg.record(facts(port=1))
    assert agg.record(facts(port=2))
    assert not agg.record(facts(port=3))
    assert agg.record(facts(port=1))  # existing keys keep counting
    assert agg.dropped == 1
    assert agg.open_keys == 2
    clock.advance(10)
    assert len(agg.flush()) == 2
    assert agg.record(facts(port=3))  # room again after a flush


def test_trace_sample_is_bounded_and_ignores_invalid_ids() -> None:
    clock = FakeClock()
    agg = aggregator(clock, trace_sample_size=2)
    agg.record(facts(trace_id="not-a-trace"))
    for i in range(5):
        agg.record(facts(trace_id=f"{i + 1:032x}"))
    clock.advance(10)
    (rec,) = agg.flush()
    assert rec.trace_sample == (f"{1:032x}", f"{2:032x}")
    assert rec.connection_count == 6


def test_byte_updates_do_not_count_connections() -> None:
    clock = FakeClock()
    agg = aggregator(clock)
    agg.record(facts(sent=100), new_connection=False)
    clock.advance(10)
    (rec,) = agg.flush()
    assert (rec.connection_count, rec.bytes_sent) == (0, 100)


def test_final_flush_closes_the_current_window_at_now() -> None:
    clock = FakeClock(T0 + timedelta(seconds=4))
    agg = aggregator(clock)
    agg.record(facts())
    (rec,) = agg.flush(final=True)
    assert rec.window_end == T0 + timedelta(seconds=4)


def test_decision_from_the_policy_engine() -> None:
    observed = DirectionDecision(
        direction=Direction.INGRESS,
        allowed=True,
        encrypted=True,
        reason=ReasonCode.POLICY_ENCRYPT,
        tier="application",
        policy="shop/enc",
        rule=0,
        observed_allowed=False,
        observed_policy="audit",
    )
    d = FlowDecision.from_decision(observed)
    assert d.verdict is Verdict.ALLOW
    assert d.encrypted
    assert d.reason == "POLICY_ENCRYPT"
    assert d.observed_verdict is Verdict.REJECT
    assert d.observed_mismatch
    plain = FlowDecision.from_decision(replace(observed, observed_policy=None))
    assert plain.observed_verdict is None
    assert not plain.observed_mismatch
    refused = FlowDecision.refused(Direction.INGRESS, "REPLAYED")
    assert refused.verdict is Verdict.REJECT
    assert refused.policy is None


def test_bad_parameters() -> None:
    with pytest.raises(InvalidArgument):
        FlowAggregator("n", window=timedelta(0))
    with pytest.raises(InvalidArgument):
        FlowAggregator("n", max_open_keys=0)
