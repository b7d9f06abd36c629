"""The monitoring console's main window: numerics, session trends, device status, elapsed time."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import override

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMainWindow, QVBoxLayout, QWidget

from kapmonitor.measurements import DeviceState, Numeric, Param
from kapmonitor.session import DeviceChanged, NumericsChanged, Session, SessionEvent
from ui import style
from ui.widgets import UNUSABLE, DeviceStatusLine, NumericTile, TrendPlot, describe_quality

#: The frame timer: trends redraw only if a buffer changed, the clocks only when a second passed.
FRAME_INTERVAL_MS = 33
#: The parameters shown as big numerics, top to bottom.
TILE_PARAMS: tuple[Param, ...] = (Param.SPO2, Param.PULSE_RATE)


def format_elapsed(seconds: float) -> str:
    """Session time as "T+HH:MM:SS" (hours keep counting past 99)."""
    s = max(0, int(seconds))
    return f"T+{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_wall(wall: float, tz: tzinfo | None = None) -> str:
    """A UTC wall time as "HH:MM:SS" in `tz` (the machine's local zone when None)."""
    return datetime.fromtimestamp(wall, tz=UTC).astimezone(tz).strftime("%H:%M:%S")


class MainWindow(QMainWindow):
    """The console for one Session, laid out for 1600×900 and readable from across the room."""

    #: Emitted once the window has been closed (the composition root then ends the session).
    closed = Signal()

    def __init__(self, session: Session, *, tz: tzinfo | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._tz = tz
        self.setWindowTitle("kapmonitor")
        self.setObjectName("mainWindow")
        self.setStyleSheet(style.STYLESHEET)
        self.setFont(style.font(18))
        self.resize(1600, 900)

        # device id -> monotonic time its link last broke: older values are no longer current
        self._link_break: dict[str, float] = {}
        now = session.clock.monotonic()
        for device, status in session.devices.items():
            if status.state in (DeviceState.LOST, DeviceState.DISCONNECTED):
                self._link_break[device] = now
        self._shown_second: int | None = None

        central = QWidget()
        central.setObjectName("central")
        self.setCentralWidget(central)
        root = QVBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addWidget(self._build_top_bar())

        body = QHBoxLayout()
        body.setContentsMargins(12, 12, 12, 12)
        body.setSpacing(12)
        self.trend = TrendPlot(session.trends, session.started_mono)
        body.addWidget(self.trend, 64)
        tiles = QVBoxLayout()
        tiles.setSpacing(12)
        self.tiles: dict[Param, NumericTile] = {}
        for param in TILE_PARAMS:
            tile = NumericTile(param)
            self.tiles[param] = tile
            tiles.addWidget(tile, 1)
        body.addLayout(tiles, 36)
        root.addLayout(body, 1)

        self.status_line = DeviceStatusLine()
        root.addWidget(self.status_line)

        for param in TILE_PARAMS:
            self._update_tile(param)
        self._update_devices()
        self._update_clock()
        self.trend.refresh()

        self._unsubscribe: Callable[[], None] | None = session.subscribe(self._on_event)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(FRAME_INTERVAL_MS)
        self._timer.timeout.connect(self.on_frame)
        self._timer.start()

    def _build_top_bar(self) -> QFrame:
        bar = QFrame()
        bar.setObjectName("topBar")
        bar.setFixedHeight(68)
        title = QLabel("KAPMONITOR")
        title.setObjectName("appTitle")
        disclaimer = QLabel("monitoring aid — not a medical device")
        disclaimer.setObjectName("disclaimer")
        names = QVBoxLayout()
        names.setSpacing(0)
        names.addWidget(title)
        names.addWidget(disclaimer)

        elapsed_caption = QLabel("SESSION")
        elapsed_caption.setObjectName("elapsedCaption")
        self.elapsed_label = QLabel()
        self.elapsed_label.setObjectName("elapsed")
        wall_caption = QLabel("TIME")
        wall_caption.setObjectName("wallCaption")
        self.wall_label = QLabel()
        self.wall_label.setObjectName("wallTime")

        layout = QHBoxLayout(bar)
        layout.setContentsMargins(20, 4, 24, 4)
        layout.setSpacing(14)
        layout.addLayout(names)
        layout.addStretch(1)
        layout.addWidget(elapsed_caption, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.elapsed_label)
        layout.addSpacing(48)
        layout.addWidget(wall_caption, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.wall_label)
        return bar

    # -- session events ----------------------------------------------------------------------
    def _on_event(self, event: SessionEvent) -> None:
        if isinstance(event, NumericsChanged):
            for param in {n.param for n in event.numerics}:
                if param in self.tiles:
                    self._update_tile(param)
        elif isinstance(event, DeviceChanged):
            if event.event.state in (DeviceState.LOST, DeviceState.DISCONNECTED):
                self._link_break[event.event.device] = event.event.mono
            for param in self.tiles:
                self._update_tile(param)
            self._update_devices()

    def _update_tile(self, param: Param) -> None:
        tile = self.tiles[param]
        n = self.session.latest.get(param)
        if n is None:
            tile.set_value(None, "")
            tile.set_stale(True, "NO DATA")
            return
        value = None if n.quality & UNUSABLE else n.value
        tile.set_value(value, describe_quality(n.quality, has_value=value is not None))
        reason = self._stale_reason(n)
        tile.set_stale(reason is not None, reason or "")

    def _stale_reason(self, n: Numeric) -> str | None:
        """Why the newest value of a parameter is no longer current, or None if it is."""
        status = self.session.devices.get(n.device)
        if status is None:
            return None
        if status.stale:
            return "NO DATA"
        broke = self._link_break.get(n.device)
        if broke is not None and n.mono <= broke:
            if status.state is DeviceState.LOST:
                return "DEVICE LOST"
            if status.state is DeviceState.DISCONNECTED:
                return "DISCONNECTED"
            return "NO DATA"  # reconnecting or reconnected, no new value yet
        return None

    def _update_devices(self) -> None:
        self.status_line.update_devices(self.session.devices, self.session.clock.monotonic())

    def _update_clock(self) -> None:
        elapsed = self.session.elapsed()
        second = int(elapsed)
        if second == self._shown_second:
            return
        self._shown_second = second
        self.elapsed_label.setText(format_elapsed(elapsed))
        self.wall_label.setText(format_wall(self.session.clock.wall(), self._tz))
        # once a second: live "no data for N s" and malformed counts (those do not emit events)
        self._update_devices()

    # -- frame timer -------------------------------------------------------------------------
    def on_frame(self) -> None:
        """The ~30 Hz timer slot: redraw trends only if a buffer changed; tick the clocks."""
        self.trend.refresh()
        self._update_clock()

    # -- lifecycle ---------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the timer and unsubscribe from the session (idempotent)."""
        self._timer.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @override
    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
        self.closed.emit()

    def render_png(self, path: str | os.PathLike[str]) -> None:
        """Save a picture of the window (works offscreen); raises OSError if it cannot be written."""
        self.on_frame()
        # lay out what changed since the last event-loop pass (new texts, new device rows)
        for _ in range(3):
            QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        if not self.grab().save(os.fspath(path), "PNG"):
            raise OSError(f"could not write {os.fspath(path)}")
