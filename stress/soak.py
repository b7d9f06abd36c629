"""Soak (issue 7): the whole demo console for hours at 60x: memory, handles, timers and the loop stay flat.

The console is built as `kapmonitor --demo --speed X` builds it (ui/app.py): the emulated wearables
on the virtual radio (one oximeter, the BP cuff, the HR strap; the console takes one device per
role, so `--oximeter all` runs the Viatom, BerryMed and PLX oximeters in turn, one session each),
a ScaledClock, `Monitor` (three DeviceLinks, Session, alarm engine, SQLite recorder, the 0.25 s
tick), `build_console` (MainWindow with session controls and log, its 33 ms frame timer) and the
alarm sound in its child process on a private PulseAudio null sink. The window is shown offscreen at
1600 x 900, so every frame is painted.

Measured per session at `--warmup-min` scenario minutes (start), half-way (middle) and the end:
VmRSS, Python's allocated blocks (after gc.collect), open fds, OS threads, live QTimers, widgets,
asyncio tasks; after each session is closed, the same with nothing running (idle). Throughout: the
lateness of a 100 ms probe timer on the event loop, frame-timer slots and sweep paints per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable (stress/ is not installed)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication, QGraphicsView

from benchmarks.bench_screen import PaintCounter
from kapmonitor.measurements import DeviceState
from kapmonitor.storage import blood_pressure, open_database
from kapmonitor.storage import waveform as stored_waveform
from tests.audio_support import PulseServer
from ui.app import Monitor, Options, build_console, make_clock
from ui.demo import OXIMETERS, Demo
from ui.sound_process import ProcessAlarmSound

#: Scenario minutes before the "start" snapshot: connections made, buffers and caches warmed up.
WARMUP_MIN = 5.0
#: The responsiveness probe: a precise single-shot timer re-armed every time it fires.
PROBE_INTERVAL_MS = 100
#: Snapshots per session between start and end (RSS and counts; the figures use start/middle/end).
SNAPSHOTS = 24

# -- what "flat" means (the bounds, and why) -------------------------------------------------------
#: RSS growth allowed from the middle to the end of a session, MB. What legitimately grows with the
#: session in that half: the session-long trends the window draws (TrendPlot: 3 curves of up to
#: 14,400 points at 4 h, x/y float64 copies + pyqtgraph's path, < 1 MB per curve at 4 h, half of it
#: in the second half), SQLite's page cache (default 2 MB per connection, bounded) and the WAL
#: index. The ring buffers (kapmonitor/session.py: trends 6 h, waves 2000 samples) are allocated
#: when a parameter first arrives. 8 MB covers these plus malloc fragmentation; a leak of one
#: float per pleth sample at 50 Hz is 12 MB in the second half of 4 h, one object per sample more.
RSS_GROWTH_MB = 8.0
#: Python allocated-block growth allowed from middle to end (after gc.collect). What grows: the
#: emulators' noise-knot cache (devices/emulated/scenario.py, lru_cache of 4096 entries, ~4 blocks
#: each, full after ~40 scenario min: ~1,000-2,500 blocks in the fast variant's second half, none in a
#: 4-h run's) and the session's own lists (a BP reading every 10 min, log lines, device events:
#: hundreds). One float kept per pleth sample is 7,500 (Viatom, 50 Hz) to 15,000 (BerryMed, 100 Hz)
#: blocks in the fast variant's 2.5 scenario minutes of second half, 360,000 in a 4-h run's.
BLOCKS_GROWTH = 5_000
#: fds, OS threads, QTimers, widgets and asyncio tasks at the end of a session may exceed the start
#: by this much (transient: a sound-player pipe being replaced, a link's watchdog waiters).
FD_SLACK = 2
THREAD_SLACK = 1
QTIMER_SLACK = 2
WIDGET_SLACK = 5
TASK_SLACK = 4
#: The event loop: probe lateness p99 and max (ms). The console's frame interval is 33 ms; a p99 of
#: three frames is still a smooth screen; a stall of a second delays alarm signals visibly.
LATENESS_P99_MS = 100.0
LATENESS_MAX_MS = 1000.0
#: Frame-timer slots per wall second: the timer asks for 30; half of that is the least we accept
#: (measured 25 with the emulators' 60x load on a shared 2-core machine).
MIN_FRAMES_PER_S = 15.0


@dataclass
class Snapshot:
    """The process at one moment."""

    label: str
    scenario_min: float
    wall_s: float
    rss_mb: float
    py_blocks: int
    fds: int
    threads: int
    qtimers: int
    widgets: int
    tasks: int


@dataclass
class SessionRun:
    """One console session of the soak and what it recorded."""

    oximeter: str
    session_id: str
    scenario_min: float
    wall_s: float
    snapshots: list[Snapshot] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)
    frames: int = 0
    paints: int = 0
    measured_wall_s: float = 0.0
    #: wall seconds monitor.stop() took (links stopped, last flush, devices and radio closed)
    stop_s: float = 0.0
    reconnects: int = 0
    connected_at_end: bool = False
    max_spo2_gap_s: float = 0.0
    samples: dict[str, int] = field(default_factory=dict)

    def at(self, label: str) -> Snapshot:
        return next(s for s in self.snapshots if s.label == label)


# -- measuring the process -------------------------------------------------------------------------
def rss_mb() -> float:
    """VmRSS of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def os_threads() -> int:
    """Threads of this process (Qt's and Python's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise RuntimeError("no Threads in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def open_paths() -> list[str]:
    """What this process's file descriptors point at (files, pipes, sockets)."""
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the directory's own fd is gone by now
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
    return paths


