"""The replica's own certificate: loaded from its ``tls`` files at start, renewed with the
identity service before it expires, and written back to the same files.

A replica enrols like every Trustwire service (a ``service`` join token) and serves mutual TLS
from three files: ``tls.certificate`` (chain, leaf first), ``tls.key`` and ``tls.client_ca``
(the trust bundle). With ``identity.address`` set, :class:`CertificateRenewal` keeps them fresh
the way an enforcer keeps its own: the identity client's :class:`CredentialRotator` renews over
mutual TLS at half life ±10 %, retries with backoff and gives up only once the certificate has
expired. Each renewed credential is written to the three files (:class:`CertificateFiles`); the
gRPC server re-reads them on the next handshake (``RotatingServerTLS.from_files``), so new
connections get the new certificate and established ones keep theirs.

Edge module: it talks to the identity service through its client (gRPC).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trustwire.errors import FailedPrecondition, InvalidArgument, TrustwireError
from trustwire_identity.ca import certificates_to_pem, key_to_pem
from trustwire_identity.client import CredentialRotator, IdentityClient, NodeCredential, Sleep
from trustwire_identity.clock import Clock, system_clock
from trustwire_identity.private_files import read_private, write_private

__all__ = ["CertificateFiles", "CertificateRenewal"]

_log = logging.getLogger("trustwire.policy.credential")

# Mode of a rewritten certificate or bundle file that did not exist before (public material).
_PUBLIC_MODE = 0o644


class CertificateFiles:
    """The three ``tls`` files of a replica as one credential: ``load`` at start, ``save`` after
    each renewal. ``save`` keeps ``CredentialFiles``' contract (atomic files, key 0600 and
    written last) for three separate paths, as operators name them in the settings."""

    def __init__(self, certificate: Path, key: Path, client_ca: Path) -> None:
        self.certificate = certificate
        self.key = key
        self.client_ca = client_ca

    def load(self, now: datetime) -> NodeCredential:
        """The credential in the files; ``InvalidArgument`` (a file that does not parse) or
        ``FailedPrecondition`` (unreadable, key not matching the leaf, expired at ``now``),
        each naming the setting and the file."""
        chain = self._certificates(self.certificate, "tls.certificate")
        bundle = self._certificates(self.client_ca, "tls.client_ca")
        try:
            # read_private refuses a key others can read (KEY_FILE_PERMISSIONS), as every
            # Trustwire service does with the keys it owns.
            key_pem = read_private(self.key)
        except OSError as error:
            raise _unreadable("tls.key", self.key, error) from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            raise _invalid("tls.key", self.key, "is not an unencrypted PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            # What the identity service issues for; renewal sends a CSR signed by a new one.
            raise _invalid("tls.key", self.key, "must be an ECDSA key")
        if key.public_key() != chain[0].public_key():
            raise FailedPrecondition(
                f"tls.key {self.key} does not belong to the certificate in tls.certificate "
                f"{self.certificate} (a renewal interrupted between the two files, or files of "
                "two credentials): enrol the replica again with a new join token",
                reason="TLS_KEY_MISMATCH",
                metadata={"field": "tls.key", "path": str(self.key)},
            )
        credential = NodeCredential(key, chain, bundle)
        if credential.not_after <= now:
            raise FailedPrecondition(
                f"the certificate in tls.certificate {self.certificate} expired at "
                f"{credential.not_after.isoformat()}: an expired certificate cannot be renewed, "
                "enrol the replica again with a new join token",
                reason="CERTIFICATE_EXPIRED",
                metadata={"field": "tls.certificate", "path": str(self.certificate)},
            )
        return credential

    def save(self, credential: NodeCredential) -> None:
        """Replace the three files, each atomically (temporary file, then rename)."""
        _replace_public(self.certificate, certificates_to_pem(credential.chain))
        _replace_public(self.client_ca, certificates_to_pem(credential.bundle))
        # Key last (as CredentialFiles): a crash in between leaves a chain that does not match
        # the old key, which load() refuses, rather than a new key silently paired with an old
        # chain. A handshake between the renames is refused by gRPC (key and certificate do
        # not match) and keeps the previous material until the key is in place.
        write_private(self.key, key_to_pem(credential.key))

    @staticmethod
    def _certificates(path: Path, setting: str) -> tuple[x509.Certificate, ...]:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise _unreadable(setting, path, error) from None
        try:
            certificates = tuple(x509.load_pem_x509_certificates(data))
        except ValueError:
            certificates = ()
        if not certificates:
            raise _invalid(setting, path, "holds no PEM certificate")
        return certificates


def _replace_public(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` (a certificate or bundle) keeping its permission bits: the
    temporary file is in the same directory, so the rename never crosses a file system."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = _PUBLIC_MODE
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _unreadable(setting: str, path: Path, error: OSError) -> FailedPrecondition:
    return FailedPrecondition(
        f"cannot read {setting} {path}: {error.strerror or error}",
        reason="TLS_FILE_UNREADABLE",
        metadata={"field": setting, "path": str(path)},
    )


def _invalid(setting: str, path: Path, problem: str) -> InvalidArgument:
    return InvalidArgument(
        f"{setting} {path} {problem}",
        field=setting,
        reason="TLS_FILE_INVALID",
        metadata={"path": str(path)},
    )


def _describe(credential: NodeCredential) -> dict[str, str]:
    return {
        "spiffe_id": credential.spiffe_id,
        "serial": format(credential.certificate.serial_number, "x"),
        "not_after": credential.not_after.isoformat(),
    }


class _LoggingIdentityClient(IdentityClient):
    """The identity client whose failed renewals are logged: CredentialRotator retries them
    silently, and an operator must see why a certificate is getting close to its end."""

    async def renew(self) -> NodeCredential:
        try:
            return await super().renew()
        except TrustwireError as error:
            _log.warning(
                "certificate renewal failed; retrying while the certificate is valid",
                extra={
                    "reason": error.reason,
                    "error": error.message,
                    "identity_address": self.address,
                    "not_after": self.credential.not_after.isoformat(),
                },
            )
            raise


class CertificateRenewal:
    """Runs the renewal of ``credential`` (loaded from ``files``) against the identity service
    at ``address`` as a task, from :meth:`start` until :meth:`stop`.

    The task outlives failures: a renewal that fails is retried by the rotator (with
    backoff, until the certificate expires); files that cannot be written are retried here
    with backoff (the renewed credential is kept in memory until they are; the server keeps
    presenting the previous files meanwhile). Only an expired certificate ends it: then only
    a new join token helps, which the log says.
    """

    def __init__(
        self,
        files: CertificateFiles,
        credential: NodeCredential,
        address: str,
        *,
        server_name: str | None = None,
        tracer_provider: Any = None,
        clock: Clock = system_clock,
        sleep: Sleep = asyncio.sleep,
        max_backoff: float = 60.0,
    ) -> None:
        self.files = files
        self._credential = credential
        self._address = address
        self._server_name = server_name
        self._tracer_provider = tracer_provider
        self._clock = clock
        self._sleep = sleep
        self._max_backoff = max_backoff
        self._client: IdentityClient | None = None
        self._task: asyncio.Task[None] | None = None
        # A renewed credential not yet in the files (the write failed), and the delay before
        # the next attempt to write it (reset by a successful write).
        self._unsaved = False
        self._backoff = 1.0

    @property
    def credential(self) -> NodeCredential:
        """The newest credential (the one in the files unless a write failed)."""
        return self._client.credential if self._client is not None else self._credential

    def start(self) -> None:
        self._client = _LoggingIdentityClient(
            self._address,
            self._credential,
            server_name=self._server_name,
            tracer_provider=self._tracer_provider,
        )
        self._task = asyncio.create_task(self._run(self._client), name="certificate-renewal")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.close()

    async def _run(self, client: IdentityClient) -> None:
        while True:
            try:
                if self._unsaved:
                    self._save(client.credential)
                rotator = CredentialRotator(
                    client,
                    # Its ``files`` is a CredentialFiles (one directory); _renewed persists.
                    None,
                    clock=self._clock,
                    sleep=self._sleep,
                    max_backoff=self._max_backoff,
                    on_renewed=self._renewed,
                )
                _log.info(
                    "certificate renewal scheduled",
                    extra={
                        **_describe(client.credential),
                        "renew_at": rotator.next_renewal.isoformat(),
                        "identity_address": self._address,
                    },
                )
                await rotator.run()
                return  # not reached: run() returns only by raising
            except Exception as error:
                if self._clock() >= client.credential.not_after:
                    # The rotator gives up only here: an expired certificate cannot renew.
                    _log.error(
                        "certificate expired without being renewed; renewal stopped: enrol "
                        "the replica again with a new join token",
                        extra={
                            **_describe(client.credential),
                            "reason": getattr(error, "reason", type(error).__name__),
                        },
                    )
                    return
                if isinstance(error, OSError):
                    _log.error(
                        "cannot write the renewed certificate files; the previous certificate "
                        "is served until a retry succeeds",
                        extra={
                            **_describe(client.credential),
                            "reason": "TLS_FILE_WRITE_FAILED",
                            "error": str(error),
                            "retry_in_s": self._backoff,
                        },
                    )
                else:
                    # Not a failed call (the rotator retries those itself): keep renewing
                    # rather than let the certificate run out behind a dead task.
                    _log.exception(
                        "certificate renewal stopped unexpectedly; restarting it",
                        extra={"retry_in_s": self._backoff},
                    )
            await self._sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self._max_backoff)

    def _renewed(self, credential: NodeCredential) -> None:
        self._unsaved = True
        self._save(credential)

    def _save(self, credential: NodeCredential) -> None:
        self.files.save(credential)
        self._unsaved = False
        self._backoff = 1.0
        _log.info(
            "certificate renewed; new connections get it",
            extra={**_describe(credential), "certificate": str(self.files.certificate)},
        )
