"""The CA: leaf profile, serials, key-file permissions, persistence and rollover."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from trustwire.errors import FailedPrecondition
from trustwire.identity import Role, SpiffeId
from trustwire_identity.ca import BACKDATE, CertificateAuthority, generate_key, load_signing_ca

from .conftest import START, TRUST_DOMAIN

NODE = SpiffeId(TRUST_DOMAIN, Role.ENFORCER, "node-1")


def test_enforcer_certificate_profile(authority: CertificateAuthority) -> None:
    issued = authority.active.issue(
        generate_key().public_key(), NODE, ttl=timedelta(hours=1), now=START, dns_names=["node-1"]
    )
    cert = issued.certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster-a.example/enforcer/node-1"
    ]
    assert san.get_values_for_type(x509.DNSName) == ["node-1"]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert not usage.value.key_encipherment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc == START + timedelta(hours=1)
    assert cert.not_valid_before_utc == START - BACKDATE
    assert issued.chain == (cert,)
    cert.verify_directly_issued_by(authority.active.anchor)


def test_serials_are_random_128_bit(authority: CertificateAuthority) -> None:
    key = generate_key().public_key()
    serials = [
        authority.active.issue(key, NODE, ttl=timedelta(hours=1), now=START).serial
        for _ in range(64)
    ]
    assert len(set(serials)) == 64
    assert all(0 < s < 2**128 for s in serials)
    # 64 uniform 128-bit values: the top bit is set in some and clear in others.
    assert {s >> 127 for s in serials} == {0, 1}


def test_leaves_never_outlive_the_ca(authority: CertificateAuthority) -> None:
    late = authority.active.not_after - timedelta(minutes=10)
    issued = authority.active.issue(
        generate_key().public_key(), NODE, ttl=timedelta(hours=1), now=late
    )
    assert issued.not_after == authority.active.not_after


def test_a_group_or_world_readable_ca_key_is_refused(tmp_path: Path) -> None:
    ca = CertificateAuthority.open_self_managed(
        TRUST_DOMAIN, tmp_path / "ca", now=START, ca_ttl=timedelta(days=30)
    )
    key_file = tmp_path / "ca" / "active.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    os.chmod(key_file, 0o644)
    with pytest.raises(FailedPrecondition) as refused:
        load_signing_ca(tmp_path / "ca" / "active.crt", key_file)
    assert refused.value.reason == "KEY_FILE_PERMISSIONS"
    with pytest.raises(FailedPrecondition):
        CertificateAuthority.open_self_managed(
            TRUST_DOMAIN, tmp_path / "ca", now=START, ca_ttl=timedelta(days=30)
        )
    assert ca.active.anchor is not None


def test_self_managed_ca_is_created_once_and_reloaded(tmp_path: Path) -> None:
    first = CertificateAuthority.open_self_managed(
        TRUST_DOMAIN, tmp_path, now=START, ca_ttl=timedelta(days=30)
    )
    again = CertificateAuthority.open_self_managed(
        TRUST_DOMAIN, tmp_path, now=START + timedelta(days=1), ca_ttl=timedelta(days=30)
    )
    assert again.active.anchor == first.active.anchor
    assert again.ca_sha256 == first.ca_sha256


def test_rollover_prepublishes_then_activates_and_keeps_the_old_root(tmp_path: Path) -> None:
    ca = CertificateAuthority.open_self_managed(
        TRUST_DOMAIN, tmp_path, now=START, ca_ttl=timedelta(days=60)
    )
    assert ca.rotated(START + timedelta(days=29)) is ca
    sequence = ca.bundle_sequence(START)

    prepared = ca.rotated(START + timedelta(days=31))
    assert prepared.next is not None
    assert prepared.active is ca.active
    assert len(prepared.anchors(START + timedelta(days=31))) == 2
    assert prepared.bundle_sequence(START + timedelta(days=31)) > sequence

    activated = prepared.rotated(START + timedelta(days=51))
    assert activated.active.anchor == prepared.next.anchor
    assert activated.retired == (ca.active.anchor,)
    assert len(activated.anchors(START + timedelta(days=51))) == 2
    # Once the old root expires it leaves the bundle, and the sequence number grows again.
    after = START + timedelta(days=61)
    assert activated.anchors(after) == (activated.active.anchor,)
    assert activated.bundle_sequence(after) > activated.bundle_sequence(START + timedelta(days=51))
    reloaded = CertificateAuthority.open_self_managed(
        TRUST_DOMAIN, tmp_path, now=after, ca_ttl=timedelta(days=60)
    )
    assert reloaded.active.anchor == activated.active.anchor
    assert reloaded.retired == activated.retired
