"""The console's alarm settings: volume, pause length, workstation default limits; audited and remembered."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QPainter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QCheckBox, QMessageBox, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from kapmonitor.alarms import AlarmEngine, kap_defaults
from kapmonitor.clock import FakeClock
from kapmonitor.settings import ALARM_PRESET_KEY, AUDIO_PAUSE_KEY, Settings
from kapmonitor.storage import AuditRow, audit_entries
from tests import audio_support as audio
from ui.alarm_panels import PauseLengthDialog, VolumeDialog
from ui.app import Monitor, build_console, parse_args
from ui.main_window import MainWindow
from ui.sound import MIN_VOLUME_PERCENT
from ui.sound_process import STARTUP_TIMEOUT_MS, ProcessAlarmSound

OPERATOR = "Dr Ada"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


class Console:
    """A console window on a real Monitor (SQLite file, settings.json in tmp) with a fake clock."""

    def __init__(self, qtbot: QtBot, tmp_path: Path, sound: ProcessAlarmSound | None = None) -> None:
        self.tmp_path = tmp_path
        self.settings_path = tmp_path / "settings.json"
        self.db_path = tmp_path / "sessions.sqlite"
        self.clock = FakeClock()
        self.operator = OPERATOR
        self.monitor = Monitor(self.clock, self.db_path, None, self.settings_path, operator=OPERATOR)
        opts = parse_args(["snapshot", "--out", str(tmp_path / "x.png"), "--db", str(self.db_path)])
        opts.operator = OPERATOR
        self.window = build_console(opts, self.monitor, sound=sound)
        self.window.operator = lambda: self.operator
        qtbot.addWidget(self.window)
        self.window.resize(1600, 900)
        self.window.show()

    @property
    def engine(self) -> AlarmEngine:
        return self.monitor.alarms

    def action(self, text: str) -> QAction:
        found = [a for a in self.window.alarm_menu.actions() if a.text() == text]
        assert len(found) == 1, [a.text() for a in self.window.alarm_menu.actions()]
        return found[0]

    def audit(self) -> list[AuditRow]:
        """The session's audit trail as recorded in the SQLite file."""
        self.monitor.session.tick()  # the recorder flushes on the tick
        self.monitor.recorder.flush()
        return audit_entries(self.monitor.db, self.monitor.session_id)

    def saved(self) -> dict[str, object]:
        data = json.loads(self.settings_path.read_text(encoding="utf-8"))
        assert isinstance(data, dict)
        return data

    def stop(self) -> None:
        self.window.close()
        asyncio.run(self.monitor.stop())


@pytest.fixture
def console(qtbot: QtBot, tmp_path: Path) -> Iterator[Console]:
    c = Console(qtbot, tmp_path)
    yield c
    c.stop()


@contextmanager
def answering(answer: Callable[[QWidget], object]) -> Iterator[list[QWidget]]:
    """Answer the first modal dialog shown inside the block with `answer`; yields the dialogs answered."""
    seen: list[QWidget] = []
    timer = QTimer()
    timer.setInterval(10)

    def poll() -> None:
        modal = QApplication.activeModalWidget()
        if modal is not None and modal.isVisible():
            timer.stop()
            seen.append(modal)
            answer(modal)

    timer.timeout.connect(poll)
    timer.start()
    try:
        yield seen
    finally:
        timer.stop()


def click(dialog: QWidget, text: str) -> None:
    buttons = [b for b in dialog.findChildren(QPushButton) if b.text().replace("&", "") == text]
    assert len(buttons) == 1, [b.text() for b in dialog.findChildren(QPushButton)]
    buttons[0].click()


