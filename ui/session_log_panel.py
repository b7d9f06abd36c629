"""The session log panel (everything in time order, filterable by kind) and the shortcut help overlay."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import override

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.measurements import BloodPressure, DeviceState
from kapmonitor.observations import DOSE_GIVEN, ObservationCatalogue, Scale
from kapmonitor.storage.queries import AlarmEventRow, DeviceEventRow
from kapmonitor.storage.session_log import SessionLog
from kapmonitor.workflow import Dose, PhaseChange, format_elapsed
from ui import style


class EntryKind(StrEnum):
    OBSERVATION = "observation"
    DOSE = "dose"
    BP = "bp"
    ALARM = "alarm"
    DEVICE = "device"
    PHASE = "phase"
    DECISION = "decision"


KIND_LABELS: dict[EntryKind, str] = {
    EntryKind.OBSERVATION: "Observations",
    EntryKind.DOSE: "Doses",
    EntryKind.BP: "Blood pressure",
    EntryKind.ALARM: "Alarms",
    EntryKind.DEVICE: "Devices",
    EntryKind.PHASE: "Phases",
    EntryKind.DECISION: "Decisions",
}


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One line of the session log panel."""

    wall: float
    kind: EntryKind
    text: str
    who: str = ""


def record_entries(log: SessionLog) -> list[LogEntry]:
    """The clinician's part of the log from the database: phase changes, doses, decisions and
    observations (as last corrected, at their key-press time). Read after each clinician action."""
    out: list[LogEntry] = []
    # The workflow's records come in log order; the final sort is stable, so records stamped at
    # the same instant (a phase change and its first dose) keep that order.
    for rec in log.records():
        if isinstance(rec, PhaseChange):
            detail = f" — {rec.detail}" if rec.detail else ""
            text = f"{rec.from_phase.value} → {rec.to_phase.value}{detail}"
            out.append(LogEntry(rec.wall, EntryKind.PHASE, text, rec.who))
        elif isinstance(rec, Dose):
            mg = "" if rec.mg is None else f" {rec.mg:g} mg"
            out.append(
                LogEntry(rec.wall, EntryKind.DOSE, f"Dose {rec.number}{mg} {rec.detail}".strip(), rec.who)
            )
        else:
            text = f"{rec.kind.replace('_', ' ')}: {rec.choice}" + (f" ({rec.detail})" if rec.detail else "")
            if rec.reason:
                text += f" — {rec.reason}"
            out.append(LogEntry(rec.wall, EntryKind.DECISION, text, rec.who))
    cat = log.catalogue
    for o in log.current_observations():
        if o.code == DOSE_GIVEN:
            continue  # from the records above
        label = cat.get(o.code).label if o.code in cat else o.code
        text = label
        if o.scale is not None:
            name = label.split(" (")[0]
            total = f"{o.scale.total:+d}" if o.scale.scale == Scale.RASS else str(o.scale.total)
            items = "" if len(o.scale.items) == 1 else f" ({', '.join(map(str, o.scale.items))})"
            text = f"{name}: {total}{items}"
        if o.text:
            text = f"{text} — {o.text}"
        if o.amends is not None:
            text += " (corrected)"
        out.append(LogEntry(o.t_pressed_utc, EntryKind.OBSERVATION, text, o.author))
    return out


def bp_entry(bp: BloodPressure) -> LogEntry:
    """A cuff reading as a log line (a stored one at the cuff's own time)."""
    if bp.systolic is None or bp.diastolic is None:
        text = f"BP reading invalid ({bp.device})"
    else:
        text = f"BP {bp.systolic:.0f}/{bp.diastolic:.0f} mmHg"
        if bp.pulse_rate is not None:
            text += f", pulse {bp.pulse_rate:.0f}"
    if bp.stored:
        text += " (from the cuff's memory)"
    wall = bp.measured_wall if bp.stored and bp.measured_wall is not None else bp.wall
    return LogEntry(wall, EntryKind.BP, text, bp.device)


def alarm_entry(wall: float, event: str, priority: str | None, message: str) -> LogEntry:
    """An alarm transition as a log line (from a stored row or a live Transition)."""
    prio = f" [{priority}]" if priority else ""
    return LogEntry(wall, EntryKind.ALARM, f"{event}{prio} {message}".strip())


