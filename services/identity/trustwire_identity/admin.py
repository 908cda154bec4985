"""The admin credential and the CLI's connection file, written on first start.

As kubeadm writes ``admin.conf``, the identity service writes into ``<state_dir>/admin/``:

- ``admin.crt`` / ``admin.key``: a client certificate ``spiffe://<td>/admin/admin`` and its
  key, and ``bundle.pem``: the trust bundle (all 0600);
- ``config``: the YAML the CLI reads (copy it to ``~/.trustwire/config`` or point
  ``TRUSTWIRE_CONFIG`` at it)::

      trust_domain: cluster-a.example
      identity:
        address: localhost:8443         # mutual TLS
        enroll_address: localhost:8444  # Enroll (server TLS only)
      ca_bundle: /var/lib/trustwire/identity/admin/bundle.pem
      certificate: /var/lib/trustwire/identity/admin/admin.crt
      key: /var/lib/trustwire/identity/admin/admin.key

The credential is rewritten on a start where it is missing, past half its life or not issued
by the active CA, so an idle cluster's admin is never locked out for longer than a restart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from trustwire.errors import InvalidArgument, NotFound
from trustwire.identity import Role, SpiffeId, TrustDomain

from .ca import CertificateAuthority, certificates_to_pem, generate_key, key_to_pem
from .private_files import write_private

__all__ = ["CONFIG_ENV", "ClientConfig", "default_config_path", "ensure_admin_credential"]

CONFIG_ENV = "TRUSTWIRE_CONFIG"
ADMIN_NAME = "admin"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the identity service is and which credential to use with it."""

    trust_domain: str
    address: str
    enroll_address: str
    ca_bundle: Path
    certificate: Path
    key: Path

    def to_yaml(self) -> str:
        data = {
            "trust_domain": self.trust_domain,
            "identity": {"address": self.address, "enroll_address": self.enroll_address},
            "ca_bundle": str(self.ca_bundle),
            "certificate": str(self.certificate),
            "key": str(self.key),
        }
        return "# Trustwire CLI connection settings (written by the identity service)\n" + (
            yaml.safe_dump(data, sort_keys=False)
        )

    @classmethod
    def load(cls, path: Path) -> ClientConfig:
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(
                f"no Trustwire config at {path} (copy <identity state dir>/admin/config there "
                f"or set {CONFIG_ENV})",
                reason="CONFIG_NOT_FOUND",
            ) from None
        except yaml.YAMLError as error:
            raise InvalidArgument(f"{path}: not valid YAML: {error}", field=str(path)) from None
        try:
            identity = data["identity"]
            base = path.parent
            return cls(
                trust_domain=str(data["trust_domain"]),
                address=str(identity["address"]),
                enroll_address=str(identity.get("enroll_address", "")),
                ca_bundle=base / str(data["ca_bundle"]),
                certificate=base / str(data["certificate"]),
                key=base / str(data["key"]),
            )
        except (KeyError, TypeError) as error:
            raise InvalidArgument(
                f"{path}: missing or malformed setting {error}", field=str(path)
            ) from None


def default_config_path(environ: dict[str, str] | None = None) -> Path:
    """``$TRUSTWIRE_CONFIG``, else ``~/.trustwire/config``."""
    env = os.environ if environ is None else environ
    configured = env.get(CONFIG_ENV)
    return Path(configured) if configured else Path.home() / ".trustwire" / "config"


def _needs_new(path: Path, ca: CertificateAuthority, now: datetime) -> bool:
    if not path.exists():
        return True
    try:
        cert = x509.load_pem_x509_certificates(path.read_bytes())[0]
    except ValueError:
        return True
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    half_life = cert.not_valid_before_utc + life / 2
    return cert.issuer != ca.active.certificate.subject or now >= half_life


def ensure_admin_credential(
    directory: Path,
    ca: CertificateAuthority,
    trust_domain: TrustDomain,
    *,
    now: datetime,
    ttl: timedelta,
    address: str,
    enroll_address: str,
) -> Path:
    """Write (or refresh) the admin credential, bundle and config; returns the config path.

    The bundle and config are rewritten every time (the CA set or the address may have
    changed); the credential only when due (see the module docstring).
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    certificate_path = directory / "admin.crt"
    if _needs_new(certificate_path, ca, now):
        key = generate_key()
        issued = ca.active.issue(
            key.public_key(), SpiffeId(trust_domain, Role.ADMIN, ADMIN_NAME), ttl=ttl, now=now
        )
        write_private(directory / "admin.key", key_to_pem(key))
        write_private(certificate_path, certificates_to_pem(issued.chain))
    write_private(directory / "bundle.pem", certificates_to_pem(ca.anchors(now)))
    config = ClientConfig(
        trust_domain=trust_domain.name,
        address=address,
        enroll_address=enroll_address,
        ca_bundle=directory.resolve() / "bundle.pem",
        certificate=certificate_path.resolve(),
        key=(directory / "admin.key").resolve(),
    )
    config_path = directory / "config"
    write_private(config_path, config.to_yaml().encode())
    return config_path
