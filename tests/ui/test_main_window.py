"""Main window tests: numerics, pleth, BP, staleness, trends, device status, clocks and the PNG."""

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
from kapmonitor.measurements import (
    BloodPressure,
    BPStatus,
    DeviceInfo,
    DeviceState,
    MalformedPacket,
    Numeric,
    Param,
    Quality,
    Waveform,
)
from kapmonitor.session import Session
from ui import style
from ui.main_window import MainWindow, format_elapsed, format_wall
from ui.widgets import NO_VALUE, BloodPressureTile, NumericTile, format_age

OXI = "AA:BB:CC:00:00:01"
STRAP = "AA:BB:CC:00:00:02"
CUFF = "AA:BB:CC:00:00:03"
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
    session.register_device(DeviceInfo(OXI, "Test oximeter", "pulse-oximeter"))
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


def bp_reading(
    clock: FakeClock,
    systolic: float | None,
    diastolic: float | None,
    mean: float | None,
    *,
    stored: bool = False,
    measured_wall: float | None = None,
    status: BPStatus = BPStatus.NONE,
) -> BloodPressure:
    return BloodPressure(
        systolic, diastolic, mean, 70.0, clock.monotonic(), clock.wall(), CUFF, measured_wall, stored, status
    )


def battery(clock: FakeClock, device: str, percent: float) -> Numeric:
    return numeric(clock, Param.BATTERY, percent, device=device)


def pleth_samples(first: int, count: int, pulse_bpm: float = 72.0) -> tuple[int, ...]:
    """Pleth in device units (0-100) like a finger sensor: a sharp upstroke, a notch, a second wave."""
    phase = ((first + np.arange(count)) / 100.0 * pulse_bpm / 60.0) % 1.0
    wave = np.exp(-0.5 * ((phase - 0.2) / 0.06) ** 2) + 0.45 * np.exp(-0.5 * ((phase - 0.45) / 0.08) ** 2)
    return tuple(int(v) for v in np.round(15 + 70 * wave))


def feed_pleth(window: MainWindow, clock: FakeClock, seconds: float, start: int = 0) -> int:
    """Feed 100 Hz pleth in 3-sample packets at 30 frames per second; returns the next sample index."""
    session = window.session
    n = start
    for _ in range(round(seconds * 30)):
        clock.advance(1 / 30)
        packet = pleth_samples(n, 3)
        mono = clock.monotonic() - 2 / 100
        session.ingest([Waveform("pleth", 100.0, packet, mono, clock.wall(), OXI)])
        n += 3
        window.on_frame()
    return n


def busy_session(clock: FakeClock) -> Session:
    """An oximeter, a strap and a cuff, all connected (three status lines)."""
    session = connected_session(clock)
    session.register_device(DeviceInfo(STRAP, "Test HR strap", "heart-rate"))
    session.device_state(STRAP, DeviceState.CONNECTED)
    session.register_device(DeviceInfo(CUFF, "Test BP cuff", "blood-pressure"))
    session.device_state(CUFF, DeviceState.CONNECTED)
    return session


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


def rect_in(window: QWidget, w: QWidget) -> QRect:
    return QRect(w.mapTo(window, QPoint(0, 0)), w.size())


def test_layout_sweep_and_trends_left_tiles_right_devices_bottom(shown: MainWindow) -> None:
    trend, status, sweep = (
        rect_in(shown, shown.trend),
        rect_in(shown, shown.status_line),
        rect_in(shown, shown.sweep),
    )
    spo2, pulse = rect_in(shown, shown.tiles[Param.SPO2]), rect_in(shown, shown.tiles[Param.PULSE_RATE])
    bp = rect_in(shown, shown.bp_tile)
    assert trend.width() > 900  # the trend gets most of the width
    assert sweep.bottom() < trend.top() and sweep.height() >= 150  # the pleth sweep above the trends
    assert abs(sweep.left() - trend.left()) <= 2 and abs(sweep.right() - trend.right()) <= 2
    for tile in (spo2, pulse, bp):
        assert tile.left() > trend.right()
    assert spo2.bottom() < pulse.top() < pulse.bottom() < bp.top()  # SpO2, pulse, then BP
    assert status.top() > max(trend.bottom(), bp.bottom())
    assert status.bottom() <= shown.height()
    assert shown.elapsed_label.mapTo(shown, QPoint(0, 0)).y() < sweep.top()


