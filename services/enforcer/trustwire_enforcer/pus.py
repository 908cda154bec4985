"""The PUs this enforcer serves: attest, intercept, register, obtain identity; and the reverse.

Adding a network-namespace PU (a pod): attest it (the namespace's inode, the IPv4 addresses
read from inside it), install interception in it (from here on its traffic is enforced: until
the policy view names it, decisions fail closed), register it with the policy service, obtain
its identity document, and persist the record. Any failure before the record is persisted
undoes what was done, so a PU is either fully served or untouched.

Records and documents are persisted so a restarted enforcer serves its PUs at once
(:meth:`LocalPus.restore`); re-registration and document refresh then happen in the
background whenever the control plane answers.

Process PUs (``trustwire run``) take two calls, because the cgroup must exist before the
process joins it and the process must be attested before it runs:
:meth:`LocalPus.prepare_run` creates an empty cgroup; the caller's child joins it and stops
right after ``execve``; :meth:`LocalPus.start_run` attests that stopped process
(``attestation.py``), installs interception matching the cgroup, registers the PU and obtains
its document, then the caller lets it run. The enforcer watches the process itself (a pidfd),
so the PU is removed when it exits even if the caller died. Removing a process PU first kills
whatever is left in its cgroup (nothing may run on in it without rules: fail closed), then
removes its rules, cgroup and record.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from trustwire.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    TrustwireError,
)
from trustwire.policy.model import RESERVED_LABELS
from trustwire_enforcer.attestation import attest_process, process_start_time
from trustwire_enforcer.datapath import FailMode, ProxyDatapath
from trustwire_enforcer.datapath.cgroups import TrustwireCgroups, cgroup_of
from trustwire_enforcer.datapath.netns import list_addresses, netns_path
from trustwire_enforcer.datapath.rules import remove_ruleset
from trustwire_enforcer.listeners import ListenerIndex, cgroup_ids
from trustwire_enforcer.state_files import PuFile, StoredPu

__all__ = ["DocumentSource", "LocalPus", "PreparedRun", "PuRegistry", "PuRequest", "RunRequest"]

_log = logging.getLogger("trustwire.enforcer.pus")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class PuRegistry(Protocol):
    """The policy service's PU records."""

    async def register_pu(self, pu: StoredPu) -> None: ...

    async def deregister_pu(self, pu_id: str) -> None: ...


class DocumentSource(Protocol):
    """The identity service's documents: ``(envelope, refresh_after_unix_seconds)``."""

    async def issue_document(self, pu: StoredPu) -> tuple[bytes, float]: ...


@dataclass(frozen=True)
class PuRequest:
    netns: str  # a name under /run/netns or a path such as /proc/<pid>/ns/net
    namespace: str
    labels: dict[str, str]
    name: str = ""
    ports: tuple[tuple[str, str, int], ...] = ()  # (name, protocol, number)
    fail_mode: str = "closed"


@dataclass(frozen=True)
class RunRequest:
    """``trustwire run``: the process PU to prepare (labels are the workload's own)."""

    executable: str
    namespace: str
    labels: dict[str, str]
    name: str = ""
    ports: tuple[tuple[str, str, int], ...] = ()  # (name, protocol, number)
    fail_mode: str = "closed"


@dataclass
class PreparedRun:
    """A cgroup waiting for its process (between ``PrepareRun`` and ``StartRun``)."""

    pu_id: str
    name: str
    request: RunRequest
    cgroup: Path
    caller_pid: int
    caller_uid: int
    deadline: float  # Unix seconds
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)


RUN_JOIN_TIMEOUT = 30.0  # seconds between PrepareRun and StartRun
_EMPTY_WAIT = 5.0  # bound on waiting for a killed cgroup to empty


