"""The replay timeline: the whole session as an overview with alarm, observation and phase markers
and the spells without a device link."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import override

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPolygonF,
    QResizeEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from kapmonitor.alarms import Priority
from kapmonitor.export.report_data import AlarmSummary
from kapmonitor.measurements import Param
from kapmonitor.replay import Marker, MarkerKind, ReplaySession
from ui import style
from ui.alarm_bar import PRIORITY_BG

FloatArray = npt.NDArray[np.float64]

#: Layout in pixels: label column, lanes on top, the two overview plots, the time axis.
LEFT = 100
RIGHT = 16
ALARM_LANE = 30
EVENT_LANE = 26
AXIS = 24
#: A click within this many pixels of a marker selects the marker (else it seeks there).
HIT_PX = 7
#: Trend samples further apart than this are not joined by a line (a gap in the recording).
GAP_S = 5.0
#: Value ranges of the two plots (fixed: a review compares sessions at a glance).
SPO2_RANGE = (70.0, 100.0)
PULSE_BP_RANGE = (30.0, 200.0)
#: Verdict letters next to an adjudicated alarm (kapmonitor.storage.review.Verdict values).
VERDICT_LETTER = {"true": "T", "false": "F", "non_actionable": "N"}
ANNOTATION_COLOUR = "#d98cff"
PHASE_COLOUR = "#9fb4c8"
CURSOR_COLOUR = "#ff9f1c"
#: Hatching over both plots where a device had no link (lost or disconnected until it reconnected).
LINK_GAP_COLOUR = "#8a8f98"

_PRIORITY = {p.label: p for p in Priority}


@dataclass(frozen=True, slots=True)
class Hit:
    """Where a marker is drawn, for clicks: its x, its lane's vertical span, and what it is."""

    x: float
    top: int
    bottom: int
    marker: Marker


def priority_of(name: str) -> Priority | None:
    return _PRIORITY.get(name)


def column_ranges(
    t: FloatArray, v: FloatArray, duration: float, width: int
) -> list[list[tuple[int, float, float]]]:
    """Peak-downsample a trend to pixel columns: runs of (column, min, max), split at gaps.

    A run ends at a NaN (the recording's own gap marker) or where samples are more than GAP_S apart.
    """
    if t.size == 0 or width <= 1 or duration <= 0:
        return []
    col = np.clip((t / duration * (width - 1)).astype(np.int64), 0, width - 1)
    runs: list[list[tuple[int, float, float]]] = []
    run: list[tuple[int, float, float]] = []
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    finite = np.isfinite(v)
    lo = np.fmin.reduceat(np.where(finite, v, np.inf), starts)
    hi = np.fmax.reduceat(np.where(finite, v, -np.inf), starts)
    gaps = np.add.reduceat((~finite).astype(np.int64), starts)
    first_t = t[starts]
    last_t = np.r_[t[starts[1:] - 1], t[-1]]
    previous_end: float | None = None
    for k in range(starts.size):
        if np.isfinite(lo[k]):
            if previous_end is not None and first_t[k] - previous_end > GAP_S and run:
                runs.append(run)
                run = []
            run.append((int(col[starts[k]]), float(lo[k]), float(hi[k])))
            previous_end = float(last_t[k])
        if gaps[k]:
            if run:
                runs.append(run)
            run = []
            previous_end = None
    if run:
        runs.append(run)
    return runs


