"""Who may call the enforcer channel: only enforcers (of this trust domain; federation will
widen it), every method listed, default deny. ``tests/unit/enforcer`` checks the table covers
every rpc of ``AuthorizationService``."""

from __future__ import annotations

from typing import Final

from trustwire.api.enforcer.v1 import authorization_service_pb2
from trustwire.runtime import (
    HEALTH_METHODS,
    REFLECTION_METHODS,
    AuthorizationTable,
    Role,
    authorization_table,
)

__all__ = ["AUTHORIZATION", "AUTHORIZATION_SERVICE", "method"]

AUTHORIZATION_SERVICE: Final = authorization_service_pb2.DESCRIPTOR.services_by_name[
    "AuthorizationService"
]


def method(name: str) -> str:
    return f"/{AUTHORIZATION_SERVICE.full_name}/{name}"


AUTHORIZATION: Final[AuthorizationTable] = authorization_table(
    {
        method("Authorize"): (Role.ENFORCER,),
        method("OpenSession"): (Role.ENFORCER,),
        method("ConfirmSession"): (Role.ENFORCER,),
        **{name: (Role.ADMIN,) for name in REFLECTION_METHODS},
    },
    public=HEALTH_METHODS,
)
