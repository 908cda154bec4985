"""Time, injected.

Every domain object of the identity service takes a ``Clock`` instead of reading the system
time, so tests move time forward (token expiry, renewal at half life, CA rollover) without
sleeping, and all timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "system_clock"]

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (UTC)."""


def system_clock() -> datetime:
    return datetime.now(UTC)