def test_alarms_menu_lists_the_settings_and_renders(console: Console, tmp_path: Path) -> None:
    texts = [a.text() for a in console.window.alarm_menu.actions() if not a.isSeparator()]
    assert texts == [
        "Alarm &limits…",
        "Turn a parameter's alarms &off…",
        "Turn all alarms back &on",
        "Alarm &history",
        "Alarm &volume…",
        "Audio &pause length…",
        "&Save limits as workstation default",
        "&Restore KAP default limits",
    ]
    menu = console.window.alarm_menu
    window = console.window
    window.render_png(tmp_path / "lay-out.png")
    menu.popup(window.mapToGlobal(window.menuBar().actionGeometry(menu.menuAction()).bottomLeft()))
    QApplication.processEvents()
    assert menu.isVisible()
    # the menu is a window of its own: draw it onto the window's picture where it opened
    picture = window.grab()
    painter = QPainter(picture)
    painter.drawPixmap(window.mapFromGlobal(menu.pos()), menu.grab())
    painter.end()
    assert picture.save(str(tmp_path / "console-alarms-menu.png"))
    if os.environ.get("KAPMONITOR_SCREENSHOTS"):  # the README's picture, on request only
        SHOTS.mkdir(parents=True, exist_ok=True)
        assert picture.save(str(SHOTS / "console-alarms-menu.png"))
    menu.hide()


def test_volume_change_is_audited_and_the_floor_is_shown(qtbot: QtBot, tmp_path: Path) -> None:
    no_audio = audio.PulseServer(tmp_path / "pulse").env()  # volume needs no sound: no server runs
    sound = ProcessAlarmSound(environment=no_audio)
    with qtbot.waitSignal(sound.ready, timeout=STARTUP_TIMEOUT_MS):
        pass
    c = Console(qtbot, tmp_path, sound=sound)
    try:
        bar = c.window.alarm_bar
        assert bar is not None
        assert bar.volume_text() == ""  # the default volume needs no notice

        def lower_to_zero(dialog: QWidget) -> None:
            assert isinstance(dialog, VolumeDialog)
            dialog.slider.setValue(0)  # asks for silence: the slider stops at the floor
            assert dialog.floor_note.isVisible()
            click(dialog, "Set volume")

        with answering(lower_to_zero) as answered:
            c.action("Alarm &volume…").trigger()
        assert len(answered) == 1
        assert sound.volume() == MIN_VOLUME_PERCENT
        assert bar.volume_text() == f"ALARM VOLUME {MIN_VOLUME_PERCENT} % — MINIMUM, NEVER SILENT"
        rows = [(r.who, r.action, r.detail) for r in c.audit() if r.action == "alarm_volume"]
        assert rows == [(OPERATOR, "alarm_volume", f"alarm volume 80 % → {MIN_VOLUME_PERCENT} %")]
    finally:
        c.stop()
        sound.close()


def test_a_new_window_shows_a_reduced_volume_at_once(qtbot: QtBot, tmp_path: Path) -> None:
    sound = ProcessAlarmSound(environment=audio.PulseServer(tmp_path / "pulse").env())
    sound.set_volume(40)
    c = Console(qtbot, tmp_path, sound=sound)
    try:
        assert c.window.alarm_bar is not None
        assert c.window.alarm_bar.volume_text() == "ALARM VOLUME 40 %"
    finally:
        c.stop()
        sound.close()


