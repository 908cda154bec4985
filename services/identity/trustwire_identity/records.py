"""What the identity service keeps in the store, and where.

Keys (``/trustwire/v1/`` is shared with the other services; these subtrees are the identity
service's alone):

- ``jointokens/<token_id>``: a join token, with the SHA-256 of its secret, never the secret;
- ``enrollments/enforcers/<node>`` and ``enrollments/services/<name>``: one enrollment
  (current certificate serial, expiry, renewals, revocation). Not ``enforcers/<id>``: the
  policy service owns that key (the enforcer's registration, as ``policy.v1.Enforcer``), and
  two writers of different formats on one key would corrupt each other's records;
- ``revocations/<serial-hex>``: one revoked certificate;
- ``revocationlist``: a marker rewritten in every transaction that changes the revocations,
  so its ``mod_revision`` is the revocation list's sequence number (it grows on every change,
  deletions included, and every replica reads the same number from etcd).

Values are JSON with sorted keys and a schema version ``v``: deterministic bytes, readable with
``etcdctl``, and independent of protobuf so that this domain layer imports no wire types. A
record only grows fields; decoding ignores fields it does not know.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from trustwire.errors import TrustwireError

__all__ = [
    "ENFORCERS",
    "JOIN_TOKENS",
    "PREFIX",
    "REVOCATIONS",
    "REVOCATION_LIST_MARKER",
    "REVOCATION_WATCH_PREFIX",
    "SERVICES",
    "EnrollmentKind",
    "EnrollmentRecord",
    "JoinTokenRecord",
    "RevocationRecord",
    "decode",
    "encode",
    "enrollment_key",
]

PREFIX = "/trustwire/v1/"
JOIN_TOKENS = PREFIX + "jointokens/"
ENFORCERS = PREFIX + "enrollments/enforcers/"
SERVICES = PREFIX + "enrollments/services/"
REVOCATIONS = PREFIX + "revocations/"
REVOCATION_LIST_MARKER = PREFIX + "revocationlist"
REVOCATION_WATCH_PREFIX = PREFIX + "revocation"  # covers REVOCATIONS and the marker

SCHEMA_VERSION = 1


class EnrollmentKind(enum.StrEnum):
    """What a join token enrols; decides the certificate's SPIFFE role."""

    ENFORCER = "enforcer"
    SERVICE = "service"


def enrollment_key(kind: EnrollmentKind, name: str) -> str:
    return (ENFORCERS if kind is EnrollmentKind.ENFORCER else SERVICES) + name


@dataclass(frozen=True, slots=True)
class JoinTokenRecord:
    token_id: str
    secret_sha256: str
    """Lower-case hex SHA-256 of the secret part; the secret itself is never stored."""
    kind: EnrollmentKind
    name: str
    """The node (or service) the token enrols; empty: the enrolling party names it."""
    created_at: datetime
    expires_at: datetime
    created_by: str
    used_at: datetime | None = None
    used_by: str = ""
    """SPIFFE ID the token was redeemed for."""


@dataclass(frozen=True, slots=True)
class EnrollmentRecord:
    kind: EnrollmentKind
    name: str
    spiffe_id: str
    serial: int
    """Serial of the newest certificate issued to this identity."""
    not_after: datetime
    enrolled_at: datetime
    previous_serial: int | None = None
    """The certificate the newest one was renewed from: still accepted for a renewal, so a
    client that lost the Renew response can retry; anything older is refused."""
    renewed_at: datetime | None = None
    revoked_at: datetime | None = None
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class RevocationRecord:
    serial: int
    spiffe_id: str
    enforcer_id: str
    revoked_at: datetime
    certificate_not_after: datetime
    reason: str = ""
    revoked_by: str = ""


_Record = TypeVar("_Record", JoinTokenRecord, EnrollmentRecord, RevocationRecord)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def encode(record: JoinTokenRecord | EnrollmentRecord | RevocationRecord) -> bytes:
    """Deterministic JSON of ``record`` (sorted keys, no whitespace)."""
    data = {f.name: _plain(getattr(record, f.name)) for f in dataclasses.fields(record)}
    data["v"] = SCHEMA_VERSION
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _typed(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        return _typed(value, inner)
    if origin is tuple:
        return tuple(value)
    if tp is datetime:
        return datetime.fromisoformat(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    return value


def decode(cls: type[_Record], data: bytes) -> _Record:
    """The record of type ``cls`` in ``data``; ``TrustwireError`` (``CORRUPT_RECORD``) when the
    bytes are not one (a store holding garbage is an internal error, not bad input)."""
    try:
        raw = json.loads(data)
        hints = typing.get_type_hints(cls)
        values = {
            f.name: _typed(raw[f.name], hints[f.name])
            for f in dataclasses.fields(cls)
            if f.name in raw
        }
        return cls(**values)
    except (ValueError, KeyError, TypeError) as error:
        raise TrustwireError(
            f"corrupt {cls.__name__} in the store: {error}", reason="CORRUPT_RECORD"
        ) from None
