"""Names that become the last segment of a SPIFFE ID: node names and service names.

Kubernetes node names are DNS-1123 subdomains (``ip-10-0-0-1.ec2.internal``), so that is the
syntax accepted: lower-case alphanumerics, ``-`` and ``.``, at most 253 characters, each
dot-separated label 1..63 characters starting and ending with an alphanumeric. Every such name
is also a valid SPIFFE path segment and a valid DNS SAN.
"""

from __future__ import annotations

import re

from trustwire.errors import InvalidArgument

__all__ = ["check_name"]

_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
MAX_NAME = 253


def check_name(name: str, field: str) -> str:
    """``name`` if it is a legal node/service name, else ``InvalidArgument`` naming ``field``."""
    if not name or len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"{name[:80]!r} is not a valid name: lower-case DNS-1123 subdomain "
            f"(a-z, 0-9, '-', '.'; at most {MAX_NAME} characters)",
            field=field,
            reason="INVALID_NAME",
        )
    return name
