"""Settings of an enforcer, loaded once by :func:`load` (prefix ``TRUSTWIRE_ENFORCER_``).

Environment examples::

    TRUSTWIRE_ENFORCER_NODE_NAME=node-1
    TRUSTWIRE_ENFORCER_STATE_DIR=/var/lib/trustwire/enforcer
    TRUSTWIRE_ENFORCER_JOIN_TOKEN=<id>.<secret>          # first start only
    TRUSTWIRE_ENFORCER_IDENTITY__ADDRESS=identity:8443
    TRUSTWIRE_ENFORCER_IDENTITY__ENROLL_ADDRESS=identity:8444
    TRUSTWIRE_ENFORCER_IDENTITY__CA_SHA256=<hex>            # pin from `trustwire token create`
    TRUSTWIRE_ENFORCER_POLICY__ADDRESSES=policy-1:8445,policy-2:8445
    TRUSTWIRE_ENFORCER_LISTEN_ADDRESS=0.0.0.0:15443
    TRUSTWIRE_ENFORCER_METRICS_ADDRESS=127.0.0.1:9464     # GET /metrics; unset: off

A settings file (YAML) has the same shape (``identity: {address: ...}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trustwire.runtime import load_settings

__all__ = [
    "ENV_PREFIX",
    "EnforcerSettings",
    "FlowReportSettings",
    "IdentityEndpoint",
    "PolicyEndpoint",
    "load",
]

ENV_PREFIX = "TRUSTWIRE_ENFORCER_"


@dataclass(frozen=True)
class IdentityEndpoint:
    """Where the identity service is and how to trust it on first contact."""

    # Mutual-TLS port (renewal, documents, bundle watch).
    address: str = "127.0.0.1:8443"
    # Enrolment port (server TLS only), used once with the join token.
    enroll_address: str = "127.0.0.1:8444"
    # Trust on first use by pin: SHA-256 of the CA certificate (`trustwire token create` prints
    # it). Alternatively ``ca_bundle``: a PEM file of the trust domain's CA. After enrolment the
    # persisted bundle is used and neither is needed.
    ca_sha256: str = ""
    ca_bundle: Path | None = None
    # Host name the identity service's certificate is checked against when dialling an IP.
    server_name: str = ""


@dataclass(frozen=True)
class PolicyEndpoint:
    # Every replica: the policy stream fails over between them.
    addresses: tuple[str, ...] = ("127.0.0.1:8445",)
    # Host name the replicas' certificates are checked against.
    server_name: str = ""
    # Plaintext to the policy service: local development only (no caller identity, so the
    # policy service cannot attribute registrations and flows to this enforcer).
    insecure: bool = False


@dataclass(frozen=True)
class FlowReportSettings:
    # Aggregation window, seconds (records of both enforcers of a connection line up on it).
    window: float = 10.0
    # How often ended windows are sent to the policy service, seconds.
    interval: float = 5.0
    # Records kept while the policy service is unreachable; the oldest are dropped beyond it.
    max_pending: int = 50_000


@dataclass(frozen=True)
class EnforcerSettings:
    # This host's name: the enforcer id, `spiffe://<td>/enforcer/<node_name>`.
    node_name: str
    # Certificate, key, bundle, last applied policy view and PU records (0600 files).
    state_dir: Path = Path("/var/lib/trustwire/enforcer")
    # Single-use join token; needed only while no valid certificate is persisted.
    join_token: str = ""
    identity: IdentityEndpoint = field(default_factory=IdentityEndpoint)
    policy: PolicyEndpoint = field(default_factory=PolicyEndpoint)
    # The enforcer-to-enforcer channel (AuthorizationService, mutual TLS).
    listen_address: str = "0.0.0.0:15443"
    # What peers dial (registered with the policy service); empty: ``listen_address`` with the
    # port actually bound.
    advertise_addresses: tuple[str, ...] = ()
    # The local API (`trustwire pu ...`): a Unix socket, mode 0600.
    local_socket: Path = Path("/run/trustwire/enforcer.sock")
    # How long a destination keeps an authorized 5-tuple open for the source's connection.
    preauthorization_ttl: float = 5.0
    # Bound on one Authorize round trip; beyond it the connection is rejected (fail closed).
    authorize_timeout: float = 3.0
    flows: FlowReportSettings = field(default_factory=FlowReportSettings)
    # Prometheus metrics (``GET /metrics``, plain HTTP, no authentication: bind it to loopback
    # or a monitoring network); empty: not served. Port 0 picks a free one.
    metrics_address: str = ""
    log_level: str = "INFO"


def load(file: str | Path | None = None, environ: dict[str, str] | None = None) -> EnforcerSettings:
    return load_settings(EnforcerSettings, file=file, environ=environ, prefix=ENV_PREFIX)
