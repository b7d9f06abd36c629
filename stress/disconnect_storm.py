"""Disconnect storm: an emulated HR strap drops and returns N times at random; alarms, reconnects, the record.

The strap (devices/emulated/hr_strap.py) talks to a real DeviceLink through bleak with the bumble
backend on the virtual radio; the link feeds a real Session with an AlarmEngine and a Recorder on a
SQLite file, on a ScaledClock running `--speed` times real time, ticked as ui/app.py ticks. The
seeded plan drops the strap N times, half by a clean disconnect and half by a silent vanish (no
disconnect event: only the link's data watchdog can tell), after a random number of samples, and
brings it back after a random time away. Then, from the recorded session:

- every drop raised its technical alarm (device disconnected or no data) within ALARM_WITHIN_S of
  the last sample before it (reference/alarms.md: "no data from a device for 15 s");
- every drop is one "lost" device event, and every return one "connected" event of the same device;
- no sample of any of the strap's parameters (heart rate, battery) is stored twice (same
  parameter and time), none lies inside a gap (between "lost" and the next "connected"), and each
  parameter's sample times increase in record order;
- the live trend has a break (NaN) in every gap, so no line bridges it, and so has the replay of
  the recorded session (kapmonitor.replay), whose markers show the lost and connected events.

Run: `.venv/bin/python stress/disconnect_storm.py --drops 100 [--seed N] [--speed X]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import random
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repo root importable (stress/ is not installed)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices._ble.bumble_backend import bumble_backends
from devices._ble.link import BACKOFF_S, WATCHDOG_PERIOD_S, DeviceLink
from devices.emulated.hr_strap import EmulatedHeartRateStrap
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS
from devices.registry import HR_STRAP, specs_for_role
from kapmonitor.alarms import AlarmEngine, TechnicalCondition
from kapmonitor.clock import FakeClock, ScaledClock, SystemClock
from kapmonitor.measurements import DeviceState, Param
from kapmonitor.replay import MarkerKind, ReplayClock, ReplaySession
from kapmonitor.session import Session
from kapmonitor.storage import Database, Recorder, alarm_events, device_events, open_database
from tests.session_wait import until as until_event

DEFAULT_SEED = 20261203
DEFAULT_DROPS = 100
#: scenario seconds per wall second (emulator and console clock alike, as `kapmonitor --speed`).
#: A stall of the loop lasts `speed` times longer in scenario time and delays the alarm as much:
#: at 10x a 50 ms stall is 0.5 s, the link's slack (devices/_ble/link.py WATCHDOG_SLACK_S).
DEFAULT_SPEED = 10.0
#: reference/alarms.md, KAP defaults: "no data from a device for 15 s" is a technical alarm
ALARM_WITHIN_S = 15.0
#: the console ticks every 0.25 s (ui/app.py TICK_PERIOD_S): watchdog, alarms, the recorder's flush
TICK_S = 0.25
#: the strap is connected for this many of its 1 Hz samples before a drop (random in the range) ...
CONNECTED_SAMPLES = (3, 30)
#: ... and away for this many scenario seconds (shorter than the watchdog's threshold too, so a
#: silent strap may be back on the air before the link has noticed it went)
AWAY_S = (2.0, 30.0)
#: wall seconds any one awaited step may take before the run is declared stuck
STEP_TIMEOUT_S = 60.0
ADV_MS = 20.0
HR = str(Param.HEART_RATE)


@dataclass(frozen=True, slots=True)
class Drop:
    """One planned drop: how (silent: no disconnect event), after how many samples, how long away."""

    silent: bool
    connected_samples: int
    away_s: float


@dataclass(slots=True)
class Happened:
    """What the driver did for one drop, in scenario (console clock) seconds."""

    drop: Drop
    vanished: float
    returned: float
    device_id: str = ""


@dataclass(slots=True)
class StormRun:
    """One storm's inputs and what the console ended with; `check` reads the record."""

    seed: int
    speed: float
    address: str
    db_path: Path
    session_id: str
    happened: list[Happened]
    connections: int
    trend_t: np.ndarray
    trend_v: np.ndarray
    wall_s: float
    #: the worst lateness of the console's tick, wall seconds (LoopLag)
    loop_lag_s: float = 0.0


@dataclass(slots=True)
class Gap:
    lost: float
    connected: float


@dataclass(slots=True)
class Report:
    """Per-drop figures (scenario seconds) and every property that did not hold."""

    detection_s: list[float] = field(default_factory=list)
    reconnect_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    samples: int = 0
    duplicates: int = 0
    misplaced: int = 0


