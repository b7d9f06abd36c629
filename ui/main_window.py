"""The monitoring console's main window: pleth sweep, numerics, BP, session trends, device status."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import override

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.alarms import TechnicalCondition, kap_defaults
from kapmonitor.measurements import BloodPressure, DeviceState, Numeric, Param
from kapmonitor.session import (
    AlarmChanged,
    BloodPressureTaken,
    DeviceChanged,
    NumericsChanged,
    Session,
    SessionEvent,
)
from kapmonitor.settings import ALARM_PRESET_KEY, Settings
from ui import style
from ui.alarm_bar import ACK_KEY_LABEL, PAUSE_KEY, AlarmBar
from ui.alarm_panels import AlarmHistoryPanel, AlarmOffDialog, LimitsDialog, PauseLengthDialog, VolumeDialog
from ui.session_controls import SessionControls
from ui.session_log_panel import HelpOverlay
from ui.sound import AlarmSound
from ui.waveform import SweepWaveform
from ui.widgets import (
    UNUSABLE,
    BloodPressureTile,
    DeviceStatusLine,
    NumericTile,
    TrendPlot,
    bp_reading_wall,
    describe_quality,
)

#: The frame timer: the sweep draws only new samples, trends redraw only if a buffer changed, the
#: clocks and ages only when a second passed.
FRAME_INTERVAL_MS = 33
#: The parameters shown as big numerics, top to bottom.
TILE_PARAMS: tuple[Param, ...] = (Param.SPO2, Param.PULSE_RATE)
#: The keys that show the shortcut help.
HELP_KEYS = ("F1", "?")
#: The window's own keys, for the help overlay (the alarm bar's: ui/alarm_bar.py).
WINDOW_KEYS: tuple[tuple[str, str], ...] = (
    (ACK_KEY_LABEL, "Acknowledge alarms"),
    (PAUSE_KEY, "Pause / resume alarm sound"),
    ("F1 or ?", "This help (any key closes it)"),
    ("Alt+A", "Alarms menu: limits, alarm off, volume, pause length, history"),
)
#: The width of the observation keys and session log beside the monitor (px).
SIDE_DOCK_WIDTH = 480
#: What the audio-failure technical alarm is raised for (one sound channel per console).
AUDIO_SOURCE = "audio"

log = logging.getLogger(__name__)


def format_elapsed(seconds: float) -> str:
    """Session time as "T+HH:MM:SS" (hours keep counting past 99)."""
    s = max(0, int(seconds))
    return f"T+{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_wall(wall: float, tz: tzinfo | None = None) -> str:
    """A UTC wall time as "HH:MM:SS" in `tz` (the machine's local zone when None)."""
    return datetime.fromtimestamp(wall, tz=UTC).astimezone(tz).strftime("%H:%M:%S")


class MainWindow(QMainWindow):
    """The console for one Session, laid out for 1600×900 and readable from across the room."""

    #: Emitted once the window has been closed (the composition root then ends the session).
    closed = Signal()

    def __init__(
        self,
        session: Session,
        *,
        tz: tzinfo | None = None,
        sound: AlarmSound | None = None,
        operator: Callable[[], str] | None = None,
        settings: Settings | None = None,
        settings_path: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self._tz = tz
        #: who is at the console: every acknowledgement, pause and limit change is audited with it
        self.operator: Callable[[], str] = operator or (lambda: "operator")
        self.sound = sound
        #: the workstation settings the alarm defaults are saved in (None: a demo, nothing is saved)
        self.settings = settings
        self.settings_path = settings_path
        self._audio_failed = False
        self.setWindowTitle("kapmonitor")
        self.setObjectName("mainWindow")
        self.setStyleSheet(style.STYLESHEET)
        self.setFont(style.font(18))
        self.resize(1600, 900)

        # device id -> monotonic time its link last broke: older values are no longer current
        self._link_break: dict[str, float] = {}
        now = session.clock.monotonic()
        for device, status in session.devices.items():
            if status.state in (DeviceState.LOST, DeviceState.DISCONNECTED):
                self._link_break[device] = now
        self._shown_second: int | None = None
        # device id -> newest battery level (%): Session.latest keeps only one device's battery
        self.batteries: dict[str, float | None] = {}
        battery = session.latest.get(Param.BATTERY)
        if battery is not None:
            self.batteries[battery.device] = battery.value

        central = QWidget()
        central.setObjectName("central")
        self.setCentralWidget(central)
        root = QVBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addWidget(self._build_top_bar())
        #: the alarm bar on top (only for a session with an alarm engine; a replay has none)
        self.alarm_bar: AlarmBar | None = None
        #: the clinician's session controls and the shortcut help, once docked
        self.session_controls: SessionControls | None = None
        self.help: HelpOverlay | None = None
        self.alarm_history: AlarmHistoryPanel | None = None
        if session.alarms is not None:
            self.alarm_bar = AlarmBar(session.alarms, session.clock, self.operator)
            root.addWidget(self.alarm_bar)
            self.alarm_history = AlarmHistoryPanel(session.alarms, tz=tz)
            self.alarm_history.setWindowTitle("Alarm history")
            self.alarm_history.resize(1100, 500)
            self._build_alarm_menu()

        body = QHBoxLayout()
        body.setContentsMargins(12, 12, 12, 12)
        body.setSpacing(12)
        left = QVBoxLayout()
        left.setSpacing(12)
        self.sweep = SweepWaveform(session.waves, session.clock)
        left.addWidget(self.sweep, 2)  # the trends get the room: three plots share it
        self.trend = TrendPlot(
            session.trends,
            session.started_mono,
            bp_readings=session.bp_readings,
            origin_wall=session.started_wall,
        )
        left.addWidget(self.trend, 7)
        body.addLayout(left, 64)
        tiles = QVBoxLayout()
        tiles.setSpacing(12)
        self.tiles: dict[Param, NumericTile] = {}
        for param in TILE_PARAMS:
            tile = NumericTile(param)
            self.tiles[param] = tile
            tiles.addWidget(tile, 10)
        self.bp_tile = BloodPressureTile(tz=tz)
        tiles.addWidget(self.bp_tile, 9)
        body.addLayout(tiles, 36)
        root.addLayout(body, 1)

        self.status_line = DeviceStatusLine()
        root.addWidget(self.status_line)

        if self.alarm_bar is not None:
            self.alarm_bar.attach_tile(self.tiles[Param.SPO2], Param.SPO2)
            self.alarm_bar.attach_tile(self.tiles[Param.PULSE_RATE], [Param.PULSE_RATE, Param.HEART_RATE])
            self.alarm_bar.attach_tile(self.bp_tile, [Param.SYSTOLIC, Param.DIASTOLIC, Param.MAP])
        if self.sound is not None:
            self.sound.failed.connect(self.on_audio_failure)
            self.sound.recovered.connect(self.on_audio_recovered)
            if self.alarm_bar is not None:
                self.sound.volume_changed.connect(self.alarm_bar.set_volume)
                self.alarm_bar.set_volume(self.sound.volume())

        for param in TILE_PARAMS:
            self._update_tile(param)
        self._update_bp()
        self._update_devices()
        self._update_clock()
        self.trend.refresh()
        self.sweep.refresh()

        self._unsubscribe: Callable[[], None] | None = session.subscribe(self._on_event)
        #: The ~30 Hz frame timer (public so a benchmark can drive frames itself).
        self.frame_timer = QTimer(self)
        self.frame_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.frame_timer.setInterval(FRAME_INTERVAL_MS)
        self.frame_timer.timeout.connect(self.on_frame)
        self.frame_timer.start()

    def _build_top_bar(self) -> QFrame:
        bar = QFrame()
        bar.setObjectName("topBar")
        bar.setFixedHeight(68)
        title = QLabel("KAPMONITOR")
        title.setObjectName("appTitle")
        disclaimer = QLabel("monitoring aid — not a medical device")
        disclaimer.setObjectName("disclaimer")
        names = QVBoxLayout()
        names.setSpacing(0)
        names.addWidget(title)
        names.addWidget(disclaimer)

        elapsed_caption = QLabel("SESSION")
        elapsed_caption.setObjectName("elapsedCaption")
        self.elapsed_label = QLabel()
        self.elapsed_label.setObjectName("elapsed")
        wall_caption = QLabel("TIME")
        wall_caption.setObjectName("wallCaption")
        self.wall_label = QLabel()
        self.wall_label.setObjectName("wallTime")

        layout = QHBoxLayout(bar)
        layout.setContentsMargins(20, 4, 24, 4)
        layout.setSpacing(14)
        layout.addLayout(names)
        layout.addStretch(1)
        layout.addWidget(elapsed_caption, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.elapsed_label)
        layout.addSpacing(48)
        layout.addWidget(wall_caption, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.wall_label)
        return bar

    def add_session_controls(self, controls: SessionControls) -> None:
        """Dock the phase bar and "Next step" under the monitor, the observation keys and the session
        log beside it; show observations on the trends; F1 or ? opens the shortcut help."""
        self.session_controls = controls
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.BottomDockWidgetArea)
        dock = QDockWidget("Session", self)
        dock.setObjectName("sessionDock")
        dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        dock.setTitleBarWidget(QWidget())  # the phase bar says what this is
        dock.setWidget(controls.step_bar)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        side = QDockWidget("Observations and session log", self)
        side.setObjectName("sessionLogDock")
        side.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        side.setTitleBarWidget(QWidget())
        side.setWidget(controls)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, side)
        self.resizeDocks([side], [SIDE_DOCK_WIDTH], Qt.Orientation.Horizontal)
        controls.markers_changed.connect(self.trend.set_markers)
        self.trend.set_markers(controls.markers())
        lines = [*controls.help_lines(), *WINDOW_KEYS]
        self.help = HelpOverlay(controls.panel.catalogue, lines, parent=self)
        for key in HELP_KEYS:
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(self.help.toggle)

    def _build_alarm_menu(self) -> None:
        self.menuBar().setStyleSheet(
            "QMenuBar { background: #0b1016; color: #c8d2da; font-size: 16px; }"
            "QMenuBar::item:selected, QMenu::item:selected { background: #24303a; }"
            "QMenu { background: #111820; color: #e8eef2; font-size: 16px; }"
        )
        menu = self.menuBar().addMenu("&Alarms")
        menu.addAction("Alarm &limits…", self.open_limits)
        menu.addAction("Turn a parameter's alarms &off…", self.open_alarm_off)
        menu.addAction("Turn all alarms back &on", self.alarms_on)
        menu.addAction("Alarm &history", self.show_history)
        menu.addSeparator()
        menu.addAction("Alarm &volume…", self.open_volume)
        menu.addAction("Audio &pause length…", self.open_pause_length)
        menu.addSeparator()
        menu.addAction("&Save limits as workstation default", self.save_limits_as_default)
        menu.addAction("&Restore KAP default limits", self.restore_kap_limits)
        self.alarm_menu = menu

    # -- alarm settings: refused without an operator, like acknowledge; every change audited ----
    def _who_or_refuse(self) -> str:
        """The operator's name, or "" after saying on the alarm bar that the action needs one."""
        who = self.operator().strip()
        if not who:
            self._refuse("an alarm action must say who did it")
        return who

    def _refuse(self, reason: str) -> None:
        log.warning("alarm action refused: %s", reason)
        if self.alarm_bar is not None:
            self.alarm_bar.refuse(reason)

    def _tell(self, text: str) -> None:
        log.info("%s", text)
        if self.alarm_bar is not None:
            self.alarm_bar.show_message(text)

    def _save_settings(self) -> bool:
        """Write the workstation settings; False (and said on the bar) if there are none or it failed."""
        if self.settings is None or self.settings_path is None:
            self._refuse("a demo session does not change the workstation settings")
            return False
        try:
            self.settings.save(self.settings_path)
        except OSError as exc:
            self._refuse(f"workstation settings not saved: {exc}")
            return False
        return True

    def _confirm(self, title: str, text: str, checkbox: QCheckBox | None = None) -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=self)
        box.setObjectName("alarmConfirm")
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        if checkbox is not None:
            box.setCheckBox(checkbox)
        return box.exec() == QMessageBox.StandardButton.Yes

    def open_volume(self) -> None:
        """The alarm volume dialog; a change is audited (the bar shows a reduced volume at all times)."""
        if self.sound is None:
            self._refuse("this console has no alarm sound")
            return
        if not self._who_or_refuse():
            return
        VolumeDialog(self.sound.volume(), self._set_volume, parent=self).exec()

    def _set_volume(self, percent: int) -> int:
        assert self.sound is not None and self.session.alarms is not None
        who = self._who_or_refuse()
        if not who:
            return self.sound.volume()
        old = self.sound.volume()
        applied = self.sound.set_volume(percent)
        if applied != old:
            self.session.alarms.audit_setting(who, "alarm_volume", f"alarm volume {old} % → {applied} %")
        return applied

    def open_pause_length(self) -> None:
        """1, 2 or 3 minutes of audio pause (audited), remembered for the workstation's next sessions."""
        engine = self.session.alarms
        assert engine is not None
        who = self._who_or_refuse()
        if not who:
            return
        dialog = PauseLengthDialog(engine.pause_s, parent=self)
        dialog.exec()
        seconds = dialog.chosen()
        if seconds is not None:
            self.set_pause_length(seconds, who)

    def set_pause_length(self, seconds: float, who: str) -> None:
        engine = self.session.alarms
        assert engine is not None
        try:
            engine.set_pause_length(seconds, who)
        except ValueError as exc:
            self._refuse(str(exc))
            return
        self._update_alarms()  # the pause button shows the new length at once
        if self.settings is not None:
            self.settings.audio_pause_s = seconds
            if self._save_settings():
                self._tell(f"Audio pause {seconds / 60:g} min, also in new sessions")
        else:
            self._tell(f"Audio pause {seconds / 60:g} min for this session")

    def save_limits_as_default(self) -> None:
        """Keep the limits in force as the workstation default: new sessions start from them."""
        engine = self.session.alarms
        assert engine is not None
        who = self._who_or_refuse()
        if not who:
            return
        if self.settings is None:
            self._refuse("a demo session does not change the workstation settings")
            return
        if not self._confirm(
            "Save alarm limits",
            "Save the alarm limits now in force as this workstation's default?\n\n"
            "New sessions will start from these limits.",
        ):
            return
        self.settings.set_alarm_preset(engine.preset)
        if self._save_settings():
            engine.audit_setting(who, "alarm_preset_saved", "limits in force saved as workstation default")
            if self.alarm_bar is not None:
                self.alarm_bar.set_limits_notice("")
            self._tell("Alarm limits saved: new sessions start from them")

    def restore_kap_limits(self) -> None:
        """Bring the limits back to the KAP defaults (each change audited); may forget the saved default."""
        engine = self.session.alarms
        assert engine is not None
        who = self._who_or_refuse()
        if not who:
            return
        saved = self.settings is not None and ALARM_PRESET_KEY in self.settings.extra
        clear = QCheckBox("Also clear the saved workstation default (new sessions start from KAP defaults)")
        if not self._confirm(
            "Restore KAP default limits",
            "Set every alarm limit of this session back to the KAP defaults?",
            clear if saved else None,
        ):
            return
        changed = engine.apply_preset(kap_defaults(), who)
        self._update_alarms()
        text = f"KAP default limits restored ({changed} rules changed)"
        if saved and clear.isChecked() and self.settings is not None:
            self.settings.set_alarm_preset(None)
            if self._save_settings():
                engine.audit_setting(who, "alarm_preset_cleared", "saved workstation default cleared")
                if self.alarm_bar is not None:
                    self.alarm_bar.set_limits_notice("")
                text += "; saved default cleared"
        self._tell(text)

    def show_alarm_limits_problem(self, problem: str) -> None:
        """Why the saved limits are not in force (e.g. damaged: KAP defaults used), on the alarm bar."""
        if problem and self.alarm_bar is not None:
            self.alarm_bar.set_limits_notice(f"ALARM LIMITS: {problem}")

    def open_limits(self) -> None:
        assert self.session.alarms is not None
        LimitsDialog(self.session.alarms, self.operator, parent=self).exec()
        self._update_alarms()

    def open_alarm_off(self) -> None:
        assert self.session.alarms is not None
        AlarmOffDialog(self.session.alarms, self.operator, parent=self).exec()
        self._update_alarms()

    def alarms_on(self) -> None:
        engine = self.session.alarms
        assert engine is not None
        for param in list(engine.alarms_off):
            engine.set_alarm_on(param, self.operator())
        self._update_alarms()

    def show_history(self) -> None:
        if self.alarm_history is not None:
            self.alarm_history.refresh()
            self.alarm_history.show()
            self.alarm_history.raise_()

    # -- alarms: one sound at a time, the highest-priority unsilenced alarm ----------------------
    def _update_alarms(self) -> None:
        if self.alarm_bar is not None:
            self.alarm_bar.refresh()
        self._update_sound()

    def _update_sound(self) -> None:
        engine = self.session.alarms
        if engine is None or self.sound is None:
            return
        signal = engine.audio_signal()
        if signal is None:
            if self.sound.is_playing():
                self.sound.stop()
            return
        self.sound.play(signal.priority.name.lower(), signal.volume_step)

    def on_audio_failure(self, detail: str) -> None:
        """No sound device or playback failed: a technical alarm, and the bar turns unmissable."""
        self._audio_failed = True
        if self.session.alarms is not None:
            self.session.alarms.set_technical(TechnicalCondition.AUDIO_FAILURE, AUDIO_SOURCE, True, detail)
        if self.alarm_bar is not None:
            self.alarm_bar.set_audio_failed(True, detail)

    def on_audio_recovered(self) -> None:
        """The sound channel proved it works again (the player's recovered(), never a guess): the
        audio-failure alarm clears, the bar leaves failure mode, and the alarm sound is resumed."""
        if not self._audio_failed:
            return
        self._audio_failed = False
        log.warning("alarm sound works again: audio-failure alarm cleared")
        if self.session.alarms is not None:
            self.session.alarms.set_technical(
                TechnicalCondition.AUDIO_FAILURE, AUDIO_SOURCE, False, "sound process restarted and ready"
            )
        if self.alarm_bar is not None:
            self.alarm_bar.set_audio_failed(False)
        self._update_alarms()

    # -- session events ----------------------------------------------------------------------
    def _on_event(self, event: SessionEvent) -> None:
        if isinstance(event, AlarmChanged):
            if self.alarm_bar is not None:
                self.alarm_bar.notice(event.transition)
            if self.alarm_history is not None and self.alarm_history.isVisible():
                self.alarm_history.refresh()
            self._update_sound()
        elif isinstance(event, NumericsChanged):
            for param in {n.param for n in event.numerics}:
                if param in self.tiles:
                    self._update_tile(param)
            batteries = {n.device: n.value for n in event.numerics if n.param is Param.BATTERY}
            if batteries:
                self.batteries.update(batteries)
                self._update_devices()
        elif isinstance(event, BloodPressureTaken):
            self._update_bp()
        elif isinstance(event, DeviceChanged):
            if event.event.state in (DeviceState.LOST, DeviceState.DISCONNECTED):
                self._link_break[event.event.device] = event.event.mono
            for param in self.tiles:
                self._update_tile(param)
            self._update_devices()

    def _update_tile(self, param: Param) -> None:
        tile = self.tiles[param]
        n = self.session.latest.get(param)
        if n is None:
            tile.set_value(None, "")
            tile.set_stale(True, "NO DATA")
            return
        value = None if n.quality & UNUSABLE else n.value
        tile.set_value(value, describe_quality(n.quality, has_value=value is not None))
        reason = self._stale_reason(n)
        tile.set_stale(reason is not None, reason or "")

    def _stale_reason(self, n: Numeric) -> str | None:
        """Why the newest value of a parameter is no longer current, or None if it is."""
        status = self.session.devices.get(n.device)
        if status is None:
            return None
        if status.stale:
            return "NO DATA"
        broke = self._link_break.get(n.device)
        if broke is not None and n.mono <= broke:
            if status.state is DeviceState.LOST:
                return "DEVICE LOST"
            if status.state is DeviceState.DISCONNECTED:
                return "DISCONNECTED"
            return "NO DATA"  # reconnecting or reconnected, no new value yet
        return None

    def _update_devices(self) -> None:
        self.status_line.update_devices(self.session.devices, self.session.clock.monotonic(), self.batteries)

    def newest_bp(self) -> BloodPressure | None:
        """The reading taken last (a stored upload older than the shown reading does not replace it)."""
        readings = self.session.bp_readings
        if not readings:
            return None
        # max() keeps the first of equals: scan newest-first so a later arrival wins a tie
        return max(reversed(readings), key=bp_reading_wall)

    def _update_bp(self) -> None:
        clock = self.session.clock
        self.bp_tile.set_reading(self.newest_bp(), now_mono=clock.monotonic(), now_wall=clock.wall())

    def _update_clock(self) -> None:
        elapsed = self.session.elapsed()
        second = int(elapsed)
        if second == self._shown_second:
            return
        self._shown_second = second
        self.elapsed_label.setText(format_elapsed(elapsed))
        self.wall_label.setText(format_wall(self.session.clock.wall(), self._tz))
        # once a second: live "no data for N s" and malformed counts (those do not emit events),
        # the pause countdown and its expiry
        self._update_devices()
        self._update_alarms()
        self.bp_tile.update_age(now_mono=self.session.clock.monotonic(), now_wall=self.session.clock.wall())

    # -- frame timer -------------------------------------------------------------------------
    def restart_from(self, link_breaks: dict[str, float]) -> None:
        """Forget the screen's past (a replay seeking back): these are now the devices' last link
        breaks (device id -> monotonic time), and the sweep starts again empty (it only ever draws
        forward); the session's restated events then redraw the rest."""
        self._link_break = dict(link_breaks)
        fresh = SweepWaveform(self.session.waves, self.session.clock)
        holder = self.sweep.parentWidget()
        layout = holder.layout() if holder is not None else None
        assert layout is not None, "the sweep sits in the monitor's layout"
        layout.replaceWidget(self.sweep, fresh)  # searches the nested layouts too
        self.sweep.deleteLater()
        self.sweep = fresh

    def on_frame(self) -> None:
        """The ~30 Hz timer slot: draw new pleth samples, redraw trends only if a buffer changed,
        tick the clocks."""
        self.sweep.refresh()
        self.trend.refresh()
        self._update_clock()

    # -- lifecycle ---------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the timer and unsubscribe from the session (idempotent)."""
        self.frame_timer.stop()
        if self.session_controls is not None:
            self.session_controls.shutdown()
        if self.sound is not None:
            self.sound.stop()
        if self.alarm_history is not None:
            self.alarm_history.close()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @override
    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
        self.closed.emit()

    def render_png(self, path: str | os.PathLike[str]) -> None:
        """Save a picture of the window (works offscreen); raises OSError if it cannot be written."""
        self.on_frame()
        # lay out what changed since the last event-loop pass (new texts, new device rows)
        for _ in range(3):
            QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        if not self.grab().save(os.fspath(path), "PNG"):
            raise OSError(f"could not write {os.fspath(path)}")
