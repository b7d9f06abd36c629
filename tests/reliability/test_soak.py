"""Soak (fast variant of stress/soak.py): the demo console, each oximeter in turn, stays flat."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from stress.soak import (
    BLOCKS_GROWTH,
    FD_SLACK,
    QTIMER_SLACK,
    RSS_GROWTH_MB,
    SessionRun,
    Snapshot,
    SoakResult,
    failures,
    report,
    soak,
    summary,
)
from ui.demo import OXIMETERS

#: Scenario hours per oximeter kind here (6 min at 60x: 6 s of wall time each); the full variant
#: runs 4 h (stress/soak.py --hours 4 --speed 60).
FAST_HOURS = 0.1
SPEED = 60.0
WARMUP_MIN = 1.0


@pytest.mark.slow
def test_console_memory_handles_and_timers_stay_flat_and_the_loop_responsive(
    qapp: QApplication, tmp_path: Path
) -> None:
    kinds = list(OXIMETERS)  # the console takes one oximeter: each kind in turn, one session each
    result = soak(
        FAST_HOURS, SPEED, kinds, workdir=tmp_path, warmup_min=WARMUP_MIN, on_progress=lambda _: None
    )
    problems = failures(result)
    data = summary(result, problems)
    assert problems == [], report(data)
    # the soak measured what it claims: every kind ran its session with the whole window painting
    assert [run.oximeter for run in result.sessions] == kinds
    for run in result.sessions:
        assert [s.label for s in run.snapshots][:1] == ["start"] and run.snapshots[-1].label == "end"
        assert run.scenario_min == pytest.approx(FAST_HOURS * 60.0)
        assert len(run.lateness_ms) >= 20, run.oximeter  # the probe ran through the measured part
        assert run.frames > 0 and run.samples["bp"] >= 1 and run.samples["numerics"] > 0
        assert run.at("start").widgets > 100  # the full console, session controls docked
    pleth = {run.oximeter: run.samples["pleth"] for run in result.sessions}
    assert pleth["viatom"] > 0 and pleth["berrymed"] > pleth["viatom"] and pleth["plx"] == 0
    assert all(run.paints > 0 for run in result.sessions if run.samples["pleth"])
    assert data["ok"] and data["samples_recorded"] == sum(sum(r.samples.values()) for r in result.sessions)
    assert set(data) >= {"hours", "speed", "wall_s", "rss_mb", "fds", "threads", "qtimers", "tasks"}
    assert set(data["rss_mb"]) == {"start", "middle", "end"}


def _snap(label: str, **changes: float) -> Snapshot:
    base: dict[str, float] = dict(
        rss_mb=200.0, py_blocks=700_000, fds=18, threads=4, qtimers=9, widgets=418, tasks=12
    )
    base.update(changes)
    return Snapshot(
        label=label,
        scenario_min=0.0,
        wall_s=0.0,
        rss_mb=base["rss_mb"],
        py_blocks=int(base["py_blocks"]),
        fds=int(base["fds"]),
        threads=int(base["threads"]),
        qtimers=int(base["qtimers"]),
        widgets=int(base["widgets"]),
        tasks=int(base["tasks"]),
    )


def _result(end: Snapshot, *, lateness: float = 1.0) -> SoakResult:
    run = SessionRun("viatom", "s1", 240.0, 240.0, frames=7000, paints=7000, measured_wall_s=235.0)
    run.snapshots = [_snap("start"), _snap("middle"), end]
    run.lateness_ms = [lateness] * 2000
    run.samples = {"numerics": 70_000, "pleth": 700_000, "bp": 24}
    idle = [
        _snap("idle-before", fds=13, qtimers=4, widgets=0, tasks=1),
        _snap("idle-after", fds=15, widgets=0, tasks=1),
    ]
    return SoakResult(4.0, 60.0, ["viatom"], 250.0, [run], idle)


@pytest.mark.parametrize(
    ("end", "lateness", "expected"),
    [
        (_snap("end"), 1.0, None),
        (_snap("end", rss_mb=200.0 + RSS_GROWTH_MB + 1), 1.0, "RSS grew"),
        (_snap("end", py_blocks=700_000 + BLOCKS_GROWTH + 1), 1.0, "Python heap grew"),
        (_snap("end", fds=18 + FD_SLACK + 1), 1.0, "fds leak"),
        (_snap("end", qtimers=9 + QTIMER_SLACK + 1), 1.0, "qtimers leak"),
        (_snap("end"), 150.0, "event loop late"),
    ],
)
def test_each_broken_property_is_a_failure(end: Snapshot, lateness: float, expected: str | None) -> None:
    """The judge itself: a healthy run passes; each property just over its bound fails, saying which."""
    problems = failures(_result(end, lateness=lateness))
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


def test_widgets_left_by_a_closed_console_count_from_what_was_there_before() -> None:
    """A test run's earlier tests may leave widgets in the QApplication: they are the baseline (the
    full suite had 245 before the soak), and only widgets above it are the console's."""
    result = _result(_snap("end"))
    result.idle[0] = _snap("idle-before", fds=13, qtimers=4, widgets=245, tasks=1)
    result.idle[1] = _snap("idle-after", fds=15, widgets=245, tasks=1)
    assert failures(result) == []
    result.idle[1] = _snap("idle-after", fds=15, widgets=246, tasks=1)
    (problem,) = failures(result)
    assert problem == "viatom: 1 widgets still alive after the window closed"
