"""The enforcer's own certificate: enrol once with the join token, then load it from disk.

Everything that needs the credential in some form is derived here from one
``NodeCredential``, so a renewal replaces all of them together: the Trust Profile signing key
(``trustwire.identity.Credential``), the data connections' TLS (``TlsConfig``) and the gRPC
TLS of the enforcer channel and of the control-plane clients.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from trustwire.errors import FailedPrecondition
from trustwire.identity import Credential, TrustDomain
from trustwire.runtime import ClientTLS
from trustwire_enforcer.datapath import TlsConfig
from trustwire_enforcer.settings import EnforcerSettings
from trustwire_identity.ca import certificates_to_pem, key_to_pem
from trustwire_identity.client import CredentialFiles, NodeCredential, enroll

__all__ = ["EnforcerCredential", "obtain_credential"]

_log = logging.getLogger("trustwire.enforcer.credentials")


@dataclass(frozen=True)
class EnforcerCredential:
    """One certificate generation of this enforcer, in every form the daemon uses."""

    node: NodeCredential

    @property
    def spiffe_id(self) -> str:
        return self.node.spiffe_id

    @property
    def trust_domain(self) -> TrustDomain:
        # spiffe://<td>/enforcer/<node>
        return TrustDomain(self.spiffe_id.removeprefix("spiffe://").split("/", 1)[0])

    @property
    def chain_pem(self) -> bytes:
        return certificates_to_pem(self.node.chain)

    @property
    def key_pem(self) -> bytes:
        return key_to_pem(self.node.key)

    @property
    def bundle_pem(self) -> bytes:
        return certificates_to_pem(self.node.bundle)

    def signing(self) -> Credential:
        return Credential.from_chain(self.node.key, self.node.chain)

    def data_tls(self) -> TlsConfig:
        return TlsConfig.from_pem(self.chain_pem, self.key_pem, self.bundle_pem)

    def client_tls(self, server_name: str | None = None) -> ClientTLS:
        return self.node.client_tls(server_name or None)


def credential_files(state_dir: Path) -> CredentialFiles:
    return CredentialFiles(state_dir / "credential")


async def obtain_credential(
    settings: EnforcerSettings, now: datetime | None = None
) -> EnforcerCredential:
    """The persisted certificate while it is valid (a restart needs neither the identity
    service nor a token: enforcement must start before the control plane answers), else a new
    one from the join token, persisted before it is used."""
    files = credential_files(settings.state_dir)
    loaded = files.load(now or datetime.now(UTC))
    if loaded is not None:
        _log.info("loaded persisted certificate", extra={"spiffe_id": loaded.spiffe_id})
        return EnforcerCredential(loaded)
    if not settings.join_token:
        raise FailedPrecondition(
            f"no valid certificate in {files.directory} and no join token: create one with "
            "`trustwire token create --node "
            f"{settings.node_name}` and set TRUSTWIRE_ENFORCER_JOIN_TOKEN",
            reason="ENROLLMENT_REQUIRED",
        )
    identity = settings.identity
    bundle = identity.ca_bundle.read_bytes() if identity.ca_bundle is not None else None
    if bundle is None and not identity.ca_sha256:
        raise FailedPrecondition(
            "enrolment needs identity.ca_sha256 (the token's CA pin) or identity.ca_bundle",
            reason="ENROLLMENT_TRUST_MISSING",
        )
    node = await enroll(
        identity.enroll_address,
        settings.join_token,
        name=settings.node_name,
        # Peers dial the enforcer channel by address and check the certificate against the
        # node name (the one DNS name an enforcer may request).
        dns_names=(settings.node_name,),
        ca_bundle_pem=bundle,
        ca_sha256=None if bundle is not None else identity.ca_sha256,
        server_name=identity.server_name or None,
    )
    files.save(node)
    _log.info("enrolled", extra={"spiffe_id": node.spiffe_id})
    return EnforcerCredential(node)
