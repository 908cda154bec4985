"""SPIFFE ID parsing into ``Caller``: the accepted shape and every rejected deviation."""

from __future__ import annotations

import pytest

from trustwire.errors import Unauthenticated
from trustwire.runtime import Caller, Role, parse_spiffe_id


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("spiffe://td.example/enforcer/node-1", Caller("td.example", Role.ENFORCER, "node-1")),
        ("spiffe://td.example/service/policy", Caller("td.example", Role.SERVICE, "policy")),
        (
            "spiffe://cluster-a.example/admin/alice",
            Caller("cluster-a.example", Role.ADMIN, "alice"),
        ),
        ("spiffe://a_b.c-d/viewer/Bob.Smith_2", Caller("a_b.c-d", Role.VIEWER, "Bob.Smith_2")),
    ],
)
def test_parses_valid_ids(uri: str, expected: Caller) -> None:
    caller = parse_spiffe_id(uri)
    assert caller == expected
    assert caller.spiffe_id == uri
    assert str(caller) == uri


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("", "scheme"),
        ("https://td.example/admin/alice", "scheme"),
        ("SPIFFE://td.example/admin/alice", "scheme"),
        ("spiffe:/td.example/admin/alice", "scheme"),
        ("spiffe:///admin/alice", "empty trust domain"),
        ("spiffe://TD.example/admin/alice", "trust domain"),
        ("spiffe://td.example:8443/admin/alice", "port"),
        ("spiffe://user@td.example/admin/alice", "user info"),
        ("spiffe://td.example", "missing path"),
        ("spiffe://td.example/", "missing path"),
        ("spiffe://td.example/admin", "exactly"),
        ("spiffe://td.example/admin/alice/extra", "exactly"),
        ("spiffe://td.example/admin/alice/", "empty path segment"),
        ("spiffe://td.example//alice", "empty path segment"),
        ("spiffe://td.example/admin/..", "'..'"),
        ("spiffe://td.example/./alice", "'.'"),
        ("spiffe://td.example/admin/al%20ice", "characters"),
        ("spiffe://td.example/admin/alice?x=1", "query"),
        ("spiffe://td.example/admin/alice#frag", "fragment"),
        ("spiffe://td.example/robot/r2d2", "unknown role"),
        ("spiffe://td.example/Admin/alice", "unknown role"),
        ("spiffe://td.example/admin/" + "a" * 2048, "2048"),
    ],
)
def test_rejects_invalid_ids(uri: str, problem: str) -> None:
    with pytest.raises(Unauthenticated) as raised:
        parse_spiffe_id(uri)
    assert raised.value.reason == "INVALID_SPIFFE_ID"
    assert problem in raised.value.message


def test_caller_is_a_hashable_value() -> None:
    a = Caller("td.example", Role.ADMIN, "alice")
    assert a == parse_spiffe_id("spiffe://td.example/admin/alice")
    assert len({a, parse_spiffe_id(a.spiffe_id)}) == 1
    with pytest.raises(AttributeError):
        a.name = "mallory"  # type: ignore[misc]
