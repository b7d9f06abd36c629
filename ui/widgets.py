"""Monitor widgets: big numeric tiles, the session-long trend plot and the device status lines."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import override

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontMetricsF, QResizeEvent
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsSimpleTextItem,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.measurements import UNITS, BloodPressure, BPStatus, DeviceState, Param, Quality
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

        # label and unit in a narrow column left of the number: with three tiles in the column,
        # a header row above the number would cost the digits the height they need
        self._unit.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout = QGridLayout(self)
        layout.setContentsMargins(20, 10, 20, 10)
        layout.setHorizontalSpacing(12)
        layout.setVerticalSpacing(0)
        layout.addWidget(self._label, 0, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._unit, 1, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._number, 0, 1, 3, 1)
        layout.addWidget(self._quality_label, 3, 0, 1, 2, Qt.AlignmentFlag.AlignLeft)
        layout.setRowStretch(2, 1)
        layout.setColumnStretch(1, 1)
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


# =============================================================================== blood pressure
_BP_WORDS: tuple[tuple[BPStatus, str], ...] = (
    (BPStatus.MEASUREMENT_ERROR, "MEASUREMENT ERROR"),
    (BPStatus.CUFF_TOO_LOOSE, "CUFF LOOSE"),
    (BPStatus.IMPROPER_POSITION, "CUFF POSITION"),
    (BPStatus.BODY_MOVEMENT, "MOVEMENT"),
    (BPStatus.IRREGULAR_PULSE, "IRREGULAR PULSE"),
    (BPStatus.PULSE_ABOVE_RANGE, "PULSE ABOVE RANGE"),
    (BPStatus.PULSE_BELOW_RANGE, "PULSE BELOW RANGE"),
)


def describe_bp_status(bp: BloodPressure) -> str:
    """The cuff's status words, most serious first; a reading without numbers is an error."""
    words = [text for flag, text in _BP_WORDS if bp.status & flag]
    if (bp.systolic is None or bp.diastolic is None) and "MEASUREMENT ERROR" not in words:
        words.insert(0, "MEASUREMENT ERROR")
    return " · ".join(words)


def bp_reading_wall(bp: BloodPressure) -> float:
    """When a reading was taken (UTC): the cuff's own time for a stored one, else its arrival."""
    if bp.stored and bp.measured_wall is not None:
        return bp.measured_wall
    return bp.wall


def format_age(seconds: float) -> str:
    """A reading's age in words: "just now", "4 min ago", "1 h 05 min ago"."""
    s = max(0, int(seconds))
    if s < 60:
        return "just now"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes} min ago"
    return f"{minutes // 60} h {minutes % 60:02d} min ago"


#: The mean arterial pressure's font: smaller than the systolic/diastolic, as monitors show it.
MAP_PIXELS = 44


