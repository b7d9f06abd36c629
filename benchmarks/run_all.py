"""Run every benchmark and the soak; write benchmarks/RESULTS.md with the machine's details (`make bench`).

Each benchmark script writes its figures with `--json PATH`; this collects them (raw, in
benchmarks/RESULTS.json next to the report) and renders one table per area. A benchmark that fails
or is skipped is reported as such in RESULTS.md, never filled in. `--render` rewrites RESULTS.md
from an existing RESULTS.json without running anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOAK = ROOT / "stress" / "soak.py"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
COMMAND = ".venv/bin/python benchmarks/run_all.py"  # what `make bench` runs (after preparing .venv)


@dataclass(frozen=True)
class Bench:
    """One benchmark run: a key for its figures, the script and its arguments."""

    key: str
    args: tuple[str, ...]
    path: Path = HERE

    def command(self) -> str:
        shown = self.path.relative_to(ROOT) / self.args[0]
        return " ".join(["python", str(shown), *self.args[1:]])


BENCHES: tuple[Bench, ...] = (
    Bench("ingest_batch", ("bench_ingest.py", "--packets", "100000", "--per-second", "100")),
    Bench("ingest_worst", ("bench_ingest.py", "--packets", "20000", "--per-second", "1")),
    Bench("parsers", ("bench_parsers.py",)),
    Bench("devices", ("bench_devices.py", "--speed", "10", "--minutes", "20")),
    Bench("screen", ("bench_screen.py",)),
    Bench("paint", ("bench_paint.py", "--speed", "10", "--minutes", "10")),
    Bench("alarm", ("bench_alarm.py",)),
    Bench("replay", ("bench_replay.py",)),
)
SOAK_BENCH = Bench("soak", ("soak.py", "--hours", "4", "--speed", "60"), path=ROOT / "stress")


# ---------------------------------------------------------------------------------- running
def run_bench(bench: Bench, tmp: Path) -> dict[str, Any]:
    """Run one benchmark with `--json`; its figures, or why there are none."""
    out = tmp / f"{bench.key}.json"
    cmd = [sys.executable, str(bench.path / bench.args[0]), *bench.args[1:], "--json", str(out)]
    print(f"\n$ {bench.command()}", flush=True)
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    sys.stdout.write(proc.stdout)
    entry: dict[str, Any] = {"command": bench.command(), "wall_s": round(wall, 1), "rc": proc.returncode}
    if out.exists():
        entry["figures"] = json.loads(out.read_text(encoding="utf-8"))
    if proc.returncode != 0:
        entry["error"] = failure_reason(proc.stderr, proc.stdout, proc.returncode)
        print(f"FAILED ({proc.returncode}): {entry['error']}", flush=True)
    return entry


def failure_reason(stderr: str, stdout: str, rc: int) -> str:
    """The lines that say why a run failed (its verdict and the last exception), fit for a table."""
    lines = [ANSI.sub("", line).strip() for line in (stderr + "\n" + stdout).splitlines()]
    lines = [line for line in lines if line]
    verdicts = [line for line in lines if line.startswith(("INVALID RUN", "FAILED", "AssertionError"))]
    errors = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", line)]
    picked = list(dict.fromkeys([*errors[-2:], *verdicts[-1:]])) or lines[-2:]
    return ("; ".join(picked) or f"exit status {rc}").replace("|", "/")


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """CPU, cores, RAM, OS, kernel and the versions that matter for the figures."""
    import sqlite3

    import numpy
    import PySide6
    from PySide6.QtCore import qVersion

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if "model name" in line
        ),
        platform.processor() or platform.machine(),
    )
    mem_kb = next(
        (int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal")),
        0,
    )
    os_name = next(
        (
            line.split("=", 1)[1].strip('"')
            for line in _read("/etc/os-release").splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.platform(),
    )
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": f"{cpu} ({platform.machine()})",
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "ram_gb": round(mem_kb / 1024**2, 1),
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "qt": qVersion(),
        "pyside6": PySide6.__version__,
        "pyqtgraph": _version("pyqtgraph"),
        "numpy": numpy.__version__,
        "sqlite": sqlite3.sqlite_version,
        "bleak": _version("bleak"),
        "bumble": _version("bumble"),
        "qpa": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
    }


def git_commit() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return proc.stdout if proc.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD").strip() or "unknown"
    # porcelain lines are "XY path": the status letters may start with a space, so no strip()
    status = git("status", "--porcelain", "--untracked-files=no").splitlines()
    dirty = [line[3:] for line in status if line.strip()]
    if not dirty:
        return commit
    shown = ", ".join(dirty[:6]) + (", …" if len(dirty) > 6 else "")
    return f"{commit} + uncommitted changes in {len(dirty)} file{'s' if len(dirty) > 1 else ''} ({shown})"


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    wanted = set(args.only or [])
    with tempfile.TemporaryDirectory(prefix="kapmonitor-bench-") as tmp:
        for bench in BENCHES:
            if wanted and bench.key not in wanted:
                continue
            runs[bench.key] = run_bench(bench, Path(tmp))
        if wanted and "soak" not in wanted:
            pass
        elif args.skip_soak:
            runs["soak"] = {"command": SOAK_BENCH.command(), "skipped": "not run: --skip-soak was given"}
        elif not SOAK.exists():
            runs["soak"] = {
                "command": SOAK_BENCH.command(),
                "skipped": f"not run: {SOAK.relative_to(ROOT)} not found",
            }
        else:
            runs["soak"] = run_bench(SOAK_BENCH, Path(tmp))
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "machine": machine(),
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "total_wall_s": round(time.perf_counter() - t0, 1),
        "argv": sys.argv[1:],
        "runs": runs,
    }


# -------------------------------------------------------------------------------- rendering
def _ms(v: float | None, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f} ms"


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"


def _n(v: float) -> str:
    return f"{v:,.0f}"


Table = list[tuple[str, str]]


def _figures(data: dict[str, Any], key: str) -> dict[str, Any] | str:
    """A run's figures, or the sentence that says why there are none."""
    run = data["runs"].get(key)
    if run is None:
        return "not run in this report (`--only`)"
    if "skipped" in run:
        return str(run["skipped"])
    if "error" in run:
        return f"FAILED (exit {run['rc']}): {run['error']}"
    figures: dict[str, Any] = run.get("figures", {})
    return figures


