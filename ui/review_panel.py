"""The review panel of the replay window: reviewer annotations and alarm verdicts, one key each."""

from __future__ import annotations

import bisect
import getpass
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.clock import Clock
from kapmonitor.export.report_data import AlarmSummary, summarise_alarms
from kapmonitor.replay import ReplaySession
from kapmonitor.storage import Database, RecorderError, alarm_events
from kapmonitor.storage.review import (
    Annotation,
    ReviewError,
    ReviewLog,
    Verdict,
    load_annotations,
    load_current_adjudications,
)
from ui import style
from ui.alarm_bar import PRIORITY_BG
from ui.replay_timeline import ANNOTATION_COLOUR, priority_of

#: One key per review action (the replay window's transport keys are Space, [, ], ←, →).
ANNOTATE_KEY = "A"
VERDICT_KEYS: dict[Verdict, str] = {Verdict.TRUE: "T", Verdict.FALSE: "F", Verdict.NON_ACTIONABLE: "N"}
VERDICT_WORDS: dict[Verdict, str] = {
    Verdict.TRUE: "true alarm",
    Verdict.FALSE: "false alarm",
    Verdict.NON_ACTIONABLE: "non-actionable",
}

VERDICT_BUTTONS: dict[Verdict, str] = {
    Verdict.TRUE: "True",
    Verdict.FALSE: "False",
    Verdict.NON_ACTIONABLE: "Non-actionable",
}


