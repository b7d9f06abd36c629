"""The clinician's session controls in the console: phase bar, next step, observations, the log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from kapmonitor.alarms import Transition
from kapmonitor.clock import Clock
from kapmonitor.export.report_data import ReportData, report_data
from kapmonitor.measurements import DeviceEvent
from kapmonitor.observations import DOSE_GIVEN, Pressed, Scale
from kapmonitor.session import AlarmChanged, BloodPressureTaken, DeviceChanged, Session, SessionEvent
from kapmonitor.storage import Recorder, alarm_events, blood_pressure, device_events, session_devices
from kapmonitor.storage.session_log import SessionLog
from kapmonitor.workflow import BpDueAlarm, Phase, Record, SessionWorkflow, WorkflowError
from ui import style
from ui.observation_panel import ObservationPanel, PhaseBar
from ui.session_dialogs import BpGateDialog, DischargeDialog, FreeTextDialog
from ui.session_log_panel import (
    LogEntry,
    SessionLogPanel,
    alarm_entry,
    bp_entry,
    device_entry,
    record_entries,
)
from ui.session_summary import SessionSummaryDialog

log = logging.getLogger(__name__)

#: What "Next step" does in each phase (kap-session.md "Phases").
NEXT_STEP: dict[Phase, str] = {
    Phase.PREPARATION: "Start pre-dose baseline",
    Phase.BASELINE: "Baseline BP, start dosing",
    Phase.DOSING: "Start monitoring",
    Phase.MONITORING: "Start recovery",
    Phase.RECOVERY: "Start discharge",
    Phase.DISCHARGE: "End session",
    Phase.ENDED: "Session summary",
}
#: In discharge, before "ready to leave" is recorded, the next step is the checklist.
CHECKLIST_STEP = "Discharge checklist"
#: The key of "Next step" (shown on the button).
NEXT_KEY = "F4"
#: Keys the console itself uses (alarm bar, help, next step): the observation panel must not take them.
CONSOLE_KEYS = ("Space", "F1", "F2", NEXT_KEY, "?")
#: Observation buttons per row in the column beside the monitor.
OBSERVATION_COLUMNS = 2
#: The log panel is rebuilt at most this often (ms) from what changed: never per sample.
LOG_REFRESH_MS = 1000


class SessionControls(QWidget):
    """The observation panel and the session log panel (`log_panel`) kept up to date, with the
    phase bar and "Next step" in `step_bar` (docked apart, under the monitor); every record is
    written to the session log.

    The log panel's clinician part (phases, decisions, doses, observations) is re-read from the
    database after each clinician action; BP readings, alarms and device events are appended from
    the session's events as they come (no database query per event), and the table is redrawn at
    most once a second. `markers_changed` carries the observation markers for the trend plot.
    """

    #: [(UTC wall time, label)] of the observations and doses, after every change
    markers_changed = Signal(object)
    #: the clinician asked to close the console from the summary (the recording then ends)
    close_requested = Signal()

    def __init__(
        self,
        session: Session,
        workflow: SessionWorkflow,
        session_log: SessionLog,
        clock: Clock,
        operator: Callable[[], str],
        *,
        recorder: Recorder | None = None,
        report_folder: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.workflow = workflow
        self.log = session_log
        self.clock = clock
        self.operator = operator
        self.recorder = recorder
        self.report_folder = report_folder or Path.cwd()
        #: the dialog a step opened (window-modal, non-blocking), or None
        self.active_dialog: QDialog | None = None
        self.summary: SessionSummaryDialog | None = None
        self.setObjectName("sessionControls")
        self.setStyleSheet(style.STYLESHEET)
        #: the phase bar with the dose clock and "Next step": docked under the monitor, full width
        self.step_bar = QWidget()
        self.step_bar.setObjectName("sessionSteps")
        self.step_bar.setStyleSheet(style.STYLESHEET)
        top = QHBoxLayout(self.step_bar)
        top.setContentsMargins(12, 4, 12, 4)
        self.phase_bar = PhaseBar(workflow, clock)
        top.addWidget(self.phase_bar, 1)
        self.next_button = QPushButton()
        self.next_button.setFont(style.font(18, bold=True))
        self.next_button.setStyleSheet(
            "QPushButton { background: #1d4f7a; color: #ffffff; padding: 6px 16px;"
            " border: 1px solid #3a7ab0; }"
            "QPushButton:disabled { background: #24303a; color: #8a96a0; }"
        )
        self.next_button.clicked.connect(self.next_step)
        top.addWidget(self.next_button)
        # a window shortcut (QShortcut: a button's own shortcut clicks ~100 ms later)
        self.next_shortcut = QShortcut(QKeySequence(NEXT_KEY), self)
        self.next_shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        self.next_shortcut.activated.connect(self.next_button.click)
        # this widget, beside the monitor: the observation keys, what a step refused, the log
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        self.panel = ObservationPanel(
            session_log, clock, operator, columns=OBSERVATION_COLUMNS, reserved_keys=CONSOLE_KEYS
        )
        self.panel.dose_requested.connect(self.give_dose)
        self.panel.saved.connect(lambda _oid: self.log_changed())
        layout.addWidget(self.panel)
        self.message = QLabel()
        self.message.setFont(style.font(16))
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"color: {style.ATTENTION};")
        layout.addWidget(self.message)

        self.log_panel = SessionLogPanel(compact=True)
        layout.addWidget(self.log_panel, 1)
        self._record_entries: list[LogEntry] = []
        self._live_entries: list[LogEntry] = self._stored_entries()
        self._log_dirty = True

        #: the low-priority "BP reading due" alarm, kept in step with the workflow's BP schedule
        self.bp_due = None if session.alarms is None else BpDueAlarm(workflow, session.alarms)
        self._unsubscribe: Callable[[], None] | None = session.subscribe(self._on_event)
        #: the schedule is checked on the session's own tick (core, injected clock), not on this
        #: view's timer: the alarm comes even while the view is not redrawn
        self._unhook: Callable[[], None] | None = (
            None if self.bp_due is None else session.add_tick_hook(self.bp_due.update)
        )
        self._timer = QTimer(self)
        self._timer.setInterval(LOG_REFRESH_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self._update()
        self.log_changed()

    # -- the log panel and the markers -------------------------------------------------------------
    def _stored_entries(self) -> list[LogEntry]:
        """BP, alarms and device events already in the database (a resumed session's past), once."""
        db, sid = self.log.db, self.log.session_id
        out = [bp_entry(b) for b in blood_pressure(db, sid)]
        out += [alarm_entry(a.t_utc, a.event, a.priority, a.message) for a in alarm_events(db, sid)]
        names = {d.device: d.name for d in session_devices(db, sid)}
        out += [
            device_entry(e.t_utc, names.get(e.device) or e.device, e.state, e.detail)
            for e in device_events(db, sid)
        ]
        return out

    def log_changed(self) -> None:
        """Re-read the clinician's records after a write; update the markers; redraw the log soon."""
        self._record_entries = record_entries(self.log)
        self._log_dirty = True
        self.markers_changed.emit(self.markers())
        self.refresh_log()

    def markers(self) -> list[tuple[float, str]]:
        """(UTC wall time of the key press, label) of every observation and dose, as last corrected."""
        cat = self.log.catalogue
        out: list[tuple[float, str]] = []
        dose = 0
        for o in self.log.current_observations():
            if o.code == DOSE_GIVEN:
                dose += 1
                out.append((o.t_pressed_utc, f"Dose {dose}"))
                continue
            label = cat.get(o.code).label if o.code in cat else o.code
            label = label.split(" (")[0]
            if o.scale is not None:
                total = f"{o.scale.total:+d}" if o.scale.scale == Scale.RASS else str(o.scale.total)
                label = f"{label} {total}"
            out.append((o.t_pressed_utc, label))
        return out

    def _on_event(self, event: SessionEvent) -> None:
        if isinstance(event, BloodPressureTaken):
            self.workflow.note_bp(event.reading)  # the BP schedule restarts from a live reading
            self._live(bp_entry(event.reading))
            self._refresh_schedule()
        elif isinstance(event, AlarmChanged):
            self._live(_alarm(event.transition))
        elif isinstance(event, DeviceChanged):
            entry = self._device(event.event)
            if entry is not None:
                self._live(entry)

    def _live(self, entry: LogEntry) -> None:
        self._live_entries.append(entry)
        self._log_dirty = True

    def _device(self, e: DeviceEvent) -> LogEntry | None:
        status = self.session.devices.get(e.device)
        if status is None or status.info.placeholder:
            return None  # a role still searching, or its placeholder removed: not recorded either
        return device_entry(e.wall, status.info.name or e.device, e.state, e.detail)

    def refresh_log(self) -> None:
        """Redraw the log panel if anything changed since it was last drawn."""
        if not self._log_dirty:
            return
        self._log_dirty = False
        self.log_panel.set_entries(
            self._record_entries + self._live_entries, first_dose_wall=self.workflow.first_dose_wall
        )

    def _tick(self) -> None:
        self.phase_bar.refresh()  # the "BP reading due" alarm itself runs on the session's tick
        self.refresh_log()

    def _refresh_schedule(self) -> None:
        """After a reading or a workflow action: the "BP reading due" alarm and the phase bar at once."""
        if self.bp_due is not None:
            self.bp_due.update()
        self.phase_bar.refresh()

    # -- steps ---------------------------------------------------------------------------------
    def _write(self, action: Callable[[], Sequence[Record]]) -> bool:
        """Run a workflow action; store its records; show why when the workflow refuses."""
        try:
            records = action()
        except WorkflowError as exc:
            self.message.setText(f"Not done: {exc}")
            return False
        self.log.write(records)
        self.message.setText("")
        self._update()
        self.log_changed()
        return True

    def _update(self) -> None:
        phase = self.workflow.phase
        text = NEXT_STEP.get(phase, "Session cancelled")
        if phase is Phase.DISCHARGE and self.workflow.ready_wall is None:
            text = CHECKLIST_STEP
        self.next_button.setText(f"[{NEXT_KEY}] {text}")
        self.next_button.setEnabled(phase in NEXT_STEP)
        self._refresh_schedule()

    def _ask(
        self, dialog: QDialog, on_accept: Callable[[], None], on_reject: Callable[[], None] | None = None
    ) -> None:
        """Open `dialog` window-modal without blocking the event loop (the monitor keeps running);
        `on_accept` runs when it is accepted."""
        self.active_dialog = dialog
        dialog.setWindowModality(Qt.WindowModality.WindowModal)

        def finished(result: int) -> None:
            self.active_dialog = None
            dialog.deleteLater()
            if result == QDialog.DialogCode.Accepted.value:
                on_accept()
            elif on_reject is not None:
                on_reject()

        dialog.finished.connect(finished)
        dialog.open()

    def next_step(self) -> None:
        """Advance the session one phase, asking what the phase needs (baseline BP, gate decision,
        discharge checklist, a reason to end early); after the end, show the summary."""
        if self.active_dialog is not None:
            return
        who = self.operator()
        wf = self.workflow
        phase = wf.phase
        if phase is Phase.PREPARATION:
            self._write(lambda: list(wf.start_baseline(who)))
        elif phase is Phase.BASELINE:
            self._baseline(who)
        elif phase is Phase.DOSING:
            self._write(lambda: list(wf.start_monitoring(who)))
        elif phase is Phase.MONITORING:
            self._write(lambda: list(wf.start_recovery(who)))
        elif phase is Phase.RECOVERY:
            self._write(lambda: list(wf.start_discharge(who)))
        elif phase is Phase.DISCHARGE:
            if wf.ready_wall is None:
                self.open_checklist()
            else:
                self.end_session()
        elif phase is Phase.ENDED:
            self.show_summary()

    def _baseline(self, who: str) -> None:
        wf = self.workflow
        live = [b for b in self.session.bp_readings if not b.stored]
        if not live:
            self.message.setText("Take a baseline blood pressure first (no live cuff reading yet).")
            return
        if not self._write(lambda: list(wf.record_baseline(live[-1], who))):
            return
        if not wf.needs_decision:
            self._write(lambda: list(wf.start_dosing(who)))
            return
        assert wf.baseline is not None
        dialog = BpGateDialog(*wf.baseline, parent=self)

        def decided() -> None:
            decision = self._write(lambda: list(wf.decide(dialog.choice(), dialog.reason.text(), who)))
            if decision and wf.phase is Phase.BASELINE and wf.can_dose()[0]:
                self._write(lambda: list(wf.start_dosing(who)))

        self._ask(
            dialog,
            decided,
            lambda: self.message.setText("Baseline above 140/90: a decision is needed before dosing."),
        )

    def open_checklist(self) -> None:
        """The discharge checklist and "ready to leave" (each tick recorded with who and when)."""
        wf = self.workflow
        dialog = DischargeDialog(
            wf.checklist,
            ready_recorded=wf.ready_wall is not None,
            minimum_left_s=wf.minimum_remaining(),
            parent=self,
        )

        def done() -> None:
            who = self.operator()
            for item in dialog.newly_checked():
                self._write(partial(wf.check, item, who))
            if dialog.wants_ready():
                self._write(lambda: list(wf.ready_to_leave(who)))

        self._ask(dialog, done)

    def end_session(self) -> None:
        """End the session; before the 2-hour minimum (esketamine) only with a recorded reason."""
        wf = self.workflow
        who = self.operator()
        if wf.minimum_remaining() <= 0 and wf.ready_wall is not None:
            if self._write(lambda: list(wf.end(who))):
                self.show_summary()
            return
        dialog = FreeTextDialog("End the session early — reason (recorded)", parent=self)
        dialog.text_edit.setPlaceholderText(self._early_end_problem())

        def ended() -> None:
            if self._write(lambda: list(wf.end(who, override_reason=dialog.text()))):
                self.show_summary()

        self._ask(dialog, ended)

    def _early_end_problem(self) -> str:
        wf = self.workflow
        problems = []
        if wf.minimum_remaining() > 0:
            problems.append(f"{wf.minimum_remaining() / 60:.0f} min of the 2-hour minimum remain")
        if wf.ready_wall is None:
            problems.append("ready to leave is not recorded")
        return "; ".join(problems)

    def give_dose(self, pressed: Pressed) -> None:
        """The dose key: an esketamine device (rest timed) or a dose, at the key press."""
        del pressed  # the workflow stamps the dose itself, at once
        who = self.operator()
        if self.workflow.is_esketamine:
            self._write(lambda: list(self.workflow.log_device(who)))
        else:
            self._write(lambda: list(self.workflow.log_dose(who)))

    # -- the end -----------------------------------------------------------------------------
    def summary_data(self) -> ReportData:
        """The session as recorded so far (the recorder's buffer flushed first)."""
        if self.recorder is not None:
            self.recorder.flush()
        return report_data(self.log.db, self.log.session_id, self.clock)

    def show_summary(self) -> SessionSummaryDialog:
        """The end-of-session summary with the REMS and report exports (window-modal, non-blocking)."""
        if self.summary is not None:
            self.summary.close()
            self.summary.deleteLater()
        dialog = SessionSummaryDialog(
            self.summary_data(),
            self.report_folder,
            reload=self.summary_data,
            on_close_console=self.close_requested.emit,
            parent=self,
        )
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.summary = dialog
        dialog.open()
        return dialog

    def help_lines(self) -> list[tuple[str, str]]:
        """The session controls' own keys for the help overlay (the catalogue's come from it)."""
        return [
            (NEXT_KEY, "Next step (what the blue button says)"),
            ("Alt+W", "Session log: choose what to show"),
        ]

    def shutdown(self) -> None:
        """Stop the timer and unsubscribe from the session (idempotent)."""
        self._timer.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._unhook is not None:
            self._unhook()
            self._unhook = None


def _alarm(t: Transition) -> LogEntry:
    priority = None if t.priority is None else t.priority.name.lower()
    return alarm_entry(t.wall, t.event.value, priority, t.message)


__all__ = ["CONSOLE_KEYS", "NEXT_KEY", "NEXT_STEP", "SessionControls"]
