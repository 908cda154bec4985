"""Channel arguments shared by servers and clients, so both ends agree by construction."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TRANSPORT", "TransportOptions"]


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Message size and keepalive limits for both ends of a Trustwire gRPC connection.

    Keepalive matters because Trustwire's important calls are long-lived streams (policy
    watch, trust bundle): a peer that vanished without a FIN must be noticed within
    ``keepalive_time_s + keepalive_timeout_s``. Servers accept client pings down to half the
    client interval (timers jitter); a stricter server would answer ``GOAWAY too_many_pings``.
    """

    max_message_bytes: int = 16 * 1024 * 1024
    """Largest message sent or received (a big node's policy snapshot can exceed grpc's 4 MiB)."""
    keepalive_time_s: float = 30.0
    """Ping the peer after this long without activity."""
    keepalive_timeout_s: float = 10.0
    """Close the connection when a ping is not answered within this."""

    def _common(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.keepalive_time_ms", int(self.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
        ]

    def server_options(self) -> list[tuple[str, int]]:
        return [
            *self._common(),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", int(self.keepalive_time_s * 500)),
            # grpc defaults SO_REUSEPORT on, which lets a second server bind a taken port
            # silently and steal half the connections; a port conflict must fail loudly.
            ("grpc.so_reuseport", 0),
        ]

    def client_options(self) -> list[tuple[str, int]]:
        return [
            *self._common(),
            # Default 2: after two pings without data the client stops pinging, which would
            # stop liveness checks on an idle-but-open watch stream.
            ("grpc.http2.max_pings_without_data", 0),
        ]


DEFAULT_TRANSPORT = TransportOptions()
