"""The state directory of a local deployment: what ``up`` started, so ``down`` can undo it.

Layout (everything ``up`` writes lives here; nothing else on the machine is touched except the
network namespaces and process PU cgroups it records)::

    deployment.json     manifest: processes (pid + kernel start time), namespaces, cgroups
    config              CLI connection file (TRUSTWIRE_CONFIG) with the policy address
    logs/<name>.log     stdout and stderr of every child process
    etcd/ identity/ policy-1/ policy-2/ enforcer-a/ enforcer-b/   their state
    pu-<name>/          a process PU's agent control socket

The manifest is rewritten (atomically) after every process start and namespace creation, and
before each process PU's cgroup can exist (the enforcer creates it, under a name known in
advance), so a ``down`` after a crash of ``up`` at any point finds everything. A pid is
recorded with the process's start time (``/proc/<pid>/stat`` field 22), so a recycled pid is
never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trustwire.errors import FailedPrecondition

__all__ = ["MANIFEST", "Manifest", "RecordedProcess", "prepare_state_dir", "process_start_time"]

MANIFEST = "deployment.json"
_VERSION = 1


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; ``None`` when it no longer exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its end.
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None  # exited, not yet reaped by its parent: nothing left to stop
    return int(fields[19])


@dataclass(frozen=True)
class RecordedProcess:
    name: str
    pid: int
    start_time: int

    def alive(self) -> bool:
        return process_start_time(self.pid) == self.start_time


@dataclass
class Manifest:
    path: Path
    processes: list[RecordedProcess] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    # Process PU cgroups (``down`` empties and removes them), and the parent directories that
    # did not exist before (removed when empty: another user of them may have come since).
    cgroups: list[str] = field(default_factory=list)
    cgroup_parents: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, state_dir: Path) -> Manifest:
        path = state_dir / MANIFEST
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as error:
            raise FailedPrecondition(f"{path}: unreadable manifest ({error})") from None
        return cls(
            path,
            [RecordedProcess(**p) for p in data.get("processes", [])],
            [str(n) for n in data.get("namespaces", [])],
            [str(c) for c in data.get("cgroups", [])],
            [str(c) for c in data.get("cgroup_parents", [])],
        )

    def save(self) -> None:
        data = {
            "version": _VERSION,
            "processes": [asdict(p) for p in self.processes],
            "namespaces": self.namespaces,
            "cgroups": self.cgroups,
            "cgroup_parents": self.cgroup_parents,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.path)

    def add_process(self, name: str, pid: int) -> None:
        start = process_start_time(pid)
        if start is not None:
            self.processes.append(RecordedProcess(name, pid, start))
            self.save()

    def add_namespace(self, name: str) -> None:
        if name not in self.namespaces:
            self.namespaces.append(name)
            self.save()

    def add_cgroup(self, path: Path) -> None:
        """Record a process PU's cgroup before it is created, and its parent if that does not
        exist yet (so the parent's removal is ours to do)."""
        parent = str(path.parent)
        if not path.parent.exists() and parent not in self.cgroup_parents:
            self.cgroup_parents.append(parent)
        if str(path) not in self.cgroups:
            self.cgroups.append(str(path))
        self.save()


def prepare_state_dir(state_dir: Path) -> Manifest:
    """Empty ``state_dir`` for a fresh deployment and return its (empty) manifest.

    Only a directory that is empty or was made by ``up`` (it has a manifest) is emptied, so a
    mistyped ``--state-dir /home`` deletes nothing. A manifest that still names live processes
    means a deployment runs there: refused.
    """
    if state_dir.exists():
        if not state_dir.is_dir():
            raise FailedPrecondition(f"--state-dir {state_dir} exists and is not a directory")
        manifest = Manifest.load(state_dir)
        if any(p.alive() for p in manifest.processes):
            raise FailedPrecondition(
                f"a deployment is running in {state_dir}: run 'trustwire down --state-dir "
                f"{state_dir}' first"
            )
        entries = list(state_dir.iterdir())
        if entries and not (state_dir / MANIFEST).exists():
            raise FailedPrecondition(
                f"--state-dir {state_dir} is not empty and was not made by 'trustwire up'"
            )
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (state_dir / "logs").mkdir(exist_ok=True)
    manifest = Manifest(state_dir / MANIFEST)
    manifest.save()
    return manifest
