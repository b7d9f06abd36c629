"""Main window tests: numerics, staleness, trends, device status, clocks and the PNG rendering."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QColor, QFontMetrics, QImage
from PySide6.QtWidgets import QLabel, QWidget
from pytestqt.qtbot import QtBot

from kapmonitor.clock import FakeClock
from kapmonitor.measurements import DeviceInfo, DeviceState, MalformedPacket, Numeric, Param, Quality
from kapmonitor.session import Session
from ui.main_window import MainWindow, format_elapsed, format_wall
from ui.widgets import NO_VALUE, NumericTile

OXI = "AA:BB:CC:00:00:01"
STRAP = "AA:BB:CC:00:00:02"
#: 2026-01-01 14:05:00 UTC: a plausible afternoon session start for pictures and clock tests.
AFTERNOON = 1_767_225_600.0 + 14 * 3600 + 5 * 60
#: Set to write docs/screenshots/main-window.png from test_render_png.
SCREENSHOT_ENV = "KAPMONITOR_SCREENSHOTS"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "main-window.png"


def numeric(
    clock: FakeClock, param: Param, value: float | None, quality: Quality = Quality.NONE, device: str = OXI
) -> Numeric:
    return Numeric(param, value, clock.monotonic(), clock.wall(), device, quality)


def vitals(
    clock: FakeClock, spo2: float | None, pulse: float | None, quality: Quality = Quality.NONE
) -> list[Numeric]:
    return [numeric(clock, Param.SPO2, spo2, quality), numeric(clock, Param.PULSE_RATE, pulse, quality)]


def connected_session(clock: FakeClock, *, stale_after_s: float = 15.0) -> Session:
    session = Session(clock, stale_after_s=stale_after_s)
    session.register_device(DeviceInfo(OXI, "O2Ring 2041", "pulse-oximeter"))
    session.device_state(OXI, DeviceState.CONNECTED)
    return session


def feed_plausible(session: Session, clock: FakeClock, seconds: int, seed: int = 7) -> None:
    """Feed 1 Hz SpO2 and pulse like an averaging oximeter on a calm patient: one desaturation
    near minute 16 (pulse rises with it), a 40 s sensor-off gap at minute 9, slow drift."""
    rng = np.random.default_rng(seed)
    spo2, pulse = 97.0, 78.0
    for i in range(seconds):
        clock.advance(1.0)
        m = i / 60.0
        desat = math.exp(-(((m - 16.0) / 1.4) ** 2))
        spo2 += 0.12 * (97.3 - 8.5 * desat - spo2) + rng.normal(0.0, 0.1)
        pulse += 0.08 * (79.0 - 0.25 * m + 3.0 * math.sin(m / 3.0) + 14.0 * desat - pulse)
        pulse += rng.normal(0.0, 0.5)
        if 540 <= i < 580:
            session.ingest(vitals(clock, None, None, Quality.SENSOR_OFF))
        else:
            session.ingest(vitals(clock, round(spo2), round(pulse)))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_wall=AFTERNOON)


@pytest.fixture
def session(clock: FakeClock) -> Session:
    return connected_session(clock)


@pytest.fixture
def window(qtbot: QtBot, session: Session) -> MainWindow:
    w = MainWindow(session, tz=UTC)
    qtbot.addWidget(w)
    return w


@pytest.fixture
def shown(qtbot: QtBot, window: MainWindow) -> MainWindow:
    window.resize(1600, 900)
    window.show()
    qtbot.waitExposed(window)
    return window


# -------------------------------------------------------------------------- numerics
def test_tiles_show_ingested_values_at_once(window: MainWindow, session: Session, clock: FakeClock) -> None:
    spo2, pulse = window.tiles[Param.SPO2], window.tiles[Param.PULSE_RATE]
    assert spo2.value_text() == NO_VALUE
    assert spo2.quality_text() == "NO DATA"  # nothing received yet
    clock.advance(1)
    session.ingest(vitals(clock, 97, 72))
    # no frame tick: numerics update on the event itself
    assert (spo2.value_text(), pulse.value_text()) == ("97", "72")
    assert (spo2.quality_text(), pulse.quality_text()) == ("", "")
    clock.advance(1)
    session.ingest([numeric(clock, Param.SPO2, 93.4)])
    assert (spo2.value_text(), pulse.value_text()) == ("93", "72")


def test_tiles_are_found_by_object_name(window: MainWindow) -> None:
    assert window.findChild(NumericTile, "tile_spo2") is window.tiles[Param.SPO2]
    assert window.findChild(NumericTile, "tile_pulse") is window.tiles[Param.PULSE_RATE]


def test_none_value_shows_dashes_and_says_so(window: MainWindow, session: Session, clock: FakeClock) -> None:
    clock.advance(1)
    session.ingest(vitals(clock, 97, 72))
    clock.advance(1)
    session.ingest([numeric(clock, Param.SPO2, None)])
    tile = window.tiles[Param.SPO2]
    assert tile.value_text() == NO_VALUE
    assert tile.quality_text() == "NO VALUE"
    assert window.tiles[Param.PULSE_RATE].value_text() == "72"


def test_sensor_off_shows_its_words_and_never_a_number(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    clock.advance(1)
    # some devices keep sending their last number with the sensor-off flag: it must not show
    session.ingest(vitals(clock, 97, 72, Quality.SENSOR_OFF))
    for tile in window.tiles.values():
        assert tile.value_text() == NO_VALUE
        assert "SENSOR OFF" in tile.quality_text()


def test_poor_signal_keeps_the_number_and_adds_words(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    clock.advance(1)
    session.ingest([numeric(clock, Param.PULSE_RATE, 131, Quality.POOR_SIGNAL | Quality.LOW_PERFUSION)])
    tile = window.tiles[Param.PULSE_RATE]
    assert tile.value_text() == "131"
    assert tile.quality_text() == "POOR SIGNAL · LOW PERFUSION"


def test_stale_device_shows_no_data_until_data_resumes(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    clock.advance(1)
    session.ingest(vitals(clock, 96, 70))
    clock.advance(16)
    session.tick()  # the core's watchdog notices and emits DeviceChanged
    assert session.is_stale(OXI)
    for tile in window.tiles.values():
        assert (tile.value_text(), tile.quality_text()) == (NO_VALUE, "NO DATA")
    window.on_frame()
    (line,) = window.status_line.row_texts()
    assert "NO DATA" in line
    assert "no data for 16 s" in line
    clock.advance(4)
    window.on_frame()  # the age keeps counting once a second
    assert "no data for 20 s" in window.status_line.row_texts()[0]

    clock.advance(1)
    session.ingest(vitals(clock, 95, 71))
    assert window.tiles[Param.SPO2].value_text() == "95"
    assert window.tiles[Param.SPO2].quality_text() == ""
    assert "NO DATA" not in window.status_line.row_texts()[0]


def test_lost_device_hides_old_values_even_after_reconnecting(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    clock.advance(1)
    session.ingest(vitals(clock, 96, 70))
    clock.advance(2)
    session.device_state(OXI, DeviceState.LOST, "link dropped")
    spo2 = window.tiles[Param.SPO2]
    assert (spo2.value_text(), spo2.quality_text()) == (NO_VALUE, "DEVICE LOST")
    assert "lost" in window.status_line.row_texts()[0]
    assert "link dropped" in window.status_line.row_texts()[0]

    clock.advance(5)
    session.device_state(OXI, DeviceState.CONNECTED)
    # connected again, but the 96 is from before the loss: still not shown
    assert (spo2.value_text(), spo2.quality_text()) == (NO_VALUE, "NO DATA")
    clock.advance(1)
    session.ingest(vitals(clock, 94, 75))
    assert (spo2.value_text(), spo2.quality_text()) == ("94", "")


def test_value_is_readable_from_three_metres(shown: MainWindow, session: Session, clock: FakeClock) -> None:
    clock.advance(1)
    session.ingest(vitals(clock, 100, 180))
    for tile in shown.tiles.values():
        value = tile.findChild(QLabel, "tileValue")
        assert value is not None
        metrics = QFontMetrics(value.font())
        assert metrics.tightBoundingRect("97").height() >= 96
        # and the widest value fits: nothing clipped
        assert metrics.horizontalAdvance("188") <= value.width()
        assert metrics.height() <= value.height()


def test_layout_trend_left_numerics_right_devices_bottom(shown: MainWindow) -> None:
    def rect(w: QWidget) -> QRect:
        return QRect(w.mapTo(shown, QPoint(0, 0)), w.size())

    trend, status = rect(shown.trend), rect(shown.status_line)
    spo2, pulse = rect(shown.tiles[Param.SPO2]), rect(shown.tiles[Param.PULSE_RATE])
    assert trend.width() > 900  # the trend gets most of the width
    assert spo2.left() > trend.right() and pulse.left() > trend.right()
    assert spo2.bottom() < pulse.top()  # SpO2 above pulse
    assert status.top() > max(trend.bottom(), pulse.bottom())
    assert status.bottom() <= shown.height()
    assert shown.elapsed_label.mapTo(shown, QPoint(0, 0)).y() < trend.top()


# -------------------------------------------------------------------------- trends
def test_trend_curve_holds_the_ingested_points_with_gaps(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    values: list[float | None] = [97, 96, None, None, 95, 94]
    for v in values:
        clock.advance(30)
        session.ingest([numeric(clock, Param.SPO2, v)])
    window.on_frame()
    x, y = window.trend.curve(Param.SPO2).getOriginalDataset()
    assert x is not None and y is not None
    np.testing.assert_allclose(x, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0])  # minutes since session start
    expected = np.array([np.nan if v is None else v for v in values])
    np.testing.assert_array_equal(y, expected)  # NaN where there was no value: the line breaks
    assert window.trend.curve(Param.SPO2).opts["connect"] == "finite"
    px, _ = window.trend.curve(Param.PULSE_RATE).getOriginalDataset()
    assert px is None  # no pulse received


def test_trend_pens_are_thin_and_not_antialiased(window: MainWindow) -> None:
    for param in (Param.SPO2, Param.PULSE_RATE):
        curve = window.trend.curve(param)
        assert curve.opts["pen"].width() <= 1
        assert curve.opts["antialias"] is False
        assert curve.opts["clipToView"] is True
        assert curve.opts["autoDownsample"] is True
        assert curve.opts["downsampleMethod"] == "peak"


def test_trend_redraws_only_when_a_buffer_changed(
    window: MainWindow, session: Session, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: dict[Param, int] = {Param.SPO2: 0, Param.PULSE_RATE: 0}

    def spy(param: Param) -> Callable[..., Any]:
        original = window.trend.curve(param).setData

        def counting(*args: Any, **kwargs: Any) -> Any:
            calls[param] += 1
            return original(*args, **kwargs)

        return counting

    for param in calls:
        monkeypatch.setattr(window.trend.curve(param), "setData", spy(param))

    for _ in range(5):
        window.on_frame()
    assert calls == {Param.SPO2: 0, Param.PULSE_RATE: 0}

    clock.advance(1)
    session.ingest(vitals(clock, 97, 72))
    for _ in range(5):
        window.on_frame()
    assert calls == {Param.SPO2: 1, Param.PULSE_RATE: 1}
    assert window.trend.redraw_count == 2

    clock.advance(1)
    session.ingest([numeric(clock, Param.PULSE_RATE, 74)])
    for _ in range(5):
        clock.advance(0.033)
        window.on_frame()
    assert calls == {Param.SPO2: 1, Param.PULSE_RATE: 2}


def test_frame_timer_redraws_the_trend(qtbot: QtBot, window: MainWindow, session: Session) -> None:
    clock = session.clock
    assert isinstance(clock, FakeClock)
    clock.advance(1)
    session.ingest(vitals(clock, 97, 72))
    before = window.trend.redraw_count
    qtbot.waitUntil(lambda: window.trend.redraw_count > before, timeout=2000)
    x, _ = window.trend.curve(Param.PULSE_RATE).getOriginalDataset()
    assert x is not None and len(x) == 1


def test_time_axis_grows_with_the_session_but_does_not_scroll(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    def x_range() -> tuple[float, float]:
        lo, hi = window.trend.plot_item(Param.SPO2).viewRange()[0]
        return float(lo), float(hi)

    assert x_range() == (0.0, 30.0)
    for _ in range(10):
        clock.advance(60)
        session.ingest(vitals(clock, 97, 72))
        window.on_frame()
    assert x_range() == (0.0, 30.0)
    clock.advance(21 * 60)
    session.ingest(vitals(clock, 97, 72))
    window.on_frame()
    assert x_range() == (0.0, 60.0)
    assert window.trend.plot_item(Param.PULSE_RATE).viewRange()[0] == pytest.approx([0.0, 60.0])


def test_trend_widens_for_a_value_off_the_scale(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    assert window.trend.plot_item(Param.SPO2).viewRange()[1][0] > 69
    clock.advance(1)
    session.ingest(vitals(clock, 63, 190))
    window.on_frame()
    lo, _ = window.trend.plot_item(Param.SPO2).viewRange()[1]
    _, hi = window.trend.plot_item(Param.PULSE_RATE).viewRange()[1]
    assert lo <= 63 and hi >= 190


# -------------------------------------------------------------------------- devices and clocks
def test_device_state_changes_appear_in_the_status_line(qtbot: QtBot, clock: FakeClock) -> None:
    session = Session(clock)
    window = MainWindow(session, tz=UTC)
    qtbot.addWidget(window)
    assert window.status_line.row_texts() == []

    session.register_device(DeviceInfo(STRAP, "Polar H10", "heart-rate"))
    session.device_state(STRAP, DeviceState.SEARCHING)
    (line,) = window.status_line.row_texts()
    assert "Polar H10" in line and "heart-rate" in line and "searching" in line
    assert "◌" in line

    session.device_state(STRAP, DeviceState.CONNECTING)
    assert "connecting" in window.status_line.row_texts()[0]
    session.device_state(STRAP, DeviceState.CONNECTED)
    line = window.status_line.row_texts()[0]
    assert "connected" in line and "●" in line

    session.malformed(MalformedPacket(STRAP, "2a37", b"\x10", "too short", clock.monotonic(), clock.wall()))
    session.malformed(MalformedPacket(STRAP, "2a37", b"\x10", "too short", clock.monotonic(), clock.wall()))
    clock.advance(1)
    window.on_frame()  # malformed packets emit no event: the line catches up within a second
    assert "2 malformed packets" in window.status_line.row_texts()[0]

    session.device_state(STRAP, DeviceState.LOST, "link dropped")
    line = window.status_line.row_texts()[0]
    assert "lost" in line and "✖" in line and "link dropped" in line


def test_one_line_per_device(window: MainWindow, session: Session) -> None:
    session.register_device(DeviceInfo(STRAP, "Polar H10", "heart-rate"))
    session.device_state(STRAP, DeviceState.CONNECTING)
    lines = window.status_line.row_texts()
    assert len(lines) == 2
    assert "O2Ring 2041" in lines[0] and "connected" in lines[0]
    assert "Polar H10" in lines[1] and "connecting" in lines[1]


def test_top_bar_shows_elapsed_and_wall_time(window: MainWindow, clock: FakeClock) -> None:
    assert window.elapsed_label.text() == "T+00:00:00"
    assert window.wall_label.text() == "14:05:00"
    clock.advance(12 * 60 + 34.6)
    window.on_frame()
    assert window.elapsed_label.text() == "T+00:12:34"
    assert window.wall_label.text() == "14:17:34"


def test_time_formats() -> None:
    assert format_elapsed(0) == "T+00:00:00"
    assert format_elapsed(2 * 3600 + 3 * 60 + 4.9) == "T+02:03:04"
    assert format_elapsed(-3) == "T+00:00:00"
    assert format_wall(AFTERNOON, UTC) == "14:05:00"


def test_close_unsubscribes_and_stops_the_timer(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    clock.advance(1)
    session.ingest(vitals(clock, 97, 72))
    window.close()
    clock.advance(1)
    session.ingest(vitals(clock, 88, 110))
    assert window.tiles[Param.SPO2].value_text() == "97"
    redraws = window.trend.redraw_count
    window.shutdown()  # idempotent
    assert window.trend.redraw_count == redraws


# -------------------------------------------------------------------------- picture
def test_render_png_of_thirty_minutes(qtbot: QtBot, tmp_path: Path) -> None:
    clock = FakeClock(start_wall=AFTERNOON)
    session = connected_session(clock)
    session.register_device(DeviceInfo(STRAP, "Polar H10", "heart-rate"))
    window = MainWindow(session, tz=UTC)
    qtbot.addWidget(window)
    window.resize(1600, 900)
    window.show()
    qtbot.waitExposed(window)
    feed_plausible(session, clock, 29 * 60 + 20)
    session.device_state(STRAP, DeviceState.LOST, "link dropped at T+00:21:40")

    path = tmp_path / "main-window.png"
    window.render_png(path)
    assert path.stat().st_size > 20_000
    image = QImage(str(path))
    assert (image.width(), image.height()) == (1600, 900)
    # the picture holds the cyan SpO2 colour somewhere (the numeric and the trend): not blank
    cyan = QColor("#35e0f0").rgb()
    hits = sum(image.pixel(x, y) == cyan for x in range(0, 1600, 4) for y in range(0, 900, 4))
    assert hits > 200
    assert window.elapsed_label.text() == "T+00:29:20"
    clipped = [
        lab.text()
        for lab in window.findChildren(QLabel)
        if lab.isVisible() and lab.text() and lab.width() < lab.sizeHint().width()
    ]
    assert clipped == []
    x, _ = window.trend.curve(Param.SPO2).getOriginalDataset()
    assert x is not None and len(x) == 29 * 60 + 20

    if os.environ.get(SCREENSHOT_ENV):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        window.render_png(SCREENSHOT)
