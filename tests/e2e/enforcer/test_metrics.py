"""The enforcer's Prometheus metrics, scraped over HTTP from real enforcers before and after
real connections: one allowed, one rejected by policy (the SHOP policy of test_enforcer.py)."""

from __future__ import annotations

import asyncio
import errno
import os
import re

import pytest

from tests.e2e.enforcer.conftest import HostFactory
from tests.e2e.enforcer.harness import (
    PORT,
    WAIT,
    ControlPlane,
    attempt,
    converge,
    exchange,
    knows,
    names_policy,
    serves,
)
from tests.e2e.enforcer.test_enforcer import SHOP
from tests.support.netns import EchoServer, Topology

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]

Series = tuple[str, frozenset[tuple[str, str]]]
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


async def scrape(address: str, path: str = "/metrics") -> tuple[str, str]:
    """(status line, body) of one plain HTTP GET."""
    host, _, port = address.rpartition(":")
    async with asyncio.timeout(WAIT):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            answer = await reader.read()
        finally:
            writer.close()
    head, _, body = answer.decode().partition("\r\n\r\n")
    return head.split("\r\n")[0], body


async def samples(address: str) -> dict[Series, float]:
    status, body = await scrape(address)
    assert status == "HTTP/1.1 200 OK"
    out: dict[Series, float] = {}
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, line
        name, labels, value = match.groups()
        series = (name, frozenset(_LABEL.findall(labels or "")))
        assert series not in out, f"duplicate series {line}"
        out[series] = float(value)
    return out


def value(scraped: dict[Series, float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def moved(
    before: dict[Series, float], after: dict[Series, float], prefix: str
) -> dict[Series, float]:
    """Every series under ``prefix`` whose value changed, by how much."""
    return {
        series: after[series] - before.get(series, 0.0)
        for series in after
        if series[0].startswith(prefix) and after[series] != before.get(series, 0.0)
    }


def series(name: str, **labels: str) -> Series:
    return name, frozenset(labels.items())


CONNECTIONS = "trustwire_enforcer_connections_total"
BYTES = "trustwire_enforcer_relayed_bytes_total"
AUTHORIZE = "trustwire_enforcer_authorize_duration_seconds"
SERVED = "trustwire_enforcer_authorize_requests_total"


async def test_counters_move_by_the_connections_made_and_pus_show_their_fail_mode(
    plane: ControlPlane, hosts: HostFactory, topo: Topology
) -> None:
    a = await hosts("a", metrics_address="127.0.0.1:0")
    b = await hosts("b", metrics_address="127.0.0.1:0")
    a1, a2, b1 = topo.pu("a1"), topo.pu("a2"), topo.pu("b1")
    web = await a.add_pu(a1.name, labels={"app": "web"})
    batch = await a.add_pu(a2.name, labels={"app": "batch"}, fail_mode="open")
    db = await b.add_pu(b1.name, labels={"app": "db"})
    await plane.apply(SHOP)
    await converge([a], lambda v: serves(web, batch)(v) and knows(db)(v))
    await converge([b], lambda v: serves(db)(v) and knows(web, batch)(v))
    await converge([a, b], names_policy("batch-never-db"))

    status, _ = await scrape(a.enforcer.metrics_address, "/")
    assert status == "HTTP/1.1 404 Not Found"
    before_a = await samples(a.enforcer.metrics_address)
    before_b = await samples(b.enforcer.metrics_address)

    server = EchoServer(b1.name, b1.ip, PORT)
    try:
        payload = os.urandom(64 * 1024 + 5)
        assert await asyncio.to_thread(exchange, a1.name, (b1.ip, PORT), payload) == payload
        code, _ = await asyncio.to_thread(attempt, a2.name, (b1.ip, PORT))
        assert code in (errno.ECONNRESET, errno.ECONNREFUSED, errno.EPIPE, -2), code
    finally:
        server.close()
    await a.enforcer.settle(WAIT)
    await b.enforcer.settle(WAIT)

    after_a = await samples(a.enforcer.metrics_address)
    after_b = await samples(b.enforcer.metrics_address)

    # Source side: one allowed and one rejected egress connection, with the reason code.
    assert moved(before_a, after_a, CONNECTIONS) == {
        series(CONNECTIONS, direction="egress", verdict="allow", reason="POLICY_ALLOW"): 1,
        series(CONNECTIONS, direction="egress", verdict="reject", reason="POLICY_REJECT"): 1,
    }
    assert moved(before_a, after_a, BYTES) == {
        series(BYTES, direction="egress", stream="from_pu"): len(payload),
        series(BYTES, direction="egress", stream="to_pu"): len(payload),
    }
    # Both asked the destination: it allowed the first and refused the second.
    assert moved(before_a, after_a, f"{AUTHORIZE}_count") == {
        series(f"{AUTHORIZE}_count", outcome="allowed"): 1,
        series(f"{AUTHORIZE}_count", outcome="rejected"): 1,
    }
    inf = value(after_a, f"{AUTHORIZE}_bucket", outcome="allowed", le="+Inf")
    assert inf == value(after_a, f"{AUTHORIZE}_count", outcome="allowed")
    assert 0 < value(after_a, f"{AUTHORIZE}_sum", outcome="allowed") < WAIT

    # Destination side: it answered both, and relayed only the allowed connection.
    assert moved(before_b, after_b, SERVED) == {
        series(SERVED, verdict="allow", reason="POLICY_ALLOW"): 1,
        series(SERVED, verdict="reject", reason="POLICY_REJECT"): 1,
    }
    assert moved(before_b, after_b, CONNECTIONS) == {
        series(CONNECTIONS, direction="ingress", verdict="allow", reason="POLICY_ALLOW"): 1,
    }
    assert moved(before_b, after_b, BYTES) == {
        series(BYTES, direction="ingress", stream="from_pu"): len(payload),
        series(BYTES, direction="ingress", stream="to_pu"): len(payload),
    }
    assert moved(before_b, after_b, "trustwire_enforcer_authorize_duration") == {}
    # The runtime's per-RPC metric on b's channel server: two Authorize calls, both OK (a
    # policy refusal is an answer, not an error status).
    rpc = "trustwire_rpc_requests_total"
    authz = "trustwire.api.enforcer.v1.AuthorizationService"
    assert (
        moved(before_b, after_b, rpc).get(series(rpc, service=authz, method="Authorize", code="OK"))
        == 2
    )

    # State gauges, computed at scrape time.
    pus = {k: v for k, v in after_a.items() if k[0] == "trustwire_enforcer_pus"}
    assert pus == {
        series("trustwire_enforcer_pus", type="pod", fail_mode="closed", state="enforced"): 1,
        series("trustwire_enforcer_pus", type="pod", fail_mode="open", state="enforced"): 1,
    }
    assert a.enforcer.policy is not None
    revision = value(after_a, "trustwire_enforcer_policy_revision")
    assert revision == a.enforcer.policy.revision > 0
    assert value(after_a, "trustwire_enforcer_policy_stream_connected") == 1
    assert value(after_a, "trustwire_enforcer_relays") == 0
    assert value(after_a, "trustwire_enforcer_certificate_expiry_seconds") > 0
    assert value(after_a, "trustwire_enforcer_tls_handshakes_total", resumption="full") == 0


async def test_metrics_are_off_unless_an_address_is_set(hosts: HostFactory) -> None:
    a = await hosts("a")
    assert a.enforcer.metrics_address == ""