class LocalPus:
    def __init__(
        self,
        enforcer_id: str,
        datapath: ProxyDatapath,
        registry: PuRegistry,
        documents: DocumentSource,
        file: PuFile,
        cgroups: Callable[[], TrustwireCgroups] = TrustwireCgroups,
    ) -> None:
        self.enforcer_id = enforcer_id
        self._datapath = datapath
        self._registry = registry
        self._documents = documents
        self._file = file
        # Resolved on first use: a host without cgroup v2 still serves namespace PUs.
        self._cgroups_factory = cgroups
        self._cgroups: TrustwireCgroups | None = None
        self._prepared: dict[str, PreparedRun] = {}
        self._watches: dict[str, int] = {}  # process PU id -> pidfd
        self._cleanups: set[asyncio.Task[None]] = set()
        self._pus: dict[str, StoredPu] = {}
        self._listeners = ListenerIndex()
        self._lock = asyncio.Lock()
        self._removed = asyncio.Condition()  # notified after each removal (for waiters)
        self._removing: set[str] = set()
        # Why a PU is not served (interception failed): its traffic follows its fail mode.
        self.last_errors: dict[str, str] = {}
        # PUs dropped at restart (their workload ended while the enforcer was down): their
        # policy-service records are deregistered by ``maintain`` once the control plane
        # answers, so peers stop listing them.
        self.dropped: set[str] = set()
        # Why a PU's record or document could not be refreshed: still served (from disk), the
        # control plane is retried on the next maintenance round.
        self.sync_errors: dict[str, str] = {}

    # ------------------------------------------------------------------ queries

    def document(self, pu_id: str) -> bytes | None:
        pu = self._pus.get(pu_id)
        return pu.document if pu is not None and pu.document else None

    def get(self, pu_id: str) -> StoredPu | None:
        return self._pus.get(pu_id)

    def all(self) -> list[StoredPu]:
        return [self._pus[k] for k in sorted(self._pus)]

    def listening_pu(
        self, pu_ids: Sequence[str], ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
    ) -> str | None:
        """Of the process PUs ``pu_ids`` (which share ``ip``), the one whose cgroup owns the
        socket listening on ``ip:port``: the PU the kernel will deliver the SYN to, and whose
        nft rules will redirect it. None when none of them listens there, when several do
        (``SO_REUSEPORT`` across PUs: the kernel picks per connection), or when the kernel
        could not be asked. Blocking, but one small netlink dump per namespace."""
        if not isinstance(ip, ipaddress.IPv4Address):
            return None
        owners: set[str] = set()
        by_netns: dict[int, list[StoredPu]] = {}
        for pu_id in pu_ids:
            pu = self._pus.get(pu_id)
            if pu is not None and pu.pu_type == "process":
                by_netns.setdefault(pu.netns_inode, []).append(pu)
        for inode, pus in by_netns.items():
            try:
                listeners = self._listeners.listeners(pus[0].netns, inode, ip, port)
            except OSError as error:
                _log.warning("listening sockets not readable: %s", error)
                return None
            ids = {listener.cgroup_id for listener in listeners}
            for pu in pus:
                if ids & cgroup_ids(Path(pu.cgroup_path)):
                    owners.add(pu.pu_id)
        return owners.pop() if len(owners) == 1 else None

    # ------------------------------------------------------------------ lifecycle

    async def restore(self) -> list[str]:
        """Serve every persisted PU again (interception first, from the records on disk);
        returns the ids restored. A PU whose namespace is gone, or is another namespace now
        (different inode), is dropped: its workload ended while the enforcer was down."""
        restored = []
        for pu in self._file.load().values():
            if pu.pu_type == "process":
                if not await self._restore_process(pu):
                    self.dropped.add(pu.pu_id)
                    continue
                restored.append(pu.pu_id)
                continue
            try:
                inode = os.stat(netns_path(pu.netns)).st_ino
            except OSError:
                inode = -1
            if inode != pu.netns_inode:
                _log.info("PU namespace gone while stopped; dropped", extra={"pu_id": pu.pu_id})
                self.dropped.add(pu.pu_id)
                continue
            try:
                await self._datapath.add_pu(pu.pu_id, pu.netns, fail_mode=FailMode(pu.fail_mode))
            except TrustwireError as error:
                self.last_errors[pu.pu_id] = str(error)
                continue
            self._pus[pu.pu_id] = pu
            restored.append(pu.pu_id)
        self._file.save(self._pus)
        return restored

    async def _restore_process(self, pu: StoredPu) -> bool:
        """A process PU after a restart: served again if its process still runs (same start
        time, same cgroup); otherwise its leftovers are cleaned up (its rules live on in a
        namespace shared with others, found by inode among the enforcer's own and the named
        ones) and it is dropped."""
        cgroup = Path(pu.cgroup_path)
        alive = False
        with contextlib.suppress(OSError, ValueError, TrustwireError):
            alive = (
                process_start_time(pu.pid) == pu.pid_start_time
                and cgroup_of(pu.pid) == self._cgroup_tree().relative(cgroup)
                and os.stat(f"/proc/{pu.pid}/ns/net").st_ino == pu.netns_inode
            )
        if alive:
            try:
                await self._datapath.add_pu(
                    pu.pu_id,
                    pu.netns,
                    fail_mode=FailMode(pu.fail_mode),
                    cgroup=self._cgroup_tree().match(cgroup),
                )
                self._watch(pu)
            except (TrustwireError, OSError) as error:
                self.last_errors[pu.pu_id] = str(error)
                return False
            self._pus[pu.pu_id] = pu
            return True
        _log.info("process PU ended while stopped; dropped", extra={"pu_id": pu.pu_id})
        netns = _named_netns_with_inode(pu.netns_inode)
        if netns is not None:
            with contextlib.suppress(TrustwireError, OSError):
                await asyncio.to_thread(remove_ruleset, netns, self._datapath.table_for(pu.pu_id))
        self._spawn_cleanup(self._empty_and_remove_cgroup(cgroup))
        return False

    async def add(self, request: PuRequest) -> StoredPu:
        pu = await asyncio.to_thread(self._attest, request)
        async with self._lock:
            previous = self._pus.get(pu.pu_id)
            await self._datapath.add_pu(pu.pu_id, pu.netns, fail_mode=FailMode(pu.fail_mode))
            try:
                await self._registry.register_pu(pu)
                document, refresh = await self._documents.issue_document(pu)
            except BaseException:
                if previous is None:
                    await self._datapath.remove_pu(pu.pu_id, rules="remove")
                raise
            pu = replace(pu, document=document, document_refresh_after=refresh)
            self._pus[pu.pu_id] = pu
            self._file.save(self._pus)
            self.last_errors.pop(pu.pu_id, None)
        _log.info("PU added", extra={"pu_id": pu.pu_id, "ips": list(pu.ips)})
        return pu

    async def remove(self, pu_id: str) -> None:
        """Idempotent: interception removed, record deregistered, file updated. A process PU's
        cgroup is emptied first (SIGKILL to what is left in it): its rules go only once
        nothing of it runs, then the cgroup goes too."""
        self._removing.add(pu_id)
        try:
            await self._remove(pu_id)
        finally:
            self._removing.discard(pu_id)
            async with self._removed:
                self._removed.notify_all()

    async def _remove(self, pu_id: str) -> None:
        async with self._lock:
            pu = self._pus.pop(pu_id, None)
            self._unwatch(pu_id)
            if (
                pu is not None
                and pu.pu_type == "process"
                and not await self._empty_cgroup(Path(pu.cgroup_path))
            ):
                _log.warning("process PU's cgroup did not empty", extra={"pu_id": pu_id})
            await self._datapath.remove_pu(pu_id, rules="remove")
            if pu is not None and pu.pu_type == "process":
                with contextlib.suppress(TrustwireError):
                    TrustwireCgroups.remove(Path(pu.cgroup_path))
                self._listeners.keep_only(
                    p.netns_inode for p in self._pus.values() if p.pu_type == "process"
                )
            self._file.save(self._pus)
        if pu is not None:
            self.last_errors.pop(pu_id, None)
            self.sync_errors.pop(pu_id, None)
            await self._registry.deregister_pu(pu_id)
            _log.info("PU removed", extra={"pu_id": pu_id})

    async def wait_removed(self, pu_id: str, timeout: float) -> None:  # noqa: ASYNC109
        """Until ``pu_id`` is not served (its rules, cgroup and record are gone by then)."""
        async with asyncio.timeout(timeout), self._removed:
            await self._removed.wait_for(
                lambda: pu_id not in self._pus and pu_id not in self._removing
            )

    # ------------------------------------------------------------------ process PUs

    def _cgroup_tree(self) -> TrustwireCgroups:
        if self._cgroups is None:
            self._cgroups = self._cgroups_factory()
        return self._cgroups

    def may_remove(self, pu_id: str, uid: int) -> bool:
        """Non-root callers may remove only process PUs running as themselves."""
        pu = self._pus.get(pu_id)
        return uid == 0 or (pu is not None and pu.pu_type == "process" and pu.uid == uid)

    async def prepare_run(
        self, request: RunRequest, caller_pid: int, caller_uid: int
    ) -> PreparedRun:
        """Validate the request and create the PU's empty cgroup; see the module docstring."""
        _validate(request.namespace, request.labels, request.fail_mode)
        if not os.path.isabs(request.executable):
            raise InvalidArgument("executable: an absolute path is required", field="executable")
        base = re.sub(r"[^A-Za-z0-9._-]", "-", os.path.basename(request.executable)) or "process"
        # A fresh suffix by default: every run is a new PU (the cgroup must not exist yet).
        name = request.name or f"{base[:40]}-{secrets.token_hex(4)}"
        if not _NAME.match(name):
            raise InvalidArgument(f"name: invalid PU name {name!r}", field="name")
        pu_id = f"{self.enforcer_id}.{name}"
        if pu_id in self._pus or pu_id in self._prepared:
            raise AlreadyExists(f"PU {pu_id} exists already", reason="PU_EXISTS")
        cgroup = await asyncio.to_thread(self._cgroup_tree().create, pu_id)
        run = PreparedRun(
            pu_id,
            name,
            request,
            cgroup,
            caller_pid,
            caller_uid,
            time.time() + RUN_JOIN_TIMEOUT,
        )
        run.expiry = asyncio.get_running_loop().call_later(
            RUN_JOIN_TIMEOUT, self._expire_run, pu_id
        )
        self._prepared[pu_id] = run
        _log.info("run prepared", extra={"pu_id": pu_id, "cgroup": str(cgroup)})
        return run

    def _expire_run(self, pu_id: str) -> None:
        run = self._prepared.pop(pu_id, None)
        if run is not None:
            _log.info("prepared run never started; discarded", extra={"pu_id": pu_id})
            self._spawn_cleanup(self._empty_and_remove_cgroup(run.cgroup))

    async def start_run(self, pu_id: str, pid: int, caller_pid: int, caller_uid: int) -> StoredPu:
        """Attest the caller's stopped child, intercept its cgroup, register it, obtain its
        document, persist, and watch it: the PU is served when this returns."""
        run = self._prepared.get(pu_id)
        if run is None:
            raise NotFound(f"pu_id: no prepared run {pu_id}", reason="RUN_NOT_PREPARED")
        if run.caller_pid != caller_pid:
            raise PermissionDenied(
                "StartRun must come from the process that called PrepareRun",
                reason="NOT_RUN_OWNER",
            )
        del self._prepared[pu_id]
        if run.expiry is not None:
            run.expiry.cancel()
        tree = self._cgroup_tree()
        try:
            facts = await asyncio.to_thread(
                attest_process, pid, caller_pid, tree.relative(run.cgroup)
            )
            if caller_uid != 0 and facts.uid != caller_uid:
                raise PermissionDenied(
                    f"pid: process {pid} runs as uid {facts.uid}, not as the caller",
                    reason="NOT_CALLERS_PROCESS",
                )
            netns = f"/proc/{pid}/ns/net"
            ips = tuple(
                a.address
                for a in await asyncio.to_thread(list_addresses, netns)
                if a.family == "inet" and a.interface != "lo" and a.up
            )
            if not ips:
                raise FailedPrecondition(
                    f"the network namespace of process {pid} has no IPv4 address that is up",
                    reason="NO_ADDRESS",
                )
            request = run.request
            pu = StoredPu(
                pu_id=pu_id,
                name=run.name,
                namespace=request.namespace,
                netns=netns,
                labels=dict(request.labels),
                ips=ips,
                ports=request.ports,
                fail_mode=request.fail_mode,
                netns_inode=facts.netns_inode,
                pu_type="process",
                pid=pid,
                pid_start_time=facts.start_time,
                cgroup_path=str(run.cgroup),
                exe_sha256=facts.exe_sha256,
                uid=facts.uid,
            )
            async with self._lock:
                await self._datapath.add_pu(
                    pu_id,
                    netns,
                    fail_mode=FailMode(pu.fail_mode),
                    cgroup=tree.match(run.cgroup),
                )
                try:
                    await self._registry.register_pu(pu)
                    document, refresh = await self._documents.issue_document(pu)
                except BaseException:
                    await self._datapath.remove_pu(pu_id, rules="remove")
                    raise
                pu = replace(pu, document=document, document_refresh_after=refresh)
                self._pus[pu_id] = pu
                self._file.save(self._pus)
                self._watch(pu)
        except BaseException:
            # The caller kills its stopped child when StartRun fails; the cgroup goes after it.
            self._spawn_cleanup(self._empty_and_remove_cgroup(run.cgroup))
            raise
        _log.info(
            "process PU started",
            extra={"pu_id": pu_id, "pid": pid, "exe_sha256": pu.exe_sha256, "uid": pu.uid},
        )
        return pu

    def _watch(self, pu: StoredPu) -> None:
        """Remove the PU when its process exits, whoever notices first (the caller may be
        dead). A pidfd polls readable once the process has exited."""
        try:
            pidfd = os.pidfd_open(pu.pid)
        except ProcessLookupError:
            self._spawn_cleanup(self.remove(pu.pu_id))
            return
        self._unwatch(pu.pu_id)
        self._watches[pu.pu_id] = pidfd
        asyncio.get_running_loop().add_reader(pidfd, self._exited, pu.pu_id)

    def _unwatch(self, pu_id: str) -> None:
        pidfd = self._watches.pop(pu_id, None)
        if pidfd is not None:
            asyncio.get_running_loop().remove_reader(pidfd)
            os.close(pidfd)

    def _exited(self, pu_id: str) -> None:
        self._unwatch(pu_id)
        _log.info("process PU exited", extra={"pu_id": pu_id})
        self._spawn_cleanup(self.remove(pu_id))

    def _spawn_cleanup(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                _log.exception("process PU cleanup failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _empty_cgroup(self, cgroup: Path) -> bool:
        """SIGKILL what is left in ``cgroup`` and wait (bounded) until it is empty. Exited
        processes leave their cgroup at exit, before being reaped: a zombie does not count."""
        deadline = time.monotonic() + _EMPTY_WAIT
        while True:
            populated = await asyncio.to_thread(TrustwireCgroups.populated, cgroup)
            if not populated:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.to_thread(TrustwireCgroups.kill, cgroup)
            await asyncio.sleep(0.01)

    async def _empty_and_remove_cgroup(self, cgroup: Path) -> None:
        await self._empty_cgroup(cgroup)
        await asyncio.to_thread(TrustwireCgroups.remove, cgroup)

    async def close(self) -> None:
        """Daemon stop: stop watching (the PUs stay, in their fail mode) and finish cleanups."""
        for pu_id in list(self._watches):
            self._unwatch(pu_id)
        self._listeners.close()
        for run in self._prepared.values():
            if run.expiry is not None:
                run.expiry.cancel()
        if self._cleanups:
            await asyncio.wait(list(self._cleanups), timeout=_EMPTY_WAIT + 1)

    async def maintain(self, *, force: bool = False) -> None:
        """Re-register every PU (idempotent) and refresh documents past their refresh time,
        deregister the PUs dropped at restart; run after a restart and periodically. Failures
        are retried on the next call."""
        for pu_id in sorted(self.dropped):
            if pu_id in self._pus:  # served again meanwhile (added anew under the same id)
                self.dropped.discard(pu_id)
                continue
            try:
                await self._registry.deregister_pu(pu_id)
                self.dropped.discard(pu_id)
            except (TrustwireError, OSError) as error:
                self.sync_errors[pu_id] = str(error)
        for pu in self.all():
            try:
                await self._registry.register_pu(pu)
                if force or time.time() >= pu.document_refresh_after or not pu.document:
                    document, refresh = await self._documents.issue_document(pu)
                    async with self._lock:
                        if pu.pu_id in self._pus:
                            self._pus[pu.pu_id] = replace(
                                self._pus[pu.pu_id],
                                document=document,
                                document_refresh_after=refresh,
                            )
                            self._file.save(self._pus)
                self.sync_errors.pop(pu.pu_id, None)
            except (TrustwireError, OSError) as error:
                self.sync_errors[pu.pu_id] = str(error)

    # ------------------------------------------------------------------ attestation

    def _attest(self, request: PuRequest) -> StoredPu:
        """What the enforcer itself observes about the PU (never what the caller claims):
        the namespace object and its addresses."""
        _validate(request.namespace, request.labels, request.fail_mode)
        path = netns_path(request.netns)
        try:
            inode = os.stat(path).st_ino
        except OSError as error:
            raise NotFound(
                f"network namespace {path}: {error.strerror}", reason="NETNS_NOT_FOUND"
            ) from None
        name = request.name or path.name
        if not _NAME.match(name):
            raise InvalidArgument(f"name: invalid PU name {name!r}", field="name")
        ips = tuple(
            a.address
            for a in list_addresses(request.netns)
            if a.family == "inet" and a.interface != "lo" and a.up
        )
        if not ips:
            raise InvalidArgument(
                f"network namespace {path} has no IPv4 address on an interface that is up",
                field="netns",
            )
        return StoredPu(
            pu_id=f"{self.enforcer_id}.{name}",
            name=name,
            namespace=request.namespace,
            netns=request.netns,
            labels=dict(request.labels),
            ips=ips,
            ports=request.ports,
            fail_mode=request.fail_mode,
            netns_inode=inode,
        )


def _validate(namespace: str, labels: dict[str, str], fail_mode: str) -> None:
    if not namespace or not _NAMESPACE.match(namespace):
        raise InvalidArgument(
            "namespace: a Kubernetes-style namespace name is required", field="namespace"
        )
    reserved = sorted(set(labels) & RESERVED_LABELS)
    if reserved:
        raise InvalidArgument(
            f"labels.{reserved[0]}: reserved labels come from attestation",
            field=f"labels.{reserved[0]}",
            reason="RESERVED_LABEL",
        )
    if fail_mode not in ("open", "closed"):
        raise InvalidArgument("fail_mode: open or closed", field="fail_mode")


def _named_netns_with_inode(inode: int) -> str | None:
    """The enforcer's own namespace or a named one (/run/netns) with this inode, if any."""
    candidates = ["/proc/self/ns/net"]
    with contextlib.suppress(OSError):
        candidates += [str(p) for p in sorted(Path("/run/netns").iterdir())]
    for path in candidates:
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == inode:
                return path
    return None