class BloodPressureTile(QWidget):
    """The last cuff reading: "120/80" large, "(93)" MAP, its time and age, stored marker, status.

    The age is kept current by update_age() (the window calls it once a second). A reading uploaded
    from the cuff's memory says STORED READING and gives the cuff's time; a reading without numbers
    shows "---/---" and MEASUREMENT ERROR. Everything is said in words, never by colour alone.
    """

    def __init__(self, *, tz: tzinfo | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tile_bp")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._tz = tz
        self._reading: BloodPressure | None = None
        self._colour = style.BP
        self._number_colour = ""

        self._label = QLabel("NIBP")
        self._label.setObjectName("tileLabel")
        self._unit = QLabel("mmHg")
        self._unit.setObjectName("tileUnit")
        for lab in (self._label, self._unit):
            lab.setStyleSheet(f"color: {self._colour};")
        self._number = _FitLabel("188/188")
        self._number.setObjectName("tileValue")
        self._number.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._map = QLabel()
        self._map.setObjectName("bpMap")
        self._map.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom)
        map_width = QFontMetricsF(style.font(MAP_PIXELS, bold=True)).horizontalAdvance("(188)")
        self._map.setMinimumWidth(math.ceil(map_width) + 4)
        self._map.setFont(style.font(MAP_PIXELS, bold=True))
        self._age = QLabel()
        self._age.setObjectName("bpAge")
        self._stored = QLabel()
        self._stored.setObjectName("bpStored")
        self._status = QLabel()
        self._status.setObjectName("bpStatus")
        self._status.setMinimumHeight(46)

        # like the numeric tiles: label, unit and the smaller MAP in a column left of the number,
        # so the number gets the tile's height; time, age and status words below it
        info = QHBoxLayout()
        info.setContentsMargins(0, 0, 0, 0)
        info.addWidget(self._age)
        info.addStretch(1)
        info.addWidget(self._stored)
        layout = QGridLayout(self)
        layout.setContentsMargins(20, 8, 20, 8)
        layout.setHorizontalSpacing(12)
        layout.setVerticalSpacing(2)
        layout.addWidget(self._label, 0, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._unit, 1, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._map, 2, 0)
        layout.addWidget(self._number, 0, 1, 3, 1)
        layout.addLayout(info, 3, 0, 1, 2)
        layout.addWidget(self._status, 4, 0, 1, 2, Qt.AlignmentFlag.AlignLeft)
        layout.setRowStretch(2, 1)
        layout.setColumnStretch(1, 1)
        self._render(None)

    # -- API ---------------------------------------------------------------------------------
    def set_reading(self, bp: BloodPressure | None, *, now_mono: float, now_wall: float) -> None:
        """Show a reading (None: no reading yet) with its age at the given time."""
        self._reading = bp
        self._render(bp)
        self.update_age(now_mono=now_mono, now_wall=now_wall)

    def reading(self) -> BloodPressure | None:
        return self._reading

    def update_age(self, *, now_mono: float, now_wall: float) -> None:
        """Re-say how old the shown reading is (cheap: the text is set only when it changes)."""
        bp = self._reading
        if bp is None:
            text = "no reading yet"
        else:
            if bp.stored and bp.measured_wall is not None:
                age = now_wall - bp.measured_wall  # the cuff's clock: the only time there is
            else:
                age = now_mono - bp.mono  # the monotonic clock: immune to wall-clock steps
            when = datetime.fromtimestamp(bp_reading_wall(bp), tz=UTC).astimezone(self._tz)
            text = f"at {when:%H:%M} · {format_age(age)}"
        if self._age.text() != text:
            self._age.setText(text)
            self._speak()

    def value_text(self) -> str:
        """ "120/80" as displayed ("---/---" when there is none)."""
        return self._number.text()

    def map_text(self) -> str:
        return self._map.text()

    def age_text(self) -> str:
        return self._age.text()

    def stored_text(self) -> str:
        return self._stored.text()

    def status_text(self) -> str:
        return self._status.text()

    def value_pixel_size(self) -> int:
        return self._number.font().pixelSize()

    # -- drawing -----------------------------------------------------------------------------
    def _render(self, bp: BloodPressure | None) -> None:
        words = "" if bp is None else describe_bp_status(bp)
        valid = (
            bp is not None
            and bp.systolic is not None
            and bp.diastolic is not None
            and not bp.status & BPStatus.MEASUREMENT_ERROR
        )
        if valid and bp is not None and bp.systolic is not None and bp.diastolic is not None:
            text = f"{bp.systolic:.0f}/{bp.diastolic:.0f}"
            map_text = f"({bp.mean:.0f})" if bp.mean is not None else f"({NO_VALUE})"
        else:
            text = f"{NO_VALUE}/{NO_VALUE}"
            map_text = ""
        stored = "STORED READING" if bp is not None and bp.stored else ""
        colour = self._colour if valid else style.MUTED
        self._number.setText(text)
        self._map.setText(map_text)
        if colour != self._number_colour:
            self._number_colour = colour
            self._number.setStyleSheet(f"color: {colour};")
            self._map.setStyleSheet(f"color: {colour};")
        for lab, value in ((self._stored, stored), (self._status, words)):
            if lab.text() != value:
                lab.setText(value)
                lab.setProperty("active", "true" if value else "false")
                _restyle(lab)
        self._speak()

    def _speak(self) -> None:
        parts = [f"Blood pressure {self._number.text()} {self._map.text()} mmHg", self._age.text()]
        parts += [t for t in (self._stored.text(), self._status.text()) if t]
        self.setAccessibleName(", ".join(parts))


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


