"""Benchmark: three emulated devices at once, bumble → bleak → parsers → Session → SQLite (ui.app.Monitor).

The demo's devices (an oximeter with pleth, a BP cuff measuring every 10 scenario minutes, an HR
strap) run on the virtual radio; the console is the app's own Monitor (three DeviceLinks, the KAP
alarm rules, the recorder with WAL + synchronous=FULL, the 4 Hz session tick). Measured over a
window of scenario time at `--speed`, after all three are connected:

- CPU share of one core of the whole process, and CPU seconds per scenario minute. The emulators
  and both ends of the bumble stack run in this process too, so this is an upper bound of what the
  console costs; "console work" is the time inside the console's own code (decode + Session.ingest
  in the notification callbacks, and Session.tick with the recorder's flush).
- notification → session latency: from the emulator handing the bytes to its bumble stack to
  Session.ingest having returned for them, per notification (p50/p99/max).
- samples/s sustained (numerics, pleth samples, BP readings).
- completeness: every notification sent to a subscriber was decoded; every sample the Session
  took is in the database after the session is closed (counts and pleth checksum).
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
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from devices._ble.link import DeviceLink
from devices.driver import Decoder, DriverSpec, reset_decoder
from devices.emulated.peripheral import EmulatedPeripheral
from kapmonitor.clock import Clock, ScaledClock, SystemClock
from kapmonitor.measurements import BloodPressure, DeviceState, Measurement, Numeric, Waveform
from kapmonitor.session import Session
from ui.app import Monitor
from ui.demo import Demo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: benchmarks.*
from benchmarks.common import write_json

#: A notification sent this long (wall seconds) before the end may still be on its way.
IN_FLIGHT_S = 1.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Probe:
    """Timestamps on both sides of the radio, and the time spent in the console's own code."""

    #: (device address, bytes) → send times (perf_counter), oldest first
    sent: dict[tuple[str, bytes], deque[float]] = field(default_factory=lambda: defaultdict(deque))
    sent_count: int = 0
    decoded_count: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    console_s: float = 0.0
    tick_s: float = 0.0
    numerics: int = 0
    pleth: int = 0
    pleth_sum: int = 0
    bp: int = 0
    #: window counters (reset at the start of the measured window)
    window_samples: int = 0
    window_notifications: int = 0
    measuring: bool = False
    pending: tuple[str, float, float] | None = None  # (device, sent, decode started)

    def reset_window(self) -> None:
        self.latencies.clear()
        self.console_s = self.tick_s = 0.0
        self.window_samples = self.window_notifications = 0
        self.measuring = True

    # -- the emulators' side ---------------------------------------------------------------
    def stamp(self, address: str, value: bytes) -> Callable[[bool], None]:
        """Note a send of `value` now; call the result with False if nobody received it."""
        key = (address.upper(), bytes(value))
        self.sent[key].append(time.perf_counter())

        def done(delivered: bool) -> None:
            if delivered:
                self.sent_count += 1
            else:
                self.sent[key].pop()

        return done

    def watch_emulator(self, emulator: EmulatedPeripheral) -> None:
        """Stamp every notification (and, for the cuff, indication) the emulator sends."""
        notify = emulator._notify_subscribers

        async def timed_notify(characteristic: Any, value: bytes) -> int:
            done = self.stamp(emulator.address, value)
            sent = await notify(characteristic, value)
            done(sent > 0)
            return sent

        emulator._notify_subscribers = timed_notify  # type: ignore[method-assign]
        indicate = getattr(emulator, "_indicate", None)
        if indicate is not None:

            async def timed_indicate(value: bytes, t: float | None) -> bool:
                done = self.stamp(emulator.address, value)
                delivered: bool = await indicate(value, t)
                done(delivered)
                return delivered

            emulator._indicate = timed_indicate  # type: ignore[attr-defined]

    # -- the console's side ----------------------------------------------------------------
    def wrap_decoder(self, decode: Decoder) -> Decoder:
        return TimedDecoder(self, decode)

    def wrap_spec(self, spec: DriverSpec) -> DriverSpec:
        subs = tuple(replace(s, decode=self.wrap_decoder(s.decode)) for s in spec.subscriptions)
        return replace(spec, subscriptions=subs)

    def watch_links(self, links: Iterable[DeviceLink]) -> None:
        for link in links:
            link.specs = tuple(self.wrap_spec(s) for s in link.specs)
            link.spec = link.specs[0]

    def watch_session(self, session: Session, kinds: Callable[[str], str]) -> None:
        ingest, tick = session.ingest, session.tick

        def timed_ingest(measurements: Iterable[Measurement]) -> None:
            batch = list(measurements)
            ingest(batch)
            end = time.perf_counter()
            self._count(batch)
            pending, self.pending = self.pending, None
            if pending is None or not self.measuring:
                return  # a battery read, or before the window
            device, sent, started = pending
            self.console_s += end - started
            self.window_notifications += 1
            self.window_samples += samples_in(batch)
            if not math.isnan(sent):  # the send was stamped
                self.latencies[kinds(device)].append(end - sent)

        def timed_tick() -> None:
            start = time.perf_counter()
            tick()
            if self.measuring:
                self.tick_s += time.perf_counter() - start

        session.ingest = timed_ingest  # type: ignore[method-assign]
        session.tick = timed_tick  # type: ignore[method-assign]

    def _count(self, batch: Sequence[Measurement]) -> None:
        for m in batch:
            if isinstance(m, Numeric):
                self.numerics += 1
            elif isinstance(m, Waveform):
                self.pleth += len(m.samples)
                self.pleth_sum += sum(m.samples)
            elif isinstance(m, BloodPressure):
                self.bp += 1

    def unmatched(self, before: float) -> int:
        """Notifications sent to a subscriber before `before` (perf_counter) that were never decoded."""
        return sum(1 for times in self.sent.values() for t in times if t < before)