def device_entry(wall: float, device: str, state: DeviceState | None, detail: str) -> LogEntry:
    """A device state change or note as a log line."""
    what = state.value if state is not None else "note"
    more = f" — {detail}" if detail else ""
    return LogEntry(wall, EntryKind.DEVICE, f"{device}: {what}{more}")


def entries(
    log: SessionLog,
    *,
    bp_readings: Iterable[BloodPressure] = (),
    alarms: Iterable[AlarmEventRow] = (),
    device_events: Iterable[DeviceEventRow] = (),
) -> list[LogEntry]:
    """Everything of a session as log entries, in time order: observations (as last corrected, at
    their key-press time), doses, BP readings, alarms, device events, phase changes and decisions."""
    out = record_entries(log)
    out += [bp_entry(bp) for bp in bp_readings]
    out += [alarm_entry(a.t_utc, a.event, a.priority, a.message) for a in alarms]
    out += [device_entry(e.t_utc, e.device, e.state, e.detail) for e in device_events]
    return sorted(out, key=lambda e: e.wall)


LOG_STYLESHEET = f"""
SessionLogPanel {{ background: {style.PANEL}; }}
SessionLogPanel QLabel {{ color: {style.MUTED}; font-size: 15px; }}
SessionLogPanel QComboBox {{
    background: {style.BACKGROUND}; color: {style.TEXT}; border: 1px solid {style.BORDER}; font-size: 15px;
}}
SessionLogPanel QTableWidget {{
    background: {style.BACKGROUND}; color: {style.TEXT}; gridline-color: {style.BORDER};
    border: 1px solid {style.BORDER}; font-size: 15px;
}}
SessionLogPanel QHeaderView::section {{
    background: {style.PANEL}; color: {style.MUTED}; border: none; padding: 3px;
}}
"""


class SessionLogPanel(QWidget):
    """Everything in order, with a filter by kind; the times are local wall time and T+ (since the
    first dose, when `first_dose_wall` is set)."""

    COLUMNS = ("Time", "T+", "Kind", "What", "Who")

    def __init__(self, parent: QWidget | None = None, *, compact: bool = False) -> None:
        """`compact`: without the Kind column (the filter still chooses kinds), for a narrow dock."""
        super().__init__(parent)
        self.setStyleSheet(LOG_STYLESHEET)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._entries: list[LogEntry] = []
        self._first_dose: float | None = None
        self.filter = QComboBox()
        self.filter.addItem("Everything", None)
        for kind, kind_label in KIND_LABELS.items():
            self.filter.addItem(kind_label, kind.value)
        self.filter.currentIndexChanged.connect(self._render)
        label = QLabel("Sho&w")
        label.setBuddy(self.filter)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        for col in (0, 1, 2, 4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnHidden(2, compact)
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        top = QHBoxLayout()
        top.addWidget(label)
        top.addWidget(self.filter)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table)

    def set_entries(self, items: Iterable[LogEntry], *, first_dose_wall: float | None = None) -> None:
        self._entries = sorted(items, key=lambda e: e.wall)
        self._first_dose = first_dose_wall
        self._render()

    def load(
        self,
        log: SessionLog,
        *,
        bp_readings: Iterable[BloodPressure] = (),
        alarms: Iterable[AlarmEventRow] = (),
        device_events: Iterable[DeviceEventRow] = (),
        first_dose_wall: float | None = None,
    ) -> None:
        """Reload from the session log (call after each write: it is cheap for one session)."""
        self.set_entries(
            entries(log, bp_readings=bp_readings, alarms=alarms, device_events=device_events),
            first_dose_wall=first_dose_wall,
        )

    def set_filter(self, kind: EntryKind | None) -> None:
        self.filter.setCurrentIndex(self.filter.findData(None if kind is None else EntryKind(kind).value))

    def visible_entries(self) -> list[LogEntry]:
        data = self.filter.currentData()
        kind = None if data is None else EntryKind(data)
        return [e for e in self._entries if kind is None or e.kind == kind]

    def _render(self) -> None:
        shown = self.visible_entries()
        self.table.setRowCount(len(shown))
        for row, e in enumerate(shown):
            t = datetime.fromtimestamp(e.wall, tz=UTC).astimezone().strftime("%H:%M:%S")
            since = "" if self._first_dose is None else _signed_elapsed(e.wall - self._first_dose)
            for col, value in enumerate((t, since, KIND_LABELS[e.kind], e.text, e.who)):
                self.table.setItem(row, col, QTableWidgetItem(value))
        if shown:
            self.table.scrollToBottom()

    def row_texts(self) -> list[str]:
        """The 'What' column as shown (after the filter)."""
        items = (self.table.item(r, 3) for r in range(self.table.rowCount()))
        return [item.text() if item is not None else "" for item in items]


