"""Pleth sweep tests: x positions, wrap and erase bar, no redraw without data, NO PLETH, auto-gain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from kapmonitor.clock import FakeClock
from kapmonitor.ringbuffer import RingBuffer
from ui.waveform import NO_SIGNAL_AFTER_S, SweepWaveform

RATE = 100.0
#: Timestamps are exact multiples of 1/RATE from here (binary-exact, so bins are unambiguous).
T0 = 1000.0


class Feed:
    """A fake 100 Hz device writing (t, v) into the sweep's RingBuffer as the FakeClock advances."""

    def __init__(self, clock: FakeClock, waves: dict[str, RingBuffer]) -> None:
        self.clock = clock
        self.buf = waves["pleth"] = RingBuffer(2000)
        self.n = 0  # samples sent so far

    def send(self, values: np.ndarray, rate: float = RATE) -> np.ndarray:
        """Send `values` as the next samples; the clock moves to the last one. Returns their times."""
        t = T0 + (self.n + np.arange(len(values))) / rate
        self.n += len(values)
        self.buf.extend(t, values.astype(np.float64))
        self.clock.advance(max(0.0, float(t[-1]) - self.clock.monotonic()))
        return t

    def skip(self, seconds: float) -> None:
        """A gap: nothing is received for `seconds`."""
        self.n += round(seconds * RATE)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_mono=T0)


@pytest.fixture
def waves() -> dict[str, RingBuffer]:
    return {}


@pytest.fixture
def sweep(qtbot: QtBot, clock: FakeClock, waves: dict[str, RingBuffer]) -> SweepWaveform:
    w = SweepWaveform(waves, clock, seconds=6.0, points_per_second=RATE, erase_seconds=0.25)
    qtbot.addWidget(w)
    w.resize(900, 200)
    return w


def ramp(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64)


def test_samples_are_drawn_left_to_right_at_their_time(
    sweep: SweepWaveform, clock: FakeClock, waves: dict[str, RingBuffer]
) -> None:
    feed = Feed(clock, waves)
    assert sweep.write_index() is None
    feed.send(ramp(100))  # 0 … 99 over the first second
    assert sweep.refresh()
    x, y = sweep.trace()
    assert len(x) == 600 and x[-1] == pytest.approx(5.99)
    lo, hi = sweep.gain()
    assert (lo, hi) == (0.0, 99.0)  # first samples: the scale starts at their range
    np.testing.assert_allclose(y[:100], ramp(100) / 99.0)  # sample k at x = k / 100 s
    assert np.isnan(y[100:]).all()  # nothing drawn yet to the right
    assert sweep.write_index() == 99

    feed.send(np.full(50, 50.0))  # the next half second lands right after, not at the left
    sweep.refresh()
    _, y = sweep.trace()
    np.testing.assert_allclose(y[:100], ramp(100) / 99.0)
    assert np.isfinite(y[100:150]).all()
    assert sweep.write_index() == 149


def test_sweep_wraps_and_the_erase_bar_runs_ahead(
    sweep: SweepWaveform, clock: FakeClock, waves: dict[str, RingBuffer]
) -> None:
    feed = Feed(clock, waves)
    for _ in range(6):  # one whole sweep of a constant-level sine, refreshed every second
        feed.send(50.0 + 40.0 * np.sin(np.arange(100) / 100.0 * 2 * np.pi))
        sweep.refresh()
    _, first = sweep.trace()
    assert sweep.write_index() == 599
    np.testing.assert_array_equal(sweep.erase_indices(), np.arange(25))  # erase bar wrapped to x=0
    assert np.isnan(first[:25]).all()  # the bar has blanked the start of the old sweep

    feed.send(np.full(50, 90.0))  # half a second into the second sweep: the left is overwritten
    sweep.refresh()
    _, y = sweep.trace()
    assert sweep.write_index() == 49
    np.testing.assert_array_equal(sweep.erase_indices(), np.arange(50, 75))
    assert np.isnan(y[50:75]).all()  # the erase bar, 0.25 s wide
    lo, hi = sweep.gain()
    np.testing.assert_allclose(y[:50], np.clip((90.0 - lo) / (hi - lo), 0, 1))  # new sweep
    np.testing.assert_array_equal(y[75:], first[75:])  # the old sweep right of the bar is kept
    assert np.isfinite(y[75:]).all()


