"""FlowService rpcs are all in the default-deny table, with the intended roles."""

from __future__ import annotations

from trustwire.runtime import Role, assert_table_covers
from trustwire_policy.api.authorization import AUTHORIZATION, FLOW_SERVICE, flow_method


def test_table_covers_every_flow_rpc() -> None:
    assert_table_covers(AUTHORIZATION, [FLOW_SERVICE])


def test_roles() -> None:
    rules = AUTHORIZATION.rules
    assert rules[flow_method("ReportFlows")] == {Role.ENFORCER}
    readers = {Role.ADMIN, Role.VIEWER, Role.SERVICE}
    assert rules[flow_method("QueryFlows")] == readers
    assert rules[flow_method("WatchFlows")] == readers