def screen_rows(f: dict[str, Any]) -> Table:
    o, n = f["ours"], f["naive"]
    rows: Table = [
        (
            "CPU at 30 Hz, share of one core (process time / wall time)",
            f"**ours {_pct(o['cpu_share'])}**, naive {_pct(n['cpu_share'])} "
            f"({o['wall_s']:.0f} s each, in turns)",
        ),
        (
            "ours / naive CPU (goal ≤ 0.3)",
            f"**{f['cpu_ratio']:.2f}** — goal {'met' if f['goal_met'] else '**not met**'}",
        ),
        (
            "frames delivered by the 30 Hz timer",
            f"ours {o['frames_per_s']:.1f}/s, naive {n['frames_per_s']:.1f}/s",
        ),
        (
            "frame time (timer slot + paint), back to back",
            f"ours **p50 {_ms(o['frame_ms']['p50'])}, p99 {_ms(o['frame_ms']['p99'])}**; "
            f"naive p50 {_ms(n['frame_ms']['p50'])}, p99 {_ms(n['frame_ms']['p99'])}",
        ),
    ]
    if o.get("trend_frame_ms"):
        t = o["trend_frame_ms"]
        rows.append(
            (
                "ours: frames with the once-a-second trend redraw",
                f"{t['n']} frames, p50 {_ms(t['p50'])}, max {_ms(t['max'])}",
            )
        )
    rows += [
        (
            "ours: frame with repaint() of the whole window",
            f"p50 {_ms(o['full_repaint_frame_ms']['p50'])}, p99 {_ms(o['full_repaint_frame_ms']['p99'])}",
        ),
        ("ours: full-window grab()", f"p50 {_ms(o['grab_ms']['p50'])}"),
    ]
    return rows


