"""Frozen records of what enforcers register: PUs and enforcers, as every replica mirrors them.

Plain values (no protobuf), so the state mirror and the distribution code can hold them in
immutable snapshots; ``codec`` converts them to and from the API messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trustwire.policy import ContainerPort, Labels, PuType, Workload
from trustwire.policy.model import RESERVED_LABELS, IPAddress

__all__ = ["EnforcerRecord", "FailMode", "PuRecord"]

FailMode = str  # "closed" | "open"


@dataclass(frozen=True, slots=True)
class PuRecord:
    """A registered PU (etcd ``pus/<enforcer_id>/<id>``) at ``revision``."""

    id: str
    name: str
    namespace: str
    enforcer_id: str
    labels: Labels
    pu_type: PuType
    ips: tuple[IPAddress, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    fail_mode: FailMode = "closed"
    trust_domain: str = ""
    revision: int = 0
    registered_at: datetime | None = None

    @property
    def workload_name(self) -> str:
        return self.name or self.id

    def workload(self, name: str | None = None) -> Workload:
        """The PU as the policy engine sees it. ``name`` overrides the workload name (the
        mirror disambiguates two PUs that claim the same ``namespace/name``)."""
        return Workload(
            namespace=self.namespace,
            name=name or self.workload_name,
            labels=self.labels,
            ips=self.ips,
            ports=self.ports,
            pu_type=self.pu_type,
            trust_domain=self.trust_domain,
            # Reserved labels of a registered PU come from its enforcer (which attested it:
            # exe-sha256, user...) or from this service (enforcer); users cannot register.
            attested=Labels({k: v for k, v in self.labels.items() if k in RESERVED_LABELS}),
        )


@dataclass(frozen=True, slots=True)
class EnforcerRecord:
    """A registered enforcer (etcd ``enforcers/<id>``): where peers reach it."""

    id: str
    node: str = ""
    addresses: tuple[str, ...] = ()
    version: str = ""
    datapaths: tuple[str, ...] = ()
    registered_at: datetime | None = None
    revision: int = 0
