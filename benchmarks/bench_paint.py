"""Benchmark: notification → painted value, from an emulated device over bleak + bumble to a numeric tile.

The demo's three devices (an oximeter with pleth, a BP cuff, an HR strap) run on the bumble virtual
radio and are reached through bleak by the app's own ui.app.Monitor, shown in the full console
window (ui.main_window.MainWindow, 1600×900, offscreen, its own 30 Hz frame timer) in one qasync
loop, as `kapmonitor --demo` runs. The send side is stamped by bench_devices.Probe (the emulator
handing the bytes to its bumble stack); a notification that changes the number a tile shows
(SpO2 or pulse) is then timed until the tile's number label has finished painting that text (its
paint event, run inside an event filter so the stamp is taken after the paint). p50/p99/max over
every such change in the window; a change still unpainted at the end counts as lost and fails
the run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from kapmonitor.clock import Clock, ScaledClock, SystemClock
from kapmonitor.measurements import Measurement, Param
from kapmonitor.session import Session
from ui.app import Monitor
from ui.demo import Demo
from ui.main_window import MainWindow
from ui.widgets import NumericTile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: benchmarks.*
from benchmarks.bench_devices import Probe, percentile, start_instrumented, wait_for
from benchmarks.common import write_json


class PaintProbe(QObject):
    """Times each tile value change from the notification's send to the end of its paint."""

    def __init__(self, probe: Probe, tiles: Mapping[Param, NumericTile]) -> None:
        super().__init__()
        self.probe = probe
        self.tiles = dict(tiles)
        self.labels: dict[QObject, Param] = {}
        for param, tile in self.tiles.items():
            label = tile.findChild(QLabel, "tileValue")
            assert isinstance(label, QLabel), "the tile's number label"
            self.labels[label] = param
            label.installEventFilter(self)
        #: param → (send time, text) of the newest change not painted yet
        self.waiting: dict[Param, tuple[float, str]] = {}
        self.latencies: dict[Param, list[float]] = {p: [] for p in self.tiles}
        self.superseded = 0  # a change replaced by a newer one before it was painted
        self.changes = 0

    def watch_session(self, session: Session) -> None:
        """Wrap Session.ingest (already wrapped by the Probe, which consumes its pending stamp)."""
        inner = session.ingest

        def ingest(measurements: Iterable[Measurement]) -> None:
            batch = list(measurements)
            pending = self.probe.pending
            before = {p: tile.value_text() for p, tile in self.tiles.items()}
            inner(batch)
            if pending is None or math.isnan(pending[1]) or not self.probe.measuring:
                return
            for param, tile in self.tiles.items():
                text = tile.value_text()
                if text != before[param]:
                    self.changes += 1
                    self.superseded += param in self.waiting
                    self.waiting[param] = (pending[1], text)

        session.ingest = ingest  # type: ignore[method-assign]

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        param = self.labels.get(watched)
        if param is None or event.type() != QEvent.Type.Paint:
            return False
        assert isinstance(watched, QWidget)
        watched.event(event)  # paint now, then stamp
        done = time.perf_counter()
        waiting = self.waiting.get(param)
        if waiting is not None and isinstance(watched, QLabel) and watched.text() == waiting[1]:
            self.latencies[param].append(done - waiting[0])
            del self.waiting[param]
        return True  # painted already


async def run(args: argparse.Namespace, db_path: Path) -> dict[str, Any]:
    clock: Clock = ScaledClock(SystemClock(), args.speed) if args.speed != 1.0 else SystemClock()
    demo = Demo(clock, scenario=args.scenario, seed=args.seed, speed=args.speed, oximeter=args.oximeter)
    monitor = Monitor(clock, db_path, demo)
    window = MainWindow(monitor.session, operator=lambda: "bench")
    window.resize(1600, 900)
    window.show()
    probe, _kinds = await start_instrumented(monitor, demo)
    painter = PaintProbe(probe, window.tiles)
    painter.watch_session(monitor.session)
    await wait_for(lambda: all(s.state.value == "connected" for s in monitor.session.devices.values()), 60.0)
    await asyncio.sleep(args.warmup)
    probe.reset_window()
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(args.minutes * 60.0 / args.speed)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    probe.measuring = False
    await asyncio.sleep(0.5)  # the last changes get painted
    unpainted = len(painter.waiting)
    window.shutdown()
    window.close()
    await monitor.stop()
    everything = [x for xs in painter.latencies.values() for x in xs]
    per_tile = {
        p.value: {"n": len(xs), "p50": 1e3 * statistics.median(xs), "p99": 1e3 * percentile(xs, 0.99)}
        for p, xs in painter.latencies.items()
        if xs
    }
    return {
        "speed": args.speed,
        "oximeter": args.oximeter,
        "scenario_minutes": args.minutes,
        "wall_s": wall,
        "cpu_share": cpu / wall,
        "changes": painter.changes,
        "painted": len(everything),
        "superseded": painter.superseded,
        "unpainted": unpainted,
        "latency_ms": {
            "n": len(everything),
            "p50": 1e3 * statistics.median(everything) if everything else math.nan,
            "p99": 1e3 * percentile(everything, 0.99),
            "max": 1e3 * max(everything) if everything else math.nan,
        },
        "per_tile_ms": per_tile,
    }


def check(r: dict[str, Any]) -> list[str]:
    problems = []
    if r["unpainted"]:
        problems.append(f"{r['unpainted']} value changes never painted")
    if r["painted"] + r["superseded"] != r["changes"]:
        problems.append(f"{r['changes']} changes, {r['painted']} painted, {r['superseded']} superseded")
    if r["painted"] < 20:
        problems.append(f"only {r['painted']} painted changes: too few to measure")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--speed", type=float, default=10.0, help="scenario seconds per wall second")
    parser.add_argument("--minutes", type=float, default=10.0, help="scenario minutes measured")
    parser.add_argument("--warmup", type=float, default=2.0, help="wall seconds after connecting")
    parser.add_argument("--scenario", default="normal")
    parser.add_argument("--oximeter", default="viatom", choices=("plx", "viatom", "berrymed"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH ('-': stdout)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as bench_devices
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)  # the loop ends the run, as in ui.app
    with (
        tempfile.TemporaryDirectory() as tmp,
        asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner,
    ):
        result = runner.run(run(args, Path(tmp) / "bench.sqlite"))
    problems = check(result)
    result["problems"] = problems
    lat = result["latency_ms"]
    print(f"machine: {platform.machine()} python {platform.python_version()}, offscreen, one core")
    print(
        f"notification → tile painted ({result['oximeter']} + cuff + strap, {args.minutes:g} scenario "
        f"min at --speed {args.speed:g} = {result['wall_s']:.1f} s): p50 {lat['p50']:.2f} ms, "
        f"p99 {lat['p99']:.2f} ms, max {lat['max']:.1f} ms over {lat['n']} value changes "
        f"({result['superseded']} superseded before a paint, {result['unpainted']} unpainted); "
        f"whole process {100 * result['cpu_share']:.1f} % of one core"
    )
    write_json(args.json, result)
    if problems:
        raise SystemExit("INVALID RUN: " + "; ".join(problems))


if __name__ == "__main__":
    main()
