"""Who is calling: the SPIFFE-style identity of a peer, as a plain value.

Pure module: no gRPC here, so domain code and tests can build and compare ``Caller`` values
freely. The transport edge (``_authorization``) extracts the URI from the TLS peer and calls
:func:`parse_spiffe_id`.

Trustwire identities have exactly the shape ``spiffe://<trust-domain>/<role>/<name>``; the
syntax rules follow the SPIFFE ID specification (lower-case trust domain of ``[a-z0-9._-]``,
path segments of ``[A-Za-z0-9._-]``, no empty, ``.`` or ``..`` segments, no query, fragment,
port or user info), and the role must be one of :class:`Role`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from trustwire.errors import Unauthenticated

__all__ = ["Caller", "Role", "parse_spiffe_id"]

# SPIFFE ID spec: the whole ID is at most 2048 bytes; trust domain at most 255 characters.
_MAX_ID_BYTES = 2048
_MAX_TRUST_DOMAIN = 255
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_SCHEME = "spiffe://"


class Role(StrEnum):
    """The role a certificate grants; the first path segment of the SPIFFE ID."""

    ENFORCER = "enforcer"
    SERVICE = "service"
    ADMIN = "admin"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated peer: ``spiffe://<trust_domain>/<role>/<name>``."""

    trust_domain: str
    role: Role
    name: str

    @property
    def spiffe_id(self) -> str:
        return f"{_SCHEME}{self.trust_domain}/{self.role.value}/{self.name}"

    def __str__(self) -> str:
        return self.spiffe_id


def _invalid(uri: str, problem: str) -> Unauthenticated:
    return Unauthenticated(
        f"invalid SPIFFE ID {uri[:200]!r}: {problem}",
        reason="INVALID_SPIFFE_ID",
        metadata={"spiffe_id": uri[:200]},
    )


def parse_spiffe_id(uri: str) -> Caller:
    """Parse ``spiffe://<trust-domain>/<role>/<name>`` into a :class:`Caller`.

    Raises :class:`~trustwire.errors.Unauthenticated` (reason ``INVALID_SPIFFE_ID``) for any
    deviation: a certificate that does not name a valid Trustwire identity authenticates no one.
    """
    if len(uri.encode("utf-8", "surrogatepass")) > _MAX_ID_BYTES:
        raise _invalid(uri, f"longer than {_MAX_ID_BYTES} bytes")
    # The scheme is case-insensitive in URIs but the SPIFFE spec requires lower case.
    if not uri.startswith(_SCHEME):
        raise _invalid(uri, "scheme must be 'spiffe://'")
    rest = uri[len(_SCHEME) :]
    if "?" in rest or "#" in rest:
        raise _invalid(uri, "query and fragment are not allowed")
    trust_domain, slash, path = rest.partition("/")
    if not trust_domain:
        raise _invalid(uri, "empty trust domain")
    if "@" in trust_domain or ":" in trust_domain:
        raise _invalid(uri, "user info and port are not allowed in the trust domain")
    if len(trust_domain) > _MAX_TRUST_DOMAIN or not _TRUST_DOMAIN.fullmatch(trust_domain):
        raise _invalid(uri, "trust domain must be lower-case letters, digits, '.', '-' or '_'")
    if not slash or not path:
        raise _invalid(uri, "missing path '/<role>/<name>'")
    segments = path.split("/")
    for segment in segments:
        if not segment:
            raise _invalid(uri, "empty path segment")
        if segment in (".", ".."):
            raise _invalid(uri, "'.' and '..' path segments are not allowed")
        if not _SEGMENT.fullmatch(segment):
            raise _invalid(uri, f"path segment {segment!r} has characters outside [A-Za-z0-9._-]")
    if len(segments) != 2:
        raise _invalid(uri, "path must be exactly '/<role>/<name>'")
    role_text, name = segments
    try:
        role = Role(role_text)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise _invalid(uri, f"unknown role {role_text!r} (known: {known})") from None
    return Caller(trust_domain=trust_domain, role=role, name=name)
