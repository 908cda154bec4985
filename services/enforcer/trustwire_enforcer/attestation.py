"""What the enforcer observes about a process before it becomes a PU (``trustwire run``).

Every fact comes from the kernel (``/proc/<pid>``), never from the caller: the executable's
SHA-256 is read through ``/proc/<pid>/exe`` (the file the process actually runs, even if its
path was replaced since), the uid from ``/proc/<pid>/status``, the cgroup from
``/proc/<pid>/cgroup``, the network namespace from ``/proc/<pid>/ns/net``.

The process must be the caller's child, traced by the caller and stopped (``trustwire run``
stops it with ``PTRACE_TRACEME`` right after ``execve``, before its first instruction): so
what is hashed is what will run, and nothing of it has run yet. A pidfd taken first pins the
process: if it is replaced by another process with the same pid, the pidfd no longer refers
to a live process and attestation fails.
"""

from __future__ import annotations

import hashlib
import os
import select
from dataclasses import dataclass
from pathlib import Path

from trustwire.errors import FailedPrecondition, NotFound, PermissionDenied

__all__ = ["ProcessFacts", "attest_process", "process_start_time"]

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    pid: int
    exe_sha256: str
    exe_path: str
    uid: int
    cgroup: str  # relative to the cgroup2 root: "/trustwire/<name>"
    netns_inode: int
    start_time: int  # clock ticks after boot (/proc/<pid>/stat field 22): pid reuse check


def _status(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (the process name, field 2, may contain spaces and ')')."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text.rpartition(")")[2].split()[19])


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _alive(pidfd: int) -> bool:
    # A pidfd polls readable once its process has exited.
    return not select.select([pidfd], [], [], 0)[0]


def attest_process(pid: int, caller_pid: int, expected_cgroup: str) -> ProcessFacts:
    """Facts of ``pid``; refuses (``FailedPrecondition``) a process that is not the caller's
    stopped, traced child in ``expected_cgroup``. Blocking (reads and hashes a file)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise NotFound(f"pid: no process {pid}", reason="PROCESS_NOT_FOUND") from None
    try:
        try:
            status = _status(pid)
            start = process_start_time(pid)
            exe_path = os.readlink(f"/proc/{pid}/exe")
            exe_sha256 = _sha256(f"/proc/{pid}/exe")
            cgroup = ""
            for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
                if line.startswith("0::"):
                    cgroup = line[3:]
            netns_inode = os.stat(f"/proc/{pid}/ns/net").st_ino
        except FileNotFoundError:
            raise NotFound(f"pid: process {pid} exited", reason="PROCESS_NOT_FOUND") from None
        except PermissionError as error:
            raise PermissionDenied(f"pid: cannot inspect process {pid}: {error}") from None
        if int(status.get("PPid", "0")) != caller_pid:
            raise FailedPrecondition(
                f"pid: process {pid} is not a child of the caller", reason="NOT_CALLERS_CHILD"
            )
        if int(status.get("TracerPid", "0")) != caller_pid or not status.get(
            "State", ""
        ).startswith("t"):
            raise FailedPrecondition(
                f"pid: process {pid} is not stopped under the caller's trace (it may have run)",
                reason="PROCESS_NOT_STOPPED",
            )
        if cgroup != expected_cgroup:
            raise FailedPrecondition(
                f"pid: process {pid} is in cgroup {cgroup!r}, not {expected_cgroup!r}",
                reason="WRONG_CGROUP",
            )
        # Real uid: who started the process (a set-uid executable changes only the effective).
        uid = int(status["Uid"].split()[0])
        if not _alive(pidfd) or process_start_time(pid) != start:
            raise NotFound(f"pid: process {pid} exited", reason="PROCESS_NOT_FOUND")
        return ProcessFacts(pid, exe_sha256, exe_path, uid, cgroup, netns_inode, start)
    finally:
        os.close(pidfd)
