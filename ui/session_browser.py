"""The session browser: every recorded session, searchable and sortable; Enter opens its replay."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import override

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.clock import Clock, SystemClock
from kapmonitor.replay import ReplayClock, ReplaySession, SessionSummary, search_sessions, session_summaries
from kapmonitor.replay.browser import sort_sessions
from kapmonitor.storage import Database, open_database
from kapmonitor.workflow import TreatmentProtocol
from ui import style
from ui.export_dialog import ExportDialog
from ui.replay_window import ReplayWindow
from ui.review_panel import Reviewer
from ui.session_dialogs import PROTOCOL_LABELS

#: Columns: header, the SORT_KEYS key it sorts by (None: not sortable), first sort descending?
COLUMNS: tuple[tuple[str, str | None, bool], ...] = (
    ("Date (local)", "started", True),
    ("Patient", "patient", False),
    ("Protocol", "protocol", False),
    ("Duration", "duration", True),
    ("Alarms", "alarms", True),
    ("Observations", "observations", True),
    ("BP", "bp_readings", True),
    ("Status", "status", False),
    ("Kind", None, False),
    ("Session id", None, False),
)


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def protocol_text(protocol: str) -> str:
    """The protocol as the new-session dialog names it ('—' for none; an unknown code as stored)."""
    if not protocol:
        return "—"
    try:
        return PROTOCOL_LABELS.get(TreatmentProtocol(protocol), protocol)
    except ValueError:
        return protocol


def row_texts(s: SessionSummary, tz: tzinfo | None = None) -> list[str]:
    """The browser's cells for one session (tz: the display zone, default the machine's)."""
    started = datetime.fromtimestamp(s.started_utc, tz=UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M")
    return [
        started,
        s.patient or "—",
        protocol_text(s.protocol),
        duration_text(s.duration_s),
        "—" if s.alarms is None else str(s.alarms),
        str(s.observations),
        str(s.bp_readings),
        s.status,
        s.kind,
        s.session_id,
    ]


class _SessionTable(QTableWidget):
    """The sessions table; Enter opens the selected session (item views keep Enter to themselves)."""

    enter_pressed = Signal()

    @override
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.enter_pressed.emit()
            return
        super().keyPressEvent(event)


class ReplayLauncher:
    """Opens replay windows (one per session asked for) and closes their databases with them."""

    def __init__(self, reviewer: Reviewer, review_clock: Clock | None = None) -> None:
        self.reviewer = reviewer
        self.review_clock = review_clock or SystemClock()
        self.windows: list[ReplayWindow] = []
        self._databases: dict[int, Database] = {}

    def open(self, db: Database, session_id: str) -> ReplayWindow:
        """A replay window on `db` (the window owns the connection from now on)."""
        clock = ReplayClock(SystemClock())
        replay = ReplaySession(db, session_id, clock)
        window = ReplayWindow(replay, clock, db=db, review_clock=self.review_clock, reviewer=self.reviewer)
        window.resize(1920, 1080)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.windows.append(window)
        self._databases[id(window)] = db
        window.closed.connect(lambda w=window: self._closed(w))
        return window

    def open_path(self, db_path: Path, session_id: str) -> ReplayWindow:
        window = self.open(open_database(db_path), session_id)
        window.showMaximized()
        return window

    def _closed(self, window: ReplayWindow) -> None:
        if window in self.windows:
            self.windows.remove(window)
        db = self._databases.pop(id(window), None)
        if db is not None:
            db.close()

    def close_all(self) -> None:
        for window in list(self.windows):
            window.shutdown()
            self._closed(window)


class SessionBrowser(QWidget):
    """Every session in one database: search as you type, click a header to sort, Enter to replay."""

    #: a session was opened (its id)
    opened = Signal(str)

    def __init__(
        self,
        db_path: Path,
        launcher: ReplayLauncher,
        *,
        tz: tzinfo | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db_path = db_path
        self.launcher = launcher
        self._tz = tz
        self.summaries: list[SessionSummary] = []
        self.shown: list[SessionSummary] = []
        self.sort_key = "started"
        self.descending = True
        self.setWindowTitle(f"kapmonitor — recorded sessions in {db_path}")
        self.setObjectName("sessionBrowser")
        self.setStyleSheet(
            f"#sessionBrowser {{ background: {style.PANEL}; }}"
            f"QLabel {{ color: {style.TEXT}; font-size: 18px; }}"
            f"QLineEdit {{ font-size: 20px; color: {style.TEXT}; background: {style.BACKGROUND};"
            f" border: 2px solid {style.BORDER}; padding: 6px; }}"
            f"QTableWidget {{ font-size: 18px; color: {style.TEXT}; background: {style.BACKGROUND};"
            f" gridline-color: {style.GRID}; selection-background-color: #24425a; }}"
            f"QHeaderView::section {{ font-size: 17px; font-weight: bold; color: {style.TEXT};"
            f" background: #111820; border: 1px solid {style.BORDER}; padding: 6px; }}"
            "QPushButton { font-size: 18px; color: #e8eef2; padding: 8px 16px; background: #24303a;"
            " border: 1px solid #3a4a56; }"
            "QPushButton:focus { border: 2px solid #ff9f1c; }"
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 14, 14, 14)
        layout.setSpacing(10)
        top = QHBoxLayout()
        find = QLabel("Search [Ctrl+F]")
        self.search = QLineEdit()
        self.search.setPlaceholderText(
            "patient, protocol, date (2026-01-02), note, status… every word must match"
        )
        self.search.textChanged.connect(self.refilter)
        find.setBuddy(self.search)
        top.addWidget(find)
        top.addWidget(self.search, 1)
        self.count_label = QLabel()
        top.addWidget(self.count_label)
        layout.addLayout(top)

        self.table = _SessionTable(0, len(COLUMNS))
        self.table.enter_pressed.connect(self.open_selected)
        self.table.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.setSectionsClickable(True)
        header.sectionClicked.connect(self._header_clicked)
        self.table.doubleClicked.connect(lambda _index: self.open_selected())
        layout.addWidget(self.table, 1)

        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open replay [Enter]")
        self.open_button.clicked.connect(self.open_selected)
        self.export_button = QPushButton("Export… [E]")
        self.export_button.clicked.connect(self.export_selected)
        self.reload_button = QPushButton("Reload [F5]")
        self.reload_button.clicked.connect(self.reload)
        self.status = QLabel()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.reload_button)
        buttons.addWidget(self.status, 1)
        layout.addLayout(buttons)

        for key, slot in (
            (Qt.Key.Key_Return, self.open_selected),
            (Qt.Key.Key_Enter, self.open_selected),
            (Qt.Key.Key_F5, self.reload),
        ):
            QShortcut(QKeySequence(key), self, slot)
        QShortcut(QKeySequence("Ctrl+F"), self, self.search.setFocus)
        QShortcut(QKeySequence("E"), self.table, self.export_selected)
        self.reload()
        self.table.setFocus()

    # -- data ----------------------------------------------------------------------------------
    def reload(self) -> None:
        db = open_database(self.db_path)
        try:
            self.summaries = session_summaries(db)
        finally:
            db.close()
        self.refilter()

    def sort_by(self, key: str, *, descending: bool) -> None:
        self.sort_key, self.descending = key, descending
        self.refilter()

    def _header_clicked(self, column: int) -> None:
        _name, key, first_descending = COLUMNS[column]
        if key is None:
            return
        descending = not self.descending if key == self.sort_key else first_descending
        self.sort_by(key, descending=descending)

    def refilter(self) -> None:
        """Show the sessions matching the search, in the chosen order (keeps the selected one)."""
        selected = self.selected()
        found = search_sessions(self.summaries, self.search.text())
        self.shown = sort_sessions(found, self.sort_key, descending=self.descending)
        self.table.setRowCount(len(self.shown))
        for row, s in enumerate(self.shown):
            for col, text in enumerate(row_texts(s, self._tz)):
                item = QTableWidgetItem(text)
                if COLUMNS[col][1] in ("duration", "alarms", "observations", "bp_readings"):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        arrow = "▼" if self.descending else "▲"
        self.table.setHorizontalHeaderLabels(
            [f"{name} {arrow}" if key == self.sort_key else name for name, key, _ in COLUMNS]
        )
        self.count_label.setText(f"{len(self.shown)} of {len(self.summaries)} sessions")
        keep = next(
            (i for i, s in enumerate(self.shown) if selected and s.session_id == selected.session_id), 0
        )
        if self.shown:
            self.table.selectRow(keep)

    def selected(self) -> SessionSummary | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.shown):
            return None
        return self.shown[rows[0].row()]

    # -- actions -------------------------------------------------------------------------------
    def open_selected(self) -> ReplayWindow | None:
        """Open the selected session's replay (the browser stays open for the next one)."""
        s = self.selected()
        if s is None:
            self.status.setText("Select a session first.")
            return None
        window = self.launcher.open_path(self.db_path, s.session_id)
        self.status.setText(f"Opened session {s.session_id}.")
        self.opened.emit(s.session_id)
        return window

    def export_selected(self) -> ExportDialog | None:
        s = self.selected()
        if s is None:
            self.status.setText("Select a session first.")
            return None
        dialog = ExportDialog(self.db_path, s.session_id, parent=self)
        dialog.show()
        return dialog
