"""The per-connection half of a Trust Profile: addresses, freshness, scores, trace context."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime

from trustwire.errors import InvalidArgument
from trustwire.policy.model import Protocol

from ._envelope import SignedEnvelope

__all__ = ["NONCE_BYTES", "FiveTuple", "TraceContext", "TrustProfile"]

NONCE_BYTES = 16  # what signers generate; verifiers accept 16..MAX_NONCE_BYTES
MAX_NONCE_BYTES = 64
MAX_DESTINATION_SERVICE = 253
MAX_TRACEPARENT = 55  # W3C version 00: 2+1+32+1+16+1+2
MAX_TRACESTATE = 512  # W3C: 32 list members of at most 256 bytes; we cap lower

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class FiveTuple:
    """A connection as its source sees it. Equality is exact: same protocol, addresses (as
    address values, so text forms like ``::1`` and ``0::1`` are equal) and ports."""

    protocol: Protocol
    source_ip: IPAddress
    source_port: int
    destination_ip: IPAddress
    destination_port: int

    def __post_init__(self) -> None:
        for name in ("source_port", "destination_port"):
            if not 1 <= getattr(self, name) <= 65535:
                raise InvalidArgument("must be 1..65535", field=f"five_tuple.{name}")
        if self.source_ip.version != self.destination_ip.version:
            raise InvalidArgument(
                "source and destination are different IP versions", field="five_tuple"
            )

    @classmethod
    def of(
        cls,
        protocol: Protocol | str,
        source_ip: str,
        source_port: int,
        destination_ip: str,
        destination_port: int,
    ) -> FiveTuple:
        try:
            src = ipaddress.ip_address(source_ip)
            dst = ipaddress.ip_address(destination_ip)
        except ValueError as exc:
            raise InvalidArgument(str(exc), field="five_tuple") from None
        return cls(Protocol(protocol), src, source_port, dst, destination_port)


@dataclass(frozen=True, slots=True)
class TraceContext:
    """W3C Trace Context headers, carried so both hosts' spans join one trace. Only sizes are
    checked here; the tracing layer parses them (a bad header drops the link, not the
    connection)."""

    traceparent: str = ""
    tracestate: str = ""

    def __post_init__(self) -> None:
        if len(self.traceparent) > MAX_TRACEPARENT:
            raise InvalidArgument(
                f"longer than {MAX_TRACEPARENT}", field="trace_context.traceparent"
            )
        if len(self.tracestate) > MAX_TRACESTATE:
            raise InvalidArgument(f"longer than {MAX_TRACESTATE}", field="trace_context.tracestate")


@dataclass(frozen=True, slots=True)
class TrustProfile:
    """``enforcer.v1.TrustProfile``: the source PU's identity document (as issued, still
    signed) plus facts about one connection. ``peer_nonce`` is empty on a request and is the
    request's nonce on the answer."""

    identity_document: SignedEnvelope
    five_tuple: FiveTuple
    nonce: bytes
    timestamp: datetime
    destination_service: str = ""
    behaviour_score: float | None = None
    reputation_score: float | None = None
    trace_context: TraceContext = TraceContext()
    peer_nonce: bytes = b""

    def __post_init__(self) -> None:
        if not NONCE_BYTES <= len(self.nonce) <= MAX_NONCE_BYTES:
            raise InvalidArgument(f"must be {NONCE_BYTES}..{MAX_NONCE_BYTES} bytes", field="nonce")
        if self.peer_nonce and not NONCE_BYTES <= len(self.peer_nonce) <= MAX_NONCE_BYTES:
            raise InvalidArgument(
                f"must be empty or {NONCE_BYTES}..{MAX_NONCE_BYTES} bytes", field="peer_nonce"
            )
        if self.timestamp.tzinfo is None:
            raise InvalidArgument("must be timezone-aware", field="timestamp")
        if len(self.destination_service) > MAX_DESTINATION_SERVICE:
            raise InvalidArgument(
                f"longer than {MAX_DESTINATION_SERVICE}", field="destination_service"
            )
        for name in ("behaviour_score", "reputation_score"):
            score = getattr(self, name)
            if score is not None and not (math.isfinite(score) and 0.0 <= score <= 1.0):
                raise InvalidArgument("must be in [0, 1]", field=name)
