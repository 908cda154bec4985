"""The replica's three TLS files as a credential: atomic replacement, modes, key written last,
and the startup checks that name the file at fault."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trustwire.errors import FailedPrecondition, InvalidArgument
from trustwire.identity import SpiffeId, TrustDomain
from trustwire_identity.ca import SigningCA, create_root, generate_key
from trustwire_identity.client import NodeCredential
from trustwire_policy.credential import CertificateFiles

NOW = datetime.now(UTC)
TD = TrustDomain("td.example")
POLICY = SpiffeId.parse("spiffe://td.example/service/policy-1")


@pytest.fixture(scope="module")
def ca() -> SigningCA:
    return create_root(TD, now=NOW, ttl=timedelta(days=1))


def credential(ca: SigningCA, ttl: timedelta = timedelta(hours=1)) -> NodeCredential:
    key = generate_key()
    issued = ca.issue(key.public_key(), POLICY, ttl=ttl, now=NOW, dns_names=("localhost",))
    return NodeCredential(key, issued.chain, (ca.certificate,))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def files(tmp_path: Path) -> CertificateFiles:
    return CertificateFiles(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem")


def test_saved_credential_loads_back_with_a_private_key_and_public_certificates(
    files: CertificateFiles, ca: SigningCA
) -> None:
    first = credential(ca)
    files.save(first)
    assert (mode(files.key), mode(files.certificate), mode(files.client_ca)) == (
        0o600,
        0o644,
        0o644,
    )
    loaded = files.load(NOW)
    assert loaded.chain == first.chain
    assert loaded.bundle == first.bundle
    assert loaded.key.private_numbers() == first.key.private_numbers()


def test_save_replaces_each_file_by_rename_keeping_certificate_modes(
    files: CertificateFiles, ca: SigningCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.save(credential(ca))
    files.certificate.chmod(0o640)  # an operator's choice for public files is kept
    inodes = {path: path.stat().st_ino for path in (files.certificate, files.key, files.client_ca)}
    renames: list[tuple[Path, Path]] = []
    real_replace: Callable[..., None] = os.replace

    def recording(source: str | Path, destination: str | Path) -> None:
        renames.append((Path(source), Path(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", recording)
    second = credential(ca)
    files.save(second)

    # Each file is a new inode renamed over the old one, from a temporary in its directory
    # (so a reader sees the old or the new file, never a partial one); key last.
    assert [destination for _, destination in renames] == [
        files.certificate,
        files.client_ca,
        files.key,
    ]
    assert all(source.parent == destination.parent for source, destination in renames)
    assert all(path.stat().st_ino != inode for path, inode in inodes.items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    assert (mode(files.certificate), mode(files.key)) == (0o640, 0o600)
    assert files.load(NOW).certificate == second.certificate


def test_an_interrupted_save_leaves_a_set_that_load_refuses_naming_the_key(
    files: CertificateFiles, ca: SigningCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.save(credential(ca))
    real_replace = os.replace

    def crash_at_the_key(source: str | Path, destination: str | Path) -> None:
        if Path(destination) == files.key:
            raise OSError("simulated crash")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", crash_at_the_key)
    with pytest.raises(OSError, match="simulated crash"):
        files.save(credential(ca))
    monkeypatch.undo()

    with pytest.raises(FailedPrecondition) as caught:
        files.load(NOW)
    assert caught.value.reason == "TLS_KEY_MISMATCH"
    assert caught.value.metadata["path"] == str(files.key)


def test_a_failed_certificate_write_leaves_the_old_file_and_no_temporary(
    files: CertificateFiles, ca: SigningCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = credential(ca)
    files.save(first)

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        files.save(credential(ca))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    assert files.load(NOW).certificate == first.certificate


def test_an_expired_certificate_is_refused_naming_the_file(
    files: CertificateFiles, ca: SigningCA
) -> None:
    old = credential(ca, ttl=timedelta(minutes=1))
    files.save(old)
    with pytest.raises(FailedPrecondition, match="expired") as caught:
        files.load(old.not_after)
    assert caught.value.reason == "CERTIFICATE_EXPIRED"
    assert caught.value.metadata == {"field": "tls.certificate", "path": str(files.certificate)}
    assert str(files.certificate) in caught.value.message


def test_a_key_others_can_read_is_refused(files: CertificateFiles, ca: SigningCA) -> None:
    files.save(credential(ca))
    files.key.chmod(0o644)
    with pytest.raises(FailedPrecondition) as caught:
        files.load(NOW)
    assert caught.value.reason == "KEY_FILE_PERMISSIONS"


def test_missing_and_malformed_files_name_the_setting(
    files: CertificateFiles, ca: SigningCA
) -> None:
    with pytest.raises(FailedPrecondition, match=r"tls\.certificate") as missing:
        files.load(NOW)
    assert missing.value.reason == "TLS_FILE_UNREADABLE"

    files.save(credential(ca))
    files.client_ca.write_text("not a certificate\n")
    with pytest.raises(InvalidArgument, match=r"tls\.client_ca .* holds no PEM certificate") as bad:
        files.load(NOW)
    assert bad.value.metadata["field"] == "tls.client_ca"