def latency_rows(data: dict[str, Any]) -> Table:
    rows: Table = []
    paint = _figures(data, "paint")
    if isinstance(paint, str):
        rows.append(("notification → painted value", paint))
    else:
        lat = paint["latency_ms"]
        rows.append(
            (
                f"notification → painted value (tile's number repainted; {paint['oximeter']} + cuff + "
                f"strap on the virtual radio, --speed {paint['speed']:g})",
                f"**p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}**, max {_ms(lat['max'], 1)} over "
                f"{lat['n']:,} value changes ({paint['unpainted']} unpainted)",
            )
        )
    devices = _figures(data, "devices")
    if isinstance(devices, str):
        rows.append(("notification → Session.ingest returned", devices))
    else:
        lat = devices["latency_all_ms"]
        rows.append(
            (
                "notification → Session.ingest returned (three devices)",
                f"p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}, max {_ms(lat['max'], 1)} over "
                f"{lat['n']:,} notifications",
            )
        )
    alarm = _figures(data, "alarm")
    if isinstance(alarm, str):
        rows.append(("alarm generation delay", alarm))
    else:
        a = alarm["alarm_bar_painted_ms"]
        rows.append(
            (
                "alarm generation delay: high-priority sample → alarm bar painted (goal ≤ 100 ms p99)",
                f"**p50 {_ms(a['p50'])}, p99 {_ms(a['p99'])}**, max {_ms(a['max'])} "
                f"({alarm['rounds']} rounds)",
            )
        )
    return rows


def ingest_rows(data: dict[str, Any]) -> Table:
    rows: Table = []
    devices = _figures(data, "devices")
    realtime = None if isinstance(devices, str) else devices["samples_per_scenario_s"]
    for key, label in (
        ("ingest_batch", "PLX notifications → Session → SQLite, 100 packets per transaction"),
        ("ingest_worst", "the same, 1 packet per transaction (worst case)"),
    ):
        f = _figures(data, key)
        if isinstance(f, str):
            rows.append((label, f))
            continue
        vs = f"; {f['samples_per_s'] / realtime:,.0f}× the three devices' real-time rate" if realtime else ""
        rows.append(
            (
                label,
                f"{_n(f['packets_per_s'])} packets/s = **{_n(f['samples_per_s'])} samples/s**{vs} "
                f"(all {_n(f['rows_in_db'])} rows in SQLite)",
            )
        )
    if isinstance(devices, str):
        rows.append(("three devices over the virtual radio", devices))
    else:
        d = devices
        headroom = 60.0 / d["console_s_per_scenario_min"] if d["console_s_per_scenario_min"] else math.inf
        lost = d["lost_notifications"] + len(d.get("problems", []))
        rows += [
            (
                f"three devices ({d['oximeter']} + cuff + strap), {d['scenario_minutes']:g} scenario min at "
                f"--speed {d['speed']:g}",
                f"whole process {_pct(d['cpu_share'])} of one core (emulators and bumble included); "
                f"console's own work {_pct(d['console_share'])}",
            ),
            (
                "ingest rate vs real time (console's own work per scenario second)",
                f"{d['console_s_per_scenario_min']:.3f} CPU-s per scenario min → "
                f"**{headroom:,.0f}× real time** on one core; "
                f"{d['samples_per_scenario_s']:,.0f} samples per scenario s",
            ),
            (
                "completeness",
                f"{d['sent_to_subscribers']:,} sent, {d['decoded']:,} decoded, "
                f"{'nothing lost' if not lost else 'PROBLEMS: ' + '; '.join(d.get('problems', []))}; "
                f"session = database: {d['ingested'] == d['in_database']}",
            ),
        ]
    return rows


def parser_rows(f: dict[str, Any]) -> Table:
    return [
        (
            p["protocol"],
            f"{_n(p['notifications_per_s'])} notifications/s = {_n(p['samples_per_s'])} samples/s "
            f"({p['us_per_notification']:.1f} µs each)",
        )
        for p in f["protocols"]
    ]


def replay_rows(f: dict[str, Any]) -> Table:
    rows: Table = [
        (
            f"model: open a {f['duration_h']:.0f}-h session to its first frame (goal < 1 s)",
            f"**{f['open_first_frame_ms_median']:.0f} ms** median "
            f"({f['open_first_frame_ms_first']:.0f} ms first)",
        ),
        ("model: seek", f"p50 {_ms(f['seek_ms_p50'])}, p99 {_ms(f['seek_ms_p99'])}"),
        ("model: 60× frame", f"mean {_ms(f['frame_60x_ms_mean'])}, p99 {_ms(f['frame_60x_ms_p99'])}"),
    ]
    if "ui_open_first_paint_ms" in f:
        rows += [
            ("window (1920×1080): open to first paint", f"**{f['ui_open_first_paint_ms']:.0f} ms**"),
            (
                "window: seek + paint (goal < 50 ms)",
                f"**p50 {_ms(f['ui_seek_ms_p50'], 1)}, p99 {_ms(f['ui_seek_ms_p99'], 1)}**",
            ),
            (
                "window: 60× frame + paint",
                f"mean {_ms(f['ui_frame_60x_ms_mean'])}, p99 {_ms(f['ui_frame_60x_ms_p99'])}",
            ),
        ]
    return rows


