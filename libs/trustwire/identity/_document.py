"""PU identity documents: who a workload is, as its trust domain's identity service vouches.

A document carries the workload's *own* labels only. The reserved labels that policy also
evaluates (DESIGN.md "Policy model") are derived from the attested facts, the trust domain and
the enforcer by ``IdentityDocument.policy_labels``, never stored twice: one source of truth, so
a document cannot say ``namespace: a`` in its labels and ``namespace: b`` in its attestation,
and the encoding stays small (see docs/trust-profile.md, "Size").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from trustwire.errors import InvalidArgument
from trustwire.policy.model import RESERVED_LABELS, PuType

from ._spiffe import Role, SpiffeId, TrustDomain

__all__ = ["Attestation", "IdentityDocument"]

MAX_LABELS = 64
MAX_LABEL_KEY = 317  # 253-byte DNS prefix, '/', 63-byte name (Kubernetes label keys)
MAX_LABEL_VALUE = 256
MAX_TEXT = 256
_DOCUMENT_ID = re.compile(r"[0-9a-f]{32}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_IMAGE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_UID_MAX = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Attestation:
    """What the enforcer observed about the PU (kernel, runtime, kubelet), as the issuer
    accepted it. Empty strings (and ``uid`` None) mean "not applicable or unknown"."""

    pu_type: PuType
    namespace: str = ""
    exe_sha256: str = ""
    uid: int | None = None
    image: str = ""
    image_digest: str = ""
    service_account: str = ""
    node: str = ""

    def __post_init__(self) -> None:
        if self.pu_type is PuType.EXTERNAL:
            raise InvalidArgument(
                "external PUs have no identity document", field="attestation.pu_type"
            )
        if self.exe_sha256 and not _SHA256_HEX.fullmatch(self.exe_sha256):
            raise InvalidArgument(
                "must be 64 lower-case hex digits", field="attestation.exe_sha256"
            )
        if self.image_digest and not _IMAGE_DIGEST.fullmatch(self.image_digest):
            raise InvalidArgument(
                "must be sha256:<64 lower-case hex digits>", field="attestation.image_digest"
            )
        if self.uid is not None and not 0 <= self.uid <= _UID_MAX:
            raise InvalidArgument("must be 0..2^32-1", field="attestation.uid")
        for name in ("namespace", "image", "service_account", "node"):
            if len(getattr(self, name)) > MAX_TEXT:
                raise InvalidArgument(
                    f"longer than {MAX_TEXT} characters", field=f"attestation.{name}"
                )


@dataclass(frozen=True, slots=True)
class IdentityDocument:
    """``identity.v1.IdentityDocument``: one PU's identity, valid in
    ``[issued_at, expires_at)``. ``labels`` are the workload's own labels (no reserved key);
    ``policy_labels`` adds the attested ones."""

    document_id: str
    pu_id: str
    trust_domain: TrustDomain
    enforcer_id: str
    labels: Mapping[str, str]
    attestation: Attestation
    issued_at: datetime
    expires_at: datetime
    _policy_labels: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _DOCUMENT_ID.fullmatch(self.document_id):
            raise InvalidArgument("must be 32 lower-case hex digits", field="document_id")
        # Both must be valid SPIFFE ID names: spiffe_id is derived from pu_id, and enforcer_id
        # is compared with the name in the signing enforcer's certificate.
        SpiffeId(self.trust_domain, Role.PU, self.pu_id)
        SpiffeId(self.trust_domain, Role.ENFORCER, self.enforcer_id)
        if len(self.labels) > MAX_LABELS:
            raise InvalidArgument(f"more than {MAX_LABELS} labels", field="labels")
        for key, value in self.labels.items():
            if not key or len(key) > MAX_LABEL_KEY or len(value) > MAX_LABEL_VALUE:
                raise InvalidArgument(
                    f"label key must be 1..{MAX_LABEL_KEY} and value at most "
                    f"{MAX_LABEL_VALUE} characters",
                    field=f"labels.{key}",
                )
            if key in RESERVED_LABELS:
                raise InvalidArgument(
                    "reserved label: derived from attestation, never set by the workload",
                    field=f"labels.{key}",
                )
        for name in ("issued_at", "expires_at"):
            if getattr(self, name).tzinfo is None:
                raise InvalidArgument("must be timezone-aware", field=name)
        if self.expires_at <= self.issued_at:
            raise InvalidArgument("must be after issued_at", field="expires_at")
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        object.__setattr__(self, "_policy_labels", MappingProxyType(self._derive_labels()))

    @property
    def spiffe_id(self) -> SpiffeId:
        """``spiffe://<trust_domain>/pu/<pu_id>`` (the proto's ``spiffe_id`` field)."""
        return SpiffeId(self.trust_domain, Role.PU, self.pu_id)

    @property
    def policy_labels(self) -> Mapping[str, str]:
        """The complete label set policy is evaluated on: own labels plus reserved labels.

        Reserved labels, each present only when its source is set: ``trust-domain``,
        ``enforcer``, ``pu-type`` (always); ``namespace``, ``image``, ``exe-sha256``,
        ``k8s:serviceaccount`` (attested strings); ``user`` (decimal uid).
        """
        return self._policy_labels

    def _derive_labels(self) -> dict[str, str]:
        att = self.attestation
        derived = dict(self.labels)
        derived["trust-domain"] = self.trust_domain.name
        derived["enforcer"] = self.enforcer_id
        derived["pu-type"] = att.pu_type.value
        for key, value in (
            ("namespace", att.namespace),
            ("image", att.image),
            ("exe-sha256", att.exe_sha256),
            ("k8s:serviceaccount", att.service_account),
        ):
            if value:
                derived[key] = value
        if att.uid is not None:
            derived["user"] = str(att.uid)
        return derived
