"""Waiting on a condition that has no event to await (state in another process, in etcd, on
disk): poll it, bounded, and fail naming what did not happen."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["eventually"]


async def eventually(
    check: Callable[[], Awaitable[bool]],
    what: str = "the condition",
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - a bound on the wait, named in the failure
    interval: float = 0.05,
) -> None:
    """Return once ``check()`` is true; ``AssertionError`` after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():  # noqa: ASYNC110 - polling is the only signal here
                await asyncio.sleep(interval)  # a poll interval, not a wait for the condition
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what}") from None