def _signed_elapsed(seconds: float) -> str:
    return format_elapsed(seconds) if seconds >= 0 else "T-" + format_elapsed(-seconds)[2:]


HELP_STYLESHEET = f"""
HelpOverlay {{ background: rgba(0, 0, 0, 215); }}
QFrame#helpCard {{ background: {style.PANEL}; border: 2px solid {style.BORDER}; border-radius: 8px; }}
QLabel#helpTitle {{ color: {style.TEXT}; font-size: 24px; font-weight: bold; }}
QLabel#helpKey {{
    color: {style.BACKGROUND}; background: {style.TEXT}; font-size: 18px; font-weight: bold;
    padding: 1px 8px; border-radius: 3px;
}}
QLabel#helpText {{ color: {style.TEXT}; font-size: 18px; }}
QLabel#helpHint {{ color: {style.MUTED}; font-size: 15px; }}
"""


class HelpOverlay(QWidget):
    """A full-window overlay listing every shortcut: the catalogue's keys and the window's own.

    Child of the main window's central widget; `toggle()` (bound to F1 / "?") shows it over
    everything, Esc or any key hides it.
    """

    def __init__(
        self,
        catalogue: ObservationCatalogue,
        extra: Sequence[tuple[str, str]] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setStyleSheet(HELP_STYLESHEET)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._lines: list[tuple[str, str]] = [(t.key, t.label) for t in catalogue if t.key]
        self._lines += list(extra)
        card = QFrame()
        card.setObjectName("helpCard")
        grid = QVBoxLayout(card)
        title = QLabel("Keyboard shortcuts")
        title.setObjectName("helpTitle")
        grid.addWidget(title)
        cols = QHBoxLayout()
        half = (len(self._lines) + 1) // 2
        for chunk in (self._lines[:half], self._lines[half:]):
            col = QVBoxLayout()
            for key, text in chunk:
                row = QHBoxLayout()
                k = QLabel(key)
                k.setObjectName("helpKey")
                k.setAlignment(Qt.AlignmentFlag.AlignCenter)
                k.setMinimumWidth(70)
                d = QLabel(text)
                d.setObjectName("helpText")
                row.addWidget(k)
                row.addWidget(d, 1)
                col.addLayout(row)
            col.addStretch(1)
            cols.addLayout(col)
        grid.addLayout(cols)
        hint = QLabel(
            "Observation keys work while no text field has focus; the time recorded is the key press."
            "  Esc closes this help."
        )
        hint.setObjectName("helpHint")
        grid.addWidget(hint)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(1)
        self.hide()
        if parent is not None:
            parent.installEventFilter(self)

    def lines(self) -> list[tuple[str, str]]:
        """(key, what it does) for every shortcut listed."""
        return list(self._lines)

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            parent = self.parentWidget()
            if parent is not None:
                self.setGeometry(parent.rect())
            self.raise_()
            self.show()
            self.setFocus()

    @override
    def event(self, event: QEvent) -> bool:
        # While shown (and focused) every key is the overlay's: a letter closes the help and is
        # not taken as an observation shortcut behind it.
        if event.type() == QEvent.Type.ShortcutOverride:
            event.accept()
            return True
        return super().event(event)

    @override
    def keyPressEvent(self, event: QKeyEvent) -> None:
        self.hide()
        event.accept()

    @override
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        parent = self.parentWidget()
        if parent is not None and watched is parent and event.type() == QEvent.Type.Resize:
            self.setGeometry(parent.rect())
        return False


__all__ = [
    "KIND_LABELS",
    "EntryKind",
    "HelpOverlay",
    "LogEntry",
    "SessionLogPanel",
    "alarm_entry",
    "bp_entry",
    "device_entry",
    "entries",
    "record_entries",
]
