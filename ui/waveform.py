"""The pleth sweep: a monitor-style waveform drawn left to right on a fixed time axis, with an erase bar."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import override

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from kapmonitor.clock import Clock
from kapmonitor.ringbuffer import RingBuffer
from ui import style

FloatArray = npt.NDArray[np.float64]

#: Seconds across the sweep (bedside monitors sweep pleth at 25 mm/s: about 6 s on a wide screen).
SWEEP_SECONDS = 6.0
#: Display points per second: the samples are resampled onto this fixed grid of x positions, so a
#: 50, 100 or 125 Hz device and a little timestamp jitter all draw an unbroken line.
POINTS_PER_SECOND = 100.0
#: Width of the blank erase bar ahead of the write position.
ERASE_SECONDS = 0.25
#: No waveform sample for longer than this shows "NO PLETH" and blanks the trace.
NO_SIGNAL_AFTER_S = 2.0
#: Time constants of the auto-gain: the scale widens quickly when the wave outgrows it (so peaks
#: are not clipped for long) and narrows slowly, so one small beat does not make the trace jump.
GAIN_GROW_TAU_S = 0.5
GAIN_SHRINK_TAU_S = 4.0
#: The window (seconds of newest samples) whose min and max the auto-gain follows.
GAIN_WINDOW_S = 2.0
#: Two samples further apart than this are not joined: the trace breaks (lost packets).
MAX_JOIN_S = 0.5
#: Width of the label column left of the trace (the trend plots' y axes are as wide: they line up).
LABEL_WIDTH = 88
#: Vertical margin inside the plot, as a fraction of the normalised 0..1 range.
Y_MARGIN = 0.06


class SweepWaveform(QWidget):
    """A pleth sweep fed from `waves[name]` (a RingBuffer of (mono time, value) at the device rate).

    Call refresh() from the window's frame timer. Each call reads only the samples newer than the
    newest one already drawn (by timestamp), resamples them onto the fixed x grid with numpy, and
    blanks the erase bar ahead of them; nothing is redrawn when no sample arrived. Values are
    normalised by a slowly adapting gain (pleth has arbitrary units), so the y axis never moves.
    """

    def __init__(
        self,
        waves: Mapping[str, RingBuffer],
        clock: Clock,
        *,
        name: str = "pleth",
        label: str = "Pleth",
        seconds: float = SWEEP_SECONDS,
        points_per_second: float = POINTS_PER_SECOND,
        erase_seconds: float = ERASE_SECONDS,
        colour: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("sweep")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._waves = waves
        self._clock = clock
        self._name = name
        self.seconds = seconds
        self.points_per_second = points_per_second
        self.n_points = round(seconds * points_per_second)
        self._erase_points = max(1, round(erase_seconds * points_per_second))
        self._x = np.arange(self.n_points, dtype=np.float64) / points_per_second
        self._y = np.full(self.n_points, np.nan)
        self._origin: float | None = None  # timestamp of x = 0 on the first sweep
        self._last_t: float | None = None  # newest sample drawn
        self._last_v = math.nan  # its value (raw), to join the next batch to it
        self._last_bin = -1  # absolute grid index (sweeps × n_points + x index) of the write position
        self._lo = math.nan
        self._hi = math.nan
        self._started = clock.monotonic()
        self._no_signal = False
        #: How many times refresh() changed the trace (tests and benchmarks read it).
        self.redraw_count = 0

        colour = colour if colour is not None else style.PLETH
        self._view = pg.PlotWidget(background=style.BACKGROUND)
        self._view.setObjectName("sweepView")
        plot = self._view.getPlotItem()
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.hideAxis("left")
        plot.hideAxis("bottom")
        plot.setContentsMargins(0, 0, 0, 0)
        plot.setXRange(0.0, self._x[-1], padding=0.0)
        plot.setYRange(-Y_MARGIN, 1.0 + Y_MARGIN, padding=0.0)
        plot.vb.setDefaultPadding(0.0)
        self._curve = pg.PlotCurveItem(
            pen=pg.mkPen(colour, width=2), antialias=False, connect="finite", skipFiniteCheck=False
        )
        plot.addItem(self._curve)

        self._title = QLabel(label)
        self._title.setObjectName("sweepLabel")
        self._title.setStyleSheet(f"color: {colour};")
        self._title.setFixedWidth(LABEL_WIDTH)
        self._title.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 8, 16, 8)
        layout.setSpacing(0)
        layout.addWidget(self._title)
        layout.addWidget(self._view, 1)
        self._message = QLabel("NO PLETH", self)
        self._message.setObjectName("sweepMessage")
        self._message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message.hide()
        self._place_overlays()

    # -- API ---------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Draw the samples that arrived since the last call; True if the trace changed."""
        buf = self._waves.get(self._name)
        changed = False
        if buf is not None and len(buf):
            newest = buf.last()
            if newest is not None and (self._last_t is None or newest[0] > self._last_t):
                self._draw_new(buf)
                changed = True
        silent = self._silent()
        if silent and not self._no_signal:
            self._y[:] = np.nan  # an old trace must not pass for a live one
            changed = True
        if silent != self._no_signal:
            self._no_signal = silent
            self._message.setVisible(silent)
            self._message.raise_()
        if changed:
            self._curve.setData(self._x, self._y, connect="finite")
            self.redraw_count += 1
        return changed

    def no_signal(self) -> bool:
        """True while "NO PLETH" is shown (no sample for more than NO_SIGNAL_AFTER_S)."""
        return self._no_signal

    def message_text(self) -> str:
        return self._message.text() if self._no_signal else ""

    def trace(self) -> tuple[FloatArray, FloatArray]:
        """Copies of the displayed x (seconds across the sweep) and normalised y (NaN: blank)."""
        return self._x.copy(), self._y.copy()

    def write_index(self) -> int | None:
        """The x index of the newest drawn sample (None before the first)."""
        return None if self._last_bin < 0 else self._last_bin % self.n_points

    def erase_indices(self) -> npt.NDArray[np.int64]:
        """The x indices of the erase bar (blank) just ahead of the write position."""
        if self._last_bin < 0:
            return np.empty(0, dtype=np.int64)
        return (self._last_bin + 1 + np.arange(self._erase_points)) % self.n_points

    def gain(self) -> tuple[float, float]:
        """The raw values currently drawn at the bottom and the top of the trace."""
        return self._lo, self._hi

    def curve(self) -> pg.PlotCurveItem:
        return self._curve

    # -- drawing -----------------------------------------------------------------------------
    def _silent(self) -> bool:
        last = self._last_t if self._last_t is not None else self._started
        return self._clock.monotonic() - last > NO_SIGNAL_AFTER_S

    def _draw_new(self, buf: RingBuffer) -> None:
        t_all, v_all = buf.arrays()
        if self._origin is not None and float(t_all[-1]) - self._origin < GAIN_WINDOW_S:
            # the first seconds: the scale is still being found, so draw them all again with it
            # (at most GAIN_WINDOW_S of samples), or the very first beats would be clipped spikes
            self._last_t, self._last_bin = None, -1
            self._y[:] = np.nan
            start = int(np.searchsorted(t_all, self._origin, side="left"))
        else:
            start = 0 if self._last_t is None else int(np.searchsorted(t_all, self._last_t, side="right"))
        t, v = t_all[start:], v_all[start:]
        if self._origin is None:
            self._origin = float(t[0])
        self._update_gain(t_all, v_all, float(t[-1]))
        rate = self.points_per_second
        first_bin = math.floor((float(t[0]) - self._origin) * rate)
        last_bin = math.floor((float(t[-1]) - self._origin) * rate)
        # join to the previous sample unless a real gap lies between them
        if self._last_t is not None and float(t[0]) - self._last_t <= MAX_JOIN_S:
            t = np.concatenate(([self._last_t], t))
            v = np.concatenate(([self._last_v], v))
            first_bin = self._last_bin + 1
        else:
            # a break: blank from the old write position up to the new samples
            self._blank(self._last_bin + 1, first_bin)
        bins = np.arange(max(first_bin, last_bin - self.n_points + 1), last_bin + 1)
        bin_t = self._origin + bins / rate
        raw = np.interp(bin_t, t, v, left=np.nan, right=np.nan)
        span = self._hi - self._lo
        self._y[bins % self.n_points] = np.clip((raw - self._lo) / span, 0.0, 1.0)
        self._last_bin = last_bin
        self._last_t = float(t[-1])
        self._last_v = float(v[-1])
        self._blank(last_bin + 1, last_bin + 1 + self._erase_points)

    def _blank(self, start_bin: int, stop_bin: int) -> None:
        """Blank absolute grid indices [start_bin, stop_bin) (at most one whole sweep)."""
        if stop_bin <= start_bin:
            return
        start_bin = max(start_bin, stop_bin - self.n_points)
        self._y[np.arange(start_bin, stop_bin) % self.n_points] = np.nan

    def _update_gain(self, t_all: FloatArray, v_all: FloatArray, newest: float) -> None:
        """Move the scale towards the min/max of the newest GAIN_WINDOW_S of samples."""
        recent = v_all[t_all >= newest - GAIN_WINDOW_S]
        recent = recent[np.isfinite(recent)]
        if not len(recent):
            return
        lo, hi = float(recent.min()), float(recent.max())
        # a flat signal must not be blown up into noise: at least 1 % of the level (or 1 unit)
        min_span = max(1.0, 0.01 * max(abs(lo), abs(hi)))
        if hi - lo < min_span:
            mid = (hi + lo) / 2.0
            lo, hi = mid - min_span / 2.0, mid + min_span / 2.0
        if self._origin is None or newest - self._origin < GAIN_WINDOW_S or math.isnan(self._lo):
            # the first seconds: follow the range directly, or the first beats would be clipped
            self._lo, self._hi = lo, hi
            return
        dt = max(0.0, newest - (self._last_t if self._last_t is not None else newest))
        grow = 1.0 - math.exp(-dt / GAIN_GROW_TAU_S)
        shrink = 1.0 - math.exp(-dt / GAIN_SHRINK_TAU_S)
        self._lo += (grow if lo < self._lo else shrink) * (lo - self._lo)
        self._hi += (grow if hi > self._hi else shrink) * (hi - self._hi)
        if self._hi - self._lo < min_span:
            self._hi = self._lo + min_span

    # -- geometry ----------------------------------------------------------------------------
    @override
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_overlays()

    def _place_overlays(self) -> None:
        self._message.setGeometry(0, 0, self.width(), self.height())
        if self._message.isVisible():
            self._message.raise_()
