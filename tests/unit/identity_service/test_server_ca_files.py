"""The service with a loaded CA (an intermediate under an organisation root), and its refusal
to start on a readable key. Real gRPC on loopback; the in-memory store."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from trustwire.errors import FailedPrecondition
from trustwire.store.memory import MemoryStore
from trustwire_identity.ca import certificates_to_pem, create_root, generate_key, key_to_pem
from trustwire_identity.client import enroll
from trustwire_identity.private_files import write_private
from trustwire_identity.records import EnrollmentKind
from trustwire_identity.server import IdentityServer
from trustwire_identity.settings import IdentitySettings

from .conftest import TRUST_DOMAIN


def organisation_files(directory: Path) -> tuple[Path, Path, x509.Certificate]:
    now = datetime.now(UTC)
    root = create_root(TRUST_DOMAIN, now=now, ttl=timedelta(days=10))
    key = generate_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Trustwire intermediate")])
    intermediate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=5))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(root.key, hashes.SHA256())
    )
    chain_file = directory / "ca.crt"
    chain_file.write_bytes(certificates_to_pem([intermediate, root.certificate]))
    key_file = directory / "ca.key"
    write_private(key_file, key_to_pem(key))
    return chain_file, key_file, root.certificate


def settings(tmp_path: Path, chain: Path, key: Path) -> IdentitySettings:
    return IdentitySettings(
        trust_domain=TRUST_DOMAIN.name,
        state_dir=tmp_path / "state",
        listen_address="127.0.0.1:0",
        enroll_address="127.0.0.1:0",
        advertise_host="127.0.0.1",
        ca_chain_file=chain,
        ca_key_file=key,
    )


async def test_an_intermediate_ca_issues_chains_to_the_organisation_root(tmp_path: Path) -> None:
    chain, key, root = organisation_files(tmp_path)
    server = await IdentityServer.start(settings(tmp_path, chain, key), store=MemoryStore())
    try:
        token = await server.tokens.create(EnrollmentKind.ENFORCER, "node-1", created_by="test")
        credential = await enroll(
            server.enroll_address, token.token, ca_sha256=server.authority().ca_sha256
        )
    finally:
        await server.stop()
    assert credential.bundle == (root,)
    assert len(credential.chain) == 2  # leaf + intermediate; the root is the bundle's
    credential.chain[1].verify_directly_issued_by(root)


async def test_the_service_refuses_to_start_on_a_readable_ca_key(tmp_path: Path) -> None:
    chain, key, _ = organisation_files(tmp_path)
    os.chmod(key, 0o640)
    with pytest.raises(FailedPrecondition) as refused:
        await IdentityServer.start(settings(tmp_path, chain, key), store=MemoryStore())
    assert refused.value.reason == "KEY_FILE_PERMISSIONS"
