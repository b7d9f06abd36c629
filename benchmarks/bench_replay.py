"""Benchmark: replay of a 4-hour session: open, seek p50/p99, 60x playback per frame; model and window."""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.*, benchmarks.*

from benchmarks.common import write_json
from kapmonitor.clock import FakeClock
from kapmonitor.replay import ReplayClock, ReplaySession
from kapmonitor.storage import list_sessions, migration_names, open_database
from tests.recorded_session import SessionSpec, build_recorded_session

FRAME_S = 1 / 30  # the UI's ~30 Hz frame timer


def spec_for(hours: float) -> SessionSpec:
    """Pleth 100 Hz, 1 Hz SpO2 and pulse, BP every 10 min, a 20-s drop-out every 5 min (~300 events)."""
    return SessionSpec(
        duration_s=hours * 3600.0,
        drop_at_s=240.0,
        drop_for_s=20.0,
        drop_every_s=300.0,
        flush_interval_s=60.0,  # building only: one transaction a minute (the recording is the same)
        checkpoints=(),
    )


def cached_session(hours: float, cache: Path) -> tuple[Path, str, float]:
    """The benchmark session file, built once per spec (seconds spent building, 0 if cached)."""
    spec = spec_for(hours)
    # rebuilt when the spec, the builder or the schema changes
    builder = (Path(__file__).resolve().parents[1] / "tests" / "recorded_session.py").read_bytes()
    key = hashlib.sha256(repr((spec, migration_names())).encode() + builder).hexdigest()[:12]
    path = cache / f"replay-{hours:g}h-{key}.sqlite"
    built = 0.0
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
        t0 = time.perf_counter()
        build_recorded_session(partial, spec)
        built = time.perf_counter() - t0
        partial.replace(path)
    db = open_database(path)
    try:
        session_id = list_sessions(db)[0].id
    finally:
        db.close()
    return path, session_id, built


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def first_screen(replay: ReplaySession) -> int:
    """Touch everything the first screen shows; returns a count so nothing is optimised away."""
    n = sum(len(trend.arrays()[0]) for trend in replay.trends.values())
    n += sum(len(wave.arrays()[0]) for wave in replay.waves.values())
    n += sum(len(v[0]) for v in replay.overview().values())
    return n + len(replay.markers)


def run(path: Path, session_id: str, seeks: int, frames: int, opens: int) -> dict[str, float]:
    open_ms: list[float] = []
    for _ in range(opens):
        t0 = time.perf_counter()
        db = open_database(path)
        replay = ReplaySession(db, session_id, ReplayClock(FakeClock()))
        first_screen(replay)
        open_ms.append((time.perf_counter() - t0) * 1000)
        db.close()

    db = open_database(path)
    base = FakeClock()
    clock = ReplayClock(base)
    replay = ReplaySession(db, session_id, clock)
    rng = random.Random(6)
    seek_ms: list[float] = []
    for _ in range(seeks):
        position = rng.uniform(0.0, replay.duration)
        t0 = time.perf_counter()
        replay.seek(position)
        first_screen_after_seek = sum(len(w.arrays()[0]) for w in replay.waves.values())
        first_screen_after_seek += sum(len(t.arrays()[0]) for t in replay.trends.values())
        seek_ms.append((time.perf_counter() - t0) * 1000)

    # 60x playback: each ~33 ms frame moves 2 s of session; the UI then reads what changed
    replay.seek(600.0)
    clock.set_speed(60.0)
    clock.play()
    versions: dict[int, int] = {}
    frame_ms: list[float] = []
    for _ in range(frames):
        base.advance(FRAME_S)
        t0 = time.perf_counter()
        replay.tick()
        for buf in [*replay.trends.values(), *replay.waves.values()]:
            if versions.get(id(buf)) != buf.version:
                versions[id(buf)] = buf.version
                buf.arrays()
        frame_ms.append((time.perf_counter() - t0) * 1000)
    db.close()
    del first_screen_after_seek
    return {
        "duration_h": replay.duration / 3600,
        "markers": len(replay.markers),
        "open_first_frame_ms_first": open_ms[0],
        "open_first_frame_ms_median": statistics.median(open_ms),
        "seek_ms_p50": _pct(seek_ms, 0.50),
        "seek_ms_p99": _pct(seek_ms, 0.99),
        "seek_ms_max": max(seek_ms),
        "frame_60x_ms_mean": statistics.fmean(frame_ms),
        "frame_60x_ms_p99": _pct(frame_ms, 0.99),
        "frame_60x_ms_max": max(frame_ms),
        "frames": frames,
    }