def live_qtimers(roots: Sequence[QObject], *, scan_heap: bool) -> int:
    """QTimers owned by the application, its top-level widgets and `roots`, plus (`scan_heap`)
    parentless ones Python keeps alive, found by the garbage collector; each counted once."""
    app = QApplication.instance()
    owners: list[QObject] = [*roots]
    if isinstance(app, QApplication):
        owners += [app, *app.topLevelWidgets()]
    found = {id(t): t for owner in owners for t in owner.findChildren(QTimer)}
    if scan_heap:
        found.update({id(o): o for o in gc.get_objects() if isinstance(o, QTimer)})
    return len(found)


def snapshot(
    label: str, scenario_min: float, wall_s: float, roots: Sequence[QObject], *, full: bool = True
) -> Snapshot:
    """The process now. `full`: after a garbage collection and with a heap scan for QTimers (about
    70 ms with the console's heap: at 60x that is 4 s of scenario silence, so only at the start,
    middle and end snapshots); otherwise the cheap counts only (Python blocks then include garbage
    not yet collected, and QTimers only those with a parent)."""
    if full:
        gc.collect()
    app = QApplication.instance()
    widgets = len(app.allWidgets()) if isinstance(app, QApplication) else 0
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:  # no running loop
        tasks = 0
    return Snapshot(
        label=label,
        scenario_min=round(scenario_min, 2),
        wall_s=round(wall_s, 2),
        rss_mb=round(rss_mb(), 2),
        py_blocks=sys.getallocatedblocks(),
        fds=open_fds(),
        threads=os_threads(),
        qtimers=live_qtimers(roots, scan_heap=full),
        widgets=widgets,
        tasks=tasks,
    )


class LatenessProbe(QObject):
    """How late the event loop runs a timer: a 100 ms precise single-shot, re-armed on each firing.

    `skip()` drops the next measurement (the soak's own snapshot ran in between)."""

    def __init__(self, interval_ms: int = PROBE_INTERVAL_MS) -> None:
        super().__init__()
        self.interval_ms = interval_ms
        self.late_ms: list[float] = []
        self._armed_at = 0.0
        self._skip = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._fired)

    def start(self) -> None:
        self._armed_at = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def skip(self) -> None:
        self._skip = True

    def _fired(self) -> None:
        now = time.perf_counter()
        if not self._skip:
            self.late_ms.append(max(0.0, (now - self._armed_at) * 1000.0 - self.interval_ms))
        self._skip = False
        self._armed_at = now
        self._timer.start()


