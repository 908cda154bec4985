"""TLS 1.3 session resumption between enforcers (ADR 0012), through the datapath's own handshake
path (``_tls_handshake``: context and session choice, identity check, session caching) over
socket pairs: resumption happens, the peer identity check still refuses the wrong peer on a
resumed session (either side), and every bound on reuse (lifetime on both sides, forget, new
configuration) ends in a full handshake. No namespaces needed: these run unprivileged."""

from __future__ import annotations

import concurrent.futures
import select
import socket
import time
from dataclasses import dataclass

import pytest

from tests.e2e.datapath.pki import Credential, ThrowawayCa
from trustwire_enforcer.datapath import PeerIdentityError, Verdict
from trustwire_enforcer.datapath.interception import _tls_handshake
from trustwire_enforcer.datapath.tls import TlsChannel, TlsSessions, peer_uri_sans

A_ID, B_ID, C_ID = (f"spiffe://td/enforcer/{n}" for n in "abc")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Attempt:
    client: TlsChannel | PeerIdentityError
    server: TlsChannel | PeerIdentityError

    @property
    def resumed(self) -> tuple[bool, bool]:
        return tuple(  # type: ignore[return-value]
            isinstance(side, TlsChannel) and side.tls.session_reused
            for side in (self.client, self.server)
        )


@pytest.fixture(scope="module")
def creds() -> dict[str, Credential]:
    ca = ThrowawayCa()
    return {node: ca.enforcer(node) for node in "abc"}


def _side(
    sessions: TlsSessions, sock: socket.socket, server: bool, expects: str | None
) -> TlsChannel | PeerIdentityError:
    try:
        return _tls_handshake(sessions, sock, server, Verdict.encrypt(expects), 5.0)
    except PeerIdentityError as exc:
        return exc


def _connect(
    client: TlsSessions,
    server: TlsSessions,
    client_expects: str | None = B_ID,
    server_expects: str | None = A_ID,
) -> Attempt:
    """One data connection. When both sides accept, one byte goes server -> client: the client
    reads the server's session ticket on the way, as a relay does."""
    left, right = socket.socketpair()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            far = pool.submit(_side, server, right, True, server_expects)
            near = _side(client, left, False, client_expects)
            attempt = Attempt(near, far.result(timeout=10))
        if isinstance(attempt.client, TlsChannel) and isinstance(attempt.server, TlsChannel):
            assert attempt.server.write(memoryview(b"x")) == 1
            buf = bytearray(16)
            deadline = time.monotonic() + 5
            got: int | None = None
            while not got and time.monotonic() < deadline:
                select.select([left], [], [], 1.0)
                got = attempt.client.read_into(memoryview(buf))
            assert got == 1
            assert buf[:1] == b"x"
        return attempt
    finally:
        left.close()
        right.close()


def test_second_connection_resumes_and_both_sides_see_the_peer(
    creds: dict[str, Credential],
) -> None:
    a, b = TlsSessions(creds["a"].tls()), TlsSessions(creds["b"].tls())
    first = _connect(a, b)
    assert first.resumed == (False, False)
    second = _connect(a, b)
    assert second.resumed == (True, True)
    # The identity check ran on the resumed session and passed both ways.
    assert isinstance(second.client, TlsChannel)
    assert isinstance(second.server, TlsChannel)
    assert peer_uri_sans(second.client.tls) == [B_ID]
    assert peer_uri_sans(second.server.tls) == [A_ID]
    assert a.stats().full == 1
    assert a.stats().resumed == 1
    assert a.stats().cached_peers == 1
    assert b.stats().full == 1
    assert b.stats().resumed == 1


def test_resumed_session_to_the_wrong_peer_is_refused_by_the_client(
    creds: dict[str, Credential],
) -> None:
    """A session with b offered to a connection that must reach c (as if the cache were keyed
    wrongly): b's server resumes it, and the client's identity check refuses b."""
    a, b = TlsSessions(creds["a"].tls()), TlsSessions(creds["b"].tls())
    _connect(a, b)
    session = a.client_session(B_ID)
    assert session is not None
    a.remember(C_ID, session, a.now())
    attempt = _connect(a, b, client_expects=C_ID)
    assert attempt.resumed[1], "the server resumed: the refusal is the client's check"
    assert isinstance(attempt.client, PeerIdentityError)
    assert C_ID in str(attempt.client)
    assert B_ID in str(attempt.client)