def test_pause_length_is_used_by_the_next_pause_and_remembered(
    qtbot: QtBot, console: Console, tmp_path: Path
) -> None:
    bar = console.window.alarm_bar
    assert bar is not None
    assert bar.pause_button.text() == "Pause audio 2:00 (F2)"
    with answering(lambda d: click(d, "1 min")) as answered:
        console.action("Audio &pause length…").trigger()
    assert [type(d) for d in answered] == [PauseLengthDialog]
    assert console.engine.pause_s == 60.0
    assert bar.pause_button.text() == "Pause audio 1:00 (F2)"  # at once, not at the next second
    assert bar.pause_button.shortcut().toString() == "F2"
    assert console.saved()[AUDIO_PAUSE_KEY] == 60.0
    rows = [(r.who, r.action, r.detail) for r in console.audit() if r.action == "pause_length"]
    assert rows[0] == (OPERATOR, "pause_length", "audio pause 120 s → 60 s")

    # keyboard: the digit alone picks the length
    with answering(lambda d: QTest.keyClick(d, Qt.Key.Key_3)) as answered:
        console.action("Audio &pause length…").trigger()
    assert console.engine.pause_s == 180.0
    assert bar.pause_button.text() == "Pause audio 3:00 (F2)"
    assert console.saved()[AUDIO_PAUSE_KEY] == 180.0
    with answering(lambda d: click(d, "1 min")):
        console.action("Audio &pause length…").trigger()

    bar.pause_button.click()
    assert console.engine.pause_remaining() == 60.0
    assert bar.pause_text() == "AUDIO PAUSED 1:00"
    rows = [(r.who, r.action, r.detail) for r in console.audit() if r.action.startswith("pause")]
    assert rows == [
        (OPERATOR, "pause_length", "audio pause 120 s → 60 s"),
        (OPERATOR, "pause_length", "audio pause 60 s → 180 s"),
        (OPERATOR, "pause_length", "audio pause 180 s → 60 s"),
    ]

    nxt = Monitor(FakeClock(), tmp_path / "next.sqlite", None, console.settings_path)
    try:
        assert nxt.alarms.pause_s == 60.0
    finally:
        asyncio.run(nxt.stop())


def test_saved_limits_are_the_next_sessions_start(qtbot: QtBot, console: Console, tmp_path: Path) -> None:
    console.engine.set_limit("spo2.low.medium", OPERATOR, threshold=88.0)
    texts: list[str] = []

    def yes(dialog: QWidget) -> None:
        assert isinstance(dialog, QMessageBox)
        texts.append(dialog.text())
        dialog.button(QMessageBox.StandardButton.Yes).click()

    with answering(yes):
        console.action("&Save limits as workstation default").trigger()
    assert len(texts) == 1 and "New sessions will start from these limits." in texts[0]
    saved = console.saved()[ALARM_PRESET_KEY]
    assert isinstance(saved, dict)
    rows = [(r.who, r.action) for r in console.audit()]
    assert (OPERATOR, "alarm_preset_saved") in rows
    assert console.window.alarm_bar is not None
    assert "new sessions start from them" in console.window.alarm_bar.message_text()

    nxt = Monitor(FakeClock(), tmp_path / "next.sqlite", None, console.settings_path)
    try:
        assert nxt.alarm_problem == ""
        assert nxt.alarms.preset.rule("spo2.low.medium").threshold == 88.0
        assert nxt.alarms.preset == console.engine.preset
    finally:
        asyncio.run(nxt.stop())


def test_cancelled_save_changes_nothing(qtbot: QtBot, console: Console) -> None:
    console.engine.set_limit("spo2.low.medium", OPERATOR, threshold=88.0)

    def cancel(dialog: QWidget) -> None:
        assert isinstance(dialog, QMessageBox)
        dialog.button(QMessageBox.StandardButton.Cancel).click()

    with answering(cancel):
        console.action("&Save limits as workstation default").trigger()
    assert not console.settings_path.exists()
    assert "alarm_preset_saved" not in [r.action for r in console.audit()]


def test_restore_kap_defaults_audits_each_change_and_can_clear_the_saved_default(
    qtbot: QtBot, tmp_path: Path
) -> None:
    settings = Settings()
    settings.set_alarm_preset(kap_defaults().with_rule("spo2.low.medium", threshold=88.0))
    settings.save(tmp_path / "settings.json")
    c = Console(qtbot, tmp_path)
    try:
        assert c.engine.preset.rule("spo2.low.medium").threshold == 88.0
        boxes: list[str] = []

        def yes_and_clear(dialog: QWidget) -> None:
            assert isinstance(dialog, QMessageBox)
            box = dialog.checkBox()
            assert isinstance(box, QCheckBox)
            boxes.append(box.text())
            box.setChecked(True)
            dialog.button(QMessageBox.StandardButton.Yes).click()

        with answering(yes_and_clear):
            c.action("&Restore KAP default limits").trigger()
        assert boxes and "clear the saved workstation default" in boxes[0]
        assert c.engine.preset == kap_defaults()
        actions = [(r.who, r.action) for r in c.audit()]
        assert actions.count((OPERATOR, "limit_change")) == 1
        assert (OPERATOR, "alarm_preset_cleared") in actions
        assert ALARM_PRESET_KEY not in c.saved()
    finally:
        c.stop()


