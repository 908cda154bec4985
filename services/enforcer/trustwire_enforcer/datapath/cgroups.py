"""cgroup v2 groups for process PUs: where they live, how nftables names them, their lifecycle.

A process PU (``trustwire run``) is a cgroup v2 directory ``<cgroup2 mount>/trustwire/<name>``:
whatever runs in it is the PU. The datapath matches its sockets with nftables'
``socket cgroupv2 level N "<path>"``; nft resolves the path relative to ``/sys/fs/cgroup``
(not to the cgroup2 mount: on hybrid hosts cgroup2 is at ``/sys/fs/cgroup/unified``) and needs
the level (depth below the cgroup2 root) spelled out, so :class:`CgroupMatch` carries both.

The cgroup2 mount is read from ``/proc/self/mountinfo``, never assumed: ``/sys/fs/cgroup`` on
pure v2 hosts, ``/sys/fs/cgroup/unified`` on hybrid ones.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from trustwire_enforcer.datapath.errors import DatapathError

__all__ = [
    "NFT_CGROUP_ROOT",
    "CgroupError",
    "CgroupMatch",
    "TrustwireCgroups",
    "cgroup2_mount",
    "cgroup_of",
]

# nft resolves ``socket cgroupv2`` paths relative to this directory (nftables' src/datatype.c).
NFT_CGROUP_ROOT = Path("/sys/fs/cgroup")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class CgroupError(DatapathError):
    """cgroup v2 is not usable here, or a cgroup could not be created or removed."""

    default_reason = "CGROUP_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class CgroupMatch:
    """How an nft rule names one cgroup: ``socket cgroupv2 level {level} "{nft_path}"``."""

    nft_path: str  # relative to /sys/fs/cgroup, e.g. "unified/trustwire/node-a.web-1"
    level: int  # depth below the cgroup2 root, e.g. 2

    def __post_init__(self) -> None:
        # The path is quoted into an nft script: refuse anything that could end the string.
        if not self.nft_path or any(c in self.nft_path for c in '"\\\n;{}#'):
            raise ValueError(f"unusable cgroup path for nft: {self.nft_path!r}")
        if self.level < 1:
            raise ValueError("a PU cgroup is below the cgroup2 root (level >= 1)")

    @property
    def expression(self) -> str:
        return f'socket cgroupv2 level {self.level} "{self.nft_path}"'


def cgroup2_mount(mountinfo: str | None = None) -> Path:
    """The cgroup2 mount point, from ``/proc/self/mountinfo`` (or the text given, for tests)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError as error:
            raise CgroupError(f"cannot read /proc/self/mountinfo: {error.strerror}") from None
    for line in mountinfo.splitlines():
        # "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype> ..."
        left, sep, right = line.partition(" - ")
        if not sep or not right.startswith("cgroup2 "):
            continue
        fields = left.split()
        if len(fields) >= 5:
            # Octal escapes (\040 for a space) as the kernel writes them.
            return Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    raise CgroupError("cgroup v2 is not mounted on this host (no cgroup2 in mountinfo)")


def cgroup_of(pid: int) -> str:
    """The cgroup v2 path of ``pid`` relative to the cgroup2 root ("/trustwire/x")."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError as error:
        raise CgroupError(f"cannot read /proc/{pid}/cgroup: {error.strerror}") from None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise CgroupError(f"process {pid} has no cgroup v2 membership")


class TrustwireCgroups:
    """``<cgroup2 mount>/trustwire/<name>`` directories: create, match, empty, remove."""

    def __init__(self, mount: Path | None = None, parent: str = "trustwire") -> None:
        self.mount = mount if mount is not None else cgroup2_mount()
        self.root = self.mount / parent

    def path(self, name: str) -> Path:
        if not _NAME.match(name) or name in (".", ".."):
            raise CgroupError(f"invalid cgroup name {name!r}")
        return self.root / name

    def create(self, name: str) -> Path:
        """A new, empty cgroup. Refuses an existing one: it could hold processes already."""
        path = self.path(name)
        try:
            self.root.mkdir(mode=0o755, exist_ok=True)
            path.mkdir(mode=0o755)
        except FileExistsError:
            raise CgroupError(f"cgroup {path} exists already") from None
        except OSError as error:
            raise CgroupError(f"cannot create cgroup {path}: {error.strerror}") from None
        return path

    def match(self, path: Path) -> CgroupMatch:
        try:
            nft_path = path.relative_to(NFT_CGROUP_ROOT)
            level = len(path.relative_to(self.mount).parts)
        except ValueError:
            raise CgroupError(
                f"cgroup {path} is not under {NFT_CGROUP_ROOT}, where nft resolves cgroups"
            ) from None
        return CgroupMatch(str(nft_path), level)

    def relative(self, path: Path) -> str:
        """As ``/proc/<pid>/cgroup`` names it: "/trustwire/<name>"."""
        return "/" + str(path.relative_to(self.mount))

    @staticmethod
    def procs(path: Path) -> list[int]:
        try:
            return [int(x) for x in (path / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []
        except OSError as error:
            raise CgroupError(f"cannot read {path}/cgroup.procs: {error.strerror}") from None

    @staticmethod
    def populated(path: Path) -> bool:
        try:
            text = (path / "cgroup.events").read_text()
        except FileNotFoundError:
            return False
        except OSError as error:
            raise CgroupError(f"cannot read {path}/cgroup.events: {error.strerror}") from None
        return "populated 1" in text

    @classmethod
    def kill(cls, path: Path) -> None:
        """SIGKILL everything in the cgroup (``cgroup.kill``, Linux 5.14+; else pid by pid)."""
        try:
            (path / "cgroup.kill").write_text("1")
            return
        except FileNotFoundError:
            if not path.exists():
                return
        except OSError:
            pass
        for pid in cls.procs(path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    @staticmethod
    def remove(path: Path) -> bool:
        """rmdir; True when gone (or never there), False while processes are still inside."""
        try:
            path.rmdir()
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno == errno.EBUSY:  # still populated
                return False
            raise CgroupError(f"cannot remove cgroup {path}: {error.strerror}") from None
        return True