def plan(drops: int, seed: int) -> list[Drop]:
    """The seeded storm: half clean disconnects, half silent vanishes, in random order."""
    rng = random.Random(seed)
    kinds = [i % 2 == 1 for i in range(drops)]
    rng.shuffle(kinds)
    return [Drop(silent, rng.randint(*CONNECTED_SAMPLES), round(rng.uniform(*AWAY_S), 2)) for silent in kinds]


async def until(session: Session, condition: Callable[[], bool], timeout: float = STEP_TIMEOUT_S) -> None:
    """Wait (on session events, never a blind sleep) until `condition` holds."""
    await until_event(session, condition, timeout)


def _at_least(count: Callable[[], int], n: int) -> bool:
    return count() >= n


def _connected(link: DeviceLink, state: Callable[[], DeviceState | None], connections: int) -> bool:
    return link.connections == connections and state() is DeviceState.CONNECTED


@dataclass(slots=True)
class LoopLag:
    """The worst lateness (wall seconds) of the console's tick: a stall of the loop, `speed` times
    longer in scenario time, delays the watchdogs like a slow console would (not a check: a figure
    that tells a late alarm caused by the machine from one caused by the monitor)."""

    worst_s: float = 0.0


async def _tick(session: Session, speed: float, lag: LoopLag) -> None:
    loop = asyncio.get_running_loop()
    period = TICK_S / speed
    while True:
        session.tick()
        before = loop.time()
        await asyncio.sleep(period)
        lag.worst_s = max(lag.worst_s, loop.time() - before - period)


async def run_storm(db_path: Path, drops: Sequence[Drop], seed: int, speed: float) -> StormRun:
    """Drive the storm on a fresh virtual radio and recording; the checks come after (`check`)."""
    radio = VirtualRadio()
    await radio.start()
    try:
        return await _storm(radio, db_path, drops, seed, speed)
    finally:
        await radio.close()