def fit_label_fits(label: QLabel) -> bool:
    """A fitted number's widest text and its font's height fit the label (nothing clipped)."""
    metrics = QFontMetrics(label.font())
    return metrics.horizontalAdvance(label.text()) <= label.width() and metrics.height() <= label.height()


@pytest.mark.parametrize("size", [(1600, 900), (1280, 800), (1920, 1080)])
def test_no_tile_text_is_clipped_at_common_screen_sizes(
    qtbot: QtBot, size: tuple[int, int], clock: FakeClock
) -> None:
    session = busy_session(clock)
    window = MainWindow(session, tz=UTC)
    qtbot.addWidget(window)
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    # the widest texts each tile can show
    clock.advance(1)
    session.ingest(vitals(clock, 100, 188, Quality.POOR_SIGNAL | Quality.LOW_PERFUSION))
    session.ingest(
        [bp_reading(clock, 188, 188, 188, status=BPStatus.IRREGULAR_PULSE | BPStatus.BODY_MOVEMENT)]
    )
    clock.advance(2 * 3600)
    window.on_frame()
    window.render_png(Path(os.devnull))  # lays out pending changes
    assert (window.width(), window.height()) == size
    whole = window.rect()
    for tile in (*window.tiles.values(), window.bp_tile):
        area = rect_in(window, tile)
        assert whole.contains(area), tile.objectName()
        for label in tile.findChildren(QLabel):
            if not label.text():
                continue
            inside = QRect(label.mapTo(tile, QPoint(0, 0)), label.size())
            assert tile.rect().contains(inside), (tile.objectName(), label.text())
            if label.objectName() == "tileValue":
                assert fit_label_fits(label), (tile.objectName(), label.text(), label.size())
            else:
                assert label.width() >= label.sizeHint().width(), (tile.objectName(), label.text())
                assert label.height() >= label.minimumSizeHint().height(), (tile.objectName(), label.text())
    assert window.bp_tile.value_text() == "188/188"
    assert "IRREGULAR PULSE" in window.bp_tile.status_text()
    assert window.bp_tile.age_text().endswith("2 h 00 min ago")
    # BP digits readable at 3 m too: at least 40 px digits even on the smallest screen
    bp_value = window.bp_tile.findChild(QLabel, "tileValue")
    assert bp_value is not None
    assert QFontMetrics(bp_value.font()).tightBoundingRect("120/80").height() >= 40


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


# -------------------------------------------------------------------------- pleth
def test_frames_draw_the_sessions_pleth_and_say_no_pleth_when_it_stops(
    window: MainWindow, clock: FakeClock
) -> None:
    feed_pleth(window, clock, 2.0)
    _, y = window.sweep.trace()
    drawn = np.isfinite(y).sum()
    assert 190 <= drawn <= 200  # 2 s at 100 points/s, from the session's own buffer
    assert not window.sweep.no_signal()
    clock.advance(2.5)  # the oximeter stops sending pleth
    window.on_frame()
    assert window.sweep.message_text() == "NO PLETH"


# -------------------------------------------------------------------------- blood pressure
def test_bp_tile_before_any_reading(window: MainWindow) -> None:
    tile = window.bp_tile
    assert window.findChild(BloodPressureTile, "tile_bp") is tile
    assert (tile.value_text(), tile.map_text(), tile.age_text()) == ("---/---", "", "no reading yet")
    assert (tile.stored_text(), tile.status_text()) == ("", "")


