"""ReplayClock: a Clock over a recorded session's timeline, with play, pause, speed and seek."""

from __future__ import annotations

from collections.abc import Callable

from kapmonitor.clock import Clock

#: The playback speeds the replay offers (recorded seconds per base-clock second).
SPEEDS: tuple[float, ...] = (1.0, 2.0, 10.0, 60.0)


class ReplayClock:
    """A Clock whose time is a position on a recorded session's timeline.

    The position (seconds since the session started, on its monotonic timeline) moves only while
    playing, `speed` times as fast as the base clock; it is clamped to [0, duration]. The clock never
    reads the machine's time itself: the base Clock drives it (a FakeClock in tests).

    `monotonic()` is the recorded monotonic time at the position (origin + position) and `wall()`
    the recorded UTC time there, so a replayed Numeric's `mono` compares with it exactly as live.
    Note that `monotonic()` goes back when the replay is sought backwards.
    """

    def __init__(self, base: Clock, *, speed: float = 1.0) -> None:
        _check_speed(speed)
        self._base = base
        self._speed = speed
        self._playing = False
        self._anchor_position = 0.0
        self._anchor_base = base.monotonic()
        self._origin_mono = 0.0
        self._origin_wall = 0.0
        self._duration: float | None = None
        self._wall_at: Callable[[float], float] | None = None

    # -- timeline --------------------------------------------------------------------------
    def set_timeline(
        self,
        *,
        origin_mono: float,
        origin_wall: float,
        duration: float,
        wall_at: Callable[[float], float] | None = None,
    ) -> None:
        """Place the clock on a session: its start times, its length and (optionally) a
        position → UTC map (recorded wall times can jump; the default is origin_wall + position)."""
        if duration < 0:
            raise ValueError("duration must not be negative")
        self._origin_mono = origin_mono
        self._origin_wall = origin_wall
        self._duration = duration
        self._wall_at = wall_at
        self.seek(self.position)

    @property
    def duration(self) -> float | None:
        return self._duration

    @property
    def origin_mono(self) -> float:
        return self._origin_mono

    def _clamp(self, position: float) -> float:
        position = max(0.0, position)
        if self._duration is not None:
            position = min(position, self._duration)
        return position

    # -- transport -------------------------------------------------------------------------
    @property
    def position(self) -> float:
        """Seconds since the session start at this instant."""
        if not self._playing:
            return self._anchor_position
        moved = (self._base.monotonic() - self._anchor_base) * self._speed
        return self._clamp(self._anchor_position + moved)

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def at_end(self) -> bool:
        return self._duration is not None and self.position >= self._duration

    @property
    def speed(self) -> float:
        return self._speed

    def _rebase(self) -> None:
        self._anchor_position = self.position
        self._anchor_base = self._base.monotonic()

    def play(self) -> None:
        """Start (or keep) moving; from the end, play restarts at the beginning."""
        if self.at_end:
            self._anchor_position = 0.0
        self._rebase()
        self._playing = True

    def pause(self) -> None:
        self._rebase()
        self._playing = False

    def toggle(self) -> None:
        if self._playing:
            self.pause()
        else:
            self.play()

    def set_speed(self, speed: float) -> None:
        """Change the speed from here on (the position does not jump)."""
        _check_speed(speed)
        self._rebase()
        self._speed = speed

    def seek(self, position: float) -> float:
        """Move to `position` (clamped to the timeline); returns where it landed."""
        self._anchor_position = self._clamp(position)
        self._anchor_base = self._base.monotonic()
        return self._anchor_position

    # -- Clock -----------------------------------------------------------------------------
    def monotonic(self) -> float:
        return self._origin_mono + self.position

    def wall(self) -> float:
        position = self.position
        if self._wall_at is not None:
            return self._wall_at(position)
        return self._origin_wall + position


def _check_speed(speed: float) -> None:
    if not speed > 0:
        raise ValueError("speed must be positive")
