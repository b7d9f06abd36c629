"""Benchmark: notification → alarm engine → alarm bar painted, on the full console window (offscreen).

Each round feeds one SpO2 sample below 85 % (the high-priority rule with no condition delay,
alarms.md) through Session.ingest, exactly as a bleak notification callback does, and times until
the alarm bar shows the alarm and has been repainted. Then the value recovers and the latched alarm
is acknowledged, so the next round raises a fresh alarm. The sound path (play() → first sample on
the audio sink) is measured by tests/ui/test_alarm_sound.py on a PulseAudio null sink.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication

from kapmonitor.alarms import AlarmEngine, kap_defaults
from kapmonitor.clock import FakeClock
from kapmonitor.measurements import DeviceState, Numeric, Param
from kapmonitor.session import Session
from ui.main_window import MainWindow

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: benchmarks.*
from benchmarks.common import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH ('-': stdout)")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    clock = FakeClock()
    engine = AlarmEngine(clock, kap_defaults(), hold_off_s=0)
    session = Session(clock, alarms=engine)
    window = MainWindow(session, operator=lambda: "bench")
    window.frame_timer.stop()
    window.resize(1600, 900)
    window.show()
    app.processEvents()
    bar = window.alarm_bar
    assert bar is not None
    session.device_state("OXI", DeviceState.CONNECTED)
    delays: list[float] = []
    for _ in range(args.rounds):
        clock.advance(1.0)
        session.ingest([Numeric(Param.SPO2, 97.0, clock.monotonic(), clock.wall(), "OXI")])
        engine.acknowledge("all", "bench")
        clock.advance(1.0)
        session.tick()
        app.processEvents()
        assert bar.main_text() == "No active alarms", bar.main_text()
        t0 = time.perf_counter()
        session.ingest([Numeric(Param.SPO2, 80.0, clock.monotonic(), clock.wall(), "OXI")])
        bar.repaint()  # paint now, as the next event-loop pass would
        t1 = time.perf_counter()
        assert bar.main_text().startswith("*** SpO2 < 85 %"), bar.main_text()
        delays.append((t1 - t0) * 1000.0)
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))]
    print(f"machine: {platform.machine()} python {platform.python_version()}, offscreen")
    print(
        f"notification → alarm bar painted ({args.rounds} rounds): p50 {statistics.median(delays):.2f} ms, "
        f"p99 {p99:.2f} ms, max {delays[-1]:.2f} ms"
    )
    window.shutdown()
    write_json(
        args.json,
        {
            "rounds": args.rounds,
            "alarm_bar_painted_ms": {"p50": statistics.median(delays), "p99": p99, "max": delays[-1]},
        },
    )


if __name__ == "__main__":
    main()
