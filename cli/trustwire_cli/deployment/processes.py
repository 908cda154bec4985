"""Child processes of a local deployment: start with logs in the state directory, record in the
manifest, stop by recorded pid. Every wait here is bounded.

Children run in their own session (``start_new_session``): a Ctrl-C in the terminal reaches
only ``trustwire up``, which then stops them in order (enforcers before the control plane they
report to) instead of all of them dying at once mid-write.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from trustwire.errors import FailedPrecondition

from .state import Manifest, RecordedProcess

__all__ = ["Child", "eventually", "spawn", "stop_recorded"]

STOP_GRACE_S = 5.0  # SIGTERM, then SIGKILL after this


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check_running(self) -> None:
        """Raise naming the log when the child exited (a start that failed)."""
        code = self.process.poll()
        if code is not None:
            raise FailedPrecondition(
                f"{self.name} exited with status {code}: {last_line(self.log)} (log: {self.log})"
            )


def last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"


def spawn(
    manifest: Manifest,
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    manifest.add_process(name, process.pid)
    return Child(name, process, log)


async def eventually(
    what: str,
    check: Callable[[], Awaitable[bool]],
    timeout: float,  # noqa: ASYNC109 - the bound goes into the message, with the log to read
    *,
    child: Child | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` naming ``what`` (and the child's
    log when it died meanwhile). Polling is the only signal across a process boundary here."""
    deadline = time.monotonic() + timeout
    while True:
        if child is not None:
            child.check_running()
        try:
            if await check():
                return
        except Exception:  # noqa: S110 - not ready yet (connection refused, file half-written)
            pass
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # A gRPC call cancelled under us surfaces as an error (CANCELLED), not as
            # CancelledError, and was swallowed above: honour the cancellation (Ctrl-C).
            raise asyncio.CancelledError
        if time.monotonic() >= deadline:
            where = f" (log: {child.log})" if child is not None else ""
            raise FailedPrecondition(f"timed out after {timeout:g} s waiting for {what}{where}")
        await asyncio.sleep(interval)


def stop_recorded(processes: Sequence[RecordedProcess], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM every live recorded process (in the given order), wait up to ``grace`` for each
    batch, SIGKILL what remains. A pid whose start time changed is another process: skipped."""
    live = [p for p in processes if p.alive()]
    for process in live:
        _signal(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.alive() for p in live):
        _reap()
        time.sleep(0.05)
    for process in live:
        if process.alive():
            _signal(process, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.alive() for p in live):
        _reap()
        time.sleep(0.05)


def _signal(process: RecordedProcess, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signum)


def _reap() -> None:
    # Our own children stay zombies (and "alive" by their /proc entry) until waited for.
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
