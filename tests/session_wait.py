"""Waiting on a live Session's events (never a blind sleep) until a condition holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kapmonitor.session import Session, SessionEvent


async def until(session: Session, condition: Callable[[], bool], timeout: float) -> None:
    """Return once `condition()` holds, re-checked after each of the session's events; raise
    TimeoutError after `timeout` seconds of the event loop's clock."""
    changed = asyncio.Event()

    def on_event(_e: SessionEvent) -> None:
        changed.set()

    unsubscribe = session.subscribe(on_event)
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                changed.clear()
                await changed.wait()
    finally:
        unsubscribe()
