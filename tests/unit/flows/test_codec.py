"""Flow records and filters survive the wire; bad input names the field."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trustwire.api.common.v1 import decision_pb2
from trustwire.errors import InvalidArgument
from trustwire.flows import (
    FlowDecision,
    FlowFilter,
    Verdict,
    filter_from_proto,
    filter_to_proto,
    record_from_proto,
    record_to_proto,
)
from trustwire.policy import Direction, Labels, LabelSelector, Protocol

from .factory import TRACE_A, allow, pu, record


def test_record_round_trip() -> None:
    decision = FlowDecision(
        direction=Direction.INGRESS,
        verdict=Verdict.ALLOW,
        reason="K8S_ALLOWED",
        encrypted=True,
        tier="kubernetes",
        policy="shop/db-ingress",
        rule=1,
        observed_verdict=Verdict.REJECT,
        observed_policy="audit-all",
    )
    original = record(decision=decision, trace_id=TRACE_A)
    message = record_to_proto(original)
    assert message.decision.kubernetes_policies[0].name == "db-ingress"
    back = record_from_proto(message)
    assert back == replace(original, trace_sample=(TRACE_A,))


def test_every_reason_name_round_trips() -> None:
    for name in decision_pb2.ReasonCode.keys():  # noqa: SIM118 (an enum wrapper, not a dict)
        if name == "REASON_CODE_UNSPECIFIED":
            continue
        reason = name.removeprefix("REASON_CODE_")
        r = record(decision=replace(allow(), reason=reason))
        assert record_from_proto(record_to_proto(r)).decision.reason == reason


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda m: m.ClearField("source"), "records[3].source"),
        (lambda m: setattr(m.destination, "ip", "10.0.0.300"), "records[3].destination.ip"),
        (lambda m: setattr(m, "protocol", 0), "records[3].protocol"),
        (lambda m: setattr(m.decision, "verdict", 0), "records[3].decision.verdict"),
        (lambda m: setattr(m.decision, "reason", 0), "records[3].decision.reason"),
        (lambda m: setattr(m, "trace_id", "XYZ"), "records[3].trace_id"),
        (lambda m: m.window_end.CopyFrom(m.window_start), "records[3].window_end"),
    ],
)
def test_bad_records_name_the_field(mutate: object, field: str) -> None:
    message = record_to_proto(record())
    mutate(message)  # type: ignore[operator]
    with pytest.raises(InvalidArgument) as raised:
        record_from_proto(message, path="records[3]")
    assert field in str(raised.value)


def test_filter_round_trip() -> None:
    f = FlowFilter(
        pu_ids=frozenset({"a", "b"}),
        namespace="shop",
        source_selector=LabelSelector(Labels({"app": "web"})),
        verdicts=frozenset({Verdict.REJECT}),
        reasons=frozenset({"POLICY_REJECT"}),
        policy="shop/deny",
        destination_port=5432,
        protocol=Protocol.TCP,
        reporter="node-1",
        only_observed_mismatch=True,
    )
    assert filter_from_proto(filter_to_proto(f)).digest() == f.digest()


def test_filter_matches() -> None:
    web_db = record()
    assert FlowFilter(pu_ids=frozenset({"db-id"})).matches(web_db)
    assert not FlowFilter(pu_ids=frozenset({"x"})).matches(web_db)
    assert FlowFilter(policy="web-to-db").matches(web_db)  # bare name, any namespace
    assert not FlowFilter(policy="other/web-to-db").matches(web_db)
    assert FlowFilter(namespace="shop").matches(web_db)
    assert not FlowFilter(verdicts=frozenset({Verdict.REJECT})).matches(web_db)
    assert FlowFilter(destination_selector=LabelSelector(Labels({"app": "db"}))).matches(web_db)
    assert not FlowFilter(only_observed_mismatch=True).matches(web_db)
    other = record(source=pu("x", "x", namespace="other"), destination=pu("y", "y", namespace="o"))
    assert not FlowFilter(namespace="shop").matches(other)