class ReplayTimeline(QWidget):
    """The whole session on one strip: SpO2, pulse and BP trends, markers, and a moving cursor.

    The overview is drawn once into a pixmap (again only on a resize or when the markers change);
    a frame moves just the cursor line. A click on a marker selects it (`marker_selected`), a click
    or drag elsewhere seeks (`seek_requested`). Left/Right arrows step 10 s, with Shift 1 min.
    """

    seek_requested = Signal(float)
    marker_selected = Signal(object)  # a kapmonitor.replay.Marker

    def __init__(
        self, replay: ReplaySession, alarms: Sequence[AlarmSummary], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.replay = replay
        self._alarms = list(alarms)
        self._pixmap: QPixmap | None = None
        self._hits: list[Hit] = []
        self._position = replay.position
        self._dragging = False
        #: how many times the overview was drawn (a frame must not redraw it)
        self.renders = 0
        self.setObjectName("replayTimeline")
        self.setMinimumHeight(ALARM_LANE + EVENT_LANE + AXIS + 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(ALARM_LANE + EVENT_LANE + AXIS + 150)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setToolTip(
            "Session overview: click a marker to jump to it, click or drag elsewhere to seek "
            "(←/→ 10 s, Shift 1 min)"
        )

    # -- geometry ----------------------------------------------------------------------------
    def _plot_width(self) -> int:
        return max(2, self.width() - LEFT - RIGHT)

    def x_of(self, position: float) -> float:
        duration = max(self.replay.duration, 1e-9)
        return LEFT + min(max(position, 0.0), duration) / duration * (self._plot_width() - 1)

    def position_at(self, x: float) -> float:
        fraction = (x - LEFT) / max(1, self._plot_width() - 1)
        return min(max(fraction, 0.0), 1.0) * self.replay.duration

    def _plots(self) -> tuple[QRect, QRect]:
        top = ALARM_LANE + EVENT_LANE
        height = self.height() - top - AXIS
        half = height // 2
        w = self._plot_width()
        return QRect(LEFT, top, w, half - 2), QRect(LEFT, top + half + 2, w, height - half - 2)

    # -- data ----------------------------------------------------------------------------------
    def set_alarms(self, alarms: Sequence[AlarmSummary]) -> None:
        """New verdicts or markers: draw the overview again (once)."""
        self._alarms = list(alarms)
        self.rebuild()

    def rebuild(self) -> None:
        self._pixmap = None
        self.update()

    def set_position(self, position: float) -> None:
        """Move the cursor (repaints two thin columns, not the overview)."""
        old_x = round(self.x_of(self._position))
        self._position = position
        new_x = round(self.x_of(position))
        if new_x != old_x:
            self.update(QRect(old_x - 2, 0, 5, self.height()))
            self.update(QRect(new_x - 2, 0, 5, self.height()))

    @property
    def hits(self) -> list[Hit]:
        """Where the markers are (after the overview was drawn)."""
        self._ensure_pixmap()
        return list(self._hits)

    def marker_near(self, x: float, y: float) -> Marker | None:
        best: tuple[float, Marker] | None = None
        for hit in self.hits:
            if hit.top <= y <= hit.bottom and abs(hit.x - x) <= HIT_PX:
                d = abs(hit.x - x)
                if best is None or d < best[0]:
                    best = (d, hit.marker)
        return best[1] if best else None

    # -- drawing -------------------------------------------------------------------------------
    def _ensure_pixmap(self) -> QPixmap:
        if self._pixmap is None or self._pixmap.size() != self.size():
            self._pixmap = self._render()
            self.renders += 1
        return self._pixmap

    def _render(self) -> QPixmap:
        pixmap = QPixmap(self.size())
        pixmap.fill(QColor(style.PANEL))
        self._hits = []
        p = QPainter(pixmap)
        try:
            spo2_rect, low_rect = self._plots()
            self._draw_frame(p, spo2_rect, "SpO₂", SPO2_RANGE, (80.0, 90.0))
            self._draw_frame(p, low_rect, "Pulse\nBP", PULSE_BP_RANGE, (60.0, 120.0, 160.0))
            self._draw_link_gaps(p, spo2_rect, low_rect)
            overview = self.replay.overview()
            if Param.SPO2.value in overview:
                self._draw_trend(p, spo2_rect, overview[Param.SPO2.value], SPO2_RANGE, Param.SPO2)
            if Param.PULSE_RATE.value in overview:
                pulse = overview[Param.PULSE_RATE.value]
                self._draw_trend(p, low_rect, pulse, PULSE_BP_RANGE, Param.PULSE_RATE)
            if "sys" in overview:
                self._draw_bp(p, low_rect, overview)
            self._draw_phases(p)
            self._draw_events(p)
            self._draw_alarms(p)
            self._draw_axis(p)
        finally:
            p.end()
        return pixmap

    def _y(self, rect: QRect, value: float, limits: tuple[float, float]) -> float:
        lo, hi = limits
        f = (min(max(value, lo), hi) - lo) / (hi - lo)
        return rect.bottom() - f * rect.height()

    def _draw_frame(
        self, p: QPainter, rect: QRect, label: str, limits: tuple[float, float], grid: Sequence[float]
    ) -> None:
        p.setPen(QPen(QColor(style.BORDER), 1))
        p.drawRect(rect)
        p.setFont(style.font(13))
        for value in grid:
            y = round(self._y(rect, value, limits))
            p.setPen(QPen(QColor(style.GRID), 1, Qt.PenStyle.DotLine))
            p.drawLine(rect.left(), y, rect.right(), y)
            p.setPen(QColor(style.MUTED))
            p.drawText(QRect(LEFT - 40, y - 8, 36, 16), Qt.AlignmentFlag.AlignRight, f"{value:g}")
        p.setPen(QColor(style.TEXT))
        p.setFont(style.font(14, bold=True))
        p.drawText(QRect(4, rect.top(), LEFT - 44, rect.height()), Qt.AlignmentFlag.AlignVCenter, label)

    def _draw_trend(
        self,
        p: QPainter,
        rect: QRect,
        data: tuple[FloatArray, FloatArray],
        limits: tuple[float, float],
        param: Param,
    ) -> None:
        t, v = data
        p.setPen(QPen(QColor(style.PARAM_COLOURS[param]), 1))  # 1 px, no antialiasing (design.md)
        for run in column_ranges(t, v, self.replay.duration, rect.width()):
            points: list[QPointF] = []
            for col, lo, hi in run:
                x = rect.left() + col
                y_lo, y_hi = self._y(rect, lo, limits), self._y(rect, hi, limits)
                if y_lo - y_hi >= 1.0:
                    p.drawLine(QPointF(x, y_lo), QPointF(x, y_hi))
                points.append(QPointF(x, (y_lo + y_hi) / 2))
            if len(points) > 1:
                p.drawPolyline(QPolygonF(points))
            elif points:
                p.drawPoint(points[0])

    def _draw_bp(self, p: QPainter, rect: QRect, overview: dict[str, tuple[FloatArray, FloatArray]]) -> None:
        t, sys = overview["sys"]
        _t, dia = overview.get("dia", (t, np.full_like(sys, np.nan)))
        p.setPen(QPen(QColor(style.BP), 2))
        for pos, s, d in zip(t, sys, dia, strict=True):
            x = self.x_of(float(pos))
            if np.isfinite(s) and np.isfinite(d):
                p.drawLine(
                    QPointF(x, self._y(rect, s, PULSE_BP_RANGE)), QPointF(x, self._y(rect, d, PULSE_BP_RANGE))
                )
            for value in (s, d):
                if np.isfinite(value):
                    y = self._y(rect, float(value), PULSE_BP_RANGE)
                    p.drawLine(QPointF(x - 3, y), QPointF(x + 3, y))

    def _draw_link_gaps(self, p: QPainter, *plots: QRect) -> None:
        """Hatch both plots where a device's link was down, labelled "no link" where there is room;
        a click on it selects the device event that opened it."""
        devices = {(m.mono, m.device): m for m in self.replay.markers_of([MarkerKind.DEVICE])}
        p.setFont(style.font(12))
        for gap in self.replay.link_gaps():
            x0 = self.x_of(gap.start_position)
            end = gap.end_position if gap.end_position is not None else self.replay.duration
            x1 = max(self.x_of(end), x0 + 2)
            for rect in plots:
                band = QRectF(x0, rect.top() + 1, x1 - x0, rect.height() - 1)
                p.fillRect(band, QBrush(QColor(LINK_GAP_COLOUR), Qt.BrushStyle.BDiagPattern))
            if x1 - x0 > 60:
                p.setPen(QColor(LINK_GAP_COLOUR))
                p.drawText(QRectF(x0 + 3, plots[0].top() + 2, x1 - x0 - 6, 16), "no link")
            marker = devices.get((gap.start_mono, gap.device))
            if marker is not None:
                self._hits.append(Hit(x0, plots[0].top(), plots[-1].bottom(), marker))

    def _lane(self, index: int) -> tuple[int, int]:
        if index == 0:
            return 0, ALARM_LANE - 1
        return ALARM_LANE, ALARM_LANE + EVENT_LANE - 1

    def _draw_phases(self, p: QPainter) -> None:
        top, bottom = self._lane(1)
        plot_bottom = self.height() - AXIS
        p.setFont(style.font(12))
        ends = [-1e9, -1e9, -1e9]  # where the labels on each line end (a line lower if one is taken)
        for m in self.replay.markers_of([MarkerKind.PHASE]):
            x = self.x_of(m.position)
            p.setPen(QPen(QColor(PHASE_COLOUR), 1, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(x, top), QPointF(x, plot_bottom))
            name = m.text.split("→")[-1].split("(")[0].strip()
            row = next((k for k, end in enumerate(ends) if x + 3 > end), 0)
            ends[row] = x + 3 + p.fontMetrics().horizontalAdvance(name) + 4
            p.setPen(QColor(PHASE_COLOUR))
            p.drawText(QRectF(x + 3, bottom - 14 + row * 14, 140, 14), Qt.AlignmentFlag.AlignLeft, name)
            self._hits.append(Hit(x, top, plot_bottom, m))

    def _draw_events(self, p: QPainter) -> None:
        """Observations (white diamonds) and reviewer annotations (violet flags) in the event lane."""
        top, bottom = self._lane(1)
        mid = (top + bottom) / 2
        for m in self.replay.markers_of([MarkerKind.OBSERVATION, MarkerKind.ANNOTATION]):
            x = self.x_of(m.position)
            if m.kind == MarkerKind.OBSERVATION:
                p.setPen(QPen(QColor(style.TEXT), 1))
                p.setBrush(QColor(style.TEXT))
                diamond = QPolygonF(
                    [QPointF(x, mid - 6), QPointF(x + 5, mid), QPointF(x, mid + 6), QPointF(x - 5, mid)]
                )
                p.drawPolygon(diamond)
            else:
                p.setPen(QPen(QColor(ANNOTATION_COLOUR), 2))
                p.setBrush(QColor(ANNOTATION_COLOUR))
                p.drawLine(QPointF(x, top + 2), QPointF(x, bottom - 2))
                p.drawPolygon(QPolygonF([QPointF(x, top + 2), QPointF(x + 9, top + 6), QPointF(x, top + 10)]))
            self._hits.append(Hit(x, top, bottom, m))
        p.setBrush(Qt.BrushStyle.NoBrush)

    def _draw_alarms(self, p: QPainter) -> None:
        """Each alarm as a bar from raise to clearing in its priority's colour, with its text marker
        (*** high, ** medium, * low) and, once judged, the verdict's letter (T, F, N)."""
        top, bottom = self._lane(0)
        onsets = {round(m.position, 3): m for m in self.replay.markers_of([MarkerKind.ALARM])}
        verdicts = {a.alarm_id: a.adjudication for a in self._alarms if a.adjudication is not None}
        p.setFont(style.font(13, bold=True))
        spans = self.replay.alarm_spans()
        # bars low first, so a high alarm is drawn on top of what it overlaps
        for span in sorted(spans, key=lambda a: (priority_of(a.priority) or 0, a.start_position)):
            priority = priority_of(span.priority)
            x0 = self.x_of(span.start_position)
            end = span.end_position if span.end_position is not None else self.replay.duration
            x1 = max(self.x_of(end), x0 + 2)
            p.fillRect(
                QRectF(x0, bottom - 8, x1 - x0, 7), QColor(PRIORITY_BG[priority] if priority else style.MUTED)
            )
        text_end = -1e9
        for span in spans:  # in time order: the markers side by side, never on top of each other
            priority = priority_of(span.priority)
            x0 = self.x_of(span.start_position)
            text = priority.marker if priority else "?"
            verdict = verdicts.get(span.alarm_id)
            if verdict is not None:
                text += VERDICT_LETTER.get(verdict.verdict.value, "?")
            p.setPen(QColor(PRIORITY_BG[priority] if priority else style.MUTED))
            tx = max(x0 - 2, text_end + 4)
            text_end = tx + p.fontMetrics().horizontalAdvance(text)
            p.drawText(QRectF(tx, top, 80, bottom - 9 - top), Qt.AlignmentFlag.AlignLeft, text)
            marker = onsets.get(round(span.start_position, 3)) or Marker(
                MarkerKind.ALARM, span.start_position, 0.0, 0.0, f"{span.priority} {span.message}"
            )
            self._hits.append(Hit(x0, top, bottom, marker))

    def _draw_axis(self, p: QPainter) -> None:
        duration = self.replay.duration
        y = self.height() - AXIS
        step = next((s for s in (60, 300, 600, 900, 1800, 3600, 7200) if duration / s <= 12), 14_400)
        p.setFont(style.font(13))
        tick = 0.0
        while tick <= duration + 1e-6:
            x = self.x_of(tick)
            p.setPen(QPen(QColor(style.GRID), 1))
            p.drawLine(QPointF(x, y), QPointF(x, y + 4))
            s = int(tick)
            p.setPen(QColor(style.MUTED))
            p.drawText(
                QRectF(x - 30, y + 4, 60, AXIS - 4),
                Qt.AlignmentFlag.AlignHCenter,
                f"{s // 3600}:{s % 3600 // 60:02d}",
            )
            tick += step

    # -- events --------------------------------------------------------------------------------
    @override
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        try:
            p.drawPixmap(event.rect(), self._ensure_pixmap(), event.rect())
            x = round(self.x_of(self._position))
            p.setPen(QPen(QColor(CURSOR_COLOUR), 3))
            p.drawLine(x, 0, x, self.height() - AXIS)
        finally:
            p.end()

    @override
    def resizeEvent(self, event: QResizeEvent) -> None:
        self._pixmap = None
        super().resizeEvent(event)

    @override
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        pos = event.position()
        marker = self.marker_near(pos.x(), pos.y())
        if marker is not None:
            self.marker_selected.emit(marker)
            return
        self._dragging = True
        self.seek_requested.emit(self.position_at(pos.x()))

    @override
    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._dragging and event.buttons() & Qt.MouseButton.LeftButton:
            self.seek_requested.emit(self.position_at(event.position().x()))

    @override
    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._dragging = False

    @override
    def keyPressEvent(self, event: QKeyEvent) -> None:
        step = 60.0 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 10.0
        if event.key() == Qt.Key.Key_Left:
            self.seek_requested.emit(max(0.0, self._position - step))
        elif event.key() == Qt.Key.Key_Right:
            self.seek_requested.emit(min(self.replay.duration, self._position + step))
        else:
            super().keyPressEvent(event)
