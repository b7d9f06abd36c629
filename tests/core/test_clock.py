"""Tests of the injected clocks."""

from __future__ import annotations

import pytest

from kapmonitor.clock import FakeClock, ScaledClock, SystemClock, utc_iso


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start_wall=100.0, start_mono=5.0)
    assert (clock.monotonic(), clock.wall()) == (5.0, 100.0)
    clock.advance(2.5)
    assert (clock.monotonic(), clock.wall()) == (7.5, 102.5)


def test_fake_clock_wall_jump_leaves_monotonic_alone() -> None:
    clock = FakeClock(start_wall=100.0, start_mono=5.0)
    clock.jump_wall(-3600)
    assert clock.monotonic() == 5.0
    assert clock.wall() == 100.0 - 3600


def test_fake_clock_refuses_to_go_back() -> None:
    with pytest.raises(ValueError, match="cannot go back"):
        FakeClock().advance(-1)


def test_scaled_clock_runs_faster() -> None:
    base = FakeClock(start_wall=0.0, start_mono=0.0)
    fast = ScaledClock(base, speed=60.0)
    base.advance(2.0)
    assert fast.monotonic() == pytest.approx(120.0)
    assert fast.wall() == pytest.approx(120.0)
    with pytest.raises(ValueError):
        ScaledClock(base, speed=0)


def test_system_clock_is_monotonic_and_plausible() -> None:
    clock = SystemClock()
    a = clock.monotonic()
    b = clock.monotonic()
    assert b >= a
    assert clock.wall() > 1_700_000_000  # after 2023


def test_utc_iso() -> None:
    assert utc_iso(1_767_225_600.25) == "2026-01-01T00:00:00.250Z"
