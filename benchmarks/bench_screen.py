"""Benchmark: frame time and CPU of the full 1600×900 console (pleth sweep, 4-h trends, BP) offscreen."""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QGraphicsView, QWidget

from kapmonitor.clock import FakeClock
from kapmonitor.measurements import (
    BloodPressure,
    DeviceInfo,
    DeviceState,
    Numeric,
    Param,
    Waveform,
)
from kapmonitor.session import Session
from ui.main_window import MainWindow

OXI = "AA:BB:CC:00:00:01"
CUFF = "AA:BB:CC:00:00:03"
PLETH_HZ = 100.0
FPS = 30.0


class Feeder:
    """Plays the devices in fake time: 100 Hz pleth in 3-4-sample packets, 1 Hz SpO2/pulse, battery."""

    def __init__(self, session: Session, clock: FakeClock) -> None:
        self.session = session
        self.clock = clock
        self.pleth_sent = 0
        self.pleth_origin = clock.monotonic()
        self.next_numeric = math.floor(clock.monotonic()) + 1.0

    def step(self, dt: float) -> None:
        """Advance the fake clock by dt and deliver what the devices would have sent meanwhile."""
        self.clock.advance(dt)
        now = self.clock.monotonic()
        due = math.floor((now - self.pleth_origin) * PLETH_HZ) - self.pleth_sent
        if due > 0:
            k = self.pleth_sent + np.arange(due)
            phase = (k / PLETH_HZ * 72.0 / 60.0) % 1.0
            wave = 20 + 60 * np.exp(-0.5 * ((phase - 0.2) / 0.06) ** 2)
            first = self.pleth_origin + self.pleth_sent / PLETH_HZ
            samples = tuple(int(v) for v in wave)
            self.session.ingest([Waveform("pleth", PLETH_HZ, samples, first, self.clock.wall(), OXI)])
            self.pleth_sent += due
        if now >= self.next_numeric:
            self.next_numeric += 1.0
            wall = self.clock.wall()
            i = int(now)
            self.session.ingest(
                [
                    Numeric(Param.SPO2, 96.0 + i % 3, now, wall, OXI),
                    Numeric(Param.PULSE_RATE, 70.0 + i % 7, now, wall, OXI),
                ]
            )


class PaintCounter(QObject):
    """Counts the paint events a widget receives (proof that the timed frames really paint)."""

    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


