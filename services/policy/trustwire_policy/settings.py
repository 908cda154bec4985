"""Settings of a policy replica, loaded once by :func:`load` (prefix ``TRUSTWIRE_POLICY_``).

Environment examples: ``TRUSTWIRE_POLICY_LISTEN_ADDRESS=0.0.0.0:8445``,
``TRUSTWIRE_POLICY_ETCD__ENDPOINTS=10.0.0.1:2379,10.0.0.2:2379``,
``TRUSTWIRE_POLICY_LIMITS__MAX_DOCUMENTS=50``,
``TRUSTWIRE_POLICY_TLS__CERTIFICATE=/var/lib/trustwire/policy/cert.pem`` (and ``__KEY``,
``__CLIENT_CA``), ``TRUSTWIRE_POLICY_IDENTITY__ADDRESS=identity:8443`` and
``TRUSTWIRE_POLICY_IDENTITY__SERVER_NAME=identity`` (renew the certificate of ``tls``).
A settings file (YAML) has the same shape (``identity: {address: ...}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from trustwire.errors import InvalidArgument
from trustwire.runtime import load_settings

__all__ = [
    "ENV_PREFIX",
    "ClusterSettings",
    "EtcdSettings",
    "FlowSettings",
    "IdentityEndpoint",
    "LimitSettings",
    "PolicySettings",
    "TlsSettings",
    "load",
]

ENV_PREFIX = "TRUSTWIRE_POLICY_"


@dataclass(frozen=True)
class TlsSettings:
    """Mutual TLS of the gRPC server. All three set: mTLS with the authorization table; all
    unset: plaintext without authorization (local development and tests only)."""

    certificate: Path | None = None
    key: Path | None = None
    client_ca: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.certificate is not None


@dataclass(frozen=True)
class IdentityEndpoint:
    """Where this replica renews the certificate of ``tls`` (``credential.py``): the identity
    service's mutual-TLS port. Unset: no renewal, the files are managed by something else (a
    certificate manager rewriting them; the server picks rewritten files up on the next
    connection)."""

    # host:port of the identity service's mutual-TLS listener (not the enrolment port).
    address: str = ""
    # Host name the identity service's certificate is checked against when dialling an IP.
    server_name: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.address)


@dataclass(frozen=True)
class EtcdSettings:
    endpoints: tuple[str, ...] = ("127.0.0.1:2379",)
    # Deadline of each etcd call, seconds.
    timeout: float = 5.0
    # Root of every key this service reads and writes (tests give each run its own).
    key_root: str = "/trustwire/v1/"


@dataclass(frozen=True)
class LimitSettings:
    """Bounds on one request, so that no single call can monopolise a replica or etcd."""

    # YAML text (or serialized structured resources) of one Apply/Simulate.
    max_request_bytes: int = 4 * 1024 * 1024
    # Documents of one Apply. Each costs one compare and one put of a single etcd
    # transaction, whose default limit is 128 operations (etcd --max-txn-ops).
    max_documents: int = 100
    # Pagination (common.v1.PageRequest): default and clamp.
    default_page_size: int = 100
    max_page_size: int = 1000
    # Dry-run/Simulate: decisions evaluated at most (before and after count once each pair),
    # and flow impacts returned at most.
    max_impact_decisions: int = 50_000
    max_impacts: int = 1000


@dataclass(frozen=True)
class FlowSettings:
    """The flow record store (SQLite, never etcd): bounded by rows and by age."""

    # Database file; unset keeps flows in memory for the life of the process (development).
    path: Path | None = None
    # Records older than this (by window end) are deleted, seconds.
    retention: float = 24 * 3600.0
    # At most this many records are kept; the oldest stored are evicted first.
    max_rows: int = 1_000_000
    # Records queued per WatchFlows stream before a slow reader starts missing them.
    watch_buffer: int = 1000


@dataclass(frozen=True)
class ClusterSettings:
    """How replicas find each other for cluster-wide flow queries (``replicas.py``): each one
    registers under ``<key_root>replicas/<replica_id>`` and heartbeats; queries fan out to the
    members whose heartbeat is fresh (docs/decisions/0013-cluster-wide-flow-queries.md)."""

    # Stable for the life of the process; empty: ``<host name>-<random>`` at start.
    replica_id: str = ""
    # host:port peers dial for this replica's flows; empty: the bound listen address, which
    # must then not be a wildcard (0.0.0.0, ::): peers cannot dial that.
    advertise_address: str = ""
    # Host name a peer's certificate is checked against when dialling its advertised address;
    # empty: ``identity.server_name`` (service certificates share it), else the address's host.
    peer_server_name: str = ""
    # Seconds between heartbeats; a member is skipped once its heartbeat is older than
    # ``stale_after`` and its key deleted (by any replica) once older than ``forget_after``.
    heartbeat_interval: float = 5.0
    stale_after: float = 15.0
    forget_after: float = 600.0
    # Deadline of a peer's part of a cluster-wide query, seconds (capped by the caller's).
    peer_timeout: float = 5.0

    def __post_init__(self) -> None:
        # Checked at load, not when the replica joins (by then it is already serving).
        if self.replica_id and not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", self.replica_id):
            raise InvalidArgument(
                f"cluster.replica_id: {self.replica_id!r} must be 1-128 of [A-Za-z0-9._-]",
                field="cluster.replica_id",
            )
        if not 0 < self.heartbeat_interval < self.stale_after <= self.forget_after:
            raise InvalidArgument(
                "cluster: need 0 < heartbeat_interval < stale_after <= forget_after",
                field="cluster.stale_after",
            )
        if self.peer_timeout <= 0:
            raise InvalidArgument(
                "cluster.peer_timeout: must be positive", field="cluster.peer_timeout"
            )


@dataclass(frozen=True)
class PolicySettings:
    listen_address: str = "127.0.0.1:8445"
    # The trust domain of this cluster: callers of other domains are refused, PUs get it as
    # their `trust-domain` label. Empty: no check (development).
    trust_domain: str = ""
    tls: TlsSettings = field(default_factory=TlsSettings)
    identity: IdentityEndpoint = field(default_factory=IdentityEndpoint)
    etcd: EtcdSettings = field(default_factory=EtcdSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    flows: FlowSettings = field(default_factory=FlowSettings)
    log_level: str = "INFO"
    # Bounded exponential backoff of the state mirror while etcd is unreachable, seconds.
    reconnect_initial_backoff: float = 0.1
    reconnect_max_backoff: float = 5.0
    # Membership for cluster-wide flow queries.
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    # host:port of the Prometheus metrics endpoint (GET /metrics); empty: no endpoint.
    metrics_address: str = ""

    def __post_init__(self) -> None:
        if self.identity.enabled and not self.tls.enabled:
            # Renewal rewrites the tls files; without them there is nothing to renew, and a
            # plaintext replica has no certificate to authenticate to the identity service.
            raise InvalidArgument(
                "identity.address (certificate renewal) needs tls.certificate, tls.key and "
                "tls.client_ca: the replica renews the certificate it serves",
                field="identity.address",
            )
        host, _, port = self.identity.address.rpartition(":")
        if self.identity.enabled and not (host and port.isdigit()):
            raise InvalidArgument(
                f"identity.address {self.identity.address!r} must be host:port",
                field="identity.address",
            )


def load(file: str | Path | None = None, environ: dict[str, str] | None = None) -> PolicySettings:
    return load_settings(PolicySettings, file=file, environ=environ, prefix=ENV_PREFIX)
