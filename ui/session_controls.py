"""The clinician's session controls in the console: phase bar, next step, one-key observations."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from kapmonitor.clock import Clock
from kapmonitor.observations import Pressed
from kapmonitor.session import BloodPressureTaken, Session, SessionEvent
from kapmonitor.storage.session_log import SessionLog
from kapmonitor.workflow import Phase, SessionWorkflow, WorkflowError
from ui import style
from ui.observation_panel import ObservationPanel, PhaseBar
from ui.session_dialogs import BpGateDialog

log = logging.getLogger(__name__)

#: What "Next step" does in each phase (kap-session.md "Phases").
NEXT_STEP: dict[Phase, str] = {
    Phase.PREPARATION: "Start pre-dose baseline",
    Phase.BASELINE: "Take latest BP as baseline, start dosing",
    Phase.DOSING: "Dosing done: start monitoring",
    Phase.MONITORING: "Start recovery",
    Phase.RECOVERY: "Start discharge",
    Phase.DISCHARGE: "End session",
}
#: Keys the console itself uses (alarm bar): the observation panel must not take them.
CONSOLE_KEYS = ("Space", "F2")


class SessionControls(QWidget):
    """Phase bar + "Next step" + observation panel, writing every record to the session log."""

    def __init__(
        self,
        session: Session,
        workflow: SessionWorkflow,
        session_log: SessionLog,
        clock: Clock,
        operator: Callable[[], str],
        *,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.workflow = workflow
        self.log = session_log
        self.clock = clock
        self.operator = operator
        self.setObjectName("sessionControls")
        self.setStyleSheet(style.STYLESHEET)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 6)
        top = QHBoxLayout()
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
        layout.addLayout(top)
        self.panel = ObservationPanel(session_log, clock, operator, columns=7, reserved_keys=CONSOLE_KEYS)
        self.panel.dose_requested.connect(self.give_dose)
        layout.addWidget(self.panel)
        self.message = QLabel()
        self.message.setFont(style.font(16))
        layout.addWidget(self.message)
        self._unsubscribe = session.subscribe(self._on_event)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.phase_bar.refresh)
        self._timer.start()
        self._update()

    def _on_event(self, event: SessionEvent) -> None:
        if isinstance(event, BloodPressureTaken):
            self.workflow.note_bp(event.reading)  # the BP schedule restarts from a live reading
            self.phase_bar.refresh()

    def _write(self, action: Callable[[], list[object]]) -> bool:
        """Run a workflow action; store its records; show why when the workflow refuses."""
        try:
            records = action()
        except WorkflowError as exc:
            self.message.setText(f"Not done: {exc}")
            return False
        self.log.write(records)  # type: ignore[arg-type]  # the workflow's records
        self._update()
        return True

    def _update(self) -> None:
        phase = self.workflow.phase
        self.next_button.setText(NEXT_STEP.get(phase, "Session ended"))
        self.next_button.setEnabled(phase in NEXT_STEP)
        self.phase_bar.refresh()

    def next_step(self) -> None:
        """Advance the session one phase, asking what the phase needs (baseline BP, gate decision)."""
        who = self.operator()
        wf = self.workflow
        phase = wf.phase
        if phase is Phase.PREPARATION:
            self._write(lambda: list(wf.start_baseline(who)))
        elif phase is Phase.BASELINE:
            live = [b for b in self.session.bp_readings if not b.stored]
            if not live:
                self.message.setText("Take a baseline blood pressure first (no live cuff reading yet).")
                return
            if not self._write(lambda: list(wf.record_baseline(live[-1], who))):
                return
            if wf.needs_decision:
                assert wf.baseline is not None
                dialog = BpGateDialog(*wf.baseline, parent=self)
                if dialog.exec() != QDialog.DialogCode.Accepted:
                    self.message.setText("Baseline above 140/90: a decision is needed before dosing.")
                    return
                if not self._write(lambda: list(wf.decide(dialog.choice(), dialog.reason.text(), who))):
                    return
            self._write(lambda: list(wf.start_dosing(who)))
        elif phase is Phase.DOSING:
            self._write(lambda: list(wf.start_monitoring(who)))
        elif phase is Phase.MONITORING:
            self._write(lambda: list(wf.start_recovery(who)))
        elif phase is Phase.RECOVERY:
            self._write(lambda: list(wf.start_discharge(who)))
        elif phase is Phase.DISCHARGE:
            self._write(lambda: list(wf.end(who)))

    def give_dose(self, pressed: Pressed) -> None:
        """The dose key: an esketamine device (rest timed) or a dose, at the key press."""
        del pressed  # the workflow stamps the dose itself, at once
        who = self.operator()
        if self.workflow.is_esketamine:
            self._write(lambda: list(self.workflow.log_device(who)))
        else:
            self._write(lambda: list(self.workflow.log_dose(who)))

    def shutdown(self) -> None:
        self._timer.stop()
        self._unsubscribe()
