"""The identity service's settings: one typed object, loaded once.

Sources, later ones winning: field defaults, a YAML file (``--config``), and environment
variables prefixed ``TRUSTWIRE_IDENTITY_`` (``TRUSTWIRE_IDENTITY_TRUST_DOMAIN=cluster-a.example``,
lists comma-separated: ``TRUSTWIRE_IDENTITY_ETCD_ENDPOINTS=10.0.0.1:2379,10.0.0.2:2379``).
Unknown keys and variables fail (see ``trustwire.runtime.load_settings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from trustwire.errors import InvalidArgument
from trustwire.runtime import load_settings

__all__ = ["ENV_PREFIX", "IdentitySettings", "load"]

ENV_PREFIX = "TRUSTWIRE_IDENTITY_"


@dataclass(frozen=True)
class IdentitySettings:
    trust_domain: str
    """Name of the trust domain this service is the CA of, e.g. ``cluster-a.example``."""
    state_dir: Path = Path("/var/lib/trustwire/identity")
    """Self-managed CA (``ca/``), admin credential and CLI config (``admin/``). Mode 0700."""
    listen_address: str = "0.0.0.0:8443"
    """Mutual-TLS API (every rpc but Enroll)."""
    enroll_address: str = "0.0.0.0:8444"
    """Server-authenticated TLS for Enroll only (the join token is the credential)."""
    advertise_host: str = "localhost"
    """Host name clients dial; written into the admin config."""
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    """DNS names and IP addresses in this service's serving certificate."""
    etcd_endpoints: tuple[str, ...] = ("127.0.0.1:2379",)
    certificate_ttl_seconds: int = 3600
    """Lifetime of enforcer and service certificates."""
    document_ttl_seconds: int = 3600
    """Default and maximum lifetime of identity documents."""
    admin_ttl_seconds: int = 7 * 86400
    """Lifetime of the admin credential written into ``state_dir/admin`` (rewritten on start
    once past half of it)."""
    ca_ttl_seconds: int = 365 * 86400
    """Lifetime of a self-managed root (rolled over automatically)."""
    ca_chain_file: Path | None = None
    """Loaded CA: PEM chain, signing CA first, trust anchor last. With ``ca_key_file``."""
    ca_key_file: Path | None = None
    next_ca_chain_file: Path | None = None
    """Pre-published next CA (in the bundle, signs nothing until it becomes ``ca_*``)."""
    next_ca_key_file: Path | None = None
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        for name in ("certificate_ttl_seconds", "document_ttl_seconds", "admin_ttl_seconds"):
            if getattr(self, name) < 60:
                raise InvalidArgument("must be at least 60 seconds", field=name)
        if (self.ca_chain_file is None) != (self.ca_key_file is None):
            raise InvalidArgument("ca_chain_file and ca_key_file go together", field="ca_key_file")
        if (self.next_ca_chain_file is None) != (self.next_ca_key_file is None):
            raise InvalidArgument(
                "next_ca_chain_file and next_ca_key_file go together", field="next_ca_key_file"
            )

    @property
    def certificate_ttl(self) -> timedelta:
        return timedelta(seconds=self.certificate_ttl_seconds)

    @property
    def document_ttl(self) -> timedelta:
        return timedelta(seconds=self.document_ttl_seconds)

    @property
    def admin_ttl(self) -> timedelta:
        return timedelta(seconds=self.admin_ttl_seconds)

    @property
    def ca_ttl(self) -> timedelta:
        return timedelta(seconds=self.ca_ttl_seconds)


def load(file: Path | None = None) -> IdentitySettings:
    return load_settings(IdentitySettings, file=file, prefix=ENV_PREFIX)
