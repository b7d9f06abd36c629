"""The replay window: the monitor's own screen fed by a ReplaySession, with timeline, transport and review."""

from __future__ import annotations

from pathlib import Path
from typing import override

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.clock import Clock, SystemClock
from kapmonitor.export.session_file import database_file
from kapmonitor.measurements import DeviceState
from kapmonitor.replay import SPEEDS, AlarmAt, Marker, MarkerKind, ReplayClock, ReplaySession
from kapmonitor.storage import Database
from ui import style
from ui.alarm_bar import PRIORITY_BG, PRIORITY_FG
from ui.export_dialog import ExportDialog
from ui.main_window import MainWindow
from ui.replay_timeline import ReplayTimeline, priority_of
from ui.review_panel import Reviewer, ReviewPanel, hms

#: Frames per second of the replay (design.md: plots redraw on a timer, ~30 Hz).
FRAME_MS = 33
#: What `[` and `]` jump between (the choice in the transport bar).
JUMP_KINDS: dict[str, tuple[str, ...] | None] = {
    "alarms, notes, phases, BP": (
        MarkerKind.ALARM,
        MarkerKind.OBSERVATION,
        MarkerKind.PHASE,
        MarkerKind.BP,
        MarkerKind.ANNOTATION,
    ),
    "alarms": (MarkerKind.ALARM,),
    "observations": (MarkerKind.OBSERVATION,),
    "phase changes": (MarkerKind.PHASE,),
    "BP readings": (MarkerKind.BP,),
    "annotations": (MarkerKind.ANNOTATION,),
    "every event": None,
}
#: Width of the review column beside the monitor.
REVIEW_WIDTH = 460


def alarm_banner_text(alarms: list[AlarmAt]) -> str:
    if not alarms:
        return "No alarm at this instant"
    return "ALARMS AT THIS INSTANT:  " + "   ·   ".join(f"{a.marker} {a.message} ({a.state})" for a in alarms)


class ReplayMonitor(MainWindow):
    """The monitor screen on a replay. Seeking back, it forgets what lies ahead of the new position
    (cheaper than a new screen: ~45 ms to build one): link-loss times after it, and the sweep (a
    sweep only ever draws forward, so it gets a fresh one)."""

    def __init__(self, replay: ReplaySession) -> None:
        super().__init__(replay)
        self.replay = replay
        self.setWindowFlags(Qt.WindowType.Widget)

    def rewind_to(self, position: float) -> None:
        """Call before the replay seeks back to `position`; its restated events then redraw the rest."""
        cutoff = self.replay.row.started_mono + position
        breaks: dict[str, float] = {}
        for e in self.replay.device_rows:
            if e.mono <= cutoff and e.state in (DeviceState.LOST, DeviceState.DISCONNECTED):
                breaks[e.device] = e.mono
        self.restart_from(breaks)


