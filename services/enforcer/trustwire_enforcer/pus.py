"""The PUs this enforcer serves: attest, intercept, register, obtain identity; and the reverse.

Adding a network-namespace PU (a pod): attest it (the namespace's inode, the IPv4 addresses
read from inside it), install interception in it (from here on its traffic is enforced: until
the policy view names it, decisions fail closed), register it with the policy service, obtain
its identity document, and persist the record. Any failure before the record is persisted
undoes what was done, so a PU is either fully served or untouched.

Records and documents are persisted so a restarted enforcer serves its PUs at once
(:meth:`LocalPus.restore`); re-registration and document refresh then happen in the
background whenever the control plane answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from dataclasses import dataclass, replace
from typing import Protocol

from trustwire.errors import InvalidArgument, NotFound, TrustwireError
from trustwire.policy.model import RESERVED_LABELS
from trustwire_enforcer.datapath import FailMode, ProxyDatapath
from trustwire_enforcer.datapath.netns import list_addresses, netns_path
from trustwire_enforcer.state_files import PuFile, StoredPu

__all__ = ["DocumentSource", "LocalPus", "PuRegistry", "PuRequest"]

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


class LocalPus:
    def __init__(
        self,
        enforcer_id: str,
        datapath: ProxyDatapath,
        registry: PuRegistry,
        documents: DocumentSource,
        file: PuFile,
    ) -> None:
        self.enforcer_id = enforcer_id
        self._datapath = datapath
        self._registry = registry
        self._documents = documents
        self._file = file
        self._pus: dict[str, StoredPu] = {}
        self._lock = asyncio.Lock()
        # Why a PU is not served (interception failed): its traffic follows its fail mode.
        self.last_errors: dict[str, str] = {}
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

    # ------------------------------------------------------------------ lifecycle

    async def restore(self) -> list[str]:
        """Serve every persisted PU again (interception first, from the records on disk);
        returns the ids restored. A PU whose namespace is gone, or is another namespace now
        (different inode), is dropped: its workload ended while the enforcer was down."""
        restored = []
        for pu in self._file.load().values():
            try:
                inode = os.stat(netns_path(pu.netns)).st_ino
            except OSError:
                inode = -1
            if inode != pu.netns_inode:
                _log.info("PU namespace gone while stopped; dropped", extra={"pu_id": pu.pu_id})
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
        """Idempotent: interception removed, record deregistered, file updated."""
        async with self._lock:
            pu = self._pus.pop(pu_id, None)
            await self._datapath.remove_pu(pu_id, rules="remove")
            self._file.save(self._pus)
        if pu is not None:
            await self._registry.deregister_pu(pu_id)
            _log.info("PU removed", extra={"pu_id": pu_id})

    async def maintain(self, *, force: bool = False) -> None:
        """Re-register every PU (idempotent) and refresh documents past their refresh time;
        run after a restart and periodically. Failures are retried on the next call."""
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
        if not request.namespace or not _NAMESPACE.match(request.namespace):
            raise InvalidArgument(
                "namespace: a Kubernetes-style namespace name is required", field="namespace"
            )
        reserved = sorted(set(request.labels) & RESERVED_LABELS)
        if reserved:
            raise InvalidArgument(
                f"labels.{reserved[0]}: reserved labels come from attestation",
                field=f"labels.{reserved[0]}",
                reason="RESERVED_LABEL",
            )
        if request.fail_mode not in ("open", "closed"):
            raise InvalidArgument("fail_mode: open or closed", field="fail_mode")
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
