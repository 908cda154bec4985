"""Per-RPC metrics: every served call is counted once with its final status code (OK, a mapped
domain error, an authorization refusal, a stream that failed midway), with its duration; health
checks are not counted."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trustwire.errors import NotFound, PermissionDenied
from trustwire.runtime import (
    HEALTH_METHODS,
    MetricsRegistry,
    Role,
    authorization_table,
    build_server,
    create_channel,
)

from .runtime_testkit import SERVICE, TRUST_DOMAIN, ThrowawayCA, echo_service, method

ADMIN = f"spiffe://{TRUST_DOMAIN}/admin/alice"
TABLE = authorization_table(
    {method("Echo"): {Role.ADMIN}, method("Count"): {Role.ADMIN}}, public=[*HEALTH_METHODS]
)


def raiser(request: bytes) -> BaseException | None:
    return NotFound("no such thing") if request == b"missing" else None


async def test_calls_are_counted_by_final_code_with_durations() -> None:
    ca = ThrowawayCA.create()
    registry = MetricsRegistry()
    server = build_server(
        [echo_service(raiser, extra=["Unlisted"])],
        tls=ca.server_tls(),
        authorization=TABLE,
        trust_domain=TRUST_DOMAIN,
        metrics=registry,
    )
    async with server as running, create_channel(running.address, ca.client_tls(ADMIN)) as ch:
        echo = ch.unary_unary(method("Echo"), None, None)
        assert await echo(b"ping", timeout=5) == b"ping"
        assert await echo(b"ping", timeout=5) == b"ping"
        with pytest.raises(NotFound):
            await echo(b"missing", timeout=5)
        with pytest.raises(PermissionDenied):
            await ch.unary_unary(method("Unlisted"), None, None)(b"x", timeout=5)
        with pytest.raises(NotFound):  # a stream that fails after its first message
            async for _ in ch.unary_stream(method("Count"), None, None)(b"missing", timeout=5):
                pass
        health = health_pb2_grpc.HealthStub(ch)
        await health.Check(health_pb2.HealthCheckRequest(), timeout=5)

    text = registry.exposition()
    counted = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("trustwire_rpc_requests_total{")
    }
    assert counted == {
        f'trustwire_rpc_requests_total{{service="{SERVICE}",method="Echo",code="OK"}}': 2,
        f'trustwire_rpc_requests_total{{service="{SERVICE}",method="Echo",code="NOT_FOUND"}}': 1,
        f'trustwire_rpc_requests_total{{service="{SERVICE}",method="Unlisted",'
        'code="PERMISSION_DENIED"}': 1,
        f'trustwire_rpc_requests_total{{service="{SERVICE}",method="Count",code="NOT_FOUND"}}': 1,
    }
    assert f'trustwire_rpc_duration_seconds_count{{service="{SERVICE}",method="Echo"}} 3' in text
    assert "grpc.health" not in text
