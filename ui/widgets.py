"""Monitor widgets: big numeric tiles, the session-long trend plot and the device status lines."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import override

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetricsF, QResizeEvent
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.measurements import UNITS, DeviceState, Param, Quality
from kapmonitor.ringbuffer import RingBuffer
from kapmonitor.session import DeviceStatus
from ui import style

#: Shown instead of a number when there is no valid or no current value.
NO_VALUE = "---"

_QUALITY_WORDS: tuple[tuple[Quality, str], ...] = (
    (Quality.SENSOR_OFF, "SENSOR OFF"),
    (Quality.INVALID, "INVALID"),
    (Quality.SEARCHING, "SEARCHING"),
    (Quality.POOR_SIGNAL, "POOR SIGNAL"),
    (Quality.LOW_PERFUSION, "LOW PERFUSION"),
    (Quality.QUESTIONABLE, "QUESTIONABLE"),
    (Quality.FROM_STORAGE, "STORED VALUE"),
    (Quality.DEMO, "DEMO MODE"),
)

#: Flags that make a number meaningless: the tile shows "---" even if the device sent a value.
UNUSABLE = Quality.SENSOR_OFF | Quality.INVALID


def describe_quality(quality: Quality, *, has_value: bool = True) -> str:
    """The words for a value's quality flags, most serious first ("" when there is nothing to say)."""
    words = [text for flag, text in _QUALITY_WORDS if quality & flag]
    if not words and not has_value:
        words.append("NO VALUE")
    return " · ".join(words)


def _restyle(widget: QWidget) -> None:
    """Re-apply the stylesheet after a dynamic property used by a selector changed."""
    widget.style().unpolish(widget)
    widget.style().polish(widget)


# =============================================================================== numerics
class _FitLabel(QLabel):
    """A label whose bold font grows to the largest size at which `sample` fits its rectangle."""

    def __init__(self, sample: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._sample = sample
        # the fitted font must never drive the layout, or the layout and the font would chase
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setMinimumSize(40, 40)
        ref = style.font(100, bold=True)
        metrics = QFontMetricsF(ref)
        self._height_per_px = metrics.height() / 100.0
        self._width_per_px = metrics.horizontalAdvance(sample) / 100.0
        self._fit()

    @override
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        by_height = self.height() / self._height_per_px
        by_width = self.width() * 0.97 / self._width_per_px
        self.setFont(style.font(math.floor(min(by_height, by_width, 320.0)), bold=True))


class NumericTile(QWidget):
    """One parameter's big number, readable across a room, with its label, unit and quality words.

    Shows "---" when the value is None (no valid value) or when the tile is stale, and always says
    why in words on the quality line (never by colour alone).
    """

    def __init__(
        self,
        param: Param,
        *,
        label: str | None = None,
        unit: str | None = None,
        colour: str | None = None,
        decimals: int = 0,
        max_chars: int = 3,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.param = param
        self.setObjectName(f"tile_{param.value}")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._label_text = label if label is not None else style.PARAM_LABELS.get(param, param.value)
        self._unit_text = unit if unit is not None else UNITS.get(param, "")
        self._colour = colour if colour is not None else style.PARAM_COLOURS.get(param, style.TEXT)
        self._decimals = decimals
        self._value: float | None = None
        self._quality = ""
        self._stale = False
        self._stale_reason = ""
        self._number_colour = ""

        self._label = QLabel(self._label_text)
        self._label.setObjectName("tileLabel")
        self._unit = QLabel(self._unit_text)
        self._unit.setObjectName("tileUnit")
        self._unit.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        for lab in (self._label, self._unit):
            lab.setStyleSheet(f"color: {self._colour};")
        self._number = _FitLabel("8" * max_chars)
        self._number.setObjectName("tileValue")
        self._number.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._quality_label = QLabel()
        self._quality_label.setObjectName("tileQuality")
        self._quality_label.setMinimumHeight(50)
        self._quality_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)

        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self._label)
        header.addStretch(1)
        header.addWidget(self._unit)
        footer = QHBoxLayout()
        footer.setContentsMargins(0, 0, 0, 0)
        footer.addWidget(self._quality_label)
        footer.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 12, 20, 14)
        layout.setSpacing(0)
        layout.addLayout(header)
        layout.addWidget(self._number, 1)
        layout.addLayout(footer)
        self._render()

    # -- API ---------------------------------------------------------------------------------
    def set_value(self, value: float | None, quality_text: str = "") -> None:
        """Show a new value (None: no valid value) with the words for its quality."""
        self._value = None if value is None or not math.isfinite(value) else value
        self._quality = quality_text
        self._render()

    def set_stale(self, stale: bool, reason: str = "NO DATA") -> None:
        """Mark the shown value as not current: the number becomes "---" and `reason` is shown."""
        self._stale = stale
        self._stale_reason = reason if stale else ""
        self._render()

    def value_text(self) -> str:
        """The number as displayed ("---" when there is none)."""
        return self._number.text()

    def quality_text(self) -> str:
        """The quality / condition words as displayed ("" when none)."""
        return self._quality_label.text()

    def is_stale(self) -> bool:
        return self._stale

    def value_pixel_size(self) -> int:
        """The pixel size of the number's font (it is fitted to the tile's size)."""
        return self._number.font().pixelSize()

    # -- drawing -----------------------------------------------------------------------------
    def _render(self) -> None:
        showing = self._value is not None and not self._stale
        text = f"{self._value:.{self._decimals}f}" if showing and self._value is not None else NO_VALUE
        words = self._stale_reason if self._stale else self._quality
        colour = self._colour if showing else style.MUTED
        if self._number.text() != text:
            self._number.setText(text)
        if colour != self._number_colour:  # re-styling is not free: only on a change
            self._number_colour = colour
            self._number.setStyleSheet(f"color: {colour};")
        if self._quality_label.text() != words:
            self._quality_label.setText(words)
            self._quality_label.setProperty("active", "true" if words else "false")
            _restyle(self._quality_label)
        spoken = f"{self._label_text} {text} {self._unit_text}" + (f", {words}" if words else "")
        self.setAccessibleName(spoken)