# -- one session ------------------------------------------------------------------------------------
def demo_options(db: Path, oximeter: str, speed: float, scenario: str, seed: int) -> Options:
    """What `kapmonitor --demo --speed X --oximeter K` asks for."""
    return Options(
        command="monitor",
        demo=True,
        db=db,
        scenario=scenario,
        seed=seed,
        speed=speed,
        minutes=0.0,
        after=0.0,
        out=None,
        headless=False,
        verbose=False,
        oximeter=oximeter,
        operator="soak",
    )


async def run_session(
    opts: Options,
    hours: float,
    sound: ProcessAlarmSound,
    warmup_min: float,
    on_progress: Callable[[str], None],
    *,
    screenshot: Path | None = None,
) -> SessionRun:
    """One console session for `hours` of scenario time; snapshots at start, middle and end;
    `screenshot`: the window at the end, as a PNG."""
    clock = make_clock(opts)
    demo = Demo(clock, scenario=opts.scenario, seed=opts.seed, speed=opts.speed, oximeter=opts.oximeter)
    monitor = Monitor(clock, opts.db, demo, operator=opts.operator)
    window = build_console(opts, monitor, sound=sound)
    window.resize(1600, 900)
    window.show()
    painted = PaintCounter()  # the pleth plot's viewport: where the sweep's pixels are painted
    view = window.sweep.findChild(QGraphicsView, "sweepView")
    assert view is not None
    view.viewport().installEventFilter(painted)
    frames = [0]

    def count_frame() -> None:
        frames[0] += 1

    window.frame_timer.timeout.connect(count_frame)
    probe = LatenessProbe()
    roots: list[QObject] = [sound, probe]
    t0_wall = time.perf_counter()
    t0 = clock.monotonic()
    total_min = hours * 60.0
    run = SessionRun(opts.oximeter, monitor.session_id, total_min, 0.0)

    def scenario_min() -> float:
        return (clock.monotonic() - t0) / 60.0

    def take(label: str) -> None:
        full = label in ("start", "middle", "end")
        snap = snapshot(label, scenario_min(), time.perf_counter() - t0_wall, roots, full=full)
        if full:
            probe.skip()  # the snapshot's gc and heap scan are the soak's cost, not the console's
        run.snapshots.append(snap)
        on_progress(
            f"  {opts.oximeter} {label:>6} T+{snap.scenario_min:6.1f} min: RSS {snap.rss_mb:.1f} MB, "
            f"{snap.py_blocks} blocks, {snap.fds} fds, {snap.threads} threads, {snap.qtimers} QTimers, "
            f"{snap.tasks} tasks"
        )

    await monitor.start()
    probe.start()
    marks = [warmup_min + (total_min - warmup_min) * k / SNAPSHOTS for k in range(SNAPSHOTS + 1)]
    middle = SNAPSHOTS // 2
    measured_from = 0.0
    frames_from = paints_from = 0
    try:
        for k, mark in enumerate(marks):
            while scenario_min() < mark:
                await asyncio.sleep(0.05)
            label = {0: "start", middle: "middle", SNAPSHOTS: "end"}.get(k, f"s{k}")
            take(label)
            if k == 0:  # responsiveness and frame rate are measured after the warm-up
                probe.late_ms.clear()
                measured_from = time.perf_counter()
                frames_from, paints_from = frames[0], painted.paints
        run.measured_wall_s = time.perf_counter() - measured_from
        run.frames, run.paints = frames[0] - frames_from, painted.paints - paints_from
        run.lateness_ms = list(probe.late_ms)
        run.reconnects = sum(max(0, link.connections - 1) for link in monitor.links)
        addresses = {d.address.upper() for d in (demo.oximeter, demo.cuff, demo.strap) if d is not None}
        states = {a.upper(): s.state for a, s in monitor.session.devices.items()}
        run.connected_at_end = all(states.get(a) is DeviceState.CONNECTED for a in addresses)
        if screenshot is not None:
            # after the end snapshot's gc pause (~70 ms wall = 4 scenario s at 60x) the sweep shows
            # NO PLETH for a moment (2 s without samples): let the stream catch up first
            await asyncio.sleep(0.3)
            window.render_png(screenshot)
    finally:
        probe.stop()
        window.close()
        stopping = time.perf_counter()
        await monitor.stop()
        run.stop_s = time.perf_counter() - stopping
        window.deleteLater()
    run.wall_s = time.perf_counter() - t0_wall
    run.samples, run.max_spo2_gap_s = recorded(opts.db, monitor.session_id)
    return run