def hms(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return ""


def _wrapping_list() -> QListWidget:
    """A list whose long entries wrap instead of scrolling sideways."""
    w = QListWidget()
    w.setWordWrap(True)
    w.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    w.setTextElideMode(Qt.TextElideMode.ElideNone)
    w.setResizeMode(QListWidget.ResizeMode.Adjust)
    return w


class Reviewer:
    """Who is reviewing: named on the command line (--reviewer), or asked once and then kept."""

    def __init__(self, name: str = "", ask: Callable[[QWidget | None], str] | None = None) -> None:
        self._name = name.strip()
        self._ask = ask or self._dialog

    @staticmethod
    def _dialog(parent: QWidget | None) -> str:
        text, ok = QInputDialog.getText(
            parent,
            "Reviewer",
            "Your name, stored with every annotation and verdict:",
            QLineEdit.EchoMode.Normal,
            _login_name(),
        )
        return text if ok else ""

    @property
    def known(self) -> str:
        return self._name

    def name(self, parent: QWidget | None = None) -> str:
        """The reviewer's name, asking once if it is not known yet ('' if they declined)."""
        if not self._name:
            self._name = self._ask(parent).strip()
        return self._name


class ReviewPanel(QWidget):
    """Annotate the shown instant (A), judge the current alarm true/false/non-actionable (T/F/N).

    Each key stamps the instant (or picks the alarm) at once and opens the text line: Enter stores
    the entry through kapmonitor.storage.review (append-only, with the reviewer's name), Esc drops
    it. A later verdict supersedes the earlier one in the list; both stay in the database.
    """

    #: a list entry was chosen: seek there (seconds since the session start)
    jump_requested = Signal(float)
    #: an entry was stored: markers and timeline should be read again
    changed = Signal()

    def __init__(
        self,
        db: Database,
        replay: ReplaySession,
        clock: Clock,
        reviewer: Reviewer,
        *,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.replay = replay
        self.reviewer = reviewer
        self.log = ReviewLog(db, clock, replay.session_id)
        self.alarms: list[AlarmSummary] = []
        self.annotations: list[Annotation] = []
        self._onsets: list[float] = []
        self._pending: tuple[str, float | int, Verdict | None] | None = None  # kind, where/which, verdict
        self.setObjectName("reviewPanel")
        self.setStyleSheet(
            f"#reviewPanel {{ background: {style.PANEL}; }}"
            f"QLabel {{ color: {style.TEXT}; font-size: 17px; }}"
            "QLabel#reviewHeading { font-size: 20px; font-weight: bold; }"
            f"QLabel#reviewStatus {{ color: {style.ATTENTION}; }}"
            f"QListWidget {{ background: {style.BACKGROUND}; color: {style.TEXT}; font-size: 16px;"
            f" border: 1px solid {style.BORDER}; }}"
            "QListWidget::item:selected { background: #24303a; }"
            "QPushButton { font-size: 17px; color: #e8eef2; padding: 6px 8px; background: #24303a;"
            " border: 1px solid #3a4a56; }"
            "QPushButton:focus { border: 2px solid #ff9f1c; }"
            f"QLineEdit {{ font-size: 17px; color: {style.TEXT}; background: {style.BACKGROUND};"
            f" border: 2px solid {style.BORDER}; padding: 4px; }}"
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        heading = QLabel("REVIEW")
        heading.setObjectName("reviewHeading")
        self.reviewer_label = QLabel()
        layout.addWidget(heading)
        layout.addWidget(self.reviewer_label)

        layout.addWidget(QLabel("Alarms (select one to jump there)"))
        self.alarm_list = _wrapping_list()
        self.alarm_list.itemActivated.connect(self._alarm_chosen)
        self.alarm_list.itemClicked.connect(self._alarm_chosen)
        layout.addWidget(self.alarm_list, 3)
        self.current_label = QLabel()
        self.current_label.setWordWrap(True)
        layout.addWidget(self.current_label)
        verdicts = QHBoxLayout()
        self.verdict_buttons: dict[Verdict, QPushButton] = {}
        for verdict, key in VERDICT_KEYS.items():
            button = QPushButton(f"{VERDICT_BUTTONS[verdict]} [{key}]")
            button.clicked.connect(lambda _=False, v=verdict: self.start_verdict(v))
            verdicts.addWidget(button)
            self.verdict_buttons[verdict] = button
        layout.addLayout(verdicts)

        layout.addWidget(QLabel("Annotations (select one to jump there)"))
        self.annotation_list = _wrapping_list()
        self.annotation_list.itemActivated.connect(self._annotation_chosen)
        self.annotation_list.itemClicked.connect(self._annotation_chosen)
        layout.addWidget(self.annotation_list, 2)
        self.annotate_button = QPushButton(f"Annotate this instant [{ANNOTATE_KEY}]")
        self.annotate_button.clicked.connect(self.start_annotation)
        layout.addWidget(self.annotate_button)

        self.prompt = QLabel()
        self.prompt.setWordWrap(True)
        self.editor = QLineEdit()
        self.editor.setPlaceholderText("Enter stores, Esc cancels")
        self.editor.returnPressed.connect(self.commit)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self.editor, self.cancel)
        layout.addWidget(self.prompt)
        layout.addWidget(self.editor)
        self.status = QLabel()
        self.status.setObjectName("reviewStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self._show_editor(False)
        self.reload()
        self.follow(replay.position)

    # -- keys (installed on the replay window, so they work wherever the focus is but the text line)
    def install_shortcuts(self, window: QWidget) -> None:
        QShortcut(QKeySequence(ANNOTATE_KEY), window, self.start_annotation)
        for verdict, key in VERDICT_KEYS.items():
            QShortcut(QKeySequence(key), window, lambda v=verdict: self.start_verdict(v))

    # -- reading -------------------------------------------------------------------------------
    def reload(self) -> None:
        """Read the alarms, current verdicts and annotations again."""
        origin = self.replay.row.started_mono
        self.alarms = summarise_alarms(
            alarm_events(self.db, self.replay.session_id),
            origin,
            load_current_adjudications(self.db, self.replay.session_id),
        )
        self._onsets = [a.onset_position_s for a in self.alarms]
        self.annotations = load_annotations(self.db, self.replay.session_id)
        selected = self.current_alarm()
        self.alarm_list.clear()
        for a in self.alarms:
            item = QListWidgetItem(self._alarm_text(a))
            priority = priority_of(a.priority)
            item.setForeground(QColor(PRIORITY_BG[priority]) if priority else QColor(style.MUTED))
            item.setData(Qt.ItemDataRole.UserRole, a.alarm_id)
            self.alarm_list.addItem(item)
        self.annotation_list.clear()
        for n in self.annotations:
            item = QListWidgetItem(f"{hms(n.position_s)}  {n.text}  ({n.reviewer})")
            item.setForeground(QColor(ANNOTATION_COLOUR))
            self.annotation_list.addItem(item)
        if selected is not None:
            self._select(selected.alarm_id)
        self._update_current()
        who = self.reviewer.known
        self.reviewer_label.setText(f"Reviewer: {who}" if who else "Reviewer: asked at the first entry")

    @staticmethod
    def _alarm_text(a: AlarmSummary) -> str:
        priority = priority_of(a.priority)
        marker = priority.marker if priority else "?"
        verdict = "not judged"
        if a.adjudication is not None:
            j = a.adjudication
            verdict = f"{VERDICT_WORDS[j.verdict]} ({j.reviewer})" + (f": {j.comment}" if j.comment else "")
        return f"{hms(a.onset_position_s)}  {marker} {a.message}  — {verdict}"

    def current_alarm(self) -> AlarmSummary | None:
        if self.alarm_list.currentRow() < 0:
            return None
        alarm_id = self.alarm_list.currentItem().data(Qt.ItemDataRole.UserRole)
        return next((a for a in self.alarms if a.alarm_id == alarm_id), None)

    def _select(self, alarm_id: int) -> None:
        for row in range(self.alarm_list.count()):
            item = self.alarm_list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == alarm_id:
                if self.alarm_list.currentRow() != row:
                    self.alarm_list.setCurrentRow(row)
                    self.alarm_list.scrollToItem(item)
                return

    def follow(self, position: float) -> None:
        """Make the alarm on screen at `position` the current one (else the last one raised before it)."""
        if self._pending is not None:
            return  # a verdict is being written for the alarm picked at the key press
        on_screen = self.replay.alarms_at(position)
        if on_screen:
            self._select(on_screen[0].alarm_id)
        else:
            k = bisect.bisect_right(self._onsets, position + 1e-6)
            if k:
                self._select(self.alarms[k - 1].alarm_id)
        self._update_current()

    def _update_current(self) -> None:
        a = self.current_alarm()
        if a is None:
            self.current_label.setText("No alarm to judge in this session." if not self.alarms else "")
        else:
            self.current_label.setText(f"Alarm to judge: {self._alarm_text(a)}")
        for button in self.verdict_buttons.values():
            button.setEnabled(a is not None)

    def _alarm_chosen(self, item: QListWidgetItem) -> None:
        a = self.current_alarm()
        if a is not None:
            self._update_current()
            self.jump_requested.emit(a.onset_position_s)

    def _annotation_chosen(self, item: QListWidgetItem) -> None:
        row = self.annotation_list.row(item)
        if 0 <= row < len(self.annotations):
            self.jump_requested.emit(self.annotations[row].position_s)

    # -- writing -------------------------------------------------------------------------------
    def _show_editor(self, shown: bool) -> None:
        self.prompt.setVisible(shown)
        self.editor.setVisible(shown)

    def start_annotation(self) -> None:
        """Stamp the shown instant now; the note is typed next (Enter stores it)."""
        position = self.replay.position
        self._pending = ("annotation", position, None)
        self.prompt.setText(f"Note at {hms(position)} (Enter stores it, Esc cancels):")
        self._open_editor()

    def start_verdict(self, verdict: Verdict) -> None:
        """Judge the current alarm; a comment is typed next (Enter stores the verdict, with or without)."""
        a = self.current_alarm()
        if a is None:
            self.status.setText("There is no alarm to judge.")
            return
        self._pending = ("verdict", a.alarm_id, verdict)
        priority = priority_of(a.priority)
        prefix = priority.marker if priority else "?"
        self.prompt.setText(
            f"{VERDICT_WORDS[verdict].capitalize()}: {prefix} {a.message} at {hms(a.onset_position_s)}."
            " Comment (Enter stores, Esc cancels):"
        )
        self._open_editor()

    def _open_editor(self) -> None:
        self.status.setText("")
        self.editor.clear()
        self._show_editor(True)
        self.editor.setFocus()

    def cancel(self) -> None:
        self._pending = None
        self.editor.clear()
        self._show_editor(False)
        self.status.setText("Nothing stored.")

    def commit(self) -> bool:
        """Store the pending entry with the reviewer's name; False (and the reason shown) if refused."""
        if self._pending is None:
            return False
        who = self.reviewer.name(self)
        if not who:
            self.status.setText("A review entry needs the reviewer's name: nothing stored.")
            return False
        kind, where, verdict = self._pending
        text = self.editor.text().strip()
        try:
            if kind == "annotation":
                self.log.annotate(text, who, position_s=float(where))
                done = f"Note stored at {hms(float(where))}."
            else:
                assert verdict is not None
                self.log.adjudicate(int(where), verdict, text, who)
                done = f"Alarm judged {VERDICT_WORDS[verdict]}."
        except (ReviewError, RecorderError) as exc:
            self.status.setText(f"Not stored: {exc}")
            return False
        self._pending = None
        self._show_editor(False)
        self.reload()
        self.status.setText(done)
        self.changed.emit()
        return True
