"""Who may call which rpc of the identity service. Default deny: a method missing here is
refused for everyone (and ``tests/unit/identity_service/test_authorization_table.py`` fails).

- ``Enroll`` is public: it is served on the enrolment port without a client certificate, and
  the join token in the request is the credential.
- Health is public (probes need no certificate); reflection is for people (admin, viewer).
- ``service`` callers (policy, gateway) renew their own certificates and follow the bundle.
"""

from __future__ import annotations

from typing import Final

from trustwire.api.identity.v1 import identity_service_pb2
from trustwire.runtime import (
    HEALTH_METHODS,
    REFLECTION_METHODS,
    AuthorizationTable,
    Role,
    authorization_table,
)

__all__ = ["AUTHORIZATION", "IDENTITY_SERVICE", "method"]

IDENTITY_SERVICE: Final = identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"]


def method(name: str) -> str:
    """Full method name of an rpc of ``IdentityService``."""
    return f"/{IDENTITY_SERVICE.full_name}/{name}"


_EVERYONE = (Role.ADMIN, Role.VIEWER, Role.ENFORCER, Role.SERVICE)

AUTHORIZATION: Final[AuthorizationTable] = authorization_table(
    {
        method("CreateJoinToken"): [Role.ADMIN],
        method("Renew"): [Role.ENFORCER, Role.SERVICE],
        method("RevokeEnforcer"): [Role.ADMIN],
        method("ListEnforcers"): [Role.ADMIN, Role.VIEWER],
        method("GetTrustBundle"): _EVERYONE,
        method("WatchTrustBundle"): _EVERYONE,
        method("IssueIdentityDocument"): [Role.ENFORCER],
        **{name: [Role.ADMIN, Role.VIEWER] for name in REFLECTION_METHODS},
    },
    public=[method("Enroll"), *HEALTH_METHODS],
)