def test_nothing_is_redrawn_without_new_samples(
    sweep: SweepWaveform, clock: FakeClock, waves: dict[str, RingBuffer], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original: Callable[..., Any] = sweep.curve().setData

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(sweep.curve(), "setData", counting)
    feed = Feed(clock, waves)
    feed.send(ramp(10))
    assert sweep.refresh() is True
    for _ in range(5):
        clock.advance(0.033)
        assert sweep.refresh() is False
    assert (calls, sweep.redraw_count) == (1, 1)
    feed.send(ramp(3))
    assert sweep.refresh() is True
    assert (calls, sweep.redraw_count) == (2, 2)


def test_a_slower_device_draws_an_unbroken_line(
    sweep: SweepWaveform, clock: FakeClock, waves: dict[str, RingBuffer]
) -> None:
    feed = Feed(clock, waves)
    for _ in range(4):  # 50 Hz, in batches of 12
        feed.send(np.linspace(0.0, 60.0, 12), rate=50.0)
        sweep.refresh()
    _, y = sweep.trace()
    w = sweep.write_index()
    assert w is not None and w >= 90
    assert np.isfinite(y[: w + 1]).all()  # every 10 ms point is filled in between 20 ms samples


def test_a_gap_in_the_samples_breaks_the_trace(
    sweep: SweepWaveform, clock: FakeClock, waves: dict[str, RingBuffer]
) -> None:
    feed = Feed(clock, waves)
    feed.send(np.full(100, 40.0))
    sweep.refresh()
    feed.skip(1.0)  # packets lost for a second (under the NO PLETH limit)
    feed.send(np.full(100, 60.0))
    sweep.refresh()
    _, y = sweep.trace()
    assert np.isfinite(y[:100]).all()
    assert np.isnan(y[101:199]).all()  # no line bridges the lost second
    assert np.isfinite(y[200:300]).all()


def test_no_pleth_after_two_silent_seconds(
    sweep: SweepWaveform, clock: FakeClock, waves: dict[str, RingBuffer]
) -> None:
    feed = Feed(clock, waves)
    feed.send(50.0 + 30.0 * np.sin(np.arange(200) / 10.0))
    sweep.refresh()
    assert not sweep.no_signal() and sweep.message_text() == ""
    clock.advance(NO_SIGNAL_AFTER_S)
    sweep.refresh()
    assert not sweep.no_signal()  # exactly 2 s: not yet
    clock.advance(0.05)
    assert sweep.refresh() is True
    assert sweep.no_signal() and sweep.message_text() == "NO PLETH"
    _, y = sweep.trace()
    assert np.isnan(y).all()  # the old wave is blanked: it must not pass for a live one
    clock.advance(1.0)
    assert sweep.refresh() is False  # still silent: nothing more to draw

    feed.n = round((clock.monotonic() - T0) * RATE)  # the device comes back now
    feed.send(np.full(20, 50.0))
    sweep.refresh()
    assert not sweep.no_signal() and sweep.message_text() == ""
    _, y = sweep.trace()
    assert np.isfinite(y).sum() == 20


def test_no_pleth_when_none_ever_arrives(qtbot: QtBot, clock: FakeClock) -> None:
    sweep = SweepWaveform({}, clock)
    qtbot.addWidget(sweep)
    sweep.refresh()
    assert not sweep.no_signal()
    clock.advance(2.1)
    sweep.refresh()
    assert sweep.message_text() == "NO PLETH"


def test_auto_gain_follows_the_amplitude_slowly(
    sweep: SweepWaveform, clock: FakeClock, waves: dict[str, RingBuffer]
) -> None:
    feed = Feed(clock, waves)
    wave = np.sin(np.arange(100) / 100.0 * 2 * np.pi)  # one 1 Hz beat per second

    def beats(seconds: int, amplitude: float) -> None:
        for _ in range(seconds * 10):  # refreshed ten times a second
            feed.send(500.0 + amplitude * wave[(feed.n % 100) + np.arange(10)])
            sweep.refresh()

    beats(3, 10.0)
    lo, hi = sweep.gain()
    assert hi - lo == pytest.approx(20.0, rel=0.05)
    beats(1, 100.0)  # the wave grows tenfold: within a second the scale covers most of it
    lo, hi = sweep.gain()
    assert hi - lo > 0.7 * 200.0
    beats(3, 100.0)
    lo, hi = sweep.gain()
    assert hi - lo == pytest.approx(200.0, rel=0.05)
    beats(3, 10.0)  # small beats again: the scale narrows slowly (a fast gain would be at ~20)
    lo, hi = sweep.gain()
    assert hi - lo > 120.0
    _, y = sweep.trace()
    finite = y[np.isfinite(y)]
    assert finite.min() >= 0.0 and finite.max() <= 1.0


def test_a_flat_signal_is_not_blown_up_into_noise(
    sweep: SweepWaveform, clock: FakeClock, waves: dict[str, RingBuffer]
) -> None:
    feed = Feed(clock, waves)
    feed.send(np.array([64.0, 64.0, 64.0, 64.2, 64.0] * 20))
    sweep.refresh()
    _, y = sweep.trace()
    finite = y[np.isfinite(y)]
    assert finite.max() - finite.min() < 0.25  # 0.2 units of noise is not drawn full height


def test_the_first_seconds_are_redrawn_as_the_scale_is_found(
    sweep: SweepWaveform, clock: FakeClock, waves: dict[str, RingBuffer]
) -> None:
    feed = Feed(clock, waves)
    feed.send(ramp(10))  # the first packet alone spans only 0 … 9
    sweep.refresh()
    _, y = sweep.trace()
    np.testing.assert_allclose(y[:10], ramp(10) / 9.0)
    feed.send(ramp(100)[10:])  # the rest of the first second: 10 … 99
    sweep.refresh()
    _, y = sweep.trace()
    # the first packet is redrawn on the scale found since, not left as a full-height spike
    np.testing.assert_allclose(y[:100], ramp(100) / 99.0)
