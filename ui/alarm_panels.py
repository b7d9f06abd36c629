"""Alarm panels: the alarm history table, the alarm limits, alarm-off and alarm volume dialogs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any, override

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.alarms import Alarm, AlarmEngine, Preset, Priority, Rule
from kapmonitor.alarms.model import PARAM_NAMES
from kapmonitor.measurements import Param
from ui import style
from ui.alarm_bar import format_value
from ui.session_dialogs import DIALOG_STYLESHEET
from ui.sound import MIN_VOLUME_PERCENT

#: Dark tables on the console's theme (the app stylesheet sets light text on every widget).
TABLE_STYLESHEET = f"""
QTableWidget {{
    background: {style.BACKGROUND}; color: {style.TEXT}; gridline-color: {style.BORDER};
    border: 1px solid {style.BORDER}; selection-background-color: {style.BORDER};
}}
QHeaderView::section {{
    background: {style.PANEL}; color: {style.MUTED}; border: 1px solid {style.BORDER}; padding: 4px;
    font-weight: bold;
}}
QTableWidget QLineEdit, QTableWidget QComboBox {{
    background: {style.BACKGROUND}; color: {style.TEXT}; border: 1px solid {style.BORDER}; padding: 2px;
}}
QTableWidget QLineEdit:disabled {{ color: {style.MUTED}; }}
QTableWidget QCheckBox::indicator {{ width: 16px; height: 16px; border: 1px solid {style.MUTED}; }}
QTableWidget QCheckBox::indicator:checked {{ background: {style.OK}; }}
AlarmHistoryPanel {{ background: {style.PANEL}; }}
"""
#: A disabled OK must look disabled (the shared dialog style has no :disabled state).
_DISABLED_BUTTON = f"""
QDialog QPushButton:disabled {{
    color: {style.MUTED}; background: {style.PANEL}; border-color: {style.BORDER};
}}
"""

HISTORY_COLUMNS = ("Raised", "Pri", "Alarm", "Trigger", "Worst", "Acknowledged", "Cleared")


def _clock_text(wall: float | None, tz: tzinfo | None) -> str:
    """Local HH:MM:SS of a UTC wall time ('' for None)."""
    if wall is None:
        return ""
    return datetime.fromtimestamp(wall, tz=UTC).astimezone(tz).strftime("%H:%M:%S")


class AlarmHistoryPanel(QWidget):
    """Every alarm of the session, newest first: raise, acknowledge and clear times and its values.

    Call `refresh()` on AlarmChanged; `tz` is the display zone (None: the machine's local zone).
    """

    def __init__(
        self, engine: AlarmEngine, *, tz: tzinfo | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self._tz = tz
        self.table = QTableWidget(0, len(HISTORY_COLUMNS))
        self.table.setObjectName("alarmHistory")
        self.table.setHorizontalHeaderLabels(list(HISTORY_COLUMNS))
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setFont(style.font(18))
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(TABLE_STYLESHEET)
        title = QLabel("Alarm history")
        title.setFont(style.font(22, bold=True))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.table)
        self.refresh()

    def refresh(self) -> None:
        alarms = sorted(self.engine.history(), key=lambda a: (a.raised_mono, a.id), reverse=True)
        self.table.setRowCount(len(alarms))
        for row, alarm in enumerate(alarms):
            for col, text in enumerate(self.row_texts(alarm)):
                item = self.table.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, col, item)
                if item.text() != text:
                    item.setText(text)

    def row_texts(self, alarm: Alarm) -> tuple[str, ...]:
        """The cells of one alarm's row, in HISTORY_COLUMNS order."""
        acked = ""
        if alarm.acked_wall is not None:
            acked = f"{_clock_text(alarm.acked_wall, self._tz)} by {alarm.acked_by}"
        cleared = ""
        if alarm.cleared_wall is not None:
            cleared = _clock_text(alarm.cleared_wall, self._tz)
            if alarm.cleared_reason:
                cleared += f" ({alarm.cleared_reason})"
        else:
            cleared = f"live: {alarm.state.value}"
        message = alarm.message + (f" ({alarm.detail})" if alarm.detail else "")
        return (
            _clock_text(alarm.raised_wall, self._tz),
            alarm.priority.marker,
            message,
            format_value(alarm.trigger_value, alarm.param),
            format_value(alarm.worst_value, alarm.param),
            acked,
            cleared,
        )

    def rows(self) -> list[list[str]]:
        """The table's texts, row by row (newest first)."""
        out: list[list[str]] = []
        for r in range(self.table.rowCount()):
            cells = [self.table.item(r, c) for c in range(self.table.columnCount())]
            out.append([c.text() if c is not None else "" for c in cells])
        return out


_NUMBER_FIELDS = ("threshold", "delay_s", "hysteresis")


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


class LimitsDialog(QDialog):
    """Edit the alarm rules in force (priority, threshold, delay, hysteresis, latching).

    OK checks every change together against the preset's validation and, only if all are valid,
    applies each through `engine.set_limit` (audited old → new with who); on an error the engine's
    text is shown and the dialog stays open with nothing applied.
    """

    COLUMNS = ("Rule", "Priority", "Threshold", "Delay (s)", "Hysteresis", "Latching")

    def __init__(self, engine: AlarmEngine, who: Callable[[], str], *, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Alarm limits")
        self.setStyleSheet(DIALOG_STYLESHEET + _DISABLED_BUTTON + TABLE_STYLESHEET)
        self.engine = engine
        self._who = who
        rules = engine.preset.rules
        self._rules: list[Rule] = list(rules)
        self.table = QTableWidget(len(rules), len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self._editors: dict[str, dict[str, QWidget]] = {}
        for row, rule in enumerate(rules):
            item = QTableWidgetItem(f"{rule.describe()}  [{rule.id}]")
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(row, 0, item)
            prio = QComboBox()
            for p in (Priority.HIGH, Priority.MEDIUM, Priority.LOW):
                prio.addItem(f"{p.marker} {p.label}", p)
            prio.setCurrentIndex(prio.findData(rule.priority))
            threshold = QLineEdit(_num(rule.threshold))
            delay = QLineEdit("on reading" if rule.delay_s is None else _num(rule.delay_s))
            delay.setEnabled(rule.delay_s is not None)  # a cuff rule acts on each reading
            hyst = QLineEdit(_num(rule.hysteresis))
            latching = QCheckBox()
            latching.setChecked(rule.latching)
            eds: dict[str, QWidget] = {
                "priority": prio,
                "threshold": threshold,
                "delay_s": delay,
                "hysteresis": hyst,
                "latching": latching,
            }
            self._editors[rule.id] = eds
            for col, w in enumerate(eds.values(), start=1):
                self.table.setCellWidget(row, col, w)
        self.error = QLabel()
        self.error.setObjectName("dialogError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {style.ATTENTION}; font-weight: bold;")
        self.error.setVisible(False)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.apply)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        note = QLabel("Every change is recorded with your name and the time.")
        note.setStyleSheet(f"color: {style.MUTED};")
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.error)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(1160, 680)

    def editor(self, rule_id: str, field: str) -> QWidget:
        """The editor of one rule's field ("priority", "threshold", "delay_s", "hysteresis", "latching")."""
        return self._editors[rule_id][field]

    def changes(self) -> dict[str, dict[str, Any]]:
        """Rule id → the fields the operator changed (parsed). Raises ValueError for a non-number."""
        out: dict[str, dict[str, Any]] = {}
        for rule in self._rules:
            eds = self._editors[rule.id]
            new: dict[str, Any] = {}
            prio = eds["priority"]
            assert isinstance(prio, QComboBox)
            new["priority"] = Priority(prio.currentData())
            for name in _NUMBER_FIELDS:
                if name == "delay_s" and rule.delay_s is None:
                    continue
                ed = eds[name]
                assert isinstance(ed, QLineEdit)
                text = ed.text().strip().replace(",", ".")
                try:
                    new[name] = float(text)
                except ValueError:
                    raise ValueError(
                        f"{rule.describe()}: {name.replace('_s', '')} {text!r} is not a number"
                    ) from None
            latch = eds["latching"]
            assert isinstance(latch, QCheckBox)
            new["latching"] = latch.isChecked()
            current = self.engine.preset.rule(rule.id)  # the rules in force now, not when opened
            diff = {k: v for k, v in new.items() if getattr(current, k) != v}
            if diff:
                out[rule.id] = diff
        return out

    def apply(self) -> None:
        """Validate all changes together, then apply them through the engine and close; else show why."""
        self.error.setVisible(False)
        try:
            changes = self.changes()
            preset: Preset = self.engine.preset
            for rule_id, diff in changes.items():
                preset = preset.with_rule(rule_id, **diff)  # raises PresetError with the reason
            who = self._who()
            for rule_id, diff in changes.items():
                self.engine.set_limit(rule_id, who, **diff)
        except ValueError as e:
            self.error.setText(str(e))
            self.error.setVisible(True)
            return
        self.accept()

    def error_text(self) -> str:
        return self.error.text() if self.error.isVisibleTo(self) else ""


class AlarmOffDialog(QDialog):
    """Turn one parameter's alarms off: a parameter and a mandatory reason (OK disabled without one).

    The engine records who and why, the alarm bar and the parameter's tile show it permanently, and
    the engine reminds of it every few minutes.
    """

    def __init__(self, engine: AlarmEngine, who: Callable[[], str], *, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Turn alarms off")
        self.setStyleSheet(DIALOG_STYLESHEET + _DISABLED_BUTTON)
        self.engine = engine
        self._who = who
        self.param = QComboBox()
        seen: list[Param] = []
        for rule in engine.preset.rules:
            if rule.param not in seen and rule.param not in engine.alarms_off:
                seen.append(rule.param)
                self.param.addItem(PARAM_NAMES.get(rule.param, rule.param.value), rule.param)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("Why (required)")
        self.error = QLabel()
        self.error.setStyleSheet(f"color: {style.ATTENTION}; font-weight: bold;")
        self.error.setVisible(False)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Turn alarms off")
        buttons.accepted.connect(self.apply)
        buttons.rejected.connect(self.reject)
        self.reason.textChanged.connect(self._update_ok)
        form = QFormLayout()
        form.addRow("Parameter", self.param)
        form.addRow("Reason", self.reason)
        warning = QLabel("The parameter will show ALARM OFF until its alarms are turned back on.")
        warning.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(warning)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self._update_ok()

    def select(self, param: Param) -> None:
        self.param.setCurrentIndex(self.param.findData(param))

    def _update_ok(self) -> None:
        self.ok_button.setEnabled(bool(self.reason.text().strip()) and self.param.count() > 0)

    def apply(self) -> None:
        if not self.ok_button.isEnabled():
            return
        try:
            self.engine.set_alarm_off(Param(self.param.currentData()), self._who(), self.reason.text())
        except ValueError as e:
            self.error.setText(str(e))
            self.error.setVisible(True)
            return
        self.accept()


#: The volume slider's step (arrow keys and page keys alike), percent.
VOLUME_SLIDER_STEP = 10


class VolumeDialog(QDialog):
    """The alarm volume: a slider that stops at the player's floor (an alarm is never silent), and says so.

    `set_volume` is the player's (AlarmSoundPlayer or ProcessAlarmSound): it clamps and emits
    volume_changed, which the alarm bar shows while the volume is below the default.
    """

    def __init__(
        self, current: int, set_volume: Callable[[int], int], *, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Alarm volume")
        self.setStyleSheet(DIALOG_STYLESHEET)
        self._set_volume = set_volume
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setSingleStep(VOLUME_SLIDER_STEP)
        self.slider.setPageStep(VOLUME_SLIDER_STEP)
        self.slider.setTickInterval(VOLUME_SLIDER_STEP)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setMinimumWidth(420)
        self.value_label = QLabel()
        self.value_label.setFont(style.font(26, bold=True))
        self.floor_note = QLabel(f"Alarms cannot be silenced: {MIN_VOLUME_PERCENT} % is the lowest volume.")
        self.floor_note.setWordWrap(True)
        self.floor_note.setStyleSheet(f"color: {style.ATTENTION}; font-weight: bold;")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Set volume")
        buttons.accepted.connect(self.apply)
        buttons.rejected.connect(self.reject)
        self.slider.valueChanged.connect(self._on_slider)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Alarm sound volume (← → to change)"))
        layout.addWidget(self.slider)
        layout.addWidget(self.value_label)
        layout.addWidget(self.floor_note)
        layout.addWidget(buttons)
        self.slider.setValue(current)
        self._on_slider(self.slider.value())
        self.slider.setFocus()

    def value(self) -> int:
        return self.slider.value()

    def _on_slider(self, value: int) -> None:
        if value < MIN_VOLUME_PERCENT:
            self.slider.setValue(MIN_VOLUME_PERCENT)  # the slider stops at the floor
            return
        self.value_label.setText(f"{value} %")
        self.floor_note.setVisible(value <= MIN_VOLUME_PERCENT)

    def apply(self) -> None:
        self._set_volume(self.slider.value())
        self.accept()


#: The audio pause lengths offered (s): 1, 2 or 3 minutes (reference/alarms.md "Audio pause").
PAUSE_LENGTHS_S: tuple[float, ...] = (60.0, 120.0, 180.0)


class PauseLengthDialog(QDialog):
    """How long an audio pause lasts: one click (or key 1, 2, 3) on 1, 2 or 3 minutes."""

    def __init__(self, current_s: float, *, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Audio pause length")
        self.setStyleSheet(DIALOG_STYLESHEET)
        self._chosen: float | None = None
        self.buttons: dict[float, QPushButton] = {}
        row = QHBoxLayout()
        for seconds in PAUSE_LENGTHS_S:
            minutes = round(seconds / 60)
            now = "  (now)" if seconds == current_s else ""
            button = QPushButton(f"&{minutes} min{now}")
            button.setFont(style.font(22, bold=True))
            button.setMinimumSize(160, 64)
            button.clicked.connect(lambda _=False, s=seconds: self.choose(s))
            self.buttons[seconds] = button
            row.addWidget(button)
            if seconds == current_s:
                button.setDefault(True)
                button.setFocus()
        cancel = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        cancel.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        title = QLabel("How long an audio pause (F2) silences the alarm sound:")
        title.setWordWrap(True)
        layout.addWidget(title)
        layout.addLayout(row)
        layout.addWidget(cancel)

    @override
    def keyPressEvent(self, event: QKeyEvent) -> None:
        # the digit alone picks a length (no Alt needed). A key event, not a QShortcut: a shortcut
        # needs the dialog's window to be active, which an offscreen or just-opened window may not be.
        for seconds, button in self.buttons.items():
            if event.text() == str(round(seconds / 60)):
                button.click()
                return
        super().keyPressEvent(event)

    def choose(self, seconds: float) -> None:
        self._chosen = seconds
        self.accept()

    def chosen(self) -> float | None:
        """The length picked (s), or None if cancelled."""
        return self._chosen


__all__ = [
    "HISTORY_COLUMNS",
    "PAUSE_LENGTHS_S",
    "AlarmHistoryPanel",
    "AlarmOffDialog",
    "LimitsDialog",
    "PauseLengthDialog",
    "VolumeDialog",
]
