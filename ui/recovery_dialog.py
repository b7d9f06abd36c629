"""The start-up prompt for a session the app stopped without ending: resume it or close it as interrupted."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from kapmonitor.storage.session_log import UnfinishedSession
from ui.session_dialogs import DIALOG_STYLESHEET, PROTOCOL_LABELS
from ui.session_summary import SUMMARY_STYLESHEET


class RecoveryChoice(StrEnum):
    RESUME = "resume"  # the same session continues; the gap is marked in its log
    CLOSE = "close"  # ended as 'interrupted' (audited)
    LATER = "later"  # left unfinished: asked again at the next start


def _local(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _span(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def describe(u: UnfinishedSession, now_wall: float) -> list[tuple[str, str]]:
    """(what, value) lines of an unfinished session, as the prompt shows them."""
    d = u.details
    lines = [("Session", u.session.id), ("Started", _local(u.session.started_utc))]
    if d is not None:
        lines.append(("Patient", d.patient))
        lines.append(("Clinicians", ", ".join(d.clinicians)))
        lines.append(("Protocol", PROTOCOL_LABELS.get(d.protocol, d.protocol.value)))
    else:
        lines.append(("Patient", "no session data entered"))
    if u.phase is not None:
        lines.append(("Phase", u.phase.value))
    if u.first_dose_utc is not None:
        lines.append(("First dose", f"{_local(u.first_dose_utc)} ({_span(now_wall - u.first_dose_utc)} ago)"))
    if u.last_record_utc is not None:
        lines.append(
            ("Last record", f"{_local(u.last_record_utc)} ({_span(now_wall - u.last_record_utc)} ago)")
        )
    return lines


class RecoveryDialog(QDialog):
    """One unfinished session: [R] resume it, [C] close it as interrupted, [Esc] decide later.

    Resuming continues the same session id (the gap is marked in its log and audited); closing
    ends it as 'interrupted' (audited). `can_resume` False (another session was resumed already)
    leaves only close and later.
    """

    def __init__(
        self,
        unfinished: UnfinishedSession,
        now_wall: float,
        *,
        can_resume: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Unfinished session found")
        self.setStyleSheet(DIALOG_STYLESHEET + SUMMARY_STYLESHEET)
        self.unfinished = unfinished
        self._choice = RecoveryChoice.LATER
        title = QLabel("The console stopped during a session that was not ended.")
        title.setObjectName("gateReading")
        title.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        self.lines = describe(unfinished, now_wall)
        for what, value in self.lines:
            row = QHBoxLayout()
            k = QLabel(what)
            k.setObjectName("summaryKey")
            k.setMinimumWidth(130)
            v = QLabel(value)
            v.setObjectName("summaryValue")
            v.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            row.addWidget(k)
            row.addWidget(v, 1)
            layout.addLayout(row)
        hint = QLabel(
            "Resume: the same session continues and the gap is marked in its log.\n"
            "Close: the session is ended as interrupted; a new session starts."
        )
        hint.setObjectName("dialogHint")
        layout.addWidget(hint)
        buttons = QHBoxLayout()
        self.resume_button = QPushButton("[R] Resume this session")
        self.close_button = QPushButton("[C] Close it as interrupted")
        self.later_button = QPushButton("[Esc] Decide later")
        self.resume_button.setEnabled(can_resume)
        self.resume_button.clicked.connect(lambda: self._done(RecoveryChoice.RESUME))
        self.close_button.clicked.connect(lambda: self._done(RecoveryChoice.CLOSE))
        self.later_button.clicked.connect(self.reject)
        # QShortcut, not QPushButton.setShortcut: a button's shortcut clicks ~100 ms later
        for letter, button in (("R", self.resume_button), ("C", self.close_button)):
            QShortcut(QKeySequence(letter), self, button.click)
        for b in (self.resume_button, self.close_button, self.later_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        (self.resume_button if can_resume else self.close_button).setDefault(True)
        (self.resume_button if can_resume else self.close_button).setFocus()

    def _done(self, choice: RecoveryChoice) -> None:
        self._choice = choice
        self.accept()

    def choice(self) -> RecoveryChoice:
        """What the clinician chose (LATER when the dialog was closed with Esc)."""
        return self._choice


__all__ = ["RecoveryChoice", "RecoveryDialog", "describe"]
