"""One-key observations stamped at the key press, and the phase bar with the dose clock and timers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from kapmonitor.clock import Clock
from kapmonitor.observations import (
    DOSE_GIVEN,
    ObservationCatalogue,
    ObservationError,
    ObservationType,
    Pressed,
    press,
)
from kapmonitor.storage.recorder import RecorderError
from kapmonitor.storage.session_log import SessionLog
from kapmonitor.workflow import DEVICE_REST_S, Phase, SessionWorkflow
from ui import style
from ui.session_dialogs import FreeTextDialog, ScaleDialog

PANEL_STYLESHEET = f"""
ObservationPanel, PhaseBar {{ background: {style.PANEL}; border: 1px solid {style.BORDER}; }}
QPushButton#obsButton {{
    background: {style.BACKGROUND}; color: {style.TEXT}; font-size: 16px; text-align: left;
    padding: 6px 10px; border: 1px solid {style.BORDER}; border-radius: 4px;
}}
QPushButton#obsButton:focus {{ border: 2px solid {style.TEXT}; }}
QPushButton#obsButton[kind="scale"] {{ color: {style.PLETH}; }}
QLabel#obsStatus {{ color: {style.MUTED}; font-size: 15px; background: transparent; }}
QLabel#obsStatus[state="cancelled"], QLabel#obsStatus[state="error"] {{ color: {style.ATTENTION}; }}
QLabel#phaseStep {{
    color: {style.MUTED}; font-size: 15px; padding: 4px 6px; border: 1px solid {style.BORDER};
    background: transparent;
}}
QLabel#phaseStep[state="done"] {{ color: {style.TEXT}; }}
QLabel#phaseStep[state="current"] {{
    color: {style.BACKGROUND}; background: {style.OK}; font-weight: bold; border: 1px solid {style.OK};
}}
QLabel#phaseStep[state="cancelled"] {{
    color: {style.LOST}; border: 1px solid {style.LOST}; font-weight: bold;
}}
QLabel#doseClock {{ color: {style.TEXT}; font-size: 28px; font-weight: bold; background: transparent; }}
QLabel#restTimer, QLabel#bpDue {{ font-size: 18px; background: transparent; color: {style.MUTED}; }}
QLabel#restTimer[active="true"], QLabel#bpDue[active="true"] {{
    color: {style.ATTENTION}; background: {style.ATTENTION_BG}; border: 1px solid {style.ATTENTION};
    border-radius: 4px; padding: 2px 8px; font-weight: bold;
}}
"""

#: Author of an observation: a fixed name, or a callable giving the clinician at the console now.
Author = str | Callable[[], str]


def button_text(t: ObservationType) -> str:
    """'[n] Nausea': the shortcut is shown on the button."""
    return f"[{t.key}] {t.label}" if t.key else t.label


def _hhmmss(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=UTC).astimezone().strftime("%H:%M:%S")


class ObservationPanel(QWidget):
    """One button per catalogue entry, each also one key away (while no text field has focus).

    The key press (or click) is stamped at once with `press(code, clock)`; a free-text or scale entry
    then opens its dialog (window-modal, non-blocking: `active_dialog`), and on OK the observation is
    committed with the ORIGINAL press time. A cancelled dialog saves nothing and says so. "Dose given"
    goes through the workflow: the panel emits `dose_requested(pressed)` for the window to handle.
    """

    saved = Signal(int)  # observation id
    cancelled = Signal(str)  # code
    dose_requested = Signal(object)  # Pressed
    status_changed = Signal(str)

    def __init__(
        self,
        log: SessionLog,
        clock: Clock,
        author: Author,
        *,
        columns: int = 4,
        reserved_keys: Iterable[str] = (),
        parent: QWidget | None = None,
    ) -> None:
        """`reserved_keys`: the window's other single-key shortcuts (e.g. the alarm bar's); a catalogue
        key among them raises ValueError, since Qt fires neither of two equal shortcuts."""
        super().__init__(parent)
        self.setStyleSheet(PANEL_STYLESHEET)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._log = log
        self._clock = clock
        self._author = author
        self.catalogue: ObservationCatalogue = log.catalogue
        clashes = sorted(
            f"{t.key!r} ({t.label})"
            for t in self.catalogue
            if t.key is not None and t.key in {k.lower() for k in reserved_keys}
        )
        if clashes:
            raise ValueError(f"observation keys already used by the window: {', '.join(clashes)}")
        self.active_dialog: QDialog | None = None
        self.buttons: dict[str, QPushButton] = {}
        self.shortcuts: dict[str, QShortcut] = {}

        grid = QGridLayout()
        grid.setSpacing(6)
        for i, t in enumerate(self.catalogue):
            b = QPushButton(button_text(t))
            b.setObjectName("obsButton")
            b.setProperty("kind", t.kind)
            b.setToolTip(f"{t.label} — key {t.key}" if t.key else t.label)
            b.clicked.connect(lambda _checked=False, code=t.code: self.trigger(code))
            grid.addWidget(b, i // columns, i % columns)
            self.buttons[t.code] = b
            if t.key:
                # A window shortcut: a focused text field takes printable keys for itself
                # (ShortcutOverride), so typing a note never fires an observation.
                sc = QShortcut(QKeySequence(t.key), self)
                sc.setContext(Qt.ShortcutContext.WindowShortcut)
                sc.activated.connect(lambda code=t.code: self.trigger(code))
                self.shortcuts[t.key] = sc
        self.status = QLabel("Press a key or click: the time recorded is the moment of the press.")
        self.status.setObjectName("obsStatus")
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self.status)

    def author(self) -> str:
        return self._author() if callable(self._author) else self._author

    def _say(self, text: str, state: str = "ok") -> None:
        self.status.setText(text)
        self.status.setProperty("state", state)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self.status_changed.emit(text)

    def trigger(self, code: str) -> Pressed | None:
        """A key press or click on `code`: stamp it NOW, then save or open its dialog."""
        pressed = press(code, self._clock)  # first, before anything else: this is the recorded time
        if self.active_dialog is not None:
            return None  # a dialog is open (its own keys); the window-modal dialog normally prevents this
        t = self.catalogue.get(code)
        if code == DOSE_GIVEN:
            self.dose_requested.emit(pressed)
            return pressed
        if t.kind == "event":
            self._save(pressed, t)
            return pressed
        dialog: QDialog
        if t.kind == "text":
            dialog = FreeTextDialog(f"{t.label} — pressed at {_hhmmss(pressed.wall)}", parent=self)
        else:
            assert t.scale is not None
            dialog = ScaleDialog(t.scale, parent=self)
            dialog.setWindowTitle(f"{dialog.windowTitle()} — pressed at {_hhmmss(pressed.wall)}")
        self.active_dialog = dialog
        dialog.accepted.connect(lambda: self._dialog_done(pressed, t, dialog, accepted=True))
        dialog.rejected.connect(lambda: self._dialog_done(pressed, t, dialog, accepted=False))
        dialog.open()
        return pressed

    def _dialog_done(self, pressed: Pressed, t: ObservationType, dialog: QDialog, *, accepted: bool) -> None:
        self.active_dialog = None
        dialog.deleteLater()
        if not accepted:
            self._say(f"{t.label} ({_hhmmss(pressed.wall)}) cancelled — nothing saved", "cancelled")
            self.cancelled.emit(t.code)
            return
        if isinstance(dialog, FreeTextDialog):
            self._save(pressed, t, text=dialog.text())
        elif isinstance(dialog, ScaleDialog):
            self._save(pressed, t, scale_dialog=dialog)

    def _save(
        self,
        pressed: Pressed,
        t: ObservationType,
        *,
        text: str = "",
        scale_dialog: ScaleDialog | None = None,
    ) -> None:
        scale = None if scale_dialog is None else scale_dialog.score()
        try:
            oid = self._log.add_observation(pressed, self.author(), text=text, scale=scale)
        except (ObservationError, RecorderError) as exc:
            self._say(f"{t.label} NOT saved: {exc}", "error")
            return
        what = t.label if scale is None else f"{t.label.split(' (')[0]} {scale.total}"
        self._say(f"Saved: {what} at {_hhmmss(pressed.wall)}")
        self.saved.emit(oid)


def _mmss(seconds: float) -> str:
    s = max(0, math.ceil(seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


#: The phases shown on the timeline, in order (a cancelled session shows CANCELLED at its end).
TIMELINE_PHASES: tuple[Phase, ...] = (
    Phase.PREPARATION,
    Phase.BASELINE,
    Phase.DOSING,
    Phase.MONITORING,
    Phase.RECOVERY,
    Phase.DISCHARGE,
    Phase.ENDED,
)


class PhaseBar(QWidget):
    """The visible session timeline: the phases with the current one highlighted, the dose clock
    ("T+00:42"), the esketamine rest countdown between devices and the BP-due indicator.

    `refresh()` reads the workflow; a 1 s timer calls it (tests call it directly after advancing a
    FakeClock).
    """

    def __init__(self, workflow: SessionWorkflow, clock: Clock, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(PANEL_STYLESHEET)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._wf = workflow
        self._clock = clock
        self.steps: dict[Phase, QLabel] = {}
        row = QHBoxLayout(self)
        for phase in (*TIMELINE_PHASES, Phase.CANCELLED):
            lab = QLabel(phase.value.capitalize())
            lab.setObjectName("phaseStep")
            self.steps[phase] = lab
            row.addWidget(lab)
        row.addStretch(1)
        self.rest = QLabel("")
        self.rest.setObjectName("restTimer")
        self.bp_due = QLabel("")
        self.bp_due.setObjectName("bpDue")
        self.clock_label = QLabel("")
        self.clock_label.setObjectName("doseClock")
        row.addWidget(self.rest)
        row.addWidget(self.bp_due)
        row.addWidget(self.clock_label)
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.refresh()

    @property
    def workflow(self) -> SessionWorkflow:
        return self._wf

    def set_workflow(self, workflow: SessionWorkflow) -> None:
        self._wf = workflow
        self.refresh()

    @staticmethod
    def _set(label: QLabel, prop: str, value: str) -> None:
        if label.property(prop) != value:
            label.setProperty(prop, value)
            label.style().unpolish(label)
            label.style().polish(label)

    def current_phase_text(self) -> str:
        return next(lab.text() for lab in self.steps.values() if lab.property("state") == "current")

    def refresh(self) -> None:
        wf = self._wf
        phase = wf.phase
        seen = {p for p, _w in wf.timeline}
        for p, lab in self.steps.items():
            if p == phase:
                state = "cancelled" if p == Phase.CANCELLED else "current"
            elif p in seen:
                state = "done"
            else:
                state = "todo"
            self._set(lab, "state", state)
        self.steps[Phase.CANCELLED].setVisible(phase == Phase.CANCELLED)
        self.clock_label.setText(wf.clock_text())
        self.clock_label.setToolTip("Session clock: time since the first dose")

        rest = wf.rest_remaining()
        planned = wf.details.planned_devices
        given = len(wf.doses)
        if wf.is_esketamine and phase == Phase.DOSING and given:
            more = planned is None or given < planned
            if rest > 0 and more:
                self.rest.setText(f"Rest {_mmss(rest)} before device {given + 1}")
            elif more:
                self.rest.setText(f"Device {given + 1} may be given")
            else:
                self.rest.setText(f"All {given} devices given")
            self._set(self.rest, "active", "true" if rest > 0 and more else "false")
            self.rest.setToolTip(f"{DEVICE_REST_S / 60:g}-minute rest between nasal devices")
            self.rest.setVisible(True)
        else:
            self.rest.setText("")
            self.rest.setVisible(False)

        due = wf.due_at()
        if due is None:
            self.bp_due.setText("")
            self.bp_due.setVisible(False)
        else:
            left = due - self._clock.monotonic()
            self.bp_due.setText("BP DUE" if left <= 0 else f"BP in {_mmss(left)}")
            self._set(self.bp_due, "active", "true" if left <= 0 else "false")
            self.bp_due.setVisible(True)


__all__ = ["TIMELINE_PHASES", "ObservationPanel", "PhaseBar", "button_text"]