def run_ui(path: Path, session_id: str, seeks: int, frames: int) -> dict[str, float]:
    """The replay window itself (monitor, timeline, review panel) offscreen at 1920x1080: open to
    first paint, timeline overview drawing, seek + paint, and 60x frames + paint (event loop passes)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from ui.replay_window import ReplayWindow
    from ui.review_panel import Reviewer

    app = QApplication.instance() or QApplication(sys.argv[:1])
    t0 = time.perf_counter()
    db = open_database(path)
    base = FakeClock()
    clock = ReplayClock(base)
    window = ReplayWindow(ReplaySession(db, session_id, clock), clock, db=db, reviewer=Reviewer("bench"))
    window._timer.stop()  # the benchmark drives the frames itself
    window.resize(1920, 1080)
    window.show()
    app.processEvents()
    window.grab()  # everything painted once
    open_ms = (time.perf_counter() - t0) * 1000

    timeline_ms: list[float] = []
    for _ in range(5):
        t0 = time.perf_counter()
        window.timeline.rebuild()
        window.timeline.repaint()
        timeline_ms.append((time.perf_counter() - t0) * 1000)

    rng = random.Random(7)
    seek_ms: list[float] = []
    for _ in range(seeks):
        position = rng.uniform(0.0, window.replay.duration)
        t0 = time.perf_counter()
        window.seek(position)
        window.monitor.on_frame()
        app.processEvents()
        seek_ms.append((time.perf_counter() - t0) * 1000)

    window.seek(600.0)
    window.monitor.frame_timer.stop()
    clock.set_speed(60.0)
    clock.play()
    frame_ms: list[float] = []
    for _ in range(frames):
        base.advance(FRAME_S)
        t0 = time.perf_counter()
        window.frame()
        window.monitor.on_frame()
        app.processEvents()  # paints what changed: sweep, numerics, the timeline's cursor columns
        frame_ms.append((time.perf_counter() - t0) * 1000)
    renders = window.timeline.renders
    window.shutdown()
    window.close()
    db.close()
    return {
        "ui_open_first_paint_ms": open_ms,
        "ui_timeline_overview_ms_median": statistics.median(timeline_ms),
        "ui_seek_ms_p50": _pct(seek_ms, 0.50),
        "ui_seek_ms_p99": _pct(seek_ms, 0.99),
        "ui_frame_60x_ms_mean": statistics.fmean(frame_ms),
        "ui_frame_60x_ms_p99": _pct(frame_ms, 0.99),
        "ui_timeline_renders_during_playback": float(renders - 6),  # 1 at open + 5 timed above
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--seeks", type=int, default=100)
    parser.add_argument("--frames", type=int, default=900, help="60x frames (900 = 30 s of playback)")
    parser.add_argument("--opens", type=int, default=5)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "kapmonitor-bench",
        help="where the built session file is kept between runs",
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH ('-': stdout)")
    parser.add_argument("--no-ui", action="store_true", help="only the replay model, not the window")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, like the GUI thread
    path, session_id, built = cached_session(args.hours, args.cache)
    result = run(path, session_id, args.seeks, args.frames, args.opens)
    if not args.no_ui:
        result.update(run_ui(path, session_id, min(args.seeks, 50), min(args.frames, 300)))
    result["build_s"] = built
    result["file_mb"] = path.stat().st_size / 1e6
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(
        f"{result['duration_h']:.1f}-h session ({result['file_mb']:.1f} MB, {result['markers']:.0f} markers"
        + (f", built in {built:.0f} s" if built else ", cached")
        + f") at {path}"
    )
    print(
        f"open to first frame: {result['open_first_frame_ms_first']:.0f} ms first, "
        f"{result['open_first_frame_ms_median']:.0f} ms median of {args.opens}"
    )
    print(
        f"seek ({args.seeks} random positions, frame state + trends + 10-s pleth window): "
        f"p50 {result['seek_ms_p50']:.2f} ms, p99 {result['seek_ms_p99']:.2f} ms, "
        f"max {result['seek_ms_max']:.2f} ms"
    )
    print(
        f"60x playback ({args.frames} frames of 33 ms): mean {result['frame_60x_ms_mean']:.2f} ms, "
        f"p99 {result['frame_60x_ms_p99']:.2f} ms, max {result['frame_60x_ms_max']:.2f} ms per frame"
    )
    if "ui_open_first_paint_ms" in result:
        print(
            f"replay window (1920x1080: monitor, timeline, review): open to first paint "
            f"{result['ui_open_first_paint_ms']:.0f} ms; timeline overview drawn in "
            f"{result['ui_timeline_overview_ms_median']:.1f} ms (once; "
            f"{result['ui_timeline_renders_during_playback']:.0f} redraws during playback); "
            f"seek + paint p50 {result['ui_seek_ms_p50']:.1f} ms, p99 {result['ui_seek_ms_p99']:.1f} ms; "
            f"60x frame + paint mean {result['ui_frame_60x_ms_mean']:.2f} ms, "
            f"p99 {result['ui_frame_60x_ms_p99']:.2f} ms"
        )
    write_json(args.json, result)


if __name__ == "__main__":
    main()
