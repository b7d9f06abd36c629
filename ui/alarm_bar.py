"""The visual alarm channel: the alarm bar on top of the window, and flashing of an alarmed numeric tile."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import override

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QPainter, QPaintEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from kapmonitor.alarms import Alarm, AlarmEngine, AlarmKind, Priority, Transition, TransitionEvent
from kapmonitor.alarms.model import PARAM_NAMES, SOUNDING_STATES, AlarmState
from kapmonitor.clock import Clock
from kapmonitor.measurements import UNITS, Param
from ui import style
from ui.sound import DEFAULT_VOLUME_PERCENT, MIN_VOLUME_PERCENT

# -- the visual signal per priority (../shared/reference/alarms.md "Priorities and signals") --------
#: Background colours: high red, medium yellow, low cyan (technical alarms use the same scheme).
PRIORITY_BG: dict[Priority, str] = {
    Priority.HIGH: "#e0162b",
    Priority.MEDIUM: "#ffd21f",
    Priority.LOW: "#35e0f0",
}
#: Text on that background: dark text on yellow and cyan so it stays readable.
PRIORITY_FG: dict[Priority, str] = {
    Priority.HIGH: "#ffffff",
    Priority.MEDIUM: "#111111",
    Priority.LOW: "#0a0a0a",
}
#: Flash period in seconds: high 2 Hz (reference 1.4–2.8 Hz), medium 0.6 Hz (0.4–0.8 Hz), low steady.
FLASH_PERIOD_S: dict[Priority, float | None] = {
    Priority.HIGH: 0.5,
    Priority.MEDIUM: 1 / 0.6,
    Priority.LOW: None,
}
#: Fraction of a period the colour is on: 50 % (high: inside the 20–60 % of the reference).
FLASH_DUTY = 0.5
#: The "off" half of a flash: a dark panel, so the bar never disappears and its text stays readable.
FLASH_OFF_BG = "#1c1c1c"
#: How often the flash timer advances the phase (s): fine enough for 2 Hz, and no per-sample work.
FLASH_TICK_S = 0.125
AUDIO_FAILURE_TEXT = "AUDIO FAILURE — WATCH THE SCREEN"
#: How long an alarm-off reminder highlights the ALARMS OFF segment (s).
OFF_REMINDER_SHOW_S = 15.0
#: How long a message (a refused action, a setting saved) stays on the bar's status line (s).
MESSAGE_SHOW_S = 15.0

#: Keyboard shortcuts of the alarm controls (shown on the buttons).
ACK_KEY = "Space"
ACK_KEY_LABEL = "Space"
PAUSE_KEY = "F2"


def flash_on(priority: Priority, t: float) -> bool:
    """Whether a flashing signal of `priority` shows its colour at phase time `t` (s); low is steady."""
    period = FLASH_PERIOD_S[priority]
    if period is None:
        return True
    return (t % period) < period * FLASH_DUTY - 1e-9


def format_countdown(seconds: float) -> str:
    """'1:42' for the audio pause countdown; rounds up so a full 2-minute pause starts at 2:00."""
    s = max(0, math.ceil(seconds - 1e-9))
    return f"{s // 60}:{s % 60:02d}"


def format_value(value: float | None, param: Param | None) -> str:
    """A value with its unit, e.g. '83 %'; '' when there is none."""
    if value is None:
        return ""
    unit = UNITS.get(param, "") if param is not None else ""
    return f"{value:g} {unit}".strip()


def alarm_text(alarm: Alarm) -> str:
    """Marker, message and latest value, e.g. '*** SpO2 < 85 %  83 %' (colour is never the only cue)."""
    text = alarm.label
    if alarm.kind is AlarmKind.PHYSIOLOGICAL:
        value = alarm.last_value if alarm.last_value is not None else alarm.trigger_value
        shown = format_value(value, alarm.param)
        if shown:
            text += f"  {shown}"
    elif alarm.detail:
        text += f" ({alarm.detail})"
    if alarm.state is AlarmState.ACKNOWLEDGED:
        text += "  [ACK]"
    elif alarm.state is AlarmState.LATCHED:
        text += "  [ended — acknowledge]"
    return text


def _restyle(widget: QWidget) -> None:
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class _ElidedLabel(QLabel):
    """A one-line label that ends in "…" when its text does not fit (text() stays the whole text)."""

    @override
    def paintEvent(self, event: QPaintEvent) -> None:
        metrics = self.fontMetrics()
        rect = self.contentsRect()
        if metrics.horizontalAdvance(self.text()) <= rect.width():
            super().paintEvent(event)
            return
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.setFont(self.font())
        shown = metrics.elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), shown)
        painter.end()


class AlarmBar(QWidget):
    """The alarm bar: the top alarm large with its marker, colour and flash; pause, alarm-off, audio failure.

    `who()` gives the operator's name for the audit. Call `refresh()` on every AlarmChanged and once a
    second (the pause countdown); flashing runs on its own QTimer only while something flashes.
    """

    #: An operator action the engine refused (e.g. no operator name); the text says why.
    action_failed = Signal(str)

    def __init__(
        self,
        engine: AlarmEngine,
        clock: Clock,
        who: Callable[[], str],
        *,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self.clock = clock
        self._who = who
        self.setObjectName("alarmBar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._priority: Priority | None = None  # what the bar shows (None: no alarm)
        self._audio_failed = False
        self._audio_detail = ""
        self._flash_t = 0.0
        self._flashers: list[NumericFlasher] = []
        self._last_css = ""
        self._off_reminder_until = -math.inf
        self._message_until = -math.inf

        self._failure = QLabel()
        self._failure.setObjectName("alarmAudioFailure")
        self._failure.setFont(style.font(30, bold=True))
        self._failure.setVisible(False)
        # a long failure reason wraps instead of pushing the window wider than the screen
        self._failure.setWordWrap(True)
        self._failure.setMinimumWidth(0)
        self._failure.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._main = _ElidedLabel()
        self._main.setObjectName("alarmMain")
        self._main.setFont(style.font(32, bold=True))
        # a long message must not push the window wider than the screen: the label may shrink
        # (its full text is also its tooltip, and the history lists every alarm in full)
        self._main.setMinimumWidth(0)
        self._main.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._more = QLabel()
        self._more.setObjectName("alarmMore")
        self._more.setFont(style.font(24, bold=True))
        self._pause = QLabel()
        self._pause.setObjectName("alarmPause")
        self._pause.setFont(style.font(26, bold=True))
        self._off = QLabel()
        self._off.setObjectName("alarmOff")
        self._off.setFont(style.font(22, bold=True))
        self._off.setWordWrap(True)
        self._volume_label = QLabel()
        self._volume_label.setObjectName("alarmVolume")
        self._volume_label.setFont(style.font(22, bold=True))
        # why the alarm limits in force are not the workstation's saved ones (stays until resolved)
        self._limits_notice = QLabel()
        self._limits_notice.setObjectName("alarmLimitsNotice")
        self._limits_notice.setFont(style.font(20, bold=True))
        self._limits_notice.setWordWrap(True)
        # the answer to the last operator action (refused, or what was saved), for MESSAGE_SHOW_S
        self._message = QLabel()
        self._message.setObjectName("alarmMessage")
        self._message.setFont(style.font(20, bold=True))
        self._message.setWordWrap(True)
        for lab in (self._pause, self._off, self._volume_label, self._limits_notice, self._message):
            lab.setVisible(False)

        # Space and F2: single keys that no observation code uses (the catalogue takes letters and
        # digits, ui/observation_panel.py), so both work while the clinician logs observations
        self.ack_button = QPushButton(f"Acknowledge ({ACK_KEY_LABEL})")
        self.ack_button.setObjectName("alarmAck")
        self.ack_button.setShortcut(QKeySequence(ACK_KEY))
        self.ack_button.clicked.connect(self.acknowledge_all)
        self.pause_button = QPushButton()
        self.pause_button.setObjectName("alarmPauseButton")
        self.pause_button.setShortcut(QKeySequence(PAUSE_KEY))
        self.pause_button.clicked.connect(self.toggle_pause)
        for b in (self.ack_button, self.pause_button):
            b.setFont(style.font(22, bold=True))
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setMinimumHeight(56)

        top = QHBoxLayout()
        top.setSpacing(18)
        top.addWidget(self._main, 1)
        top.addWidget(self._more)
        top.addWidget(self.ack_button)
        top.addWidget(self.pause_button)
        status = QHBoxLayout()
        status.setSpacing(18)
        status.addWidget(self._pause)
        status.addWidget(self._off)
        status.addWidget(self._volume_label)
        status.addWidget(self._limits_notice, 1)
        status.addWidget(self._message, 1)
        status.addStretch(0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 8, 16, 8)
        layout.setSpacing(4)
        layout.addWidget(self._failure)
        layout.addLayout(top)
        layout.addLayout(status)

        self.flash_timer = QTimer(self)
        self.flash_timer.setInterval(round(FLASH_TICK_S * 1000))
        self.flash_timer.timeout.connect(self.flash_tick)
        self.refresh()

    # -- operator actions ---------------------------------------------------------------------
    def acknowledge_all(self) -> int:
        """Acknowledge every sounding alarm as the current operator (audited by the engine)."""
        try:
            n = self.engine.acknowledge("all", self._who())
        except ValueError as e:
            self.refuse(str(e))
            return 0
        self.refresh()
        return n

    def toggle_pause(self) -> None:
        """Pause the alarm audio for the configured time or, while paused, resume it (both audited)."""
        try:
            if self.engine.is_paused():
                self.engine.cancel_pause(self._who())
            else:
                self.engine.pause_audio(self._who())
        except ValueError as e:
            self.refuse(str(e))
        self.refresh()

    def refuse(self, reason: str) -> None:
        """An operator action was refused: say why on the bar and emit action_failed."""
        self.show_message(f"NOT DONE: {reason}")
        self.action_failed.emit(reason)

    def show_message(self, text: str) -> None:
        """Show the answer to an operator action on the status line for MESSAGE_SHOW_S."""
        self._message.setText(text)
        self._message_until = self.clock.monotonic() + MESSAGE_SHOW_S
        self.refresh()

    def message_text(self) -> str:
        """The message on the status line now ('' when none or expired)."""
        return self._message.text() if self._message.isVisibleTo(self) else ""

    def set_limits_notice(self, text: str) -> None:
        """Why the alarm limits in force differ from the saved ones ('' clears it); shown until cleared."""
        self._limits_notice.setText(text)
        self._limits_notice.setVisible(bool(text))

    def limits_notice(self) -> str:
        return self._limits_notice.text() if self._limits_notice.isVisibleTo(self) else ""

    def set_audio_failed(self, failed: bool, detail: str = "") -> None:
        """The alarm sound cannot be played: the whole bar turns high-priority red, flashing, with words."""
        if failed != self._audio_failed:
            self._flash_t = 0.0
        self._audio_failed = failed
        self._audio_detail = detail
        self.refresh()

    def set_volume(self, applied: int, clamped: bool = False) -> None:
        """The alarm volume now applied (connect the player's volume_changed): below the player's
        default the bar says so at all times, and at the floor that it cannot go lower (never silent)."""
        floor = clamped or applied <= MIN_VOLUME_PERCENT
        text = f"ALARM VOLUME {applied} %" + (" — MINIMUM, NEVER SILENT" if floor else "")
        self._volume_label.setText(text)
        self._volume_label.setVisible(applied < DEFAULT_VOLUME_PERCENT)

    def notice(self, transition: Transition) -> None:
        """Take an engine transition (the lead forwards AlarmChanged): an alarm-off reminder highlights
        the ALARMS OFF segment for OFF_REMINDER_SHOW_S (the engine repeats it every few minutes)."""
        if transition.event is TransitionEvent.ALARM_OFF_REMINDER:
            self._off_reminder_until = self.clock.monotonic() + OFF_REMINDER_SHOW_S
        self.refresh()

    def off_reminding(self) -> bool:
        """True while the ALARMS OFF segment is highlighted by a reminder."""
        return bool(self._off.property("reminding"))

    # -- tiles --------------------------------------------------------------------------------
    def attach_tile(self, tile: QWidget, params: Param | Iterable[Param]) -> NumericFlasher:
        """Flash `tile` while an alarm on `params` is live and show ALARM OFF on it; returns the flasher."""
        flasher = NumericFlasher(tile, params)
        self._flashers.append(flasher)
        self.refresh()
        return flasher

    # -- state --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the engine and update texts, colours and the flash timer (cheap; no per-sample work)."""
        engine = self.engine
        alarms = engine.active_alarms()
        top = alarms[0] if alarms else None
        before = self.shown_priority()
        self._priority = top.priority if top is not None else None
        if top is None:
            self._main.setText("No active alarms")
            self._more.setText("")
        else:
            self._main.setText(alarm_text(top))
            self._main.setToolTip(alarm_text(top))
            self._more.setText(f"+{len(alarms) - 1} more" if len(alarms) > 1 else "")
        self._more.setVisible(bool(self._more.text()))
        self.ack_button.setEnabled(any(a.state in SOUNDING_STATES for a in alarms))

        paused = engine.is_paused()
        pause_text = f"AUDIO PAUSED {format_countdown(engine.pause_remaining())}" if paused else ""
        self._pause.setText(pause_text)
        self._pause.setVisible(paused)
        self.pause_button.setText(
            f"Resume audio ({PAUSE_KEY})"
            if paused
            else f"Pause audio {format_countdown(engine.pause_s)} ({PAUSE_KEY})"
        )
        self.pause_button.setShortcut(QKeySequence(PAUSE_KEY))  # setText resets a button's shortcut

        off = engine.alarms_off
        off_text = ""
        if off:
            off_text = "ALARMS OFF: " + "; ".join(
                f"{PARAM_NAMES.get(p, p.value)} ({o.reason}, by {o.who})" for p, o in off.items()
            )
        self._off.setText(off_text)
        self._off.setVisible(bool(off))

        self._failure.setText(
            f"{AUDIO_FAILURE_TEXT}" + (f" ({self._audio_detail})" if self._audio_detail else "")
        )
        self._failure.setVisible(self._audio_failed)
        if self.shown_priority() != before:
            self._flash_t = 0.0  # a new signal starts in its lit phase, at once

        self._message.setVisible(bool(self._message.text()) and self.clock.monotonic() < self._message_until)

        reminding = bool(off) and self.clock.monotonic() < self._off_reminder_until
        if self._off.property("reminding") != reminding:
            self._off.setProperty("reminding", reminding)
            _restyle(self._off)

        for flasher in self._flashers:
            flasher.update_from(engine)
        needs_timer = self.flash_period_s() is not None or any(
            f.flash_period_s() is not None for f in self._flashers
        )
        if needs_timer and not self.flash_timer.isActive():
            self.flash_timer.start()
        elif not needs_timer and self.flash_timer.isActive():
            self.flash_timer.stop()
        self._apply_style()

    def flash_tick(self, dt: float = FLASH_TICK_S) -> None:
        """Advance the flash phase by `dt` seconds (the timer calls this; tests call it directly)."""
        self._flash_t += dt
        self._apply_style()
        for flasher in self._flashers:
            flasher.apply_phase(self._flash_t)

    def shown_priority(self) -> Priority | None:
        """The priority the bar signals: HIGH in audio-failure mode, else the top alarm's (None: none)."""
        return Priority.HIGH if self._audio_failed else self._priority

    def flash_period_s(self) -> float | None:
        """The bar's current flash period in seconds (None: steady or no alarm)."""
        p = self.shown_priority()
        return None if p is None else FLASH_PERIOD_S[p]

    def flash_phase_on(self) -> bool:
        """True while the bar shows its priority colour (False in the dark half of a flash)."""
        p = self.shown_priority()
        return p is not None and flash_on(p, self._flash_t)

    def background_colour(self) -> str:
        """The bar's background colour now."""
        p = self.shown_priority()
        if p is None:
            return style.PANEL
        return PRIORITY_BG[p] if self.flash_phase_on() else FLASH_OFF_BG

    def main_text(self) -> str:
        return self._main.text()

    def more_text(self) -> str:
        return self._more.text()

    def pause_text(self) -> str:
        """'AUDIO PAUSED 1:42' while paused, '' otherwise."""
        return self._pause.text() if self._pause.isVisibleTo(self) else ""

    def off_text(self) -> str:
        """'ALARMS OFF: SpO2 (reason, by who)' while any parameter is off, '' otherwise."""
        return self._off.text() if self._off.isVisibleTo(self) else ""

    def volume_text(self) -> str:
        """'ALARM VOLUME 40 %' while the volume is below the default, '' otherwise."""
        return self._volume_label.text() if self._volume_label.isVisibleTo(self) else ""

    def failure_text(self) -> str:
        return self._failure.text() if self._failure.isVisibleTo(self) else ""

    def _apply_style(self) -> None:
        p = self.shown_priority()
        bg = self.background_colour()
        if p is None:
            fg = style.MUTED
        elif self.flash_phase_on():
            fg = PRIORITY_FG[p]
        else:  # dark half of a flash: the text stays, in the priority colour
            fg = PRIORITY_BG[p]
        css = (
            f"QWidget#alarmBar {{ background: {bg}; border-bottom: 2px solid {style.BORDER}; }}"
            f" QWidget#alarmBar QLabel {{ color: {fg}; background: transparent; }}"
            f" QWidget#alarmBar QLabel#alarmPause, QWidget#alarmBar QLabel#alarmOff,"
            f" QWidget#alarmBar QLabel#alarmVolume, QWidget#alarmBar QLabel#alarmLimitsNotice,"
            f" QWidget#alarmBar QLabel#alarmMessage {{"
            f" background: {style.BACKGROUND}; color: {style.ATTENTION};"
            f" border: 2px solid {style.ATTENTION}; border-radius: 4px;"
            f" padding: 2px 10px; }}"
            f' QWidget#alarmBar QLabel#alarmOff[reminding="true"] {{'
            f" background: {style.ATTENTION}; color: {style.BACKGROUND}; }}"
            f" QPushButton {{ background: {style.PANEL}; color: {style.TEXT};"
            f" border: 2px solid {style.TEXT}; border-radius: 6px; padding: 4px 14px; }}"
            f" QPushButton:disabled {{ color: {style.MUTED}; border-color: {style.BORDER}; }}"
        )
        if css != self._last_css:
            self._last_css = css
            self.setStyleSheet(css)

    def render_png(self, path: str | os.PathLike[str]) -> None:
        """Save a picture of the bar (works offscreen); raises OSError if it cannot be written."""
        for _ in range(3):
            QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        if not self.grab().save(os.fspath(path), "PNG"):
            raise OSError(f"could not write {os.fspath(path)}")


class NumericFlasher(QObject):
    """Flashes a tile's frame in the priority colour while an alarm on its parameter(s) is live.

    Works on any QWidget (the existing NumericTile, BloodPressureTile) by setting dynamic properties
    `alarmPriority` ("high"/"medium"/"low"/"") and `alarmFlash` ("on"/"off") and an id-scoped style
    on the tile; the tile's own stylesheet is restored when the alarm ends. While the parameter's
    alarms are off it places an "ALARM OFF — reason" label over the top of the tile.
    """

    def __init__(self, tile: QWidget, params: Param | Iterable[Param]) -> None:
        super().__init__(tile)
        self.tile = tile
        self.params: frozenset[Param] = frozenset([params] if isinstance(params, Param) else params)
        if not tile.objectName():
            tile.setObjectName(f"alarmTile{id(tile)}")
        tile.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        name = tile.objectName()
        rules = []
        for p, colour in PRIORITY_BG.items():
            # the frame stays in the priority colour; the fill flashes (steady for low)
            sel = f'#{name}[alarmPriority="{p.label}"]'
            rules.append(
                f"{sel} {{ border: 6px solid {colour}; border-radius: 6px; background: {style.PANEL}; }}"
            )
            rules.append(f'{sel}[alarmFlash="on"] {{ background: {_dim(colour)}; }}')
        tile.setStyleSheet("\n".join([tile.styleSheet(), *rules]))
        tile.setProperty("alarmPriority", "")
        tile.setProperty("alarmFlash", "off")
        self._priority: Priority | None = None
        self._phase_on = True
        self.off_label = QLabel(tile)
        self.off_label.setObjectName("alarmOffOverlay")
        self.off_label.setFont(style.font(22, bold=True))
        self.off_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.off_label.setStyleSheet(
            f"QLabel#alarmOffOverlay {{ background: {style.ATTENTION_BG}; color: {style.ATTENTION};"
            f" border: 2px solid {style.ATTENTION}; border-radius: 4px; padding: 2px 8px; }}"
        )
        self.off_label.setVisible(False)
        tile.installEventFilter(self)

    def priority(self) -> Priority | None:
        """The highest priority of a live alarm on the tile's parameters (None: none)."""
        return self._priority

    def flash_period_s(self) -> float | None:
        return None if self._priority is None else FLASH_PERIOD_S[self._priority]

    def phase_on(self) -> bool:
        return self._priority is not None and self._phase_on

    def off_text(self) -> str:
        return self.off_label.text() if self.off_label.isVisibleTo(self.tile) else ""

    def update_from(self, engine: AlarmEngine) -> None:
        """Take the highest live alarm priority on the tile's parameters, and their alarm-off state."""
        prios = [a.priority for a in engine.active_alarms() if a.param in self.params]
        new = max(prios) if prios else None
        if new != self._priority:
            self._priority = new
            self._phase_on = True
            self._apply()
        offs = [o for p, o in engine.alarms_off.items() if p in self.params]
        text = "; ".join(f"ALARM OFF — {o.reason}" for o in offs)
        if text != self.off_label.text():
            self.off_label.setText(text)
        self.off_label.setVisible(bool(offs))
        if offs:
            self._place_label()
            self.off_label.raise_()

    def apply_phase(self, t: float) -> None:
        if self._priority is None:
            return
        on = flash_on(self._priority, t)
        if on != self._phase_on:
            self._phase_on = on
            self._apply()

    def _apply(self) -> None:
        # properties only: the selectors were installed once, so a flash re-polishes the tile alone
        self.tile.setProperty("alarmPriority", "" if self._priority is None else self._priority.label)
        self.tile.setProperty("alarmFlash", "on" if self.phase_on() else "off")
        _restyle(self.tile)

    def _place_label(self) -> None:
        w = self.tile.width()
        h = self.off_label.sizeHint().height()
        self.off_label.setGeometry(8, 8, max(0, w - 16), h)

    @override
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.tile and event.type() == QEvent.Type.Resize:
            self._place_label()
        return False


def _dim(colour: str) -> str:
    """A dark version of a priority colour for a tile's fill (the digits must stay readable on it)."""
    r, g, b = int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
    return f"#{r * 45 // 100:02x}{g * 45 // 100:02x}{b * 45 // 100:02x}"


__all__ = [
    "AUDIO_FAILURE_TEXT",
    "FLASH_PERIOD_S",
    "PRIORITY_BG",
    "PRIORITY_FG",
    "AlarmBar",
    "NumericFlasher",
    "alarm_text",
    "flash_on",
    "format_countdown",
    "format_value",
]