def recorded(db_path: Path, session_id: str) -> tuple[dict[str, int], float]:
    """What the session left in its database: numerics rows, pleth samples, BP readings; and the
    longest gap between stored SpO2 values (scenario seconds)."""
    db = open_database(db_path)
    try:
        numerics = int(
            db.execute("SELECT count(*) FROM numerics WHERE session_id = ?", (session_id,)).fetchone()[0]
        )
        spo2 = [
            float(r[0])
            for r in db.execute(
                "SELECT mono FROM numerics WHERE session_id = ? AND param = 'spo2' ORDER BY mono",
                (session_id,),
            ).fetchall()
        ]
        pleth = len(stored_waveform(db, session_id, "pleth")[1]) if has_pleth(db, session_id) else 0
        bp = len(blood_pressure(db, session_id))
    finally:
        db.close()
    gap = max((b - a for a, b in itertools.pairwise(spo2)), default=float("inf"))
    return {"numerics": numerics, "pleth": pleth, "bp": bp}, gap


def has_pleth(db: Any, session_id: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM waveform_chunks WHERE session_id = ? AND name = 'pleth' LIMIT 1", (session_id,)
    ).fetchone()
    return row is not None


# -- the whole soak ---------------------------------------------------------------------------------
@dataclass
class SoakResult:
    hours: float
    speed: float
    oximeters: list[str]
    wall_s: float
    sessions: list[SessionRun]
    idle: list[Snapshot]
    #: session database files still open (in /proc/self/fd) after their session ended
    still_open: list[str] = field(default_factory=list)


def soak(
    hours: float,
    speed: float,
    oximeters: Sequence[str],
    *,
    scenario: str = "normal",
    seed: int = 1,
    workdir: Path,
    warmup_min: float = WARMUP_MIN,
    on_progress: Callable[[str], None] = print,
    screenshots: Path | None = None,
) -> SoakResult:
    """Run one console session per oximeter kind in turn, each for `hours` of scenario time."""
    if warmup_min >= hours * 60.0:
        raise ValueError(f"the warm-up ({warmup_min} scenario min) must be shorter than the session")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)  # the loop ends the soak, as in the console
    pulse = PulseServer(workdir / "pulse")
    pulse.start()
    sessions: list[SessionRun] = []
    idle: list[Snapshot] = []
    still_open: list[str] = []
    t0 = time.perf_counter()

    async def main() -> None:
        sound = ProcessAlarmSound(environment=pulse.env())  # the console's sound, on the null sink
        try:
            await wait_ready(sound)
            idle.append(snapshot("idle-before", 0.0, time.perf_counter() - t0, [sound]))
            for kind in oximeters:
                opts = demo_options(workdir / f"soak-{kind}.sqlite", kind, speed, scenario, seed)
                png = screenshots / f"soak-{kind}.png" if screenshots is not None else None
                run = await run_session(opts, hours, sound, warmup_min, on_progress, screenshot=png)
                sessions.append(run)
                await asyncio.sleep(0.5)  # let deleteLater() and the links' last callbacks run
                idle.append(snapshot(f"idle-after-{kind}", 0.0, time.perf_counter() - t0, [sound]))
                still_open.extend(p for p in open_paths() if p.startswith(str(opts.db)))
        finally:
            sound.close()

    try:
        with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
            runner.run(main())
    finally:
        pulse.stop()
        app.setQuitOnLastWindowClosed(quit_on_close)
    return SoakResult(hours, speed, list(oximeters), time.perf_counter() - t0, sessions, idle, still_open)


