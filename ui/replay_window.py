"""The replay window: the monitor's own screen fed by a ReplaySession, with transport controls."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.replay import SPEEDS, ReplayClock, ReplaySession
from ui.main_window import MainWindow

#: Frames per second of the replay (design.md: plots redraw on a timer, ~30 Hz).
FRAME_MS = 33
#: Slider resolution: one step per second of session time.
SLIDER_STEP_S = 1.0


def _hms(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ReplayWindow(QWidget):
    """Plays a recorded session on the monitor screen: play/pause, speeds, seek, marker jumps."""

    def __init__(self, replay: ReplaySession, clock: ReplayClock, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.replay = replay
        self.clock = clock
        self.setWindowTitle(f"kapmonitor — replay of session {replay.session_id} (read-only)")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(0)
        self.monitor = self._new_monitor()
        self._layout.addWidget(self.monitor, 1)

        bar = QWidget(self)
        bar.setObjectName("replayBar")
        bar.setStyleSheet(
            "#replayBar { background: #111820; }"
            "QLabel, QPushButton, QComboBox { font-size: 18px; color: #e8eef2; }"
            "QPushButton { padding: 6px 14px; background: #24303a; border: 1px solid #3a4a56; }"
        )
        row = QHBoxLayout(bar)
        self.play_button = QPushButton("▶ Play [Space]", bar)
        self.play_button.clicked.connect(self.toggle)
        self.prev_button = QPushButton("⏮ Previous event [", bar)
        self.prev_button.clicked.connect(self.previous_marker)
        self.next_button = QPushButton("Next event ] ⏭", bar)
        self.next_button.clicked.connect(self.next_marker)
        self.speed_box = QComboBox(bar)
        for speed in SPEEDS:
            self.speed_box.addItem(f"{speed:g}×", speed)
        self.speed_box.currentIndexChanged.connect(self._speed_changed)
        self.slider = QSlider(Qt.Orientation.Horizontal, bar)
        self.slider.setRange(0, max(1, int(replay.duration / SLIDER_STEP_S)))
        self.slider.sliderMoved.connect(self._slider_moved)
        self.position_label = QLabel(bar)
        self.marker_label = QLabel(bar)
        for w in (self.play_button, self.prev_button, self.next_button, self.speed_box):
            row.addWidget(w)
        row.addWidget(self.slider, 1)
        row.addWidget(self.position_label)
        self._layout.addWidget(bar)
        self._layout.addWidget(self.marker_label)
        self.marker_label.setStyleSheet(
            "font-size: 18px; color: #e8eef2; background: #111820; padding: 4px 10px;"
        )

        QShortcut(QKeySequence(Qt.Key.Key_Space), self, self.toggle)
        QShortcut(QKeySequence(Qt.Key.Key_BracketRight), self, self.next_marker)
        QShortcut(QKeySequence(Qt.Key.Key_BracketLeft), self, self.previous_marker)

        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self.frame)
        self._timer.start()
        self.frame()

    def _new_monitor(self) -> MainWindow:
        monitor = MainWindow(self.replay)
        monitor.setWindowFlags(Qt.WindowType.Widget)
        return monitor

    # -- transport ---------------------------------------------------------------------------
    def toggle(self) -> None:
        self.clock.toggle()
        self._update_controls()

    def seek(self, position: float) -> None:
        """Jump to a position; the screen shows that instant as the live screen showed it."""
        backwards = position < self.replay.position
        self.replay.seek(position)
        if backwards:
            # the monitor keeps live-only memory (link-loss times...): give it a fresh start
            old = self.monitor
            self.monitor = self._new_monitor()
            self._layout.replaceWidget(old, self.monitor)
            old.shutdown()
            old.deleteLater()
        self.frame()

    def next_marker(self) -> None:
        marker = self.replay.jump_next()
        self._show_marker(marker.text if marker else "no later event")
        self.frame()

    def previous_marker(self) -> None:
        marker = self.replay.previous_marker()
        if marker is not None:
            self.seek(marker.position)
        self._show_marker(marker.text if marker else "no earlier event")

    def _show_marker(self, text: str) -> None:
        self.marker_label.setText(f"{_hms(self.replay.position)}  {text}")

    def _speed_changed(self, index: int) -> None:
        self.clock.set_speed(float(self.speed_box.itemData(index)))

    def _slider_moved(self, value: int) -> None:
        self.seek(value * SLIDER_STEP_S)

    # -- frames ------------------------------------------------------------------------------
    def frame(self) -> None:
        """Advance the replay to the clock's position and update the controls (~30 Hz)."""
        self.replay.tick()
        self._update_controls()

    def _update_controls(self) -> None:
        playing = self.clock.playing
        self.play_button.setText("⏸ Pause [Space]" if playing else "▶ Play [Space]")
        if not self.slider.isSliderDown():
            self.slider.setValue(int(self.replay.position / SLIDER_STEP_S))
        self.position_label.setText(f"{_hms(self.replay.position)} / {_hms(self.replay.duration)}")

    def shutdown(self) -> None:
        self._timer.stop()
        self.monitor.shutdown()