class ReplayWindow(QWidget):
    """Plays a recorded session on the monitor screen; timeline, marker jumps, review and export.

    Keys: Space play/pause, [ ] previous/next event, ←/→ 10 s (Shift: 1 min), A annotate,
    T/F/N judge the current alarm, E export.
    """

    closed = Signal()

    def __init__(
        self,
        replay: ReplaySession,
        clock: ReplayClock,
        *,
        db: Database | None = None,
        review_clock: Clock | None = None,  # stamps when an entry was written (default: the machine's)
        reviewer: Reviewer | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.replay = replay
        self.clock = clock
        self.db = db
        self.setWindowTitle(f"kapmonitor — replay of session {replay.session_id} (read-only recording)")
        self.setObjectName("replayWindow")
        self.setStyleSheet(
            f"#replayWindow {{ background: {style.BACKGROUND}; }}"
            "#replayBar { background: #111820; }"
            "#replayBar QLabel, #replayBar QPushButton, #replayBar QComboBox"
            " { font-size: 18px; color: #e8eef2; }"
            "#replayBar QPushButton { padding: 6px 14px; background: #24303a; border: 1px solid #3a4a56; }"
            "#replayBar QPushButton:focus { border: 2px solid #ff9f1c; }"
            "#replayBar QComboBox { background: #24303a; padding: 4px 8px; }"
        )
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)

        self.alarm_banner = QLabel()
        self.alarm_banner.setObjectName("replayAlarms")
        self.alarm_banner.setMinimumHeight(40)
        root.addWidget(self.alarm_banner)
        self._shown_alarms: tuple[tuple[int, str, str], ...] | None = None

        self._middle = QHBoxLayout()
        self._middle.setContentsMargins(0, 0, 0, 0)
        self._middle.setSpacing(0)
        self.monitor = self._new_monitor()
        self._middle.addWidget(self.monitor, 1)
        self.review: ReviewPanel | None = None
        if db is not None:
            self.review = ReviewPanel(db, replay, review_clock or SystemClock(), reviewer or Reviewer())
            self.review.setFixedWidth(REVIEW_WIDTH)
            self.review.jump_requested.connect(self.seek)
            self.review.changed.connect(self._review_changed)
            self._middle.addWidget(self.review)
        root.addLayout(self._middle, 1)

        self.timeline = ReplayTimeline(replay, self.review.alarms if self.review else [])
        self.timeline.seek_requested.connect(self.seek)
        self.timeline.marker_selected.connect(self.go_to_marker)
        root.addWidget(self.timeline)
        root.addWidget(self._build_bar())
        self.marker_label = QLabel()
        self.marker_label.setStyleSheet(
            "font-size: 18px; color: #e8eef2; background: #111820; padding: 4px 10px;"
        )
        root.addWidget(self.marker_label)
        self._install_shortcuts()

        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self.frame)
        self._timer.start()
        self.frame()

    def _build_bar(self) -> QWidget:
        bar = QWidget(self)
        bar.setObjectName("replayBar")
        row = QHBoxLayout(bar)
        self.play_button = QPushButton("▶ Play [Space]", bar)
        self.play_button.clicked.connect(self.toggle)
        self.prev_button = QPushButton("◀ Previous [", bar)
        self.prev_button.clicked.connect(self.previous_marker)
        self.next_button = QPushButton("Next ] ▶", bar)
        self.next_button.clicked.connect(self.next_marker)
        self.jump_box = QComboBox(bar)
        for name in JUMP_KINDS:
            self.jump_box.addItem(name)
        self.jump_box.setToolTip("What [ and ] jump between")
        self.speed_box = QComboBox(bar)
        for speed in SPEEDS:
            self.speed_box.addItem(f"{speed:g}×", speed)
        self.speed_box.currentIndexChanged.connect(self._speed_changed)
        self.export_button = QPushButton("Export… [E]", bar)
        self.export_button.clicked.connect(self.open_export)
        self.export_button.setEnabled(self.db is not None)
        self.position_label = QLabel(bar)
        row.addWidget(self.play_button)
        row.addWidget(self.prev_button)
        row.addWidget(self.next_button)
        row.addWidget(QLabel("jump between", bar))
        row.addWidget(self.jump_box)
        row.addWidget(QLabel("speed", bar))
        row.addWidget(self.speed_box)
        row.addStretch(1)
        row.addWidget(self.position_label)
        row.addSpacing(20)
        row.addWidget(self.export_button)
        return bar

    def _install_shortcuts(self) -> None:
        keys = {
            Qt.Key.Key_Space: self.toggle,
            Qt.Key.Key_BracketRight: self.next_marker,
            Qt.Key.Key_BracketLeft: self.previous_marker,
            Qt.Key.Key_E: self.open_export,
        }
        for key, slot in keys.items():
            QShortcut(QKeySequence(key), self, slot)
        QShortcut(QKeySequence(Qt.Key.Key_Left), self, lambda: self.step(-10.0))
        QShortcut(QKeySequence(Qt.Key.Key_Right), self, lambda: self.step(10.0))
        QShortcut(QKeySequence("Shift+Left"), self, lambda: self.step(-60.0))
        QShortcut(QKeySequence("Shift+Right"), self, lambda: self.step(60.0))
        if self.review is not None:
            self.review.install_shortcuts(self)

    def _new_monitor(self) -> ReplayMonitor:
        return ReplayMonitor(self.replay)

    # -- transport ---------------------------------------------------------------------------
    def toggle(self) -> None:
        self.clock.toggle()
        self._update_controls()

    def step(self, seconds: float) -> None:
        self.seek(self.replay.position + seconds)

    def seek(self, position: float) -> None:
        """Jump to a position; the screen shows that instant as the live screen showed it."""
        if position < self.replay.position:
            self.monitor.rewind_to(max(position, 0.0))
        self.replay.seek(position)
        self.frame()
        # a seek passes BP readings without telling of each: show the newest one at this instant
        now = self.replay.clock
        self.monitor.bp_tile.set_reading(
            self.monitor.newest_bp(), now_mono=now.monotonic(), now_wall=now.wall()
        )

    def jump_kinds(self) -> tuple[str, ...] | None:
        return JUMP_KINDS[self.jump_box.currentText()]

    def go_to_marker(self, marker: Marker) -> None:
        self.seek(marker.position)
        self._show_marker(marker.text)

    def next_marker(self) -> None:
        marker = self.replay.next_marker(self.jump_kinds())
        if marker is None:
            self._show_marker("no later event of this kind")
        else:
            self.go_to_marker(marker)

    def previous_marker(self) -> None:
        marker = self.replay.previous_marker(self.jump_kinds())
        if marker is None:
            self._show_marker("no earlier event of this kind")
        else:
            self.go_to_marker(marker)

    def _show_marker(self, text: str) -> None:
        self.marker_label.setText(f"{hms(self.replay.position)}  {text}")

    def _speed_changed(self, index: int) -> None:
        self.clock.set_speed(float(self.speed_box.itemData(index)))

    def open_export(self) -> ExportDialog | None:
        """The export dialog for this session (format, path; progress while it runs)."""
        if self.db is None:
            return None
        dialog = ExportDialog(Path(database_file(self.db)), self.replay.session_id, parent=self)
        dialog.show()
        return dialog

    def _review_changed(self) -> None:
        assert self.review is not None
        self.replay.reload_markers()
        self.timeline.set_alarms(self.review.alarms)

    # -- frames ------------------------------------------------------------------------------
    def frame(self) -> None:
        """Advance the replay to the clock's position and update the controls (~30 Hz)."""
        self.replay.tick()
        self._update_controls()

    def _update_controls(self) -> None:
        position = self.replay.position
        playing = self.clock.playing
        self.play_button.setText("❚❚ Pause [Space]" if playing else "▶ Play [Space]")
        self.position_label.setText(f"{hms(position)} / {hms(self.replay.duration)}")
        self.timeline.set_position(position)
        if self.review is not None:
            self.review.follow(position)
        self._update_alarms()

    def _update_alarms(self) -> None:
        alarms = self.replay.alarms_at()
        shown = tuple((a.alarm_id, a.state, a.priority) for a in alarms)
        if shown == self._shown_alarms:
            return
        self._shown_alarms = shown
        self.alarm_banner.setText(alarm_banner_text(alarms))
        top = priority_of(alarms[0].priority) if alarms else None
        bg = PRIORITY_BG[top] if top else style.PANEL
        fg = PRIORITY_FG[top] if top else style.MUTED
        self.alarm_banner.setStyleSheet(
            f"background: {bg}; color: {fg}; font-size: 20px; font-weight: bold; padding: 6px 14px;"
        )

    def fit_monitor(self, width: int = 1600, height: int = 900) -> None:
        """Size the window so the monitor screen gets its design size (for pictures of one instant)."""
        for _ in range(3):
            QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
            extra = self.size() - self.monitor.size()
            self.resize(width + extra.width(), height + extra.height())
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)

    def shutdown(self) -> None:
        self._timer.stop()
        self.monitor.shutdown()

    @override
    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
        self.closed.emit()
