"""``trustwire run``: run a command as a process PU of this host's enforcer.

    trustwire run --label app=web [--label k=v ...] [--namespace NS] [--name NAME]
                  [--port name:number ...] [--fail-mode closed|open] [--socket PATH] -- CMD ARGS

No instruction of the command runs before it is enforced:

1. ``PrepareRun``: the enforcer validates the request and creates an empty cgroup v2.
2. This process forks. The child writes its pid into the cgroup's ``cgroup.procs``, asks to be
   traced (``PTRACE_TRACEME``) and ``execvp``s the command: the kernel stops it with SIGTRAP
   right after the exec, before its first instruction, so ``/proc/<pid>/exe`` is already the
   real executable.
3. ``StartRun``: the enforcer attests the stopped child (executable SHA-256 through
   ``/proc/<pid>/exe``, uid, cgroup), installs interception matching the cgroup, registers the
   PU and obtains its identity document.
4. ``PTRACE_DETACH`` lets the command run. SIGINT, SIGTERM and SIGHUP are forwarded to it; the
   exit status of ``trustwire run`` is the command's (128 + signal number when it was killed).
   On exit the PU is removed (``RemovePu``); the enforcer also notices the exit by itself, so a
   killed ``trustwire run`` leaves nothing behind.

If anything fails before step 4 the child is killed without having run (``PTRACE_O_EXITKILL``
also kills it should this process die while it is stopped).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import sys
from types import FrameType
from typing import Any

from trustwire.api.enforcer.v1 import enforcer_local_service_pb2 as local_pb
from trustwire.api.policy.v1 import processing_unit_pb2 as pu_pb
from trustwire.errors import InvalidArgument, TrustwireError
from trustwire.policy.model import RESERVED_LABELS
from trustwire_enforcer.local_api import LocalApiClient

from .enforcer_commands import client_for, parse_labels, parse_ports, socket_option

__all__ = ["register"]

_PTRACE_TRACEME = 0
_PTRACE_DETACH = 17
_PTRACE_SETOPTIONS = 0x4200
_PTRACE_O_EXITKILL = 0x100000
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_EXEC_FAILED = 127  # the shell's status for "command not found / not executable"


def register(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run a command as a process PU of this host's enforcer",
        description="Run CMD in its own cgroup, attested and enforced before it starts.",
    )
    run.add_argument("--label", action="append", default=[], metavar="K=V", help="repeatable")
    run.add_argument("--namespace", default="default", help="the PU's namespace")
    run.add_argument("--name", default="", help="PU name (default: command name + suffix)")
    run.add_argument(
        "--port", action="append", default=[], metavar="NAME:NUMBER", help="served TCP port"
    )
    run.add_argument("--fail-mode", choices=("closed", "open"), default="closed")
    socket_option(run)
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS")
    run.set_defaults(handler=run_command)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    return libc


def _ptrace(libc: ctypes.CDLL, request: int, pid: int, data: int = 0) -> None:
    if libc.ptrace(request, pid, None, ctypes.c_void_p(data)) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({request}): {os.strerror(err)}")


def _child(cgroup_procs: str, argv: list[str], libc: ctypes.CDLL) -> None:
    """In the forked child: join the cgroup, ask to be traced, exec. Never returns."""
    try:
        with open(cgroup_procs, "w") as fh:
            fh.write(str(os.getpid()))
        _ptrace(libc, _PTRACE_TRACEME, 0)
        # Running the user's command is the point; no shell is involved (argv as given).
        os.execvp(argv[0], argv)  # noqa: S606
    except BaseException as exc:  # the child must never return into the CLI
        with contextlib.suppress(Exception):
            os.write(2, f"trustwire: cannot start {argv[0]}: {exc}\n".encode())
    os._exit(_EXEC_FAILED)


def _status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def _validate(args: argparse.Namespace) -> tuple[list[str], str, dict[str, str]]:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise InvalidArgument("run: no command given (trustwire run [options] -- CMD ARGS)")
    labels = parse_labels(args.label)
    reserved = sorted(set(labels) & RESERVED_LABELS)
    if reserved:
        raise InvalidArgument(
            f"--label {reserved[0]}: reserved label, set by attestation, not by the caller",
            field="--label",
        )
    executable = shutil.which(command[0])
    if executable is None:
        raise InvalidArgument(f"run: executable not found: {command[0]!r}", field="command")
    return command, os.path.abspath(executable), labels


def run_command(args: argparse.Namespace) -> int:
    command, executable, labels = _validate(args)
    client = client_for(args)
    request = local_pb.PrepareRunRequest(
        executable=executable,
        name=args.name,
        namespace=args.namespace,
        labels=labels,
        ports=parse_ports(args.port),
        fail_mode=pu_pb.FAIL_MODE_OPEN if args.fail_mode == "open" else pu_pb.FAIL_MODE_CLOSED,
    )
    prepared = local_pb.PrepareRunResponse.FromString(
        asyncio.run(client.call("PrepareRun", request.SerializeToString()))
    )
    libc = _libc()
    cgroup_procs = os.path.join(prepared.cgroup_path, "cgroup.procs")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(cgroup_procs, command, libc)
    try:
        _, status = os.waitpid(pid, 0)
        if not os.WIFSTOPPED(status):
            # The exec failed (the child said why on stderr) or it was killed: nothing ran.
            _remove(client, prepared.pu_id)
            return _status_code(status)
        _ptrace(libc, _PTRACE_SETOPTIONS, pid, _PTRACE_O_EXITKILL)
        asyncio.run(
            client.call(
                "StartRun",
                local_pb.StartRunRequest(pu_id=prepared.pu_id, pid=pid).SerializeToString(),
            )
        )
        return _supervise(libc, pid, client, prepared.pu_id)
    except BaseException:
        # Not started (or this process is being interrupted): the command must not run
        # unenforced. SIGKILL works on a stopped tracee; reap it so no zombie is left.
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        with contextlib.suppress(TrustwireError, OSError):
            _remove(client, prepared.pu_id)
        raise


def _supervise(libc: ctypes.CDLL, pid: int, client: LocalApiClient, pu_id: str) -> int:
    """Let the command run, forward signals, wait for it, remove its PU, return its status."""

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        _ptrace(libc, _PTRACE_DETACH, pid, 0)  # data 0: the exec's SIGTRAP is not delivered
        while True:
            _, status = os.waitpid(pid, 0)  # retried by Python on EINTR (PEP 475)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # The enforcer removes the PU by itself too (it watches the process); this is the fast path.
    with contextlib.suppress(TrustwireError, OSError):
        _remove(client, pu_id)
    return _status_code(status)


def _remove(client: LocalApiClient, pu_id: str) -> None:
    asyncio.run(client.call("RemovePu", local_pb.RemovePuRequest(pu_id=pu_id).SerializeToString()))
