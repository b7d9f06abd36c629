"""Crash (fast variant of stress/crash_trials.py): kill -9 the recording process at random moments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stress import crash_child, crash_trials
from ui.app import TICK_PERIOD_S

#: Trials here; the full variant runs 200 (stress/crash_trials.py --trials).
FAST_TRIALS = 20
SEED = int(os.environ.get("KAPMONITOR_CRASH_SEED", crash_trials.DEFAULT_SEED))


def test_the_child_ticks_like_the_app() -> None:
    """The loss bound assumes the app's tick period; the recording child must use the same."""
    assert crash_child.TICK_S == crash_trials.TICK_S == TICK_PERIOD_S


@pytest.mark.slow
def test_kill_9_loses_nothing_committed_and_the_session_resumes(tmp_path: Path) -> None:
    results = crash_trials.run(FAST_TRIALS, SEED, tmp_path)
    summary = crash_trials.summary(results)
    print(f"seed {SEED}: {summary}")
    failed = [f"trial {t.index}: {'; '.join(t.problems)}" for t in results if not t.ok]
    assert not failed, f"seed {SEED}: " + " | ".join(failed)
    # the trials exercised what they claim to: commits before the kill, kills after flushes
    assert sum(t.observations_printed for t in results) > 0
    assert sum(t.flushed_mono is not None for t in results) >= FAST_TRIALS // 2
    assert all(t.integrity == "ok" for t in results)