async def wait_ready(sound: ProcessAlarmSound, timeout_s: float = 20.0) -> None:
    """Until the sound child answered (it found the null sink); fail after `timeout_s`."""
    ready = asyncio.Event()
    sound.ready.connect(ready.set)
    async with asyncio.timeout(timeout_s):
        await ready.wait()
    if not sound.check_device():
        raise RuntimeError("the alarm sound found no audio output on the PulseAudio null sink")


# -- judging ----------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def failures(result: SoakResult, rss_growth_mb: float = RSS_GROWTH_MB) -> list[str]:
    """Every broken property, in words with the figures."""
    out: list[str] = []
    for run in result.sessions:
        out += session_failures(run, rss_growth_mb)
    # after a session is closed, what it opened is given back: nothing above its own start (Qt's
    # thread pool keeps up to two pooled threads, each with an eventfd, so idle-before is no baseline)
    for run, after in zip(result.sessions, result.idle[1:], strict=False):
        start = run.at("start")
        for name in ("fds", "threads", "qtimers", "widgets", "tasks"):
            if getattr(after, name) > getattr(start, name):
                out.append(
                    f"{run.oximeter}: {getattr(after, name)} {name} after the session closed, more than "
                    f"the {getattr(start, name)} while it ran"
                )
        # widgets: what the process had before the first session (a test run's earlier tests may
        # leave some in the QApplication) is the baseline; a closed console leaves none of its own
        if after.widgets > result.idle[0].widgets:
            left = after.widgets - result.idle[0].widgets
            out.append(f"{run.oximeter}: {left} widgets still alive after the window closed")
    if (run_count := len(result.idle) - 1) >= 3:  # sessions in turn: none leaves anything behind
        first, last = result.idle[1], result.idle[-1]
        for name, slack in (("fds", FD_SLACK), ("threads", THREAD_SLACK), ("qtimers", QTIMER_SLACK)):
            if getattr(last, name) > getattr(first, name) + slack:
                out.append(
                    f"{name} grow from session to session: {getattr(first, name)} after the first of "
                    f"{run_count}, {getattr(last, name)} after the last (slack {slack})"
                )
    out += [f"{path} still open after its session ended" for path in result.still_open]
    return out


