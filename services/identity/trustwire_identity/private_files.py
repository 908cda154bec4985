"""Files that hold private keys: written 0600 atomically, and refused when others can read them.

Contract: a private key is only ever written through :func:`write_private` (mode 0600 from the
moment the file exists: it is created with that mode, never chmod-ed afterwards, so there is
no window in which it is readable by others) and only ever read through
:func:`read_private`, which refuses a file whose group or other permission bits are set.
A key that others could read must be treated as compromised, so the service refuses to start
rather than "fixing" the mode (the same rule as OpenSSH's ``UNPROTECTED PRIVATE KEY FILE``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from trustwire.errors import FailedPrecondition

__all__ = ["PRIVATE_MODE", "read_private", "write_private"]

PRIVATE_MODE = 0o600


def write_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600, creating parent directories 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_MODE)
    try:
        # The umask may have cleared owner bits at creation; group/other can only be narrower.
        os.fchmod(fd, PRIVATE_MODE)
        with os.fdopen(fd, "wb") as file:
            fd = -1
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    finally:
        if fd >= 0:
            os.close(fd)
    os.replace(temporary, path)


def read_private(path: Path) -> bytes:
    """The contents of ``path``; ``FailedPrecondition`` (``KEY_FILE_PERMISSIONS``) when the file
    is accessible to its group or to others."""
    with path.open("rb") as file:
        mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
        if mode & 0o077:
            raise FailedPrecondition(
                f"private key file {path} has mode {mode:04o}: it must not be accessible to group "
                f"or others (run: chmod 600 {path})",
                reason="KEY_FILE_PERMISSIONS",
                metadata={"path": str(path), "mode": f"{mode:04o}"},
            )
        return file.read()