def test_resumed_session_from_the_wrong_peer_is_refused_by_the_server(
    creds: dict[str, Credential],
) -> None:
    """The destination expects c (the handshake named c) but a resumes its session: the check
    on the resumed session's certificate refuses a."""
    a, b = TlsSessions(creds["a"].tls()), TlsSessions(creds["b"].tls())
    _connect(a, b)
    attempt = _connect(a, b, server_expects=C_ID)
    assert attempt.resumed[0]
    assert isinstance(attempt.server, PeerIdentityError)
    assert A_ID in str(attempt.server)


def test_a_ticket_of_another_enforcer_is_never_resumed(creds: dict[str, Credential]) -> None:
    """c cannot open b's tickets: offering b's session to c is a full handshake with c's
    certificate, which the identity check then refuses (a expected b)."""
    a, b, c = (TlsSessions(creds[n].tls()) for n in "abc")
    _connect(a, b)
    attempt = _connect(a, c)
    assert attempt.resumed == (False, False)
    assert isinstance(attempt.client, PeerIdentityError)


def test_forget_ends_resumption(creds: dict[str, Credential]) -> None:
    a, b = TlsSessions(creds["a"].tls()), TlsSessions(creds["b"].tls())
    _connect(a, b)
    a.forget(B_ID)  # the client drops its session with b
    assert a.client_session(B_ID) is None
    assert _connect(a, b).resumed == (False, False)
    b.forget()  # the server retires its ticket key: a's fresh session is worthless now
    assert a.client_session(B_ID) is not None
    attempt = _connect(a, b)
    assert attempt.resumed == (False, False)
    assert isinstance(attempt.client, TlsChannel)
    assert isinstance(attempt.server, TlsChannel)


def test_lifetime_bounds_the_client_and_the_server(creds: dict[str, Credential]) -> None:
    clock = Clock()
    a = TlsSessions(creds["a"].tls(), lifetime=60, clock=clock)
    b = TlsSessions(creds["b"].tls(), lifetime=60, clock=clock)
    _connect(a, b)
    clock.now += 59
    assert _connect(a, b).resumed == (True, True)
    clock.now += 1
    assert a.client_session(B_ID) is None  # the client no longer offers it
    # A client that keeps sessions longer (or misbehaves) is bounded by the server: the key
    # that sealed its ticket was retired after 60 s.
    lax = TlsSessions(creds["a"].tls(), lifetime=3600, clock=clock)
    b2 = TlsSessions(creds["b"].tls(), lifetime=60, clock=clock)
    _connect(lax, b2)
    clock.now += 60
    assert lax.client_session(B_ID) is not None
    attempt = _connect(lax, b2)
    assert attempt.resumed == (False, False)
    assert isinstance(attempt.server, TlsChannel)


def test_a_resumed_connection_does_not_extend_the_cached_session(
    creds: dict[str, Credential],
) -> None:
    """Only full handshakes are cached, so the time since the peer's certificate was verified
    is what the lifetime bounds, however many resumptions follow."""
    clock = Clock()
    a = TlsSessions(creds["a"].tls(), lifetime=60, clock=clock)
    b = TlsSessions(creds["b"].tls(), lifetime=3600, clock=clock)
    _connect(a, b)
    first = a.client_session(B_ID)
    clock.now += 30
    assert _connect(a, b).resumed == (True, True)
    assert a.client_session(B_ID) is first
    clock.now += 30
    assert _connect(a, b).resumed == (False, False)


def test_new_configuration_starts_with_full_handshakes(creds: dict[str, Credential]) -> None:
    """set_tls builds a new TlsSessions: no cached session, and the old tickets are unusable."""
    a, b = TlsSessions(creds["a"].tls()), TlsSessions(creds["b"].tls())
    _connect(a, b)
    rotated_b = TlsSessions(creds["b"].tls())
    assert _connect(a, rotated_b).resumed == (False, False)
    rotated_a = TlsSessions(creds["a"].tls())
    assert rotated_a.client_session(B_ID) is None
    assert _connect(rotated_a, rotated_b).resumed == (False, False)


def test_resumption_off(creds: dict[str, Credential]) -> None:
    a = TlsSessions(creds["a"].tls(), lifetime=0)
    b = TlsSessions(creds["b"].tls(), lifetime=0)
    assert b.server().num_tickets == 0
    for _ in range(2):
        assert _connect(a, b).resumed == (False, False)
    assert a.stats().cached_peers == 0