@dataclass(slots=True)
class _BPMarkers:
    plot: pg.PlotItem
    systolic: pg.ScatterPlotItem
    diastolic: pg.ScatterPlotItem
    y_min: float
    y_max: float


#: Observation markers on the trends: amber dashes, distinct from every parameter colour.
MARKER_COLOUR = style.ATTENTION

#: Default y ranges of the trend tracks; they widen (never shrink) if a value falls outside.
TREND_RANGES: dict[Param, tuple[float, float]] = {
    Param.SPO2: (70.0, 100.0),
    Param.PULSE_RATE: (30.0, 180.0),
    Param.SYSTOLIC: (40.0, 200.0),
}


#: The least room (px) between two y tick labels of a trend (the tick font is 17 px).
MIN_TICK_SPACING_PX = 26.0


def _ticks_that_fit(plot: pg.PlotItem) -> int:
    """How many y tick intervals fit the plot's height (7 before it is laid out)."""
    height = float(plot.vb.height())
    return 7 if height <= 0 else max(1, int(height // MIN_TICK_SPACING_PX))


class TrendPlot(QWidget):
    """Session-long SpO2 and pulse trends, and blood-pressure markers, on stacked plots sharing a
    minutes-since-start x axis.

    Nothing moves per frame: refresh() redraws a curve only when its RingBuffer's version changed
    (or, for blood pressure, when a reading was added), and the x axis grows in `x_step_min` steps
    as the session goes on (no scrolling). Blood pressure is drawn as points, not a line: ▼ at the
    systolic and ▲ at the diastolic value, so each reading reads as a bracket. A stored reading is
    placed by the cuff's own time.
    """

    def __init__(
        self,
        trends: Mapping[Param, RingBuffer],
        origin_mono: float,
        *,
        params: tuple[Param, ...] = (Param.SPO2, Param.PULSE_RATE),
        bp_readings: Sequence[BloodPressure] | None = None,
        origin_wall: float = 0.0,
        x_step_min: float = 30.0,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("trendPlot")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._trends = trends
        self._origin = origin_mono
        self._origin_wall = origin_wall
        self._x_step = x_step_min
        self._x_span = x_step_min
        self._bp_readings = bp_readings
        self._bp_count = 0
        #: How many times refresh() actually redrew (tests and benchmarks read it).
        self.redraw_count = 0

        self._view = pg.GraphicsLayoutWidget(self)
        self._view.setBackground(style.BACKGROUND)
        self._view.ci.setContentsMargins(4, 10, 16, 4)
        self._view.ci.setSpacing(14)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._view)

        self._tracks: dict[Param, _Track] = {}
        self._plots: list[pg.PlotItem] = []
        self._names: list[str] = []
        self._marker_items: list[tuple[pg.PlotItem, QGraphicsItem]] = []
        self._marker_texts: list[str] = []
        for row, param in enumerate(params):
            colour = style.PARAM_COLOURS.get(param, style.TEXT)
            label = f"{style.PARAM_LABELS.get(param, param.value)}  {UNITS.get(param, '')}"
            plot = self._add_plot(row, label, colour, stretch=6)
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
            # fewer y ticks on a short plot, so their labels never print over each other
            plot.vb.sigResized.connect(lambda _vb, t=track: self._apply_y(t))

        self._bp: _BPMarkers | None = None
        if bp_readings is not None:
            # stretch 8: the bottom plot also carries the time axis and its caption
            plot = self._add_plot(len(params), "BP  mmHg", style.BP, stretch=8)
            sys_marks = pg.ScatterPlotItem(
                symbol="t", size=13, pen=None, brush=pg.mkBrush(style.BP), antialias=False, name="sys"
            )
            dia_marks = pg.ScatterPlotItem(
                symbol="t1", size=13, pen=None, brush=pg.mkBrush(style.BP), antialias=False, name="dia"
            )
            plot.addItem(sys_marks)
            plot.addItem(dia_marks)
            lo, hi = TREND_RANGES[Param.SYSTOLIC]
            self._bp = _BPMarkers(plot, sys_marks, dia_marks, lo, hi)
            self._apply_bp_y()
            plot.vb.sigResized.connect(lambda _vb: self._apply_bp_y())

        self._apply_x()
        for plot in self._plots[:-1]:  # only the bottom plot labels the shared time axis
            plot.getAxis("bottom").setStyle(showValues=False)
        if self._plots:
            bottom = self._plots[-1].getAxis("bottom")
            bottom.setLabel("minutes since session start", color=style.MUTED, **{"font-size": "18px"})

    def _add_plot(self, row: int, label: str, colour: str, *, stretch: int) -> pg.PlotItem:
        plot = self._view.addPlot(row=row, col=0)
        # heights by stretch (left alone, the grid sizes rows by their axes' size hints)
        plot.setPreferredHeight(20 * stretch)
        plot.setMinimumHeight(50)
        self._view.ci.layout.setRowStretchFactor(row, stretch)
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.showGrid(x=True, y=True, alpha=0.22)
        tick_font = style.font(17)
        for name in ("left", "bottom"):
            axis = plot.getAxis(name)
            axis.setPen(pg.mkPen(style.GRID, width=1))
            axis.setTextPen(pg.mkPen(style.MUTED))
            # keep the y labels at the edges (100 %, 180 /min); with the grid on, pyqtgraph
            # still hides the x label "0" at the left edge, which the axis start makes obvious
            axis.setStyle(tickFont=tick_font, tickTextOffset=6, hideOverlappingLabels=False)
        plot.getAxis("left").setWidth(58)
        # The name is a level title above the plot, not a rotated axis label: on a short plot the
        # rotated "Pulse /min" ran past its plot into the one below. The title never covers a curve.
        plot.setTitle(label, color=colour, size="19px", bold=True, justify="left")
        self._names.append(label)
        self._plots.append(plot)
        return plot

    def plot_names(self) -> list[str]:
        """The parameter name shown above each plot, top to bottom."""
        return list(self._names)

    # -- observation markers -------------------------------------------------------------------
    def set_markers(self, markers: Sequence[tuple[float, str]]) -> None:
        """Show observations (and doses) as markers: a dashed line at each UTC wall time on every
        plot, labelled on the top one. Replaces the markers shown before; call it when the session
        log changes (a clinician's action), never per frame."""
        for plot, item in self._marker_items:
            plot.removeItem(item)
        self._marker_items = []
        pen = pg.mkPen(MARKER_COLOUR, width=1, style=Qt.PenStyle.DashLine)
        latest: float | None = None
        for i, (wall, label) in enumerate(sorted(markers)):
            x = (wall - self._origin_wall) / 60.0
            latest = x if latest is None else max(latest, x)
            for row, plot in enumerate(self._plots):
                line = pg.InfiniteLine(pos=x, angle=90, movable=False, pen=pen)
                plot.addItem(line, ignoreBounds=True)
                self._marker_items.append((plot, line))
                if row == 0:
                    text = self._marker_text(plot, x, label, i)
                    plot.addItem(text, ignoreBounds=True)
                    self._marker_items.append((plot, text))
        self._marker_texts = [label for _w, label in sorted(markers)]
        if latest is not None:
            self._grow_x(latest)

    @staticmethod
    def _marker_text(plot: pg.PlotItem, x: float, label: str, i: int) -> QGraphicsSimpleTextItem:
        """A marker's label, unscaled, right of its line: three heights in turn, so neighbouring
        markers do not print over each other, in the plot's lower half (below the usual SpO2
        trace). A plain Qt text item: pyqtgraph's TextItem fails on a plot not yet laid out."""
        lo, hi = plot.vb.viewRange()[1]
        text = QGraphicsSimpleTextItem(label)
        text.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        text.setBrush(QColor(MARKER_COLOUR))
        text.setFont(style.font(15))
        text.setPos(x, lo + (hi - lo) * (0.7 - 0.22 * (i % 3)))
        text.setZValue(15)
        return text

    def marker_labels(self) -> list[str]:
        """The labels of the markers shown, in time order."""
        return list(self._marker_texts)

    def marker_x_minutes(self) -> list[float]:
        """Where the markers sit on the time axis (minutes since session start), in time order."""
        top = self._plots[0] if self._plots else None
        return [
            float(item.value())
            for plot, item in self._marker_items
            if plot is top and isinstance(item, pg.InfiniteLine)
        ]

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
        bp_x = self._refresh_bp()
        if bp_x is not None:
            latest_x = bp_x if latest_x is None else max(latest_x, bp_x)
        if latest_x is None:
            return False
        self._grow_x(latest_x)
        return True

    def curve(self, param: Param) -> pg.PlotDataItem:
        """The curve of one parameter (tests read its data with getOriginalDataset())."""
        return self._tracks[param].curve

    def plot_item(self, param: Param) -> pg.PlotItem:
        if param in (Param.SYSTOLIC, Param.DIASTOLIC) and self._bp is not None:
            return self._bp.plot
        return self._tracks[param].plot

    def bp_markers(self) -> tuple[pg.ScatterPlotItem, pg.ScatterPlotItem] | None:
        """The systolic (▼) and diastolic (▲) marker items, or None without a BP plot."""
        return None if self._bp is None else (self._bp.systolic, self._bp.diastolic)

    def x_span_minutes(self) -> float:
        """The right edge of the time axis, in minutes since session start."""
        return self._x_span

    def bp_x_minutes(self, bp: BloodPressure) -> float:
        """Where a reading sits on the time axis: the cuff's time for a stored one, else arrival."""
        if bp.stored and bp.measured_wall is not None:
            return (bp.measured_wall - self._origin_wall) / 60.0
        return (bp.mono - self._origin) / 60.0

    def _refresh_bp(self) -> float | None:
        readings, markers = self._bp_readings, self._bp
        if readings is None or markers is None or len(readings) == self._bp_count:
            return None
        self._bp_count = len(readings)
        x = np.array([self.bp_x_minutes(r) for r in readings], dtype=np.float64)
        sys_v = np.array([np.nan if r.systolic is None else r.systolic for r in readings], dtype=np.float64)
        dia_v = np.array([np.nan if r.diastolic is None else r.diastolic for r in readings], dtype=np.float64)
        for item, v in ((markers.systolic, sys_v), (markers.diastolic, dia_v)):
            ok = np.isfinite(v)
            item.setData(x=x[ok], y=v[ok])
        finite = np.concatenate((sys_v[np.isfinite(sys_v)], dia_v[np.isfinite(dia_v)]))
        if len(finite):
            lo = min(markers.y_min, math.floor(float(finite.min()) / 20.0) * 20.0)
            hi = max(markers.y_max, math.ceil(float(finite.max()) / 20.0) * 20.0)
            if (lo, hi) != (markers.y_min, markers.y_max):
                markers.y_min, markers.y_max = lo, hi
                self._apply_bp_y()
        self.redraw_count += 1
        return float(x.max()) if len(x) else None

    def _apply_bp_y(self) -> None:
        if self._bp is None:
            return
        lo, hi = self._bp.y_min, self._bp.y_max
        most = min(5, _ticks_that_fit(self._bp.plot))
        step = next((s for s in (20, 40, 50, 100) if (hi - lo) / s <= most), 200)
        first = math.ceil(lo / step) * step
        ticks = [(float(v), f"{v:g}") for v in np.arange(first, hi + step / 2, step)]
        self._bp.plot.getAxis("left").setTicks([ticks, []])
        self._bp.plot.setYRange(lo, hi, padding=0.06)

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
        for plot in self._plots:
            plot.getAxis("bottom").setTicks([ticks, []])
            plot.setXRange(0.0, span, padding=0.0)

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
        most = min(7, _ticks_that_fit(track.plot))
        step = next((s for s in (1, 2, 5, 10, 15, 20, 30, 50, 100) if (hi - lo) / s <= most), 200)
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


#: A battery at or below this level is LOW (said in words, and in amber).
BATTERY_LOW_PERCENT = 20.0


def describe_battery(percent: float | None) -> tuple[str, bool]:
    """("battery 85 %", False); ("battery 15 % LOW", True); ("", False) when unknown."""
    if percent is None or not math.isfinite(percent):
        return "", False
    low = percent <= BATTERY_LOW_PERCENT
    return f"battery {percent:.0f} %" + (" LOW" if low else ""), low


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
        self.battery = QLabel()
        self.battery.setObjectName("deviceBattery")
        self.malformed = QLabel()
        self.malformed.setObjectName("deviceMalformed")
        self.labels = (
            self.symbol,
            self.name,
            self.kind,
            self.state,
            self.battery,
            self.detail,
            self.malformed,
        )
        for col, lab in enumerate(self.labels):
            grid.addWidget(lab, row, col)
        self.key = ""
        self.low = False

    def show(self, status: DeviceStatus, now_mono: float, battery: float | None) -> str:
        symbol, words, detail, key = describe_device(status, now_mono)
        n = status.counters.malformed
        malformed = f"{n} malformed packet{'s' if n != 1 else ''}" if n > 0 else ""
        battery_text, low = describe_battery(battery)
        texts = (symbol, status.info.name, status.info.kind, words, battery_text, detail, malformed)
        for lab, text in zip(self.labels, texts, strict=True):
            if lab.text() != text:
                lab.setText(text)
        if key != self.key:
            self.key = key
            for lab in (self.symbol, self.state):
                lab.setProperty("state", key)
                _restyle(lab)
        if low != self.low:
            self.low = low
            self.battery.setProperty("low", "true" if low else "false")
            _restyle(self.battery)
        line = "  ".join(t for t in texts if t)
        self.name.setAccessibleName(line)
        return line

    def remove(self) -> None:
        for lab in self.labels:
            lab.setParent(None)
            lab.deleteLater()


class DeviceStatusLine(QWidget):
    """One line per device: symbol, name, kind, state in words, battery, detail, malformed packets."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("deviceStatus")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(16, 8, 16, 8)
        self._grid.setHorizontalSpacing(22)
        self._grid.setVerticalSpacing(4)
        self._grid.setColumnStretch(6, 1)
        self._empty = QLabel("No devices yet: searching for oximeters")
        self._empty.setObjectName("deviceNone")
        self._grid.addWidget(self._empty, 0, 0, 1, 7)
        self._rows: dict[str, _DeviceRow] = {}
        self._lines: list[str] = []

    def update_devices(
        self,
        devices: Mapping[str, DeviceStatus],
        now_mono: float,
        batteries: Mapping[str, float | None] | None = None,
    ) -> None:
        """Show the devices' status and battery level (%, by device id); cheap when nothing changed."""
        batteries = batteries or {}
        if set(devices) != set(self._rows):
            for row in self._rows.values():
                row.remove()
            self._rows = {}
            for i, device in enumerate(devices):
                self._rows[device] = _DeviceRow(self._grid, i)
        self._empty.setVisible(not devices)
        self._lines = [
            self._rows[d].show(status, now_mono, batteries.get(d)) for d, status in devices.items()
        ]

    def row_texts(self) -> list[str]:
        """The lines as plain text, one per device (for tests and accessibility)."""
        return list(self._lines)
