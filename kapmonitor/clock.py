"""The one place that reads the machine's clocks; everything else is handed a Clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds for delays and ordering, UTC wall seconds for records."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (arbitrary origin)."""
        ...

    def wall(self) -> float:
        """UTC wall time as POSIX seconds; may jump (NTP, manual change)."""
        ...


class SystemClock:
    """The real clocks of the machine."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class FakeClock:
    """A clock that moves only when told to; tests drive it with advance()."""

    def __init__(self, start_wall: float = 1_767_225_600.0, start_mono: float = 1000.0) -> None:
        # default wall start: 2026-01-01T00:00:00Z
        self._mono = start_mono
        self._wall = start_wall

    def monotonic(self) -> float:
        return self._mono

    def wall(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward together."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        self._mono += seconds
        self._wall += seconds

    def jump_wall(self, seconds: float) -> None:
        """Move only the wall clock (an NTP step or a DST mistake), either way."""
        self._wall += seconds


class ScaledClock:
    """A clock whose time runs `speed` times faster than the base clock (emulated scenarios)."""

    def __init__(self, base: Clock, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._base = base
        self._speed = speed
        self._mono0 = base.monotonic()
        self._wall0 = base.wall()

    @property
    def speed(self) -> float:
        return self._speed

    def monotonic(self) -> float:
        return self._mono0 + (self._base.monotonic() - self._mono0) * self._speed

    def wall(self) -> float:
        return self._wall0 + (self._base.monotonic() - self._mono0) * self._speed


def utc_iso(wall: float) -> str:
    """ISO-8601 UTC text of a wall time, millisecond precision, 'Z' suffix."""
    return datetime.fromtimestamp(wall, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
