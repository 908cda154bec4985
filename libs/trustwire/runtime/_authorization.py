"""Default-deny authorization of every method, by the caller's SPIFFE role.

A service declares one :class:`AuthorizationTable`: full method name (``/pkg.Service/Method``)
to the roles allowed to call it, plus the methods that are public. :class:`AuthorizationInterceptor`
enforces it on every call:

1. a public method passes (no identity needed);
2. a method absent from the table is refused: ``PermissionDenied``, reason ``METHOD_NOT_AUTHORIZED``
   (this includes methods added to a proto but forgotten in the table);
3. the caller is identified from the mutual-TLS peer (``Unauthenticated`` when it cannot be:
   no client certificate, reason ``NO_PEER_IDENTITY``; a certificate without exactly one valid
   SPIFFE ID, ``INVALID_SPIFFE_ID``);
4. a caller of another trust domain is refused (``FOREIGN_TRUST_DOMAIN``) when the interceptor
   knows its own trust domain;
5. a role outside the method's set is refused (``ROLE_NOT_ALLOWED``).

The refusal is raised as a ``TrustwireError``; the :class:`~._errors.ErrorInterceptor` (outside
this one) turns it into the status. The identified caller is available to the handler through
:func:`current_caller`.

Health and reflection are not exempt implicitly: a table lists :data:`HEALTH_METHODS` and
:data:`REFLECTION_METHODS` under ``public`` (or under roles) like any other method, so the
coverage test sees them too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from trustwire.errors import InvalidArgument, PermissionDenied, Unauthenticated
from trustwire.runtime._caller import Caller, Role, parse_spiffe_id
from trustwire.runtime._handlers import Context, guard_handler

__all__ = [
    "HEALTH_METHODS",
    "REFLECTION_METHODS",
    "AuthorizationInterceptor",
    "AuthorizationTable",
    "assert_table_covers",
    "authorization_table",
    "caller_from_auth_context",
    "current_caller",
    "methods_of",
]

_log = logging.getLogger("trustwire.runtime.authorization")

_current_caller: ContextVar[Caller | None] = ContextVar("trustwire_caller", default=None)

# Keys of grpc's auth context (grpc core, 1.85). ``peer_spiffe_id`` is set by grpc core only
# when the peer certificate carries exactly one URI SAN and it is a ``spiffe://`` URI, which
# is what the SPIFFE X.509-SVID spec demands; ``x509_pem_cert`` is present whenever the peer
# presented a certificate at all.
_SPIFFE_ID_KEY: Final = "peer_spiffe_id"
_PEER_CERT_KEY: Final = "x509_pem_cert"


def methods_of(*services: ServiceDescriptor) -> tuple[str, ...]:
    """Full method names (``/pkg.Service/Method``) of the given service descriptors."""
    return tuple(
        f"/{service.full_name}/{method.name}" for service in services for method in service.methods
    )


HEALTH_METHODS: Final = methods_of(health_pb2.DESCRIPTOR.services_by_name["Health"])
"""``grpc.health.v1.Health`` methods (Check, List, Watch); list them in a table explicitly."""

REFLECTION_METHODS: Final = methods_of(
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
)
"""``grpc.reflection.v1alpha.ServerReflection`` methods; list them in a table explicitly."""


@dataclass(frozen=True)
class AuthorizationTable:
    """Who may call what. Build it with :func:`authorization_table`, which validates it."""

    rules: Mapping[str, frozenset[Role]]
    """Full method name to the roles allowed to call it."""
    public: frozenset[str] = field(default_factory=frozenset)
    """Methods any peer may call, even one without a client certificate."""

    def covers(self, method: str) -> bool:
        return method in self.rules or method in self.public


def _check_method_name(method: str) -> None:
    service, slash, name = method.removeprefix("/").partition("/")
    if not method.startswith("/") or not slash or not service or not name or "/" in name:
        raise InvalidArgument(
            f"not a full method name: {method!r} (expected '/package.Service/Method')",
            field=method,
            reason="INVALID_METHOD_NAME",
        )


def authorization_table(
    rules: Mapping[str, Iterable[Role | str]], *, public: Iterable[str] = ()
) -> AuthorizationTable:
    """Validate and freeze a table.

    ``rules`` maps full method names to roles (``Role`` members or their values). A method
    may not appear both in ``rules`` and ``public``, nor with an empty role set (leave it out
    to deny it: the table is default deny). Raises ``InvalidArgument`` naming the method.
    """
    frozen: dict[str, frozenset[Role]] = {}
    for method, roles in rules.items():
        _check_method_name(method)
        try:
            role_set = frozenset(Role(role) for role in roles)
        except ValueError as error:
            raise InvalidArgument(
                f"{method}: {error}", field=method, reason="INVALID_ROLE"
            ) from None
        if not role_set:
            raise InvalidArgument(
                f"{method}: empty role set; omit the method to deny it",
                field=method,
                reason="EMPTY_ROLE_SET",
            )
        frozen[method] = role_set
    public_set = frozenset(public)
    for method in sorted(public_set):
        _check_method_name(method)
        if method in frozen:
            raise InvalidArgument(
                f"{method}: listed both as public and with roles",
                field=method,
                reason="AMBIGUOUS_RULE",
            )
    return AuthorizationTable(rules=frozen, public=public_set)


def assert_table_covers(
    table: AuthorizationTable | Mapping[str, object], services: Iterable[ServiceDescriptor]
) -> None:
    """Fail (``AssertionError``) listing every rpc of ``services`` that the table lacks.

    Meant for each service's test suite::

        policy = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"]
        assert_table_covers(AUTHORIZATION, [policy])
    """
    if isinstance(table, AuthorizationTable):
        covered: set[str] = set(table.rules) | set(table.public)
    else:
        covered = set(table)
    missing = [method for method in methods_of(*services) if method not in covered]
    if missing:
        listing = "\n  ".join(missing)
        raise AssertionError(f"{len(missing)} rpc(s) without an authorization entry:\n  {listing}")


def caller_from_auth_context(auth_context: Mapping[str, Iterable[bytes]]) -> Caller:
    """The caller named by a grpc auth context (``context.auth_context()``).

    Raises ``Unauthenticated``: ``NO_PEER_IDENTITY`` without a client certificate,
    ``INVALID_SPIFFE_ID`` when the certificate does not carry exactly one valid SPIFFE ID.
    """
    spiffe_ids = [
        value.decode("utf-8", "replace") for value in auth_context.get(_SPIFFE_ID_KEY, ())
    ]
    if len(spiffe_ids) == 1:
        return parse_spiffe_id(spiffe_ids[0])
    if not list(auth_context.get(_PEER_CERT_KEY, ())):
        raise Unauthenticated("no client certificate", reason="NO_PEER_IDENTITY")
    raise Unauthenticated(
        "client certificate must carry exactly one spiffe:// URI SAN", reason="INVALID_SPIFFE_ID"
    )


def current_caller() -> Caller | None:
    """The caller of the RPC being handled, once :class:`AuthorizationInterceptor` allowed it.

    ``None`` outside a handler, for public methods, and on servers without the interceptor.
    """
    return _current_caller.get()


class _AuthorizationGuard:
    __slots__ = ("_interceptor", "_method")

    def __init__(self, interceptor: AuthorizationInterceptor, method: str) -> None:
        self._interceptor = interceptor
        self._method = method

    async def before(self, context: Context) -> None:
        caller = self._interceptor.authorize(self._method, context.auth_context())
        _current_caller.set(caller)

    async def on_error(self, error: Exception, context: Context) -> None:
        raise error


if TYPE_CHECKING:
    _ServerInterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptorBase = grpc.aio.ServerInterceptor


class AuthorizationInterceptor(_ServerInterceptorBase):
    """aio server interceptor enforcing an :class:`AuthorizationTable` (see module docstring).

    ``trust_domain``: when set, callers from any other trust domain are refused. Federation
    (accepting peers of other domains) is decided by the service, not here.
    """

    def __init__(self, table: AuthorizationTable, *, trust_domain: str | None = None) -> None:
        self._table = table
        self._trust_domain = trust_domain

    def authorize(self, method: str, auth_context: Mapping[str, Iterable[bytes]]) -> Caller | None:
        """The allowed caller of ``method`` (``None`` for public methods); raises if refused."""
        if method in self._table.public:
            return None
        allowed = self._table.rules.get(method)
        if allowed is None:
            _log.warning("denied unlisted method", extra={"rpc_method": method})
            raise PermissionDenied(
                f"method {method} is not authorized for anyone",
                reason="METHOD_NOT_AUTHORIZED",
                metadata={"method": method},
            )
        caller = caller_from_auth_context(auth_context)
        if self._trust_domain is not None and caller.trust_domain != self._trust_domain:
            _log.warning(
                "denied foreign trust domain",
                extra={"rpc_method": method, "caller": caller.spiffe_id},
            )
            raise PermissionDenied(
                f"caller {caller} is not of trust domain {self._trust_domain}",
                reason="FOREIGN_TRUST_DOMAIN",
                metadata={"method": method, "trust_domain": caller.trust_domain},
            )
        if caller.role not in allowed:
            _log.warning("denied role", extra={"rpc_method": method, "caller": caller.spiffe_id})
            raise PermissionDenied(
                f"role {caller.role.value} may not call {method}",
                reason="ROLE_NOT_ALLOWED",
                metadata={"method": method, "role": caller.role.value},
            )
        return caller

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        guarded = guard_handler(handler, _AuthorizationGuard(self, handler_call_details.method))
        return cast("grpc.RpcMethodHandler[Any, Any]", guarded)
