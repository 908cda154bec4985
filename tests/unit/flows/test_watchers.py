"""FlowWatchers: a slow watcher's queue is bounded; what it misses is counted, not queued."""

from __future__ import annotations

from trustwire.flows import FlowFilter
from trustwire.policy import Labels, LabelSelector
from trustwire_policy.api.flow_service import FlowWatchers
from trustwire_policy.flowstore import StoredFlow

from .factory import pu, record


def test_slow_watcher_drops_oldest_and_marks() -> None:
    watchers = FlowWatchers(capacity=3)
    slow = watchers.subscribe(FlowFilter())
    only_api = watchers.subscribe(FlowFilter(source_selector=LabelSelector(Labels({"app": "api"}))))
    watchers.publish([StoredFlow(i, record(port=1000 + i)) for i in range(1, 11)])
    watchers.publish([StoredFlow(11, record(source=pu("api", "api")))])
    assert slow.ready.is_set()
    flows, dropped = slow.take(100)
    assert [f.id for f in flows] == [9, 10, 11]  # the newest kept
    assert dropped == 8
    assert not slow.ready.is_set()
    assert slow.take(100) == ([], 0)  # the count is reported once
    flows, dropped = only_api.take(100)
    assert ([f.id for f in flows], dropped) == ([11], 0)
    watchers.unsubscribe(slow)
    watchers.unsubscribe(only_api)
    assert len(watchers) == 0
