"""The end-of-session summary in the console, with the REMS worksheet and session report as PDFs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from kapmonitor.clock import utc_iso
from kapmonitor.export.report_data import ReportData
from kapmonitor.measurements import Param
from kapmonitor.observations import DOSE_GIVEN
from ui.rems_pdf import write_rems_pdf
from ui.report_pdf import write_report_pdf
from ui.session_dialogs import DIALOG_STYLESHEET, PROTOCOL_LABELS

log = logging.getLogger(__name__)

#: Larger than the dialogs' 16 px: the summary is read standing, before the patient leaves.
SUMMARY_STYLESHEET = """
QLabel#summaryTitle { font-size: 26px; font-weight: bold; }
QLabel#summaryKey { font-size: 18px; font-weight: bold; }
QLabel#summaryValue { font-size: 18px; }
"""


def _local(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=UTC).astimezone().strftime("%H:%M")


def _range(values: np.ndarray, fmt: str) -> str:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return "no valid values"
    return f"{fmt.format(float(finite.min()))} – {fmt.format(float(finite.max()))}"


def summary_rows(data: ReportData) -> list[tuple[str, str]]:
    """(what, value) lines of the end-of-session summary, from the recorded session."""
    d = data.details
    rows: list[tuple[str, str]] = []
    if d is not None:
        rows.append(("Patient", d.patient))
        rows.append(("Protocol", PROTOCOL_LABELS.get(d.protocol, d.protocol.value)))
        rows.append(("Clinicians", ", ".join(d.clinicians)))
    doses = [o for o in data.observations if o.code == DOSE_GIVEN]
    if doses:
        mg = sum(o.dose_mg or 0.0 for o in doses)
        rows.append(("Dose", f"{mg:g} mg in {len(doses)} dose(s), first at {_local(doses[0].t_pressed_utc)}"))
    else:
        rows.append(("Dose", "none logged"))
    if data.rems is not None:
        rows.append(("Monitoring", f"{data.rems.total_minutes:.0f} min from the first device"))
        ready = data.rems.ready_to_leave_minutes
        rows.append(("Ready to leave", "not recorded" if ready is None else f"{ready:.0f} min"))
    bps = [b for b in data.blood_pressure if b.systolic is not None and b.diastolic is not None]
    if bps:
        peak = max(bps, key=lambda b: b.systolic or 0.0)
        rows.append(
            ("Blood pressure", f"{len(bps)} readings, highest {peak.systolic:.0f}/{peak.diastolic:.0f} mmHg")
        )
    else:
        rows.append(("Blood pressure", "no readings"))
    for param, name, fmt in ((Param.SPO2, "SpO₂", "{:.0f} %"), (Param.PULSE_RATE, "Pulse", "{:.0f} /min")):
        trend = data.trends.get(param)
        if trend is not None:
            rows.append((name, _range(trend.value, fmt)))
    by_priority: dict[str, int] = {}
    for a in data.alarms:
        by_priority[a.priority or "technical"] = by_priority.get(a.priority or "technical", 0) + 1
    alarm_text = ", ".join(f"{n} {p}" for p, n in sorted(by_priority.items())) or "none"
    rows.append(("Alarms", alarm_text))
    rows.append(("Observations", f"{len(data.observations) - len(doses)} recorded"))
    return rows


class SessionSummaryDialog(QDialog):
    """What the session was, and one key each for [E] the REMS worksheet PDF (esketamine), [P] the
    session report PDF, [Q] closing the console (ends the recording); Esc returns to the console.

    The PDFs go to `folder` as <session id>-rems.pdf and <session id>-report.pdf; the dialog says
    where. `reload()` rebuilds the data before each export (the recording goes on meanwhile).
    """

    def __init__(
        self,
        data: ReportData,
        folder: Path,
        *,
        reload: Callable[[], ReportData] | None = None,
        on_close_console: Callable[[], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Session summary — {data.session.id}")
        self.setStyleSheet(DIALOG_STYLESHEET + SUMMARY_STYLESHEET)
        self.data = data
        self.folder = folder
        self._reload = reload
        self._on_close_console = on_close_console
        self.written: dict[str, Path] = {}
        layout = QVBoxLayout(self)
        title = QLabel("Session ended")
        title.setObjectName("summaryTitle")
        layout.addWidget(title)
        grid = QGridLayout()
        self.rows = summary_rows(data)
        for i, (what, value) in enumerate(self.rows):
            k = QLabel(what)
            k.setObjectName("summaryKey")
            v = QLabel(value)
            v.setObjectName("summaryValue")
            v.setWordWrap(True)
            grid.addWidget(k, i, 0)
            grid.addWidget(v, i, 1)
        grid.setColumnStretch(1, 1)
        grid.setHorizontalSpacing(24)
        layout.addLayout(grid)
        self.flags = QLabel(self._flags_text())
        self.flags.setObjectName("dialogError")
        self.flags.setWordWrap(True)
        layout.addWidget(self.flags)
        self.status = QLabel("")
        self.status.setObjectName("dialogHint")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        self.rems_button = QPushButton("[E] Export REMS form (PDF)")
        self.rems_button.setVisible(data.rems is not None)
        self.rems_button.clicked.connect(self.export_rems)
        self.report_button = QPushButton("[P] Export session report (PDF)")
        self.report_button.clicked.connect(self.export_report)
        self.quit_button = QPushButton("[Q] Close the console")
        self.quit_button.clicked.connect(self.close_console)
        self.back_button = QPushButton("[Esc] Back to the console")
        self.back_button.clicked.connect(self.reject)
        for b in (self.rems_button, self.report_button, self.quit_button, self.back_button):
            buttons.addWidget(b)
        # QShortcut, not QPushButton.setShortcut: a button's shortcut clicks ~100 ms later
        for letter, button in (("E", self.rems_button), ("P", self.report_button), ("Q", self.quit_button)):
            QShortcut(QKeySequence(letter), self, button.click)
        layout.addLayout(buttons)
        (self.rems_button if data.rems is not None else self.report_button).setFocus()

    def _flags_text(self) -> str:
        rems = self.data.rems
        if rems is None or not rems.flags:
            return ""
        return "REMS form — check before transcribing: " + "; ".join(rems.flags)

    def _refresh(self) -> None:
        if self._reload is not None:
            self.data = self._reload()
            self.flags.setText(self._flags_text())

    def _path(self, suffix: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"{self.data.session.id}-{suffix}.pdf"

    def export_rems(self) -> Path | None:
        """Write the REMS worksheet PDF; returns its path (None for a non-esketamine session)."""
        self._refresh()
        rems, details = self.data.rems, self.data.details
        if rems is None or details is None:
            self.status.setText("No REMS form: not an esketamine session with a device logged.")
            return None
        try:
            path = write_rems_pdf(
                rems, details, self._path("rems"), generated=utc_iso(self.data.generated_utc)
            )
        except OSError as exc:
            self.status.setText(f"REMS form NOT written: {exc}")
            log.exception("REMS PDF failed")
            return None
        self.written["rems"] = path
        self.status.setText(f"REMS worksheet written: {path}")
        return path

    def export_report(self) -> Path | None:
        """Write the session report PDF; returns its path."""
        self._refresh()
        try:
            path = write_report_pdf(self.data, self._path("report"))
        except OSError as exc:
            self.status.setText(f"Session report NOT written: {exc}")
            log.exception("report PDF failed")
            return None
        self.written["report"] = path
        self.status.setText(f"Session report written: {path}")
        return path

    def close_console(self) -> None:
        self.accept()
        if self._on_close_console is not None:
            self._on_close_console()


__all__ = ["SessionSummaryDialog", "summary_rows"]
