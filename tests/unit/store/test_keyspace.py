"""Request rules shared by the backends (``trustwire.store._keyspace``)."""

from __future__ import annotations

import pytest

from trustwire.errors import InvalidArgument, ResourceExhausted
from trustwire.store import Compare, Delete, Put
from trustwire.store._keyspace import check_txn, encode_key, prefix_range_end


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"/a/", b"/a0"),
        (b"a", b"b"),
        (b"a\xff", b"b"),  # aetcd's helper gives b"b\xff" here, which misses b"b" itself
        (b"\xff\xff", b"\x00"),  # nothing above: the whole rest of the keyspace
        (b"", b"\x00"),
    ],
)
def test_prefix_range_end_matches_etcd_clientv3(prefix: bytes, end: bytes) -> None:
    assert prefix_range_end(prefix) == end


def test_keys_are_non_empty_encodable_strings() -> None:
    assert encode_key("/é") == "/é".encode()
    for bad in ("", "\udc80"):
        with pytest.raises(InvalidArgument):
            encode_key(bad)


def test_txn_rules_name_the_offending_field() -> None:
    with pytest.raises(InvalidArgument) as negative:
        check_txn([Compare("k", -1)], [])
    assert negative.value.field == "compares[0].mod_revision"
    with pytest.raises(InvalidArgument) as twice:
        check_txn([], [Delete("k"), Put("k", b"")])
    assert twice.value.field == "ops[1].key"
    with pytest.raises(InvalidArgument) as not_bytes:
        check_txn([], [Put("k", "text")])  # type: ignore[arg-type]
    assert not_bytes.value.field == "ops[0].value"
    with pytest.raises(ResourceExhausted):
        check_txn([Compare("k", 0)] * 129, [])
    check_txn([Compare("k", 0)] * 128, [Put(f"k{i}", b"") for i in range(128)])
