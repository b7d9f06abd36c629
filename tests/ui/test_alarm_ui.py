"""The visual alarm channel: alarm bar, tile flashing, alarm-off, history, limits and alarm-off dialogs."""

from __future__ import annotations

import os
from datetime import UTC
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QComboBox, QLineEdit, QWidget
from pytestqt.qtbot import QtBot

from kapmonitor.alarms import AlarmEngine, Priority, TechnicalCondition, kap_defaults
from kapmonitor.clock import FakeClock
from kapmonitor.measurements import BloodPressure, Numeric, Param
from ui import style
from ui.alarm_bar import (
    AUDIO_FAILURE_TEXT,
    FLASH_OFF_BG,
    PRIORITY_BG,
    AlarmBar,
    flash_on,
    format_countdown,
)
from ui.alarm_panels import VOLUME_SLIDER_STEP, AlarmHistoryPanel, AlarmOffDialog, LimitsDialog, VolumeDialog
from ui.sound import DEFAULT_VOLUME_PERCENT, MIN_VOLUME_PERCENT, AlarmSoundPlayer
from ui.widgets import NumericTile

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "alarm-bar-high.png"
OX = "oximeter-1"


class Rig:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.engine = AlarmEngine(self.clock, kap_defaults(), hold_off_s=0)
        self.operator = "Dr Ada"

    def who(self) -> str:
        return self.operator

    def feed(self, param: Param, value: float) -> None:
        c = self.clock
        self.engine.on_numeric(Numeric(param, value, c.monotonic(), c.wall(), OX))
        self.engine.tick()

    def bp(self, sys: float, dia: float) -> None:
        c = self.clock
        self.engine.on_blood_pressure(
            BloodPressure(
                systolic=sys,
                diastolic=dia,
                mean=None,
                pulse_rate=None,
                mono=c.monotonic(),
                wall=c.wall(),
                device="cuff",
            )
        )

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.engine.tick()


@pytest.fixture
def rig() -> Rig:
    return Rig()


def make_bar(qtbot: QtBot, rig: Rig) -> AlarmBar:
    bar = AlarmBar(rig.engine, rig.clock, rig.who)
    qtbot.addWidget(bar)
    bar.resize(1400, 150)
    bar.show()
    return bar