def test_bp_tile_shows_a_live_reading_and_its_age_counts(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    clock.advance(60)
    session.ingest([bp_reading(clock, 120, 80, 93)])
    tile = window.bp_tile
    assert (tile.value_text(), tile.map_text()) == ("120/80", "(93)")
    assert tile.age_text() == "at 14:06 · just now"
    assert (tile.stored_text(), tile.status_text()) == ("", "")
    clock.advance(4 * 60 + 10)
    window.on_frame()
    assert tile.age_text() == "at 14:06 · 4 min ago"
    clock.advance(61 * 60)
    window.on_frame()
    assert tile.age_text() == "at 14:06 · 1 h 05 min ago"
    assert "120/80" in tile.accessibleName() and "1 h 05 min ago" in tile.accessibleName()


def test_bp_tile_marks_a_stored_reading_and_places_it_by_the_cuff_time(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    clock.advance(30 * 60)
    cuff_time = clock.wall() - 12 * 60  # taken 12 min ago while the link was down
    session.ingest([bp_reading(clock, 134, 86, 102, stored=True, measured_wall=cuff_time)])
    tile = window.bp_tile
    assert (tile.value_text(), tile.map_text()) == ("134/86", "(102)")
    assert tile.stored_text() == "STORED READING"
    assert tile.age_text() == "at 14:23 · 12 min ago"
    # on the trend it sits at the cuff's time, 18 min into the session, not at its arrival
    window.on_frame()
    markers = window.trend.bp_markers()
    assert markers is not None
    sys_x, sys_y = markers[0].getData()
    np.testing.assert_allclose(sys_x, [18.0])
    np.testing.assert_allclose(sys_y, [134.0])

    clock.advance(60)
    session.ingest([bp_reading(clock, 121, 79, 92)])  # a live one: newer, replaces it
    assert (tile.value_text(), tile.stored_text()) == ("121/79", "")
    older = clock.wall() - 20 * 60
    session.ingest([bp_reading(clock, 150, 95, 113, stored=True, measured_wall=older)])
    assert tile.value_text() == "121/79"  # an older stored upload does not replace the newest
    window.on_frame()
    sys_x, _ = markers[0].getData()
    assert sorted(np.round(sys_x, 3)) == [11.0, 18.0, 31.0]


def test_bp_tile_says_the_cuffs_status_in_words(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    clock.advance(1)
    session.ingest(
        [bp_reading(clock, 142, 91, 108, status=BPStatus.IRREGULAR_PULSE | BPStatus.CUFF_TOO_LOOSE)]
    )
    tile = window.bp_tile
    assert tile.value_text() == "142/91"
    assert tile.status_text() == "CUFF LOOSE · IRREGULAR PULSE"
    clock.advance(60)
    session.ingest([bp_reading(clock, None, None, None, status=BPStatus.BODY_MOVEMENT)])
    assert (tile.value_text(), tile.map_text()) == ("---/---", "")
    assert tile.status_text() == "MEASUREMENT ERROR · MOVEMENT"
    clock.advance(60)
    session.ingest([bp_reading(clock, 120, 80, 93, status=BPStatus.MEASUREMENT_ERROR)])
    assert (tile.value_text(), tile.status_text()) == ("---/---", "MEASUREMENT ERROR")
    window.on_frame()
    markers = window.trend.bp_markers()
    assert markers is not None
    sys_x, _ = markers[0].getData()
    assert len(sys_x) == 2  # the reading without numbers leaves no marker


def test_age_words() -> None:
    assert format_age(-5) == "just now"
    assert format_age(59) == "just now"
    assert format_age(60) == "1 min ago"
    assert format_age(59 * 60 + 59) == "59 min ago"
    assert format_age(2 * 3600 + 7 * 60) == "2 h 07 min ago"


def test_bp_markers_are_points_on_their_own_plot(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    for sys_v, dia_v in [(118, 76), (125, 82), (131, 84)]:  # at 5, 10 and 15 min
        clock.advance(5 * 60)
        session.ingest([bp_reading(clock, sys_v, dia_v, None)])
    window.on_frame()
    markers = window.trend.bp_markers()
    assert markers is not None
    (sys_x, sys_y), (dia_x, dia_y) = markers[0].getData(), markers[1].getData()
    np.testing.assert_allclose(sys_x, [5.0, 10.0, 15.0])
    np.testing.assert_allclose(dia_x, [5.0, 10.0, 15.0])
    np.testing.assert_allclose(sys_y, [118, 125, 131])
    np.testing.assert_allclose(dia_y, [76, 82, 84])
    assert markers[0].opts["symbol"] == "t" and markers[1].opts["symbol"] == "t1"  # ▼ over ▲
    bp_plot = window.trend.plot_item(Param.SYSTOLIC)
    assert bp_plot is not window.trend.plot_item(Param.PULSE_RATE)
    assert bp_plot.viewRange()[0] == pytest.approx([0.0, 30.0])  # the shared time axis
    assert window.bp_tile.map_text() == "(---)"  # no MAP sent


# -------------------------------------------------------------------------- devices and clocks
def test_device_state_changes_appear_in_the_status_line(qtbot: QtBot, clock: FakeClock) -> None:
    session = Session(clock)
    window = MainWindow(session, tz=UTC)
    qtbot.addWidget(window)
    assert window.status_line.row_texts() == []

    session.register_device(DeviceInfo(STRAP, "Test HR strap", "heart-rate"))
    session.device_state(STRAP, DeviceState.SEARCHING)
    (line,) = window.status_line.row_texts()
    assert "Test HR strap" in line and "heart-rate" in line and "searching" in line
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
    session.register_device(DeviceInfo(STRAP, "Test HR strap", "heart-rate"))
    session.device_state(STRAP, DeviceState.CONNECTING)
    lines = window.status_line.row_texts()
    assert len(lines) == 2
    assert "Test oximeter" in lines[0] and "connected" in lines[0]
    assert "Test HR strap" in lines[1] and "connecting" in lines[1]


def test_battery_per_device_in_the_status_line(
    window: MainWindow, session: Session, clock: FakeClock
) -> None:
    session.register_device(DeviceInfo(CUFF, "Test BP cuff", "blood-pressure"))
    session.device_state(CUFF, DeviceState.CONNECTED)
    clock.advance(1)
    session.ingest([battery(clock, OXI, 85), battery(clock, CUFF, 21)])
    oxi, cuff = window.status_line.row_texts()
    assert "battery 85 %" in oxi and "LOW" not in oxi
    assert "battery 21 %" in cuff and "LOW" not in cuff
    clock.advance(60)
    session.ingest([battery(clock, CUFF, 20)])
    oxi, cuff = window.status_line.row_texts()
    assert "battery 85 %" in oxi  # the other device keeps its own level
    assert "battery 20 % LOW" in cuff
    low = [
        lab
        for lab in window.status_line.findChildren(QLabel, "deviceBattery")
        if lab.property("low") == "true"
    ]
    assert [lab.text() for lab in low] == ["battery 20 % LOW"]


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
    session = busy_session(clock)
    window = MainWindow(session, tz=UTC)
    qtbot.addWidget(window)
    window.resize(1600, 900)
    window.show()
    qtbot.waitExposed(window)
    feed_plausible(session, clock, 29 * 60 + 20)
    # a reading every 5 minutes from minute 1; the newest (minute 26) with an irregular pulse
    for k, minute in enumerate(range(1, 30, 5)):
        t = session.started_mono + minute * 60
        w = session.started_wall + minute * 60
        status = BPStatus.IRREGULAR_PULSE if minute == 26 else BPStatus.NONE
        reading = BloodPressure(118 + 3 * k, 76 + k, 90 + 2 * k, 72, t, w, CUFF, status=status)
        session.ingest([reading])
    session.ingest([battery(clock, OXI, 85), battery(clock, CUFF, 15), battery(clock, STRAP, 60)])
    session.device_state(STRAP, DeviceState.LOST, "link dropped at T+00:21:40")
    feed_pleth(window, clock, 5.0)

    path = tmp_path / "main-window.png"
    window.render_png(path)
    assert path.stat().st_size > 20_000
    image = QImage(str(path))
    assert (image.width(), image.height()) == (1600, 900)

    def colour_hits(colour: str, area: QRect) -> int:
        rgb = QColor(colour).rgb()
        return sum(
            image.pixel(x, y) == rgb
            for x in range(area.left(), area.right(), 2)
            for y in range(area.top(), area.bottom(), 2)
        )

    # the sweep holds a drawn pleth, the trends the SpO2 line and the BP markers: not blank
    assert colour_hits(style.PLETH, rect_in(window, window.sweep)) > 150
    assert colour_hits(style.PARAM_COLOURS[Param.SPO2], rect_in(window, window.trend)) > 100
    bp_plot = window.trend.plot_item(Param.SYSTOLIC)
    bp_area = bp_plot.sceneBoundingRect().toRect().translated(rect_in(window, window.trend).topLeft())
    assert colour_hits(style.BP, bp_area) > 40
    assert window.elapsed_label.text() == "T+00:29:24"  # 29:20 + 150 frames of 1/30 s, just short of :25
    assert window.bp_tile.value_text() == "133/81"
    assert window.bp_tile.status_text() == "IRREGULAR PULSE"
    assert window.bp_tile.age_text() == "at 14:31 · 3 min ago"
    assert not window.sweep.no_signal()
    lines = window.status_line.row_texts()
    assert "battery 15 % LOW" in lines[2] and "battery 85 %" in lines[0]
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


# -- the alarm channel wired into the window -------------------------------------------------------
def test_alarms_reach_the_bar_and_the_tile_and_a_missing_audio_device_is_unmissable(qtbot: QtBot) -> None:
    from kapmonitor.alarms import AlarmEngine, TechnicalCondition, kap_defaults
    from ui.sound import AlarmSoundPlayer

    clock = FakeClock()
    engine = AlarmEngine(clock, kap_defaults(), hold_off_s=0)
    session = Session(clock, alarms=engine)
    # a player whose sound files do not exist: play() must fail loudly, never silently
    sound = AlarmSoundPlayer(sounds_dir=Path("/nonexistent/kapmonitor-sounds"))
    window = MainWindow(session, sound=sound, operator=lambda: "nurse Kim")
    qtbot.addWidget(window)
    assert window.alarm_bar is not None
    assert window.alarm_bar.main_text() == "No active alarms"
    session.device_state("OXI", DeviceState.CONNECTED)
    session.ingest([Numeric(Param.SPO2, 82.0, clock.monotonic(), clock.wall(), "OXI")])
    # SpO2 < 85 %: high priority at once (alarms.md)
    assert [a.label for a in engine.active_alarms() if a.param is Param.SPO2] == ["*** SpO2 < 85 %"]
    # the sound was asked for and could not play: that raised the (high) audio-failure alarm, which
    # as the newest high-priority alarm now heads the bar, with the SpO2 alarm counted beside it
    assert engine.technical_active(TechnicalCondition.AUDIO_FAILURE, "audio")
    assert window.alarm_bar.main_text().startswith("*** ALARM AUDIO FAILURE")
    assert window.alarm_bar.more_text() == "+1 more"
    assert window.alarm_bar.flash_period_s() == 0.5
    assert "AUDIO FAILURE" in window.alarm_bar.failure_text()
    # acknowledging from the window is audited with the operator's name
    window.alarm_bar.acknowledge_all()
    assert any(a.who == "nurse Kim" and a.action == "acknowledge" for a in engine.audit_log())
    window.shutdown()