async def _storm(
    radio: VirtualRadio, db_path: Path, drops: Sequence[Drop], seed: int, speed: float
) -> StormRun:
    wall = SystemClock()
    started = wall.monotonic()
    clock = ScaledClock(SystemClock(), speed)
    strap = EmulatedHeartRateStrap(
        radio, SCENARIOS["normal"](seed), speed=speed, advertising_interval_ms=ADV_MS
    )
    await strap.start()
    db = open_database(db_path)
    recorder = Recorder(db, clock)
    recorder.begin_session(kind="demo")
    session = Session(clock, recorder, alarms=AlarmEngine(clock))
    scanner, client = bumble_backends(radio)
    # the link's own timings, in scenario seconds as they would pass in real time
    link = DeviceLink(
        specs_for_role(HR_STRAP),
        session,
        clock,
        scanner_backend=scanner,
        client_backend=client,
        role=HR_STRAP,
        scan_timeout_s=10.0 / speed,
        backoff_s=tuple(b / speed for b in BACKOFF_S),
        watchdog_period_s=WATCHDOG_PERIOD_S / speed,
    )
    lag = LoopLag()
    tasks = [asyncio.create_task(link.run()), asyncio.create_task(_tick(session, speed, lag))]
    happened: list[Happened] = []
    try:
        address = strap.address

        def state() -> DeviceState | None:
            status = session.devices.get(address)
            return None if status is None else status.state

        def packets() -> int:
            status = session.devices.get(address)
            return 0 if status is None else status.counters.packets

        await until(session, lambda: link.connections == 1 and state() is DeviceState.CONNECTED)
        for n, drop in enumerate(drops, start=1):
            base = packets()
            enough = base + drop.connected_samples
            await until(session, functools.partial(_at_least, packets, enough))
            record = Happened(drop, clock.monotonic(), 0.0)
            await strap.vanish(silent=drop.silent)
            await asyncio.sleep(drop.away_s / speed)  # the scenario: away for away_s
            record.returned = clock.monotonic()
            await strap.come_back()
            await until(session, functools.partial(_connected, link, state, n + 1))
            record.device_id = link.device_id
            happened.append(record)
        last = packets()  # the strap streams on after the last return
        await until(session, lambda: packets() >= last + 2)
        t, v = session.trends[Param.HEART_RATE].arrays()
    finally:
        link.stop()
        await asyncio.wait_for(tasks[0], STEP_TIMEOUT_S)
        tasks[1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[1]
        await strap.stop()
        recorder.flush()
        sid = recorder.session_id
        if sid is not None:
            recorder.end_session()
        db.close()
    assert sid is not None
    return StormRun(
        seed,
        speed,
        address,
        db_path,
        sid,
        happened,
        link.connections,
        t.copy(),
        v.copy(),
        wall.monotonic() - started,
        lag.worst_s,
    )


# ------------------------------------------------------------------------------------------ checks
def check(run: StormRun) -> Report:
    """Read the recorded session back and check every drop; the report lists what failed."""
    report = Report()
    db = open_database(run.db_path)
    try:
        gaps = _gaps(db, run, report)
        samples = _samples(db, run)
        _check_samples(samples, gaps, report)
        hr = samples.get(HR, (np.empty(0), np.empty(0)))[0]
        _check_alarms(db, run, gaps, hr, report)
        _check_replay(db, run, gaps, hr, report)
    finally:
        db.close()
    _check_reconnects(run, gaps, report)
    _check_trend((run.trend_t, run.trend_v), gaps, hr, report, what="live")
    return report


def _gaps(db: Database, run: StormRun, report: Report) -> list[Gap]:
    """The (lost, next connected) spells of the strap, from its device events in log order."""
    gaps: list[Gap] = []
    lost: float | None = None
    connected = 0
    for e in device_events(db, run.session_id):
        if e.device != run.address or e.state is None:
            continue
        if e.state is DeviceState.LOST and lost is None:
            lost = e.mono
        elif e.state is DeviceState.LOST:
            report.failures.append(f"a second 'lost' at {e.mono:.1f} s without a 'connected' between")
        elif e.state is DeviceState.CONNECTED:
            connected += 1
            if lost is not None:
                gaps.append(Gap(lost, e.mono))
                lost = None
    if len(gaps) != len(run.happened):
        report.failures.append(f"{len(run.happened)} drops but {len(gaps)} lost→connected gaps recorded")
    if connected != len(run.happened) + 1:
        report.failures.append(f"{connected} 'connected' events for {len(run.happened)} returns + the first")
    return gaps


def _samples(db: Database, run: StormRun) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per parameter, the strap's sample times (mono, t_utc arrays) in record (seq) order."""
    rows = db.execute(
        "SELECT param, mono, t_utc FROM numerics WHERE session_id = ? AND device = ? ORDER BY seq",
        (run.session_id, run.address),
    ).fetchall()
    by_param: dict[str, list[tuple[float, float]]] = {}
    for param, mono, utc in rows:
        by_param.setdefault(str(param), []).append((float(mono), float(utc)))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for param, times in by_param.items():
        a = np.array(times, dtype=np.float64).reshape(-1, 2)
        out[param] = (a[:, 0], a[:, 1])
    return out


def _check_samples(
    samples: dict[str, tuple[np.ndarray, np.ndarray]], gaps: Sequence[Gap], report: Report
) -> None:
    if HR not in samples:
        report.failures.append("no heart-rate sample recorded")
    for param, (mono, utc) in samples.items():
        twice = mono.size - np.unique(mono).size
        report.samples += mono.size
        report.duplicates += twice
        if twice:
            report.failures.append(f"{twice} {param} sample(s) stored twice (same time)")
        if not (np.diff(mono) > 0).all() or not (np.diff(utc) > 0).all():
            report.failures.append(f"{param} sample times do not increase in record order")
        for gap in gaps:
            inside = int(((mono > gap.lost) & (mono < gap.connected)).sum())
            report.misplaced += inside
            if inside:
                report.failures.append(
                    f"{inside} {param} sample(s) inside the gap {gap.lost:.1f}-{gap.connected:.1f} s"
                )


def _check_alarms(db: Database, run: StormRun, gaps: Sequence[Gap], mono: np.ndarray, report: Report) -> None:
    keys = {f"{c.value}@{run.address}" for c in (TechnicalCondition.DISCONNECTED, TechnicalCondition.NO_DATA)}
    raised = [e.mono for e in alarm_events(db, run.session_id) if e.event == "raised" and e.alarm_key in keys]
    for n, (did, gap) in enumerate(zip(run.happened, gaps, strict=False), start=1):
        kind = "silent" if did.drop.silent else "clean"
        before = mono[mono <= did.vanished + 1e-6]
        alarm = next((m for m in raised if did.vanished <= m <= gap.connected), None)
        if alarm is None or before.size == 0:
            report.failures.append(f"drop {n} ({kind}): no technical alarm before the strap was back")
            continue
        delay = alarm - float(before[-1])
        report.detection_s.append(delay)
        if delay > ALARM_WITHIN_S:
            report.failures.append(f"drop {n} ({kind}): alarm {delay:.1f} s after the last sample")


def _check_reconnects(run: StormRun, gaps: Sequence[Gap], report: Report) -> None:
    if run.connections != len(run.happened) + 1:
        report.failures.append(f"{run.connections} connections for {len(run.happened)} returns + the first")
    for n, (did, gap) in enumerate(zip(run.happened, gaps, strict=False), start=1):
        if did.device_id != run.address:
            report.failures.append(f"drop {n}: reconnected to {did.device_id}, not {run.address}")
        if not did.vanished <= gap.lost <= gap.connected:
            report.failures.append(
                f"drop {n}: gap {gap.lost:.1f}-{gap.connected:.1f} s is not after the drop"
            )
        report.reconnect_s.append(gap.connected - max(did.returned, gap.lost))


def _check_trend(
    trend: tuple[np.ndarray, np.ndarray], gaps: Sequence[Gap], mono: np.ndarray, report: Report, *, what: str
) -> None:
    """The trend is broken (a NaN point) between the last sample before and the first after a gap."""
    for n, gap in enumerate(gaps, start=1):
        before, after = mono[mono <= gap.lost], mono[mono >= gap.connected]
        if before.size == 0 or after.size == 0:
            report.failures.append(f"gap {n}: no samples on both sides")
            continue
        trend_t, trend_v = trend
        span = (trend_t >= before[-1]) & (trend_t <= after[0])
        if not np.isnan(trend_v[span]).any():
            report.failures.append(f"gap {n}: the {what} trend bridges it (no break)")


def _check_replay(db: Database, run: StormRun, gaps: Sequence[Gap], mono: np.ndarray, report: Report) -> None:
    """The replay of the record breaks its heart-rate trend in each gap and marks lost and connected."""
    replay = ReplaySession(db, run.session_id, ReplayClock(FakeClock()))
    replay.seek(replay.duration)
    _check_trend(replay.trends[Param.HEART_RATE].arrays(), gaps, mono, report, what="replayed")
    marks = {
        (round(m.mono, 6), m.text.split()[0])
        for m in replay.markers_of([MarkerKind.DEVICE])
        if m.device == run.address and m.text
    }
    for n, gap in enumerate(gaps, start=1):
        for mono_at, state in ((gap.lost, "lost"), (gap.connected, "connected")):
            if (round(mono_at, 6), state) not in marks:
                report.failures.append(f"gap {n}: the replay has no '{state}' marker at {mono_at:.1f} s")


# ------------------------------------------------------------------------------------------ script
def summary(run: StormRun, report: Report) -> str:
    silent = sum(d.drop.silent for d in run.happened)
    lines = [
        f"seed {run.seed}, speed {run.speed:g}x: {len(run.happened)} drops ({silent} silent, "
        f"{len(run.happened) - silent} clean), {run.connections} connections, {run.wall_s:.0f} s wall",
    ]
    if report.detection_s:
        worst = int(np.argmax(report.detection_s))
        kind = "silent" if run.happened[worst].drop.silent else "clean"
        lines.append(
            f"alarm after the last sample: worst {report.detection_s[worst]:.2f} s "
            f"(drop {worst + 1}, {kind}), "
            f"median {float(np.median(report.detection_s)):.2f} s (limit {ALARM_WITHIN_S:g} s)"
        )
    lines.append(
        f"samples: {report.samples} recorded, {report.duplicates} stored twice, "
        f"{report.misplaced} inside a gap"
    )
    lines.append(
        f"worst console tick lateness: {run.loop_lag_s * 1000:.0f} ms wall "
        f"(= {run.loop_lag_s * run.speed:.2f} s of scenario time at {run.speed:g}x)"
    )
    if report.reconnect_s:
        lines.append(
            f"reconnect after return (scenario s): median {float(np.median(report.reconnect_s)):.2f}, "
            f"worst {max(report.reconnect_s):.2f}"
        )
    lines.extend(f"FAIL {f}" for f in report.failures)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=DEFAULT_DROPS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--speed", type=float, default=DEFAULT_SPEED)
    args = parser.parse_args(argv)
    print(f"seed {args.seed}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = asyncio.run(
            run_storm(Path(tmp) / "storm.sqlite", plan(args.drops, args.seed), args.seed, args.speed)
        )
        report = check(run)
    print(summary(run, report))
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
