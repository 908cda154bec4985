"""SPIFFE IDs and trust domains; reason codes against the wire enum."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustwire.api.common.v1 import decision_pb2
from trustwire.errors import InvalidArgument
from trustwire.identity import ReasonCode, Role, SpiffeId, TrustDomain


@pytest.mark.parametrize(
    "text",
    [
        "spiffe://cluster-a.example/enforcer/node-1",
        "spiffe://td/service/identity",
        "spiffe://td/admin/alice",
        "spiffe://td/viewer/bob",
        "spiffe://td/pu/shop/web-1",
    ],
)
def test_valid_ids_round_trip(text: str) -> None:
    assert str(SpiffeId.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "https://td/enforcer/x",
        "spiffe://td",
        "spiffe://td/",
        "spiffe://td/enforcer",
        "spiffe://td/enforcer/",
        "spiffe://td/robot/x",
        "spiffe://TD/enforcer/x",
        "spiffe://td:443/enforcer/x",
        "spiffe://user@td/enforcer/x",
        "spiffe://td/enforcer/a//b",
        "spiffe://td/enforcer/..",
        "spiffe://td/enforcer/x?y",
        "spiffe://td/enforcer/x#y",
        "spiffe://td/enforcer/x y",
        "spiffe:///enforcer/x",
        "spiffe://td/enforcer/" + "x" * 2100,
    ],
)
def test_invalid_ids_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        SpiffeId.parse(text)
    assert info.value.field == "spiffe_id"


@given(
    st.from_regex(r"[a-z0-9._-]{1,30}", fullmatch=True),
    st.sampled_from(list(Role)),
    st.lists(
        st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,10}", fullmatch=True), min_size=1, max_size=4
    ),
)
def test_generated_ids_round_trip(domain: str, role: Role, segments: list[str]) -> None:
    sid = SpiffeId(TrustDomain(domain), role, "/".join(segments))
    assert SpiffeId.parse(str(sid)) == sid


def test_reason_codes_match_the_wire_enum() -> None:
    for code in ReasonCode:
        wire_name = f"REASON_CODE_{code.value}"
        if wire_name in decision_pb2.ReasonCode.DESCRIPTOR.values_by_name:
            assert decision_pb2.ReasonCode.Value(wire_name) == code.wire_value
        else:
            # Not on the wire yet: mapped to an existing credential reason (50..59).
            assert code in {
                ReasonCode.NOT_YET_VALID,
                ReasonCode.WRONG_PAYLOAD_TYPE,
                ReasonCode.CERTIFICATE_INVALID,
            }
            assert 50 <= code.wire_value <= 59