class TimedDecoder:
    """A driver's decoder that notes when its bytes were sent and when decoding started."""

    def __init__(self, probe: Probe, decode: Decoder) -> None:
        self.probe = probe
        self.decode = decode

    def reset(self) -> None:
        reset_decoder(self.decode)  # the link resets stream decoders at each connection

    def __call__(self, data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
        probe = self.probe
        start = time.perf_counter()
        times = probe.sent.get((device.upper(), bytes(data)))
        sent = times.popleft() if times else float("nan")
        probe.pending = (device, sent, start)
        probe.decoded_count += 1
        return self.decode(data, device, mono, wall)


def samples_in(batch: Sequence[Measurement]) -> int:
    return sum(len(m.samples) if isinstance(m, Waveform) else 1 for m in batch)


async def wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll (this is a benchmark, not a test) until `condition` holds."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


def database_counts(db_path: Path, session_id: str) -> dict[str, int]:
    from kapmonitor.storage import open_database

    db = open_database(db_path)
    try:
        numerics = db.execute("SELECT count(*) FROM numerics WHERE session_id = ?", (session_id,)).fetchone()[
            0
        ]
        blobs = db.execute(
            "SELECT samples FROM waveform_chunks WHERE session_id = ? AND name = 'pleth'", (session_id,)
        ).fetchall()
        pleth = np.concatenate([np.frombuffer(b, dtype="<i2") for (b,) in blobs]) if blobs else np.zeros(0)
        bp = db.execute("SELECT count(*) FROM blood_pressure WHERE session_id = ?", (session_id,)).fetchone()[
            0
        ]
    finally:
        db.close()
    return {"numerics": numerics, "pleth": int(pleth.size), "pleth_sum": int(pleth.sum()), "bp": bp}


async def start_instrumented(monitor: Monitor, demo: Demo) -> tuple[Probe, dict[str, str]]:
    """Start the monitor and put a Probe on its links, the demo's emulators and its session;
    returns the probe and the emulators' kinds by upper-case address."""
    probe = Probe()
    await monitor.start()  # the link tasks exist but have not run yet: instrument them now
    probe.watch_links(monitor.links)
    devices = [d for d in (demo.oximeter, demo.cuff, demo.strap) if d is not None]
    kinds = {d.address.upper(): type(d).__name__.removeprefix("Emulated") for d in devices}
    for device in devices:
        probe.watch_emulator(device)
    probe.watch_session(monitor.session, lambda address: kinds.get(address.upper(), address))
    return probe, kinds


async def run(args: argparse.Namespace, db_path: Path) -> dict[str, Any]:
    clock: Clock = ScaledClock(SystemClock(), args.speed) if args.speed != 1.0 else SystemClock()
    demo = Demo(clock, scenario=args.scenario, seed=args.seed, speed=args.speed, oximeter=args.oximeter)
    monitor = Monitor(clock, db_path, demo)
    probe, kinds = await start_instrumented(monitor, demo)

    def all_connected() -> bool:
        states = {a.upper(): s.state for a, s in monitor.session.devices.items()}
        return all(states.get(a) is DeviceState.CONNECTED for a in kinds)

    t_connect = time.perf_counter()
    await wait_for(all_connected, 60.0)
    connect_s = time.perf_counter() - t_connect
    await asyncio.sleep(args.warmup)
    window_wall = args.minutes * 60.0 / args.speed
    probe.reset_window()
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(window_wall)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    probe.measuring = False
    still_connected = all_connected()
    end = time.perf_counter()
    await asyncio.sleep(IN_FLIGHT_S)
    lost = probe.unmatched(end)
    malformed = sum(link.malformed for link in monitor.links)
    reconnects = sum(link.connections - 1 for link in monitor.links)
    session_bp = len(monitor.session.bp_readings)
    await monitor.stop()
    stored = database_counts(db_path, monitor.session_id)
    all_latencies = [x for xs in probe.latencies.values() for x in xs]
    return {
        "speed": args.speed,
        "scenario": args.scenario,
        "oximeter": args.oximeter,
        "scenario_minutes": args.minutes,
        "wall_s": wall,
        "connect_s": connect_s,
        "cpu_s": cpu,
        "cpu_share": cpu / wall,
        "cpu_s_per_scenario_min": cpu / args.minutes,
        "console_share": (probe.console_s + probe.tick_s) / wall,
        "console_s_per_scenario_min": (probe.console_s + probe.tick_s) / args.minutes,
        "notifications": probe.window_notifications,
        "samples": probe.window_samples,
        "samples_per_wall_s": probe.window_samples / wall,
        "samples_per_scenario_s": probe.window_samples / (args.minutes * 60.0),
        "latency_ms": {
            kind: {
                "n": len(xs),
                "p50": 1e3 * statistics.median(xs),
                "p99": 1e3 * percentile(xs, 0.99),
                "max": 1e3 * max(xs),
            }
            for kind, xs in sorted(probe.latencies.items())
            if xs
        },
        "latency_all_ms": {
            "n": len(all_latencies),
            "p50": 1e3 * statistics.median(all_latencies),
            "p99": 1e3 * percentile(all_latencies, 0.99),
            "max": 1e3 * max(all_latencies),
        },
        "sent_to_subscribers": probe.sent_count,
        "decoded": probe.decoded_count,
        "lost_notifications": lost,
        "malformed": malformed,
        "reconnects": reconnects,
        "still_connected": still_connected,
        "ingested": {
            "numerics": probe.numerics,
            "pleth": probe.pleth,
            "pleth_sum": probe.pleth_sum,
            "bp": session_bp,
        },
        "in_database": stored,
    }


def check(result: dict[str, Any]) -> list[str]:
    """What makes the run invalid: data lost on the way or in the database, links that dropped."""
    problems = []
    if result["lost_notifications"]:
        problems.append(f"{result['lost_notifications']} notifications sent but never decoded")
    if result["ingested"] != result["in_database"]:
        problems.append(f"session took {result['ingested']} but the database holds {result['in_database']}")
    if result["malformed"]:
        problems.append(f"{result['malformed']} malformed packets")
    if result["reconnects"] or not result["still_connected"]:
        problems.append(f"links dropped ({result['reconnects']} reconnects)")
    return problems


def report(r: dict[str, Any]) -> str:
    lat = r["latency_all_ms"]
    per_kind = ", ".join(
        f"{k} p50 {v['p50']:.1f}/p99 {v['p99']:.1f} ms (n={v['n']})" for k, v in r["latency_ms"].items()
    )
    lines = [
        f"three devices ({r['oximeter']} oximeter with pleth, BP cuff, HR strap), scenario "
        f"{r['scenario']}, {r['scenario_minutes']:g} scenario min at --speed {r['speed']:g} = "
        f"{r['wall_s']:.1f} s wall (all connected after {r['connect_s']:.1f} s)",
        f"  CPU (whole process, emulators and both bumble stacks included): "
        f"{100 * r['cpu_share']:.1f} % of one core = {r['cpu_s_per_scenario_min']:.2f} CPU-s per "
        "scenario min",
        f"  console work (decode + Session.ingest + Session.tick/flush): "
        f"{100 * r['console_share']:.2f} % of one core = {r['console_s_per_scenario_min']:.3f} CPU-s per "
        "scenario min",
        f"  notification → session: p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
        f"max {lat['max']:.1f} ms over {lat['n']:,} notifications; {per_kind}",
        f"  sustained: {r['samples_per_wall_s']:,.0f} samples/s wall "
        f"({r['samples_per_scenario_s']:,.0f} per scenario s) from {r['notifications']:,} notifications",
        f"  completeness: {r['sent_to_subscribers']:,} sent, {r['decoded']:,} decoded, "
        f"{r['lost_notifications']} lost; session took {r['ingested']}, database holds {r['in_database']}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--speed", type=float, default=10.0, help="scenario seconds per wall second")
    parser.add_argument("--minutes", type=float, default=20.0, help="scenario minutes measured")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="wall seconds after connecting, not measured"
    )
    parser.add_argument("--scenario", default="normal")
    parser.add_argument(
        "--oximeter", default="viatom", choices=("viatom", "berrymed"), help="one with a pleth"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH ('-': stdout)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args, Path(tmp) / "bench.sqlite"))
    problems = check(result)
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(report(result))
    write_json(args.json, {**result, "problems": problems})
    if problems:
        raise SystemExit("INVALID RUN: " + "; ".join(problems))


if __name__ == "__main__":
    main()