# =============================================================================== trends
@dataclass(slots=True)
class _Track:
    param: Param
    plot: pg.PlotItem
    curve: pg.PlotDataItem
    y_min: float
    y_max: float
    source: RingBuffer | None = None
    version: int = -1


#: Default y ranges of the trend tracks; they widen (never shrink) if a value falls outside.
TREND_RANGES: dict[Param, tuple[float, float]] = {
    Param.SPO2: (70.0, 100.0),
    Param.PULSE_RATE: (30.0, 180.0),
}


class TrendPlot(QWidget):
    """Session-long SpO2 and pulse trends on two stacked plots sharing a minutes-since-start x axis.

    Nothing moves per frame: refresh() redraws a curve only when its RingBuffer's version changed,
    and the x axis grows in `x_step_min` steps as the session goes on (no scrolling).
    """

    def __init__(
        self,
        trends: Mapping[Param, RingBuffer],
        origin_mono: float,
        *,
        params: tuple[Param, ...] = (Param.SPO2, Param.PULSE_RATE),
        x_step_min: float = 30.0,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("trendPlot")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._trends = trends
        self._origin = origin_mono
        self._x_step = x_step_min
        self._x_span = x_step_min
        #: How many times refresh() actually redrew (tests and benchmarks read it).
        self.redraw_count = 0

        self._view = pg.GraphicsLayoutWidget(self)
        self._view.setBackground(style.BACKGROUND)
        self._view.ci.setContentsMargins(4, 10, 16, 4)
        self._view.ci.setSpacing(14)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._view)

        tick_font = style.font(17)
        self._tracks: dict[Param, _Track] = {}
        for row, param in enumerate(params):
            colour = style.PARAM_COLOURS.get(param, style.TEXT)
            plot = self._view.addPlot(row=row, col=0)
            # equal heights (left alone, the grid sizes rows by their axes' size hints)
            plot.setPreferredHeight(100)
            plot.setMinimumHeight(60)
            self._view.ci.layout.setRowStretchFactor(row, 1)
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.showGrid(x=True, y=True, alpha=0.22)
            for name in ("left", "bottom"):
                axis = plot.getAxis(name)
                axis.setPen(pg.mkPen(style.GRID, width=1))
                axis.setTextPen(pg.mkPen(style.MUTED))
                # keep the y labels at the edges (100 %, 180 /min); with the grid on, pyqtgraph
                # still hides the x label "0" at the left edge, which the axis start makes obvious
                axis.setStyle(tickFont=tick_font, tickTextOffset=6, hideOverlappingLabels=False)
            left = plot.getAxis("left")
            left.setWidth(92)
            label = f"{style.PARAM_LABELS.get(param, param.value)}  {UNITS.get(param, '')}"
            left.setLabel(label, color=colour, **{"font-size": "20px", "font-weight": "bold"})
            curve = pg.PlotDataItem(
                pen=pg.mkPen(colour, width=1), antialias=False, connect="finite", name=param.value
            )
            plot.addItem(curve)
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            y_min, y_max = TREND_RANGES.get(param, (0.0, 100.0))
            # no setXLink: both x ranges are set together, and a link would map them by pixels
            track = self._tracks[param] = _Track(param, plot, curve, y_min, y_max)
            self._apply_y(track)

        self._apply_x()
        tracks = list(self._tracks.values())
        for track in tracks[:-1]:  # only the bottom plot labels the shared time axis
            track.plot.getAxis("bottom").setStyle(showValues=False)
        if tracks:
            bottom = tracks[-1].plot.getAxis("bottom")
            bottom.setLabel("minutes since session start", color=style.MUTED, **{"font-size": "18px"})

    # -- API ---------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Redraw the curves whose buffer changed since the last refresh; True if anything redrew."""
        latest_x: float | None = None
        for track in self._tracks.values():
            buf = self._trends.get(track.param)
            if buf is None or (buf is track.source and buf.version == track.version):
                continue
            t, v = buf.arrays()
            x = (t - self._origin) / 60.0
            track.curve.setData(x, v)
            track.source = buf
            track.version = buf.version
            self._widen_y(track, v)
            if len(x):
                latest_x = float(x[-1]) if latest_x is None else max(latest_x, float(x[-1]))
            self.redraw_count += 1
        if latest_x is None:
            return False
        self._grow_x(latest_x)
        return True

    def curve(self, param: Param) -> pg.PlotDataItem:
        """The curve of one parameter (tests read its data with getOriginalDataset())."""
        return self._tracks[param].curve

    def plot_item(self, param: Param) -> pg.PlotItem:
        return self._tracks[param].plot

    def x_span_minutes(self) -> float:
        """The right edge of the time axis, in minutes since session start."""
        return self._x_span

    # -- helpers -----------------------------------------------------------------------------
    def _grow_x(self, latest_min: float) -> None:
        span = self._x_span
        while latest_min >= span:
            span += self._x_step
        if span != self._x_span:
            self._x_span = span
            self._apply_x()

    def _apply_x(self) -> None:
        """Set the time axis to 0…span minutes with whole-minute ticks (every 5, 10, 15 … min)."""
        span = self._x_span
        step = next((s for s in (5, 10, 15, 30, 60) if span / s <= 8), 120)
        ticks = [(float(v), f"{v:g}") for v in np.arange(0.0, span + step / 2, step)]
        for track in self._tracks.values():
            track.plot.getAxis("bottom").setTicks([ticks, []])
            track.plot.setXRange(0.0, span, padding=0.0)

    def _widen_y(self, track: _Track, v: np.ndarray) -> None:
        finite = v[np.isfinite(v)]
        if not len(finite):
            return
        lo = min(track.y_min, math.floor(float(finite.min()) / 10.0) * 10.0)
        hi = max(track.y_max, math.ceil(float(finite.max()) / 10.0) * 10.0)
        if lo != track.y_min or hi != track.y_max:
            track.y_min, track.y_max = lo, hi
            self._apply_y(track)

    @staticmethod
    def _apply_y(track: _Track) -> None:
        """Set a track's y range with round, evenly spaced ticks (70, 75 … 100; 30, 60 … 180)."""
        lo, hi = track.y_min, track.y_max
        step = next((s for s in (1, 2, 5, 10, 15, 20, 30, 50, 100) if (hi - lo) / s <= 7), 200)
        first = math.ceil(lo / step) * step
        ticks = [(float(v), f"{v:g}") for v in np.arange(first, hi + step / 2, step)]
        track.plot.getAxis("left").setTicks([ticks, []])
        track.plot.setYRange(lo, hi, padding=0.03)