def pixel(bar: AlarmBar) -> QColor:
    """The colour of the bar's background near its left edge (inside the margin, no text there)."""
    img: QImage = bar.grab().toImage()
    return img.pixelColor(4, bar.height() // 2)


def test_flash_rates_follow_the_reference() -> None:
    # high 1.4–2.8 Hz, medium 0.4–0.8 Hz, low steady (alarms.md "Priorities and signals")
    assert [flash_on(Priority.HIGH, t) for t in (0.0, 0.125, 0.25, 0.375, 0.5)] == [
        True,
        True,
        False,
        False,
        True,
    ]
    on = [flash_on(Priority.MEDIUM, i * 0.125) for i in range(int(1 / 0.6 / 0.125) + 1)]
    assert on[:6] == [True] * 6 and not on[7]  # on for half of the 1.67 s period
    assert all(flash_on(Priority.LOW, i * 0.1) for i in range(30))
    assert (
        format_countdown(120) == "2:00"
        and format_countdown(101.2) == "1:42"
        and format_countdown(0) == "0:00"
    )


def test_no_alarm_is_quiet_and_steady(qtbot: QtBot, rig: Rig) -> None:
    bar = make_bar(qtbot, rig)
    assert bar.main_text() == "No active alarms"
    assert bar.shown_priority() is None and bar.flash_period_s() is None
    assert not bar.flash_timer.isActive()
    assert bar.pause_text() == "" and bar.off_text() == "" and bar.failure_text() == ""
    assert not bar.ack_button.isEnabled()
    assert bar.pause_button.text() == "Pause audio 2:00 (F2)"
    assert bar.ack_button.text() == "Acknowledge (Space)"


def test_high_alarm_red_flashing_at_2_hz_with_marker_and_value(
    qtbot: QtBot, rig: Rig, tmp_path: Path
) -> None:
    bar = make_bar(qtbot, rig)
    rig.feed(Param.SPO2, 83)  # SpO2 < 85 %: high, no delay
    bar.refresh()
    assert bar.main_text() == "*** SpO2 < 85 %  83 %"
    assert bar.shown_priority() is Priority.HIGH
    assert bar.flash_period_s() == pytest.approx(0.5)
    assert bar.flash_timer.isActive() and bar.flash_timer.interval() == 125
    assert bar.flash_phase_on() and bar.background_colour() == PRIORITY_BG[Priority.HIGH]
    assert pixel(bar) == QColor(PRIORITY_BG[Priority.HIGH])
    bar.render_png(tmp_path / "alarm-bar-high.png")
    bar.flash_tick()
    assert bar.flash_phase_on()  # 0.125 s: still in the first half of the 0.5 s period
    bar.flash_tick()
    assert not bar.flash_phase_on() and bar.background_colour() == FLASH_OFF_BG
    assert pixel(bar) == QColor(FLASH_OFF_BG)
    bar.render_png(tmp_path / "alarm-bar-high-dark.png")
    bar.flash_tick(0.25)
    assert bar.flash_phase_on()
    rig.feed(Param.PULSE_RATE, 30)
    rig.advance(5)  # a second high alarm: same priority shown, the phase runs on
    bar.refresh()
    bar.flash_tick()
    assert bar.flash_phase_on() and bar.more_text() == "+1 more"
    bar.flash_tick()
    assert not bar.flash_phase_on()
    if os.environ.get("KAPMONITOR_SCREENSHOTS"):
        bar.flash_tick(0.25)  # the lit phase for the picture
        assert bar.flash_phase_on()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        bar.render_png(SCREENSHOT)


def test_medium_then_others_counted(qtbot: QtBot, rig: Rig, tmp_path: Path) -> None:
    bar = make_bar(qtbot, rig)
    rig.feed(Param.SPO2, 88)
    rig.advance(10)  # SpO2 < 90 %: medium after its 10 s delay
    rig.feed(Param.SPO2, 88)
    bar.refresh()
    assert bar.main_text() == "** SpO2 < 90 %  88 %"
    assert bar.more_text() == ""
    assert bar.flash_period_s() == pytest.approx(1 / 0.6)
    assert bar.background_colour() == PRIORITY_BG[Priority.MEDIUM]
    bar.render_png(tmp_path / "alarm-bar-medium.png")
    # a cuff reading adds three (systolic > 160, diastolic > 100 medium; diastolic > 110 high): high on top
    rig.bp(170, 115)
    bar.refresh()
    assert bar.main_text().startswith("*** Diastolic > 110 mmHg  115 mmHg")
    assert bar.more_text() == "+3 more"
    assert bar.flash_period_s() == pytest.approx(0.5)


def test_a_new_priority_starts_lit(qtbot: QtBot, rig: Rig) -> None:
    bar = make_bar(qtbot, rig)
    rig.feed(Param.SPO2, 88)
    rig.advance(10)
    bar.refresh()
    for _ in range(7):
        bar.flash_tick()  # 0.875 s: the dark half of the medium period
    assert bar.shown_priority() is Priority.MEDIUM and not bar.flash_phase_on()
    rig.feed(Param.SPO2, 83)
    bar.refresh()
    assert bar.shown_priority() is Priority.HIGH and bar.flash_phase_on()


def test_low_technical_alarm_is_steady_cyan(qtbot: QtBot, rig: Rig, tmp_path: Path) -> None:
    bar = make_bar(qtbot, rig)
    rig.engine.on_numeric(Numeric(Param.BATTERY, 10, rig.clock.monotonic(), rig.clock.wall(), OX))
    bar.refresh()
    assert bar.main_text() == f"* Battery low: {OX} (battery 10 %)"
    assert bar.shown_priority() is Priority.LOW and bar.flash_period_s() is None
    assert not bar.flash_timer.isActive()
    for _ in range(10):
        bar.flash_tick()
        assert bar.background_colour() == PRIORITY_BG[Priority.LOW]
    assert pixel(bar) == QColor(PRIORITY_BG[Priority.LOW])
    bar.render_png(tmp_path / "alarm-bar-low.png")


def test_acknowledge_button_and_shortcut_audit_who(qtbot: QtBot, rig: Rig) -> None:
    bar = make_bar(qtbot, rig)
    rig.feed(Param.SPO2, 83)
    bar.refresh()
    assert bar.ack_button.isEnabled()
    QTest.mouseClick(bar.ack_button, Qt.MouseButton.LeftButton)
    alarm = rig.engine.active_alarms()[0]
    assert alarm.acked_by == "Dr Ada"
    assert bar.main_text() == "*** SpO2 < 85 %  83 %  [ACK]"
    assert not bar.ack_button.isEnabled()
    audit = rig.engine.audit_log()
    assert [(a.who, a.action) for a in audit] == [("Dr Ada", "acknowledge")]
    assert "SpO2 < 85 %" in audit[0].detail
    assert bar.ack_button.shortcut().toString() == "Space"
    assert bar.pause_button.shortcut().toString() == "F2"


def test_action_without_operator_is_refused_with_a_reason(qtbot: QtBot, rig: Rig) -> None:
    bar = make_bar(qtbot, rig)
    rig.feed(Param.SPO2, 83)
    bar.refresh()
    rig.operator = ""
    with qtbot.waitSignal(bar.action_failed) as sig:
        bar.acknowledge_all()
    assert "who" in sig.args[0]
    assert rig.engine.audit_log() == []


def test_pause_countdown_follows_the_clock_and_breakthrough(qtbot: QtBot, rig: Rig, tmp_path: Path) -> None:
    bar = make_bar(qtbot, rig)
    rig.feed(Param.SPO2, 88)
    rig.advance(10)
    rig.feed(Param.SPO2, 88)
    QTest.mouseClick(bar.pause_button, Qt.MouseButton.LeftButton)
    assert rig.engine.is_paused()
    assert bar.pause_text() == "AUDIO PAUSED 2:00"
    assert bar.pause_button.text() == "Resume audio (F2)"
    rig.advance(18.3)
    bar.refresh()
    assert bar.pause_text() == "AUDIO PAUSED 1:42"
    bar.render_png(tmp_path / "alarm-bar-paused.png")
    assert rig.engine.audio_signal() is None
    rig.feed(Param.SPO2, 82)  # a new high alarm breaks through the pause
    bar.refresh()
    sig = rig.engine.audio_signal()
    assert sig is not None and sig.priority is Priority.HIGH
    assert bar.main_text().startswith("***") and bar.pause_text() == "AUDIO PAUSED 1:42"
    audit = rig.engine.audit_log()
    assert (audit[0].who, audit[0].action, audit[0].detail) == (
        "Dr Ada",
        "audio_pause",
        "audio paused for 120 s",
    )
    rig.advance(102)
    bar.refresh()
    assert bar.pause_text() == "" and bar.pause_button.text() == "Pause audio 2:00 (F2)"


def test_resume_button_cancels_the_pause(qtbot: QtBot, rig: Rig) -> None:
    bar = make_bar(qtbot, rig)
    bar.toggle_pause()
    bar.toggle_pause()
    assert not rig.engine.is_paused() and bar.pause_text() == ""
    assert [a.action for a in rig.engine.audit_log()] == ["audio_pause", "audio_pause_cancel"]


def test_alarm_off_shown_on_bar_and_tile(qtbot: QtBot, rig: Rig, tmp_path: Path) -> None:
    bar = make_bar(qtbot, rig)
    tile = NumericTile(Param.SPO2)
    qtbot.addWidget(tile)
    tile.resize(400, 250)
    tile.show()
    flasher = bar.attach_tile(tile, Param.SPO2)
    dialog = AlarmOffDialog(rig.engine, rig.who)
    qtbot.addWidget(dialog)
    dialog.select(Param.SPO2)
    assert not dialog.ok_button.isEnabled()
    QTest.keyClicks(dialog.reason, "   ")
    assert not dialog.ok_button.isEnabled()  # blanks are no reason
    dialog.reason.clear()
    QTest.keyClicks(dialog.reason, "probe on cold finger")
    assert dialog.ok_button.isEnabled()
    dialog.ok_button.click()
    assert dialog.result() == dialog.DialogCode.Accepted
    bar.refresh()
    assert bar.off_text() == "ALARMS OFF: SpO2 (probe on cold finger, by Dr Ada)"
    assert flasher.off_text() == "ALARM OFF — probe on cold finger"
    assert flasher.off_label.geometry().width() == tile.width() - 16
    assert rig.engine.audit_log()[-1].action == "alarm_off"
    rig.feed(Param.SPO2, 80)  # no alarm while off, but still shown
    bar.refresh()
    assert bar.main_text() == "No active alarms" and bar.off_text() != ""
    bar.render_png(tmp_path / "alarm-bar-off.png")
    rig.engine.subscribe(bar.notice)  # as the lead forwards AlarmChanged
    assert not bar.off_reminding()
    rig.advance(179)
    assert not bar.off_reminding()
    rig.advance(1)  # the engine reminds every 3 min (Masimo practice, alarms.md)
    assert bar.off_reminding()
    bar.render_png(tmp_path / "alarm-bar-off-reminder.png")
    rig.advance(15)
    bar.refresh()
    assert not bar.off_reminding() and bar.off_text() != ""
    rig.engine.set_alarm_on(Param.SPO2, "Dr Ada")
    bar.refresh()
    assert bar.off_text() == "" and flasher.off_text() == ""
    assert bar.main_text() == "*** SpO2 < 85 %  80 %"  # re-evaluated at once


def test_tile_flashes_in_its_alarm_priority(qtbot: QtBot, rig: Rig, tmp_path: Path) -> None:
    bar = make_bar(qtbot, rig)
    spo2, pulse = NumericTile(Param.SPO2), NumericTile(Param.PULSE_RATE)
    for t in (spo2, pulse):
        qtbot.addWidget(t)
        t.resize(400, 250)
        t.show()
    fs, fp = bar.attach_tile(spo2, Param.SPO2), bar.attach_tile(pulse, Param.PULSE_RATE)
    assert fs.priority() is None and spo2.property("alarmPriority") in (None, "")
    rig.feed(Param.SPO2, 83)
    bar.refresh()
    assert fs.priority() is Priority.HIGH and fs.flash_period_s() == pytest.approx(0.5)
    assert spo2.property("alarmPriority") == "high" and spo2.property("alarmFlash") == "on"
    assert fp.priority() is None
    border = spo2.grab().toImage().pixelColor(2, spo2.height() // 2)
    assert border == QColor(PRIORITY_BG[Priority.HIGH])
    spo2.grab().save(str(tmp_path / "tile-high.png"))
    bar.flash_tick()
    bar.flash_tick()
    assert spo2.property("alarmFlash") == "off"
    fill = spo2.grab().toImage().pixelColor(spo2.width() // 2, 12)
    assert fill == QColor(style.PANEL)
    rig.feed(Param.SPO2, 97)
    rig.engine.acknowledge("all", "Dr Ada")  # latched high alarm: acknowledged after it ended → cleared
    bar.refresh()
    assert fs.priority() is None and spo2.property("alarmPriority") == ""
    assert not bar.flash_timer.isActive()


def test_audio_failure_mode_is_loud_red(qtbot: QtBot, rig: Rig, tmp_path: Path) -> None:
    bar = make_bar(qtbot, rig)
    rig.engine.on_numeric(Numeric(Param.BATTERY, 10, rig.clock.monotonic(), rig.clock.wall(), OX))
    bar.set_audio_failed(True, "no output device")
    assert bar.failure_text() == f"{AUDIO_FAILURE_TEXT} (no output device)"
    assert bar.shown_priority() is Priority.HIGH and bar.flash_period_s() == pytest.approx(0.5)
    assert bar.flash_timer.isActive()
    assert pixel(bar) == QColor(PRIORITY_BG[Priority.HIGH])
    assert bar.main_text().startswith("* Battery low")  # the alarms stay visible under the failure text
    bar.render_png(tmp_path / "alarm-bar-audio-failure.png")
    bar.set_audio_failed(False)
    assert bar.failure_text() == "" and bar.shown_priority() is Priority.LOW


def test_technical_audio_failure_alarm_from_engine(qtbot: QtBot, rig: Rig) -> None:
    bar = make_bar(qtbot, rig)
    rig.engine.set_technical(TechnicalCondition.AUDIO_FAILURE, "audio", True, "device missing")
    bar.refresh()
    assert bar.main_text().endswith("ALARM AUDIO FAILURE: audio (device missing)")


def test_history_panel_rows_with_values(qtbot: QtBot, rig: Rig) -> None:
    panel = AlarmHistoryPanel(rig.engine, tz=UTC)
    qtbot.addWidget(panel)
    rig.feed(Param.SPO2, 84)  # 00:00:00 UTC: high raised
    rig.advance(1)
    rig.feed(Param.SPO2, 81)
    rig.advance(4)
    rig.engine.acknowledge("all", "Nurse Bo")  # 00:00:05
    rig.advance(5)
    rig.feed(Param.SPO2, 97)  # 00:00:10 condition ends → acknowledged alarm clears
    rig.advance(50)
    rig.feed(Param.PULSE_RATE, 150)  # 00:01:00, pending its 5 s delay
    rig.advance(5)
    rig.feed(Param.PULSE_RATE, 152)  # 00:01:05 raised
    panel.refresh()
    rows = panel.rows()
    assert len(rows) == 3  # pulse high (the medium one's 10 s delay still runs), SpO2 medium and high
    assert rows[-1][:5] == ["00:00:00", "***", "SpO2 < 85 %", "84 %", "81 %"]
    assert rows[-1][5] == "00:00:05 by Nurse Bo"
    assert rows[-1][6].startswith("00:00:10 (")
    assert (
        rows[0][0] == "00:01:05" and rows[0][3:5] == ["150 /min", "152 /min"] and rows[0][6] == "live: active"
    )
    # the medium SpO2 rule's 10 s delay ran out at 00:00:10 just before the 97 % arrived and ended it
    assert rows[1][:3] == ["00:00:10", "**", "SpO2 < 90 %"] and rows[1][6].startswith("00:00:10 (")
    assert rows[0][2] == "Pulse > 140 /min"


def test_limits_dialog_changes_threshold_and_audits(qtbot: QtBot, rig: Rig) -> None:
    dialog = LimitsDialog(rig.engine, rig.who)
    qtbot.addWidget(dialog)
    ed = dialog.editor("spo2.low.medium", "threshold")
    assert isinstance(ed, QLineEdit) and ed.text() == "90"
    ed.setText("92")
    prio = dialog.editor("pulse.high.medium", "priority")
    assert isinstance(prio, QComboBox)
    prio.setCurrentIndex(prio.findData(Priority.HIGH))
    assert not dialog.editor("sys.high.medium", "delay_s").isEnabled()
    dialog.apply()
    assert dialog.result() == dialog.DialogCode.Accepted
    assert rig.engine.preset.rule("spo2.low.medium").threshold == 92
    assert rig.engine.preset.rule("pulse.high.medium").priority is Priority.HIGH
    entries = [(a.who, a.action, a.detail) for a in rig.engine.audit_log()]
    assert ("Dr Ada", "limit_change", "spo2.low.medium: threshold 90 → 92") in entries
    assert ("Dr Ada", "limit_change", "pulse.high.medium: priority medium → high") in entries
    assert len(entries) == 2


@pytest.mark.parametrize("text", ["10", "ninety"])
def test_invalid_limit_shows_the_error_and_applies_nothing(qtbot: QtBot, rig: Rig, text: str) -> None:
    dialog = LimitsDialog(rig.engine, rig.who)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.editor("spo2.low.medium", "threshold").setProperty("text", "92")  # valid, and earlier in the list
    dialog.editor("pulse.high.high", "threshold").setProperty("text", text)
    dialog.apply()
    assert dialog.isVisible() and dialog.result() != dialog.DialogCode.Accepted
    if text == "ninety":
        assert dialog.error_text() == "Pulse > 140 /min: threshold 'ninety' is not a number"
    else:  # the engine's own validation text
        assert dialog.error_text() == "rule 'pulse.high.high' (Pulse): limit 10 /min is outside 20–300 /min"
    assert rig.engine.preset.rule("spo2.low.medium").threshold == 90  # all or nothing
    assert rig.engine.audit_log() == []
    dialog.editor("pulse.high.high", "threshold").setProperty("text", "150")  # corrected: OK now applies both
    dialog.apply()
    assert dialog.result() == dialog.DialogCode.Accepted and dialog.error_text() == ""
    assert [a.detail for a in rig.engine.audit_log()] == [
        "spo2.low.medium: threshold 90 → 92",
        "pulse.high.high: threshold 140 → 150",
    ]


def test_tile_is_any_widget(qtbot: QtBot, rig: Rig) -> None:
    bar = make_bar(qtbot, rig)
    w = QWidget()
    qtbot.addWidget(w)
    f = bar.attach_tile(w, [Param.SYSTOLIC, Param.DIASTOLIC])
    rig.bp(165, 80)
    bar.refresh()
    assert f.priority() is Priority.MEDIUM and w.property("alarmPriority") == "medium"
    assert f.flash_period_s() == pytest.approx(1 / 0.6)


def test_volume_below_the_default_is_shown_on_the_bar_and_the_floor_says_never_silent(
    qtbot: QtBot, rig: Rig, tmp_path: Path
) -> None:
    bar = make_bar(qtbot, rig)
    player = AlarmSoundPlayer()  # its volume needs no audio device
    player.volume_changed.connect(bar.set_volume)
    assert bar.volume_text() == ""  # at the default nothing is shown
    dialog = VolumeDialog(player.volume(), player.set_volume)
    qtbot.addWidget(dialog)
    assert dialog.value() == DEFAULT_VOLUME_PERCENT and not dialog.floor_note.isVisibleTo(dialog)
    QTest.keyClick(dialog.slider, Qt.Key.Key_Left)
    QTest.keyClick(dialog.slider, Qt.Key.Key_Left)
    assert dialog.value() == DEFAULT_VOLUME_PERCENT - 2 * VOLUME_SLIDER_STEP
    dialog.apply()
    assert player.volume() == 60
    assert bar.volume_text() == "ALARM VOLUME 60 %"
    # the slider stops at the floor, however far it is pushed, and says why
    dialog = VolumeDialog(player.volume(), player.set_volume)
    qtbot.addWidget(dialog)
    QTest.keyClick(dialog.slider, Qt.Key.Key_Home)
    for _ in range(10):
        QTest.keyClick(dialog.slider, Qt.Key.Key_Left)
    assert dialog.value() == MIN_VOLUME_PERCENT
    assert dialog.floor_note.isVisibleTo(dialog)
    dialog.show()
    dialog.grab().save(str(tmp_path / "volume-dialog.png"))
    dialog.apply()
    assert player.volume() == MIN_VOLUME_PERCENT
    assert bar.volume_text() == f"ALARM VOLUME {MIN_VOLUME_PERCENT} % — MINIMUM, NEVER SILENT"
    # a request below the floor (e.g. from a script) is raised to it, and the bar says so too
    player.set_volume(0)
    assert bar.volume_text().endswith("MINIMUM, NEVER SILENT")
    bar.render_png(tmp_path / "alarm-bar-volume.png")
    player.set_volume(DEFAULT_VOLUME_PERCENT)
    assert bar.volume_text() == ""
