"""Who may call which rpc of the policy service. Default deny: an rpc missing here is refused
for everyone, and ``tests/unit/policy_service/test_authorization.py`` fails.

Roles: ``admin`` everything that is not an enforcer's own business; ``viewer`` reads;
``enforcer`` its own PUs and record, the policy stream; ``service`` (the gateway, which
forwards API clients after authorizing them itself) what an admin can. Finer rules (an
enforcer acts only for its own id) are checked in the handlers, which see the caller.
"""

from __future__ import annotations

from typing import Final

from trustwire.api.flow.v1 import flow_service_pb2
from trustwire.api.policy.v1 import policy_service_pb2
from trustwire.runtime import (
    HEALTH_METHODS,
    REFLECTION_METHODS,
    AuthorizationTable,
    Role,
    authorization_table,
)

__all__ = ["AUTHORIZATION", "FLOW_SERVICE", "POLICY_SERVICE", "flow_method", "method"]

POLICY_SERVICE: Final = policy_service_pb2.DESCRIPTOR.services_by_name["PolicyService"]
FLOW_SERVICE: Final = flow_service_pb2.DESCRIPTOR.services_by_name["FlowService"]


def method(name: str) -> str:
    """Full method name of an rpc of ``PolicyService``."""
    return f"/{POLICY_SERVICE.full_name}/{name}"


def flow_method(name: str) -> str:
    """Full method name of an rpc of ``FlowService`` (hosted by the same server)."""
    return f"/{FLOW_SERVICE.full_name}/{name}"


_WRITERS = (Role.ADMIN, Role.SERVICE)
_READERS = (Role.ADMIN, Role.VIEWER, Role.SERVICE)

AUTHORIZATION: Final[AuthorizationTable] = authorization_table(
    {
        method("Apply"): _WRITERS,
        method("DeletePolicy"): _WRITERS,
        method("GetPolicy"): _READERS,
        method("ListPolicies"): _READERS,
        method("Explain"): _READERS,
        method("Simulate"): _READERS,
        method("Suggest"): _READERS,
        method("ListEnforcers"): _READERS,
        # An enforcer lists (only) its own PUs.
        method("ListPus"): (*_READERS, Role.ENFORCER),
        method("RegisterPu"): (Role.ENFORCER,),
        method("DeregisterPu"): (Role.ENFORCER, *_WRITERS),
        method("RegisterEnforcer"): (Role.ENFORCER,),
        method("WatchPolicy"): (Role.ENFORCER,),
        # Flows: enforcers report (only their own node's: checked in the handler); people and
        # the gateway read. Policy replicas fanning a query out ask each other as ``service``
        # (their enrolled certificate), with QUERY_SCOPE_LOCAL.
        flow_method("ReportFlows"): (Role.ENFORCER,),
        flow_method("QueryFlows"): _READERS,
        flow_method("WatchFlows"): _READERS,
        **{name: _READERS for name in REFLECTION_METHODS},
    },
    public=HEALTH_METHODS,
)