def test_damaged_saved_limits_fall_back_to_kap_defaults_and_say_so(qtbot: QtBot, tmp_path: Path) -> None:
    damaged = kap_defaults().to_dict()
    damaged["rules"][0]["threshold"] = "ninety"
    (tmp_path / "settings.json").write_text(json.dumps({ALARM_PRESET_KEY: damaged}), encoding="utf-8")
    c = Console(qtbot, tmp_path)
    try:
        assert c.engine.preset == kap_defaults()
        assert "KAP defaults in force" in c.monitor.alarm_problem
        assert c.window.alarm_bar is not None
        notice = c.window.alarm_bar.limits_notice()
        assert notice.startswith("ALARM LIMITS: saved alarm limits unusable")
        assert "KAP defaults in force" in notice
        rows = [(r.who, r.action, r.detail) for r in c.audit() if r.action == "alarm_preset_fallback"]
        assert rows == [("system", "alarm_preset_fallback", c.monitor.alarm_problem)]
        c.clock.advance(60)
        c.window.on_frame()
        assert c.window.alarm_bar.limits_notice() == notice  # stays until the limits are saved
    finally:
        c.stop()


@pytest.mark.parametrize(
    "text",
    [
        "Alarm &volume…",
        "Audio &pause length…",
        "&Save limits as workstation default",
        "&Restore KAP default limits",
    ],
)
def test_settings_without_an_operator_are_refused_with_a_reason(
    qtbot: QtBot, tmp_path: Path, text: str
) -> None:
    sound = ProcessAlarmSound(environment=audio.PulseServer(tmp_path / "pulse").env())
    c = Console(qtbot, tmp_path, sound=sound)
    try:
        c.operator = ""
        failures: list[str] = []
        assert c.window.alarm_bar is not None
        c.window.alarm_bar.action_failed.connect(failures.append)
        with answering(lambda d: d.close()) as opened:  # a dialog must not even open
            c.action(text).trigger()
            QApplication.processEvents()
        assert opened == []
        assert failures == ["an alarm action must say who did it"]
        assert c.window.alarm_bar.message_text() == "NOT DONE: an alarm action must say who did it"
        assert [r.action for r in c.audit()] == []
        assert not c.settings_path.exists()
        c.clock.advance(16)
        c.window.on_frame()
        assert c.window.alarm_bar.message_text() == ""  # the message goes after MESSAGE_SHOW_S
    finally:
        c.stop()
        sound.close()


def test_a_demo_does_not_change_the_workstation_settings(qtbot: QtBot, tmp_path: Path) -> None:
    clock = FakeClock()
    monitor = Monitor(clock, tmp_path / "demo.sqlite", None, tmp_path / "settings.json", operator=OPERATOR)
    # a demo Monitor has no settings, so build_console gives the window none: as here
    window = MainWindow(monitor.session, operator=lambda: OPERATOR)
    qtbot.addWidget(window)
    try:
        window.set_pause_length(180.0, OPERATOR)
        assert monitor.alarms.pause_s == 180.0
        assert window.alarm_bar is not None
        assert window.alarm_bar.message_text() == "Audio pause 3 min for this session"
        window.save_limits_as_default()
        assert window.alarm_bar.message_text().startswith("NOT DONE: a demo session")
    finally:
        window.close()
        asyncio.run(monitor.stop())