def session_failures(run: SessionRun, rss_growth_mb: float) -> list[str]:
    who = run.oximeter
    start, middle, end = run.at("start"), run.at("middle"), run.at("end")
    out: list[str] = []
    if end.rss_mb - middle.rss_mb > rss_growth_mb:
        out.append(
            f"{who}: RSS grew {end.rss_mb - middle.rss_mb:.1f} MB from middle to end "
            f"({middle.rss_mb:.1f} → {end.rss_mb:.1f} MB; bound {rss_growth_mb:g} MB)"
        )
    if end.py_blocks - middle.py_blocks > BLOCKS_GROWTH:
        out.append(
            f"{who}: Python heap grew {end.py_blocks - middle.py_blocks} blocks from middle to end "
            f"({middle.py_blocks} → {end.py_blocks}; bound {BLOCKS_GROWTH})"
        )
    for name, slack in (
        ("fds", FD_SLACK),
        ("threads", THREAD_SLACK),
        ("qtimers", QTIMER_SLACK),
        ("widgets", WIDGET_SLACK),
        ("tasks", TASK_SLACK),
    ):
        first, last = getattr(start, name), getattr(end, name)
        peak = max(getattr(s, name) for s in run.snapshots)
        if last > first + slack or peak > first + 2 * slack + 2:
            out.append(f"{who}: {name} leak: {first} at start, {last} at end, peak {peak} (slack {slack})")
    p99, worst = percentile(run.lateness_ms, 0.99), max(run.lateness_ms, default=float("inf"))
    if not run.lateness_ms or p99 > LATENESS_P99_MS or worst > LATENESS_MAX_MS:
        out.append(
            f"{who}: event loop late: p99 {p99:.0f} ms, max {worst:.0f} ms over {len(run.lateness_ms)} "
            f"probes (bounds {LATENESS_P99_MS:g} / {LATENESS_MAX_MS:g} ms)"
        )
    fps = run.frames / run.measured_wall_s if run.measured_wall_s else 0.0
    if fps < MIN_FRAMES_PER_S:
        out.append(f"{who}: {fps:.1f} frames/s (bound {MIN_FRAMES_PER_S:g})")
    if run.samples.get("pleth", 0) and run.paints < run.frames / 4:  # a PLX oximeter sends no pleth
        out.append(f"{who}: the pleth sweep was painted {run.paints} times in {run.frames} frames")
    # Reconnects and the longest SpO2 gap are reported, not judged: at 60x the links' 15 s staleness
    # watchdog (design.md) is 0.25 s of wall time, so one stall of a loaded machine drops a link.
    # The devices did deliver through the session: ~5 numerics per scenario second are stored.
    if run.samples.get("numerics", 0) < 0.9 * run.scenario_min * 60.0:
        out.append(
            f"{who}: only {run.samples.get('numerics', 0)} numerics stored in {run.scenario_min:g} min"
        )
    return out


