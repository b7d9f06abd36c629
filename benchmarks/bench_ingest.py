"""Benchmark: PLX notifications per second through parse → Session → SQLite recorder, on one core."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from devices.plx.parser import build_plx_continuous, parse_plx_continuous, to_numerics
from kapmonitor.clock import FakeClock
from kapmonitor.session import Session
from kapmonitor.storage import Recorder, open_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: benchmarks.*
from benchmarks.common import write_json


def run(packets: int, db_path: Path, per_second: int) -> dict[str, float]:
    """Push `packets` notifications through the path, `per_second` of them per (fake) second.

    The session tick flushes the recorder once per fake second, so `per_second` sets the batch
    size of each SQLite transaction (synchronous=FULL: one fsync per transaction).
    """
    clock = FakeClock()
    db = open_database(db_path)
    recorder = Recorder(db, clock)
    recorder.begin_session(kind="demo", note="benchmark")
    session = Session(clock, recorder)
    payloads = [
        build_plx_continuous(
            spo2=float(90 + i % 10),
            pulse_rate=float(60 + i % 40),
            pulse_amplitude_index=2.5,
            measurement_status=0x0100,
            device_sensor_status=0,
        )
        for i in range(1000)
    ]
    samples = 0
    start = time.perf_counter()
    cpu0 = time.process_time()
    for i in range(packets):
        data = payloads[i % len(payloads)]
        numerics = to_numerics(
            parse_plx_continuous(data), device="bench", mono=clock.monotonic(), wall=clock.wall()
        )
        session.ingest(numerics)
        samples += len(numerics)
        if i % per_second == per_second - 1:
            clock.advance(1.0)
            session.tick()
    recorder.end_session()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    rows = db.execute("select count(*) from numerics").fetchone()[0]
    db.close()
    return {
        "packets": packets,
        "per_second": per_second,
        "samples": samples,
        "rows_in_db": rows,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "packets_per_s": packets / elapsed,
        "samples_per_s": samples / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--per-second", type=int, default=100, help="packets per fake second (batch size)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH ('-': stdout)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.packets, Path(tmp) / "bench.sqlite", args.per_second)
    assert result["rows_in_db"] == result["samples"], result
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(
        f"{result['packets']:.0f} PLX packets ({args.per_second}/s per transaction) = "
        f"{result['samples']:.0f} samples in {result['seconds']:.2f} s "
        f"→ {result['packets_per_s']:,.0f} packets/s, {result['samples_per_s']:,.0f} samples/s "
        f"(all {result['rows_in_db']:.0f} rows in SQLite)"
    )
    write_json(args.json, result)


if __name__ == "__main__":
    main()