# =============================================================================== devices
_STATE_LOOK: dict[DeviceState, tuple[str, str, str]] = {
    # state: (symbol, words, style key)
    DeviceState.SEARCHING: ("◌", "searching", "searching"),
    DeviceState.CONNECTING: ("◐", "connecting", "connecting"),
    DeviceState.CONNECTED: ("●", "connected", "connected"),
    DeviceState.LOST: ("✖", "lost — reconnecting", "lost"),
    DeviceState.DISCONNECTED: ("○", "disconnected", "disconnected"),
}


def describe_device(status: DeviceStatus, now_mono: float) -> tuple[str, str, str, str]:
    """(symbol, state words, detail, style key) for one device; a stale device says NO DATA."""
    symbol, words, key = _STATE_LOOK.get(status.state, ("?", str(status.state), "searching"))
    detail = status.detail
    if status.stale:
        symbol, key = "⚠", "nodata"
        words = f"{words} — NO DATA"
        last = status.counters.last_data_mono
        if last is not None:
            detail = f"no data for {max(0.0, now_mono - last):.0f} s"
    return symbol, words, detail, key


class _DeviceRow:
    def __init__(self, grid: QGridLayout, row: int) -> None:
        self.symbol = QLabel()
        self.symbol.setObjectName("deviceSymbol")
        self.symbol.setFixedWidth(30)
        self.symbol.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.name = QLabel()
        self.name.setObjectName("deviceName")
        self.kind = QLabel()
        self.kind.setObjectName("deviceKind")
        self.state = QLabel()
        self.state.setObjectName("deviceState")
        self.detail = QLabel()
        self.detail.setObjectName("deviceDetail")
        self.malformed = QLabel()
        self.malformed.setObjectName("deviceMalformed")
        self.labels = (self.symbol, self.name, self.kind, self.state, self.detail, self.malformed)
        for col, lab in enumerate(self.labels):
            grid.addWidget(lab, row, col)
        self.key = ""

    def show(self, status: DeviceStatus, now_mono: float) -> str:
        symbol, words, detail, key = describe_device(status, now_mono)
        n = status.counters.malformed
        malformed = f"{n} malformed packet{'s' if n != 1 else ''}" if n > 0 else ""
        texts = (symbol, status.info.name, status.info.kind, words, detail, malformed)
        for lab, text in zip(self.labels, texts, strict=True):
            if lab.text() != text:
                lab.setText(text)
        if key != self.key:
            self.key = key
            for lab in (self.symbol, self.state):
                lab.setProperty("state", key)
                _restyle(lab)
        line = "  ".join(t for t in texts if t)
        self.name.setAccessibleName(line)
        return line

    def remove(self) -> None:
        for lab in self.labels:
            lab.setParent(None)
            lab.deleteLater()


class DeviceStatusLine(QWidget):
    """One line per device: symbol, name, kind, state in words, detail, malformed-packet count."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("deviceStatus")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(16, 8, 16, 8)
        self._grid.setHorizontalSpacing(22)
        self._grid.setVerticalSpacing(4)
        self._grid.setColumnStretch(5, 1)
        self._empty = QLabel("No devices yet: searching for oximeters")
        self._empty.setObjectName("deviceNone")
        self._grid.addWidget(self._empty, 0, 0, 1, 6)
        self._rows: dict[str, _DeviceRow] = {}
        self._lines: list[str] = []

    def update_devices(self, devices: Mapping[str, DeviceStatus], now_mono: float) -> None:
        """Show the devices' current status; cheap when nothing changed (texts are compared)."""
        if set(devices) != set(self._rows):
            for row in self._rows.values():
                row.remove()
            self._rows = {}
            for i, device in enumerate(devices):
                self._rows[device] = _DeviceRow(self._grid, i)
        self._empty.setVisible(not devices)
        self._lines = [self._rows[d].show(status, now_mono) for d, status in devices.items()]

    def row_texts(self) -> list[str]:
        """The lines as plain text, one per device (for tests and accessibility)."""
        return list(self._lines)
