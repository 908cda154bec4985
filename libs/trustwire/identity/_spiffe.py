"""SPIFFE-style names: trust domains and the IDs Trustwire issues.

Trustwire IDs are ``spiffe://<trust-domain>/<role>/<name>``: the first path segment is a role
from ``Role`` and the rest (one or more segments) is the name within that role, for example
``spiffe://cluster-a.example/enforcer/node-1``. Syntax follows the SPIFFE ID specification
(lower-case trust domain of ``[a-z0-9._-]``; path segments of ``[A-Za-z0-9._-]``, never empty,
``.`` or ``..``; no query, fragment, port or user info; at most 2048 bytes), so every string
this module accepts is also a valid SPIFFE ID for any other SPIFFE implementation.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from trustwire.errors import InvalidArgument

__all__ = ["Role", "SpiffeId", "TrustDomain"]

_SCHEME = "spiffe://"
_MAX_ID_LENGTH = 2048
_MAX_TRUST_DOMAIN_LENGTH = 255
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


class Role(enum.StrEnum):
    """What the holder of an ID is. Certificates carry the first four; ``pu`` names a workload
    inside an identity document (``spiffe://<td>/pu/<pu_id>``) and is never in a certificate."""

    ENFORCER = "enforcer"
    SERVICE = "service"
    ADMIN = "admin"
    VIEWER = "viewer"
    PU = "pu"


@dataclass(frozen=True, slots=True)
class TrustDomain:
    """The name of one trust domain, for example ``cluster-a.example``. Validated on creation."""

    name: str

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > _MAX_TRUST_DOMAIN_LENGTH:
            raise InvalidArgument(
                f"trust domain must be 1..{_MAX_TRUST_DOMAIN_LENGTH} characters",
                field="trust_domain",
            )
        if not _TRUST_DOMAIN.fullmatch(self.name):
            raise InvalidArgument(
                f"trust domain {self.name!r} may contain only a-z, 0-9, '.', '-' and '_'",
                field="trust_domain",
            )

    def id(self, role: Role, name: str) -> SpiffeId:
        return SpiffeId(self, role, name)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """``spiffe://<trust_domain>/<role>/<name>``. Build with ``parse`` or the constructor; both
    validate, so holding a ``SpiffeId`` means holding a well-formed one."""

    trust_domain: TrustDomain
    role: Role
    name: str

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(str(self)) > _MAX_ID_LENGTH:
            raise InvalidArgument(
                f"SPIFFE ID longer than {_MAX_ID_LENGTH} bytes", field="spiffe_id"
            )

    @classmethod
    def parse(cls, text: str) -> SpiffeId:
        """Parse and validate; raises ``InvalidArgument`` (field ``spiffe_id``) on any defect."""
        if len(text) > _MAX_ID_LENGTH:
            raise InvalidArgument(
                f"SPIFFE ID longer than {_MAX_ID_LENGTH} bytes", field="spiffe_id"
            )
        if not text.startswith(_SCHEME):
            raise InvalidArgument(f"{text!r} does not start with {_SCHEME}", field="spiffe_id")
        authority, sep, path = text[len(_SCHEME) :].partition("/")
        if not sep:
            raise InvalidArgument(f"{text!r} has no path", field="spiffe_id")
        role_text, sep, name = path.partition("/")
        try:
            role = Role(role_text)
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise InvalidArgument(
                f"{text!r}: role {role_text!r} is not one of {roles}", field="spiffe_id"
            ) from None
        if not sep:
            raise InvalidArgument(f"{text!r} has a role but no name", field="spiffe_id")
        try:
            trust_domain = TrustDomain(authority)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{text!r}: {exc.message}", field="spiffe_id") from None
        return cls(trust_domain, role, name)

    def __str__(self) -> str:
        return f"{_SCHEME}{self.trust_domain.name}/{self.role.value}/{self.name}"


def _check_name(name: str) -> None:
    if not name:
        raise InvalidArgument("SPIFFE ID name is empty", field="spiffe_id")
    for segment in name.split("/"):
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
            raise InvalidArgument(
                f"SPIFFE ID name {name!r}: segment {segment!r} is empty, '.', '..' or has "
                "characters outside A-Z a-z 0-9 . - _",
                field="spiffe_id",
            )
