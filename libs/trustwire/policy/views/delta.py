"""Diffing and patching views: ``apply_delta(old, diff(old, new)) == new`` for any two views of
one enforcer (property-tested). Entries are compared whole; an entry present in both views
with a different value is upserted."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from .model import EnforcerView, ViewDelta

__all__ = ["apply_delta", "diff"]

_T = TypeVar("_T")
_K = TypeVar("_K", bound=Hashable)


def _diff(
    old: Sequence[_T], new: Sequence[_T], key: Callable[[_T], _K]
) -> tuple[tuple[_T, ...], tuple[_K, ...]]:
    if old is new:
        return (), ()
    before = {key(e): e for e in old}
    after = {key(e): e for e in new}
    # Identity first: entries shared between revisions (memoised rule views) compare in O(1).
    upserted = tuple(e for k, e in after.items() if (b := before.get(k)) is not e and b != e)
    removed = tuple(k for k in before if k not in after)
    return upserted, removed


def diff(old: EnforcerView, new: EnforcerView) -> ViewDelta:
    """The delta that turns ``old`` into ``new`` (both of the same enforcer)."""
    if old is new:
        return ViewDelta()
    pus, removed_pus = _diff(old.pus, new.pus, lambda p: p.id)
    peers, removed_peers = _diff(old.peers, new.peers, lambda p: p.pu_id)
    enforcers, removed_enforcers = _diff(old.enforcers, new.enforcers, lambda e: e.enforcer_id)
    externals, removed_externals = _diff(
        old.external_networks, new.external_networks, lambda n: n.key
    )
    return ViewDelta(
        upserted_pus=pus,
        removed_pu_ids=removed_pus,
        upserted_peers=peers,
        removed_peer_ids=removed_peers,
        upserted_enforcers=enforcers,
        removed_enforcer_ids=removed_enforcers,
        upserted_external_networks=externals,
        removed_external_networks=removed_externals,
    )


def _patch(
    entries: Sequence[_T],
    upserted: Sequence[_T],
    removed: Sequence[_K],
    key: Callable[[_T], _K],
    order: Callable[[_T], object],
) -> tuple[_T, ...]:
    if not upserted and not removed:
        return tuple(entries)
    table = {key(e): e for e in entries}
    for k in removed:
        table.pop(k, None)
    for e in upserted:
        table[key(e)] = e
    return tuple(sorted(table.values(), key=order))  # type: ignore[arg-type]


def apply_delta(view: EnforcerView, delta: ViewDelta) -> EnforcerView:
    """``view`` with ``delta`` applied; the result keeps the views' sorted order."""
    return EnforcerView(
        enforcer_id=view.enforcer_id,
        pus=_patch(
            view.pus, delta.upserted_pus, delta.removed_pu_ids, lambda p: p.id, lambda p: p.id
        ),
        peers=_patch(
            view.peers,
            delta.upserted_peers,
            delta.removed_peer_ids,
            lambda p: p.pu_id,
            lambda p: p.pu_id,
        ),
        enforcers=_patch(
            view.enforcers,
            delta.upserted_enforcers,
            delta.removed_enforcer_ids,
            lambda e: e.enforcer_id,
            lambda e: e.enforcer_id,
        ),
        external_networks=_patch(
            view.external_networks,
            delta.upserted_external_networks,
            delta.removed_external_networks,
            lambda n: n.key,
            lambda n: n.key,
        ),
    )
