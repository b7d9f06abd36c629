"""Run every benchmark in this folder and print its figures (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

RUNS: list[list[str]] = [
    ["bench_ingest.py", "--packets", "100000", "--per-second", "100"],
    ["bench_ingest.py", "--packets", "20000", "--per-second", "1"],
    ["bench_replay.py"],
    ["bench_screen.py"],
    ["bench_alarm.py"],
    ["bench_parsers.py"],
    ["bench_devices.py", "--speed", "10", "--minutes", "20"],
]


def main() -> int:
    failed = 0
    for args in RUNS:
        print(f"$ python benchmarks/{' '.join(args)}", flush=True)
        result = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], check=False)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
