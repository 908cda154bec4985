"""Default-deny authorization by SPIFFE role, over real mutual TLS on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trustwire.errors import InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from trustwire.runtime import (
    HEALTH_METHODS,
    REFLECTION_METHODS,
    AuthorizationTable,
    ClientTLS,
    Role,
    ServiceServer,
    assert_table_covers,
    authorization_table,
    build_server,
    create_channel,
)

from .runtime_testkit import SERVICE, TRUST_DOMAIN, ThrowawayCA, echo_service, method

ADMIN = f"spiffe://{TRUST_DOMAIN}/admin/alice"
VIEWER = f"spiffe://{TRUST_DOMAIN}/viewer/victor"
ENFORCER = f"spiffe://{TRUST_DOMAIN}/enforcer/node-1"

TABLE = authorization_table(
    {
        method("Echo"): {Role.ADMIN},
        method("Whoami"): {Role.ADMIN, "viewer"},
        method("Count"): {Role.ENFORCER},
    },
    public=[*HEALTH_METHODS, *REFLECTION_METHODS],
)


@pytest.fixture
async def server(ca: ThrowawayCA) -> AsyncIterator[ServiceServer]:
    built = build_server(
        [echo_service(extra=["Unlisted"])],
        tls=ca.server_tls(),
        authorization=TABLE,
        trust_domain=TRUST_DOMAIN,
    )
    async with built as running:
        yield running


async def call(server: ServiceServer, tls: ClientTLS | None, name: str) -> bytes:
    async with create_channel(server.address, tls) as channel:
        response: bytes = await channel.unary_unary(method(name), None, None)(b"ping", timeout=5)
        return response


async def test_allowed_role(server: ServiceServer, ca: ThrowawayCA) -> None:
    assert await call(server, ca.client_tls(ADMIN), "Echo") == b"ping"


async def test_handler_sees_the_caller(server: ServiceServer, ca: ThrowawayCA) -> None:
    assert await call(server, ca.client_tls(VIEWER), "Whoami") == VIEWER.encode()


async def test_wrong_role_is_denied(server: ServiceServer, ca: ThrowawayCA) -> None:
    with pytest.raises(PermissionDenied) as raised:
        await call(server, ca.client_tls(VIEWER), "Echo")
    assert raised.value.reason == "ROLE_NOT_ALLOWED"
    assert raised.value.metadata == {"method": method("Echo"), "role": "viewer"}


async def test_unlisted_method_is_denied_even_to_admin(
    server: ServiceServer, ca: ThrowawayCA
) -> None:
    with pytest.raises(PermissionDenied) as raised:
        await call(server, ca.client_tls(ADMIN), "Unlisted")
    assert raised.value.reason == "METHOD_NOT_AUTHORIZED"


async def test_streaming_method_is_authorized(server: ServiceServer, ca: ThrowawayCA) -> None:
    async with create_channel(server.address, ca.client_tls(ENFORCER)) as channel:
        stream = channel.unary_stream(method("Count"), None, None)(b"", timeout=5)
        assert [r async for r in stream] == [b"0", b"1"]
    async with create_channel(server.address, ca.client_tls(ADMIN)) as channel:
        stream = channel.unary_stream(method("Count"), None, None)(b"", timeout=5)
        with pytest.raises(PermissionDenied):
            await anext(aiter(stream))


async def test_foreign_trust_domain_is_denied(server: ServiceServer, ca: ThrowawayCA) -> None:
    with pytest.raises(PermissionDenied) as raised:
        await call(server, ca.client_tls("spiffe://other.example/admin/mallory"), "Echo")
    assert raised.value.reason == "FOREIGN_TRUST_DOMAIN"


@pytest.mark.parametrize(
    "uris",
    [
        pytest.param((), id="no-uri-san"),
        pytest.param((ADMIN, f"spiffe://{TRUST_DOMAIN}/viewer/x"), id="two-spiffe-ids"),
        pytest.param((f"spiffe://{TRUST_DOMAIN}/robot/r2",), id="unknown-role"),
        pytest.param((f"spiffe://{TRUST_DOMAIN}/admin",), id="no-name"),
    ],
)
async def test_certificate_without_one_valid_spiffe_id_is_unauthenticated(
    server: ServiceServer, ca: ThrowawayCA, uris: tuple[str, ...]
) -> None:
    leaf = ca.issue(uris)
    tls = ClientTLS(ca.pem, leaf.certificate, leaf.private_key)
    with pytest.raises(Unauthenticated) as raised:
        await call(server, tls, "Echo")
    assert raised.value.reason == "INVALID_SPIFFE_ID"


async def test_no_client_certificate_fails_the_handshake(
    server: ServiceServer, ca: ThrowawayCA
) -> None:
    # require_client_auth: the TLS layer refuses before any method runs.
    with pytest.raises(Unavailable):
        await call(server, ca.client_tls(), "Echo")


async def test_certificate_of_another_ca_fails_the_handshake(server: ServiceServer) -> None:
    other = ThrowawayCA.create()
    leaf = other.issue([ADMIN])
    # Trusts our server's CA? No: it trusts only its own, and its cert is foreign to the server.
    tls = ClientTLS(other.pem, leaf.certificate, leaf.private_key)
    with pytest.raises(Unavailable):
        await call(server, tls, "Echo")


async def test_no_peer_identity_without_tls() -> None:
    # Plaintext server with a table: the interceptor itself must refuse anonymous callers.
    async with build_server([echo_service()], authorization=TABLE) as plain:
        with pytest.raises(Unauthenticated) as raised:
            await call(plain, None, "Echo")
        assert raised.value.reason == "NO_PEER_IDENTITY"
        # ...while listed-public methods stay reachable.
        async with create_channel(plain.address) as channel:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=5
            )
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_public_health_over_mtls(server: ServiceServer, ca: ThrowawayCA) -> None:
    async with create_channel(server.address, ca.client_tls(VIEWER)) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


# --- the table itself -----------------------------------------------------------------------

HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]


def test_assert_table_covers_lists_every_missing_rpc() -> None:
    partial = authorization_table({"/grpc.health.v1.Health/Check": {Role.VIEWER}})
    with pytest.raises(AssertionError) as raised:
        assert_table_covers(partial, [HEALTH])
    text = str(raised.value)
    assert "2 rpc(s)" in text
    assert "/grpc.health.v1.Health/List" in text
    assert "/grpc.health.v1.Health/Watch" in text
    assert "/grpc.health.v1.Health/Check" not in text


def test_assert_table_covers_accepts_public_and_plain_mappings() -> None:
    assert_table_covers(authorization_table({}, public=HEALTH_METHODS), [HEALTH])
    assert_table_covers({m: frozenset({Role.ADMIN}) for m in HEALTH_METHODS}, [HEALTH])


def test_health_and_reflection_are_not_implicitly_public() -> None:
    table = authorization_table({method("Echo"): {Role.ADMIN}})
    assert not any(table.covers(m) for m in (*HEALTH_METHODS, *REFLECTION_METHODS))


@pytest.mark.parametrize(
    ("rules", "public", "reason"),
    [
        ({"Echo": {Role.ADMIN}}, (), "INVALID_METHOD_NAME"),
        ({"/svc.Echo": {Role.ADMIN}}, (), "INVALID_METHOD_NAME"),
        ({"/svc.Echo/A/B": {Role.ADMIN}}, (), "INVALID_METHOD_NAME"),
        ({method("Echo"): {"root"}}, (), "INVALID_ROLE"),
        ({method("Echo"): set()}, (), "EMPTY_ROLE_SET"),
        ({method("Echo"): {Role.ADMIN}}, (method("Echo"),), "AMBIGUOUS_RULE"),
        ({}, ("not-a-method",), "INVALID_METHOD_NAME"),
    ],
)
def test_table_validation(
    rules: dict[str, set[Role | str]], public: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        authorization_table(rules, public=public)
    assert raised.value.reason == reason


def test_table_is_frozen() -> None:
    assert isinstance(TABLE, AuthorizationTable)
    assert TABLE.rules[method("Whoami")] == frozenset({Role.ADMIN, Role.VIEWER})
    with pytest.raises(AttributeError):
        TABLE.public = frozenset()  # type: ignore[misc]