def soak_rows(f: dict[str, Any]) -> Table:
    def se(d: dict[str, Any]) -> str:
        return " → ".join(f"{d[k]:g}" for k in ("start", "middle", "end") if k in d)

    late = f["loop_lateness_ms"]
    return [
        (
            f"{f['hours']:g} h of scenario time at --speed {f['speed']:g} ({f['wall_s']:.0f} s wall)",
            "**ok**" if f["ok"] else "**FAILED**: " + "; ".join(f["failures"]),
        ),
        (
            "RSS (MB) start → middle → end",
            "**" + " → ".join(f"{f['rss_mb'][k]:.1f}" for k in ("start", "middle", "end")) + "**",
        ),
        (
            "open fds / threads / QTimers / asyncio tasks, start → end",
            f"{se(f['fds'])} / {se(f['threads'])} / {se(f['qtimers'])} / {se(f['tasks'])}",
        ),
        (
            "event-loop lateness (100 ms probe timer)",
            f"p50 {_ms(late['p50'])}, p99 {_ms(late['p99'])}, max {_ms(late['max'], 1)}",
        ),
        ("frames per second (30 Hz timer)", f"{f['frames_per_s']:.1f}"),
        ("samples recorded", _n(f["samples_recorded"])),
    ]


def _table(title: str, rows: Table | str, note: str = "") -> list[str]:
    lines = [f"## {title}", ""]
    if note:
        lines += [note, ""]
    if isinstance(rows, str):
        return [*lines, rows, ""]
    lines += ["| run | result |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return [*lines, ""]


def _section(data: dict[str, Any], key: str, rows: Callable[[dict[str, Any]], Table]) -> Table | str:
    f = _figures(data, key)
    return f if isinstance(f, str) else rows(f)


def headline(data: dict[str, Any]) -> list[str]:
    """The few figures the README quotes, one line each (a missing one says why)."""

    def line(key: str, text: Callable[[dict[str, Any]], str], what: str) -> str:
        f = _figures(data, key)
        return f"- {what}: " + (f if isinstance(f, str) else text(f))

    def screen(f: dict[str, Any]) -> str:
        o, n = f["ours"], f["naive"]
        return (
            f"{_pct(o['cpu_share'])} of one core at 30 Hz against {_pct(n['cpu_share'])} for the naive "
            f"pyqtgraph screen = **{f['cpu_ratio']:.2f}×** "
            f"(goal ≤ 0.3: {'met' if f['goal_met'] else 'not met'}); "
            f"frame p50 {_ms(o['frame_ms']['p50'])}, p99 {_ms(o['frame_ms']['p99'])}"
        )

    def ingest(f: dict[str, Any]) -> str:
        headroom = 60.0 / f["console_s_per_scenario_min"] if f["console_s_per_scenario_min"] else math.inf
        return f"the console's own work keeps up with **{headroom:,.0f}× real time** on one core"

    def soak(f: dict[str, Any]) -> str:
        rss = f["rss_mb"]
        return (
            f"RSS {rss['start']:.0f} → {rss['middle']:.0f} → {rss['end']:.0f} MB over {f['hours']:g} h at "
            f"{f['speed']:g}× ({'ok' if f['ok'] else 'FAILED'})"
        )

    return [
        line("screen", screen, "Live screen"),
        line(
            "paint",
            lambda f: f"p50 {_ms(f['latency_ms']['p50'])}, p99 {_ms(f['latency_ms']['p99'])}",
            "Notification → painted value",
        ),
        line(
            "alarm",
            lambda f: (
                f"p50 {_ms(f['alarm_bar_painted_ms']['p50'])}, p99 {_ms(f['alarm_bar_painted_ms']['p99'])}"
            ),
            "Alarm generation delay (sample → alarm bar painted)",
        ),
        line(
            "ingest_batch",
            lambda f: f"{_n(f['samples_per_s'])} samples/s into SQLite (100 packets per transaction)",
            "Ingest",
        ),
        line("devices", ingest, "Three devices over the virtual radio"),
        line(
            "replay",
            lambda f: (
                f"open {f['open_first_frame_ms_median']:.0f} ms, window seek + paint p50 "
                f"{_ms(f.get('ui_seek_ms_p50'), 1)}, p99 {_ms(f.get('ui_seek_ms_p99'), 1)}"
            ),
            "Replay of a 4-h session",
        ),
        line("soak", soak, "Memory after the soak"),
    ]


def render(data: dict[str, Any]) -> str:
    m = data["machine"]
    load = data.get("load_avg_before")
    load_text = (
        f"load average {load[0]:.2f} at the start, {data['load_avg_after'][0]:.2f} at the end"
        if load and data.get("load_avg_after")
        else "load average unknown"
    )
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{COMMAND}` (`make bench`) on {data['date']} at commit {data['commit']}; "
        f"the whole run took {data['total_wall_s'] / 60:.1f} min. Do not edit: run the command again.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable); "
        "each benchmark pins itself to one |",
        f"| RAM | {m['ram_gb']} GB |",
        f"| OS, kernel | {m['os']}, Linux {m['kernel']} |",
        f"| Python | {m['python']} |",
        f"| Qt, PySide6, pyqtgraph | Qt {m['qt']} (QPA `{m['qpa']}`), PySide6 {m['pyside6']}, "
        f"pyqtgraph {m['pyqtgraph']} |",
        f"| numpy, SQLite | numpy {m['numpy']}, SQLite {m['sqlite']} |",
        f"| bleak, bumble | bleak {m['bleak']}, bumble {m['bumble']} |",
        f"| load | {load_text} (other work on the machine inflates every figure) |",
        "",
        "## Headline",
        "",
        *headline(data),
        "",
    ]
    lines += _table(
        "Live screen at 30 Hz",
        _section(data, "screen", screen_rows),
        "The full 1600×900 console offscreen with 4 h of 1 Hz trends and BP readings preloaded, pleth "
        "100 Hz and 1 Hz numerics fed in fake time, against `benchmarks/naive_screen.py` (the same content "
        "drawn the tutorial way: every curve and label re-set each frame, scrolling pleth, the whole 4-h "
        "trends each frame, no clip-to-view or downsampling) in the same process, the same feed, window "
        "and timer; the two screens take turns in the CPU run.",
    )
    lines += _table("Latency", latency_rows(data))
    lines += _table("Ingest", ingest_rows(data))
    lines += _table(
        "Parsers (one core, fastest of 3 runs of 20,000 notifications)",
        _section(data, "parsers", parser_rows),
    )
    lines += _table("Replay (a 4-h recorded session)", _section(data, "replay", replay_rows))
    lines += _table(
        "Memory after the soak",
        _section(data, "soak", soak_rows),
        "The whole demo console (`stress/soak.py`): emulated devices, Monitor, MainWindow shown offscreen, "
        "the alarm sound process, for 4 h of scenario time at 60× speed.",
    )
    lines += ["## Runs", "", "| command | wall time | result |", "|---|---|---|"]
    for run in data["runs"].values():
        if "skipped" in run:
            outcome, wall = run["skipped"], "—"
        else:
            outcome = "ok" if run["rc"] == 0 else f"FAILED (exit {run['rc']})"
            wall = f"{run['wall_s']:.0f} s"
        lines.append(f"| `{run['command']}` | {wall} | {outcome} |")
    lines += ["", f"Reproduce: `make bench` (or `{COMMAND}`; `--skip-soak` leaves out the 4-min soak).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="the report to write")
    parser.add_argument("--skip-soak", action="store_true", help="leave out stress/soak.py (4 min)")
    parser.add_argument(
        "--only",
        action="append",
        choices=[b.key for b in (*BENCHES, SOAK_BENCH)],
        help="run only this benchmark (repeatable); for trying things, not for the committed report",
    )
    parser.add_argument("--render", action="store_true", help="only re-render the report from its JSON")
    args = parser.parse_args()
    raw = args.out.with_suffix(".json")
    if args.render:
        data = json.loads(raw.read_text(encoding="utf-8"))
    else:
        data = run_all(args)
        raw.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    args.out.write_text(render(data), encoding="utf-8")
    failed = [k for k, r in data["runs"].items() if r.get("rc", 0) != 0]
    print(f"\nwrote {args.out} and {raw.name} ({data['total_wall_s'] / 60:.1f} min)", flush=True)
    if failed:
        print(f"FAILED: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
