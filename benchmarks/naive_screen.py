"""The reference for bench_screen: the console's live content drawn the way a first pyqtgraph tutorial would.

Same content as ui.main_window.MainWindow shows for a session without an alarm engine: the
elapsed and wall clock, a 6-s pleth trace, the SpO2 and pulse trends over the whole session, the
blood-pressure readings as ▼/▲ points on a third trend plot, big SpO2, pulse and BP numerics and a
device line; same colours, same pen widths (2 px pleth, 1 px trends), same 1600×900 window.

What it does the naive (tutorial) way, on every frame of the 30 Hz timer:
- the pleth is a scrolling trace: the new samples are shifted in with ``np.roll`` over a 600-point
  array and the whole array is handed to ``setData`` (every point moves, so the whole plot is
  repainted); no sweep mode, no partial update;
- the trends keep their own arrays, grown with ``np.append`` when a new 1 Hz value arrives, and
  the **whole** 4-h arrays (14,400 points each) are handed to ``setData`` every frame, whether
  or not anything changed; the plots keep pyqtgraph's defaults: auto-range on (the bounds are
  recomputed from all points each frame), no ``setClipToView``, no ``setDownsampling``;
- the BP points are rebuilt from all readings with ``setData`` every frame;
- the numerics and clocks are QLabels whose ``setText`` is called every frame (QLabel itself skips
  an unchanged text, so they repaint only when the value changes);
- pyqtgraph's default configuration (``antialias`` left at its default, False), a
  GraphicsLayoutWidget for the plots, a plain QLabel column for the numbers.

It reads the same Session (the same RingBuffers and `latest` values) that MainWindow reads, so both
screens get the same data feed. It is not a strawman: nothing is slowed on purpose; it is simply
"redraw everything you have each frame", which is what the first working version of a monitor
screen usually is.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from kapmonitor.measurements import Param
from kapmonitor.session import Session
from ui import style
from ui.main_window import format_wall

PLETH_SECONDS = 6.0
PLETH_POINTS = 600  # 6 s of a 100 Hz pleth

FloatArray = npt.NDArray[np.float64]


def _big_label(text: str, colour: str, px: int) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet(f"color: {colour}; font-size: {px}px; font-weight: bold;")
    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return label


class NaiveScreen(QWidget):
    """The tutorial-style live screen: everything re-set every frame (see the module docstring)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("naive pyqtgraph screen")
        self.setStyleSheet(f"background: {style.BACKGROUND}; color: {style.TEXT};")
        self.resize(1600, 900)
        self.frames = 0

        self.clock_label = QLabel()
        self.clock_label.setStyleSheet("font-size: 28px;")
        plots = pg.GraphicsLayoutWidget()
        spo2_colour = style.PARAM_COLOURS[Param.SPO2]
        pulse_colour = style.PARAM_COLOURS[Param.PULSE_RATE]
        self.pleth_plot = plots.addPlot(row=0, col=0, title="Pleth")
        self.pleth_curve = self.pleth_plot.plot(pen=pg.mkPen(style.PLETH, width=2))
        self.spo2_plot = plots.addPlot(row=1, col=0, title="SpO2 %")
        self.spo2_curve = self.spo2_plot.plot(pen=pg.mkPen(spo2_colour, width=1))
        self.pulse_plot = plots.addPlot(row=2, col=0, title="Pulse /min")
        self.pulse_curve = self.pulse_plot.plot(pen=pg.mkPen(pulse_colour, width=1))
        self.bp_plot = plots.addPlot(row=3, col=0, title="BP mmHg")
        self.sys_points = self.bp_plot.plot(pen=None, symbol="t", symbolBrush=style.BP, symbolSize=13)
        self.dia_points = self.bp_plot.plot(pen=None, symbol="t1", symbolBrush=style.BP, symbolSize=13)
        self.bp_plot.setLabel("bottom", "minutes since session start")

        self.spo2_label = _big_label("--", spo2_colour, 150)
        self.pulse_label = _big_label("--", pulse_colour, 150)
        self.bp_label = _big_label("--/--", style.BP, 90)
        self.bp_age_label = QLabel()
        self.bp_age_label.setStyleSheet("font-size: 24px;")
        numbers = QGridLayout()
        for row, (name, label) in enumerate(
            (("SpO2 %", self.spo2_label), ("Pulse /min", self.pulse_label), ("BP mmHg", self.bp_label))
        ):
            numbers.addWidget(QLabel(name), row, 0, Qt.AlignmentFlag.AlignTop)
            numbers.addWidget(label, row, 1)
        numbers.addWidget(self.bp_age_label, 3, 1)
        self.status_label = QLabel()
        self.status_label.setStyleSheet("font-size: 20px;")

        body = QHBoxLayout()
        body.addWidget(plots, 64)
        body.addLayout(numbers, 36)
        root = QVBoxLayout(self)
        root.addWidget(self.clock_label)
        root.addLayout(body, 1)
        root.addWidget(self.status_label)

        # the data, kept by the screen itself as plain numpy arrays (loaded once from the session)
        self.pleth = np.zeros(PLETH_POINTS)
        self.pleth_x = np.linspace(-PLETH_SECONDS, 0.0, PLETH_POINTS)
        self.pleth_last_t = -np.inf
        self.trend_t: dict[Param, FloatArray] = {}
        self.trend_v: dict[Param, FloatArray] = {}
        for param in (Param.SPO2, Param.PULSE_RATE):
            buf = session.trends.get(param)
            t, v = buf.arrays() if buf is not None else (np.zeros(0), np.zeros(0))
            self.trend_t[param], self.trend_v[param] = t, v

    def on_frame(self) -> None:
        """The 30 Hz timer slot: take the new data, then set every plot and label again."""
        self.frames += 1
        session = self.session
        # pleth: scroll the new samples in
        wave = session.waves.get("pleth")
        if wave is not None and len(wave):
            t, v = wave.arrays()
            new = v[t > self.pleth_last_t][-PLETH_POINTS:]
            if len(new):
                self.pleth_last_t = float(t[-1])
                self.pleth = np.roll(self.pleth, -len(new))
                self.pleth[-len(new) :] = new
        self.pleth_curve.setData(self.pleth_x, self.pleth)
        # trends: append the newest value, then redraw the whole session
        origin = session.started_mono
        for param, curve in ((Param.SPO2, self.spo2_curve), (Param.PULSE_RATE, self.pulse_curve)):
            latest = session.latest.get(param)
            t_arr = self.trend_t[param]
            if latest is not None and (len(t_arr) == 0 or latest.mono > t_arr[-1]):
                self.trend_t[param] = np.append(t_arr, latest.mono)
                self.trend_v[param] = np.append(
                    self.trend_v[param], np.nan if latest.value is None else latest.value
                )
            curve.setData((self.trend_t[param] - origin) / 60.0, self.trend_v[param])
        readings = session.bp_readings
        bp_x = [(r.mono - origin) / 60.0 for r in readings]
        self.sys_points.setData(bp_x, [np.nan if r.systolic is None else r.systolic for r in readings])
        self.dia_points.setData(bp_x, [np.nan if r.diastolic is None else r.diastolic for r in readings])
        # numerics
        for param, label in ((Param.SPO2, self.spo2_label), (Param.PULSE_RATE, self.pulse_label)):
            n = session.latest.get(param)
            label.setText("--" if n is None or n.value is None else f"{n.value:.0f}")
        if readings:
            last = readings[-1]
            self.bp_label.setText(f"{last.systolic or 0:.0f}/{last.diastolic or 0:.0f}")
            age_min = (session.clock.monotonic() - last.mono) / 60.0
            self.bp_age_label.setText(f"MAP {last.mean or 0:.0f}   {age_min:.0f} min ago")
        elapsed = int(session.elapsed())
        h, rest = divmod(elapsed, 3600)
        wall = format_wall(session.clock.wall())
        self.clock_label.setText(f"T+{h:02d}:{rest // 60:02d}:{rest % 60:02d}   {wall}")
        self.status_label.setText(
            "   ".join(f"{status.info.name}: {status.state.value}" for status in session.devices.values())
        )