def summary(result: SoakResult, problems: list[str]) -> dict[str, Any]:
    """The JSON the benchmark report reads; top-level figures span the whole run (first session's
    start, the run's middle snapshot, last session's end)."""
    timeline = [s for run in result.sessions for s in run.snapshots]
    first, last = result.sessions[0].at("start"), result.sessions[-1].at("end")
    middle = result.sessions[0].at("middle") if len(result.sessions) == 1 else timeline[len(timeline) // 2]
    lateness = [x for run in result.sessions for x in run.lateness_ms]
    frames = sum(r.frames for r in result.sessions)
    measured = sum(r.measured_wall_s for r in result.sessions)
    return {
        "hours": result.hours,
        "speed": result.speed,
        "oximeters": result.oximeters,
        "wall_s": round(result.wall_s, 1),
        "rss_mb": {"start": first.rss_mb, "middle": middle.rss_mb, "end": last.rss_mb},
        "fds": {"start": first.fds, "end": last.fds},
        "threads": {"start": first.threads, "end": last.threads},
        "qtimers": {"start": first.qtimers, "end": last.qtimers},
        "tasks": {"start": first.tasks, "end": last.tasks},
        "widgets": {"start": first.widgets, "end": last.widgets},
        "py_blocks": {"start": first.py_blocks, "middle": middle.py_blocks, "end": last.py_blocks},
        "loop_lateness_ms": {
            "p50": round(statistics.median(lateness), 2) if lateness else None,
            "p99": round(percentile(lateness, 0.99), 2) if lateness else None,
            "max": round(max(lateness), 2) if lateness else None,
            "probes": len(lateness),
        },
        "frames_per_s": round(frames / measured, 1) if measured else 0.0,
        "sweep_paints_per_s": round(sum(r.paints for r in result.sessions) / measured, 1)
        if measured
        else 0.0,
        "samples_recorded": sum(sum(r.samples.values()) for r in result.sessions),
        "bounds": {
            "rss_growth_middle_to_end_mb": RSS_GROWTH_MB,
            "py_blocks_growth_middle_to_end": BLOCKS_GROWTH,
            "lateness_p99_ms": LATENESS_P99_MS,
            "lateness_max_ms": LATENESS_MAX_MS,
            "min_frames_per_s": MIN_FRAMES_PER_S,
        },
        "sessions": [
            {
                **{k: v for k, v in asdict(run).items() if k != "lateness_ms"},
                "lateness_ms": {
                    "p50": round(statistics.median(run.lateness_ms), 2) if run.lateness_ms else None,
                    "p99": round(percentile(run.lateness_ms, 0.99), 2) if run.lateness_ms else None,
                    "max": round(max(run.lateness_ms), 2) if run.lateness_ms else None,
                },
            }
            for run in result.sessions
        ],
        "idle": [asdict(s) for s in result.idle],
        "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}",
        "ok": not problems,
        "failures": problems,
    }


def report(data: dict[str, Any]) -> str:
    rss, late = data["rss_mb"], data["loop_lateness_ms"]
    lines = [
        f"soak: {data['hours']:g} h at {data['speed']:g}x per session, oximeter(s) "
        f"{', '.join(data['oximeters'])} + BP cuff + HR strap, full window offscreen; "
        f"{data['wall_s']:.0f} s wall ({data['machine']})",
        f"  RSS start {rss['start']:.1f} MB, middle {rss['middle']:.1f} MB, end {rss['end']:.1f} MB "
        f"(bound middle → end +{RSS_GROWTH_MB:g} MB per session)",
        f"  Python blocks {data['py_blocks']['start']} → {data['py_blocks']['middle']} → "
        f"{data['py_blocks']['end']}",
        f"  fds {data['fds']['start']} → {data['fds']['end']}, threads {data['threads']['start']} → "
        f"{data['threads']['end']}, QTimers {data['qtimers']['start']} → {data['qtimers']['end']}, "
        f"widgets {data['widgets']['start']} → {data['widgets']['end']}, "
        f"asyncio tasks {data['tasks']['start']} → {data['tasks']['end']}",
        f"  event loop lateness (100 ms probe): p50 {late['p50']} ms, p99 {late['p99']} ms, "
        f"max {late['max']} ms over {late['probes']} probes",
        f"  frames {data['frames_per_s']}/s, sweep paints {data['sweep_paints_per_s']}/s; "
        f"{data['samples_recorded']:,} samples recorded",
    ]
    for s in data["sessions"]:
        lines.append(
            f"  {s['oximeter']}: {s['wall_s']:.0f} s wall (stop {s['stop_s']:.1f} s), "
            f"{s['reconnects']} reconnects, samples {s['samples']}, "
            f"longest SpO2 gap {s['max_spo2_gap_s']:.1f} s, lateness {s['lateness_ms']}"
        )
    lines.append("OK" if data["ok"] else "FAILED:\n  - " + "\n  - ".join(data["failures"]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours", type=float, default=4.0, help="scenario hours per session")
    parser.add_argument("--speed", type=float, default=60.0, help="scenario seconds per wall second")
    parser.add_argument(
        "--oximeter",
        choices=[*OXIMETERS, "all"],
        default="viatom",
        help="the oximeter kind (the console takes one); all: each kind in turn, one session each",
    )
    parser.add_argument("--scenario", default="normal")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--warmup-min", type=float, default=WARMUP_MIN, help="scenario minutes before 'start'"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument(
        "--screenshots", type=Path, default=None, help="folder for the window at each session's end (PNG)"
    )
    args = parser.parse_args(argv)
    kinds = list(OXIMETERS) if args.oximeter == "all" else [args.oximeter]
    with tempfile.TemporaryDirectory(prefix="kapmonitor-soak-") as tmp:
        result = soak(
            args.hours,
            args.speed,
            kinds,
            scenario=args.scenario,
            seed=args.seed,
            workdir=Path(tmp),
            warmup_min=args.warmup_min,
            on_progress=lambda line: print(line, flush=True),
            screenshots=args.screenshots,
        )
    problems = failures(result)
    data = summary(result, problems)
    if args.json is not None:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    print(report(data), flush=True)
    return 0 if data["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