def build(hours: float) -> tuple[QApplication, FakeClock, Session, MainWindow, Feeder]:
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    clock = FakeClock()
    session = Session(clock)
    session.register_device(DeviceInfo(OXI, "Bench oximeter", "pulse-oximeter"))
    session.device_state(OXI, DeviceState.CONNECTED)
    session.register_device(DeviceInfo(CUFF, "Bench BP cuff", "blood-pressure"))
    session.device_state(CUFF, DeviceState.CONNECTED)
    # preload the trends: `hours` of 1 Hz SpO2 and pulse, a BP reading every 15 min
    seconds = int(hours * 3600)
    rng = np.random.default_rng(1)
    spo2 = np.round(97 + np.cumsum(rng.normal(0, 0.05, seconds)).clip(-6, 2))
    pulse = np.round(75 + np.cumsum(rng.normal(0, 0.2, seconds)).clip(-20, 30))
    for i in range(seconds):
        clock.advance(1.0)
        now, wall = clock.monotonic(), clock.wall()
        session.ingest(
            [
                Numeric(Param.SPO2, float(spo2[i]), now, wall, OXI),
                Numeric(Param.PULSE_RATE, float(pulse[i]), now, wall, OXI),
            ]
        )
        if i % 900 == 0:
            session.ingest([BloodPressure(120.0 + i % 11, 80.0 + i % 5, 93.0, 72.0, now, wall, CUFF)])
    session.ingest([Numeric(Param.BATTERY, 80.0, clock.monotonic(), clock.wall(), OXI)])
    window = MainWindow(session)
    window.frame_timer.stop()  # the benchmark drives the frames itself
    window.resize(1600, 900)
    window.show()
    feeder = Feeder(session, clock)
    for _ in range(int(FPS * 7)):  # warm up: fill a whole sweep, draw the trends once
        feeder.step(1.0 / FPS)
        window.on_frame()
        app.processEvents()
    return app, clock, session, window, feeder


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=4.0, help="trend length preloaded (hours)")
    parser.add_argument("--frames", type=int, default=900, help="frames timed back to back")
    parser.add_argument("--seconds", type=float, default=10.0, help="wall seconds of the 30 Hz CPU run")
    parser.add_argument("--grabs", type=int, default=30, help="full-window grab() renders timed")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    t0 = time.perf_counter()
    app, _clock, session, window, feeder = build(args.hours)
    setup = time.perf_counter() - t0
    dt = 1.0 / FPS

    # 1. frame time: the timer slot (new pleth samples; trends only on a new 1 Hz sample) plus the
    #    event-loop pass that paints what it marked dirty (the real path: update() → paint event);
    #    back to back, no waiting. Device data arrives between frames and is not timed.
    frames: list[float] = []
    trend_frames: list[float] = []
    counter = PaintCounter()
    sweep_view = window.sweep.findChild(QWidget, "sweepView")
    assert isinstance(sweep_view, QGraphicsView)
    sweep_view.viewport().installEventFilter(counter)
    for _ in range(args.frames):
        feeder.step(dt)
        redraws = window.trend.redraw_count
        start = time.perf_counter()
        window.on_frame()
        app.processEvents()
        elapsed = time.perf_counter() - start
        (trend_frames if window.trend.redraw_count != redraws else frames).append(elapsed)
    sweep_paints = counter.paints
    # 1b. the same with repaint() of the whole window each frame (every widget repainted)
    full: list[float] = []
    for _ in range(args.frames // 3):
        feeder.step(dt)
        start = time.perf_counter()
        window.on_frame()
        window.repaint()
        app.processEvents()
        full.append(time.perf_counter() - start)
    # 2. a full repaint of every widget, as grab() renders it (the worst case: nothing cached)
    grabs: list[float] = []
    for _ in range(args.grabs):
        feeder.step(dt)
        start = time.perf_counter()
        window.on_frame()
        window.grab()
        grabs.append(time.perf_counter() - start)

    # 3. CPU at 30 Hz: a real timer feeds the devices and runs the frame, for `seconds` of wall time
    def tick() -> None:
        feeder.step(dt)
        window.on_frame()

    timer = QTimer()
    timer.setInterval(round(1000 / FPS))
    timer.timeout.connect(tick)
    ticks_before = window.sweep.redraw_count
    cpu0, wall0 = time.process_time(), time.perf_counter()
    timer.start()
    QTimer.singleShot(round(args.seconds * 1000), app.quit)
    app.exec()  # the real event loop: idle between frames, as in the app
    timer.stop()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    fps = (window.sweep.redraw_count - ticks_before) / wall

    ms = 1000.0
    all_frames = frames + trend_frames
    print(f"machine: {platform.machine()} python {platform.python_version()}, offscreen, one core")
    print(
        f"setup: {args.hours:g} h of 1 Hz SpO2+pulse ({len(session.trends[Param.SPO2])} points each), "
        f"{len(session.bp_readings)} BP readings, built in {setup:.1f} s"
    )
    print(
        f"frame (on_frame + processEvents: paints what changed), {len(all_frames)} frames: "
        f"p50 {statistics.median(all_frames) * ms:.2f} ms, p99 {percentile(all_frames, 99) * ms:.2f} ms"
    )
    print(f"  the sweep's view painted {sweep_paints} times in those {len(all_frames)} frames")
    print(
        f"  sweep-only frames ({len(frames)}): p50 {statistics.median(frames) * ms:.2f} ms, "
        f"p99 {percentile(frames, 99) * ms:.2f} ms"
    )
    if trend_frames:
        print(
            f"  frames with a trend redraw ({len(trend_frames)}, one a second): "
            f"p50 {statistics.median(trend_frames) * ms:.2f} ms, max {max(trend_frames) * ms:.2f} ms"
        )
    print(
        f"frame with repaint() of the whole window ({len(full)}): p50 {statistics.median(full) * ms:.2f} ms, "
        f"p99 {percentile(full, 99) * ms:.2f} ms"
    )
    print(f"full-window grab() ({len(grabs)}): p50 {statistics.median(grabs) * ms:.2f} ms")
    print(f"30 Hz for {wall:.1f} s: {fps:.1f} sweep frames/s, CPU {100.0 * cpu / wall:.1f} % of one core")
    window.shutdown()
    window.close()


if __name__ == "__main__":
    main()
