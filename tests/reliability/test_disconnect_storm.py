"""Disconnect storm, fast variant: an emulated strap drops and returns 6 times (stress/disconnect_storm)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kapmonitor.alarms import TechnicalCondition
from kapmonitor.storage import device_events, open_database
from stress.disconnect_storm import DEFAULT_SEED, DEFAULT_SPEED, HR, StormRun, check, plan, run_storm, summary

#: 6 drops (3 clean, 3 silent) take ~20 s of wall time at 10x; the full variant runs 100
FAST_DROPS = 6
SEED = int(os.environ.get("KAPMONITOR_STORM_SEED", DEFAULT_SEED))


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> StormRun:
    path = tmp_path_factory.mktemp("storm") / "storm.sqlite"
    return asyncio.run(run_storm(path, plan(FAST_DROPS, SEED), SEED, DEFAULT_SPEED))


def test_every_drop_alarms_within_15_s_reconnects_and_leaves_a_marked_gap(storm: StormRun) -> None:
    report = check(storm)
    print(summary(storm, report))  # seed and figures in the test log
    assert report.failures == [], summary(storm, report)
    assert len(storm.happened) == FAST_DROPS and storm.connections == FAST_DROPS + 1
    assert {d.drop.silent for d in storm.happened} == {True, False}  # both kinds of drop were tried
    assert len(report.detection_s) == FAST_DROPS and max(report.detection_s) <= 15.0
    assert len(report.reconnect_s) == FAST_DROPS


# -- the checks fail when the property is broken ------------------------------------------------
def _broken(
    storm: StormRun, tmp_path: Path, sql: str, params: tuple[object, ...] = (), *, table: str | None = None
) -> list[str]:
    """check() on a copy of the storm's record with `sql` applied to it."""
    path = tmp_path / "broken.sqlite"
    shutil.copy(storm.db_path, path)
    db = open_database(path)
    try:
        if table is not None:  # the scratch copy's append-only triggers go first
            triggers = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?"
            for (name,) in db.execute(triggers, (table,)).fetchall():
                db.execute(f'DROP TRIGGER "{name}"')
        db.execute(sql, params)
        db.conn.commit()
    finally:
        db.close()
    return check(dataclasses.replace(storm, db_path=path)).failures


def _gap(storm: StormRun, n: int) -> tuple[float, float]:
    """(lost, connected) of the strap's n-th gap (from 0), from the record."""
    db = open_database(storm.db_path)
    try:
        marks = [
            (e.mono, e.state.value)
            for e in device_events(db, storm.session_id)
            if e.device == storm.address and e.state is not None and e.state.value in ("lost", "connected")
        ]
    finally:
        db.close()
    lost = [m for m, state in marks if state == "lost"][n]
    back = next(m for m, state in marks if state == "connected" and m > lost)
    return lost, back


_COPY_HR = (
    "INSERT INTO numerics (session_id, seq, mono, t_utc, param, value, quality, device) "
    "SELECT session_id, (SELECT MAX(seq) + 1 FROM numerics), {mono}, t_utc, param, value, quality, device "
    "FROM numerics WHERE session_id = ? AND param = ? ORDER BY seq LIMIT 1 OFFSET 5"
)


def test_a_sample_stored_twice_fails_the_storm(storm: StormRun, tmp_path: Path) -> None:
    failures = _broken(storm, tmp_path, _COPY_HR.format(mono="mono"), (storm.session_id, HR))
    assert any("stored twice" in f for f in failures), failures


def test_a_sample_inside_a_gap_fails_the_storm(storm: StormRun, tmp_path: Path) -> None:
    lost, back = _gap(storm, 1)
    sql = _COPY_HR.format(mono=repr((lost + back) / 2))
    failures = _broken(storm, tmp_path, sql, (storm.session_id, HR))
    assert any("inside the gap" in f for f in failures), failures


def test_a_missing_reconnect_event_fails_the_storm(storm: StormRun, tmp_path: Path) -> None:
    _lost, back = _gap(storm, 2)
    sql = "DELETE FROM device_events WHERE session_id = ? AND state = 'connected' AND mono = ?"
    failures = _broken(storm, tmp_path, sql, (storm.session_id, back))
    assert any("second 'lost'" in f for f in failures), failures
    assert any("gaps recorded" in f for f in failures), failures


def test_a_late_or_missing_alarm_fails_the_storm(storm: StormRun, tmp_path: Path) -> None:
    lost, back = _gap(storm, 3)
    keys = [
        f"{c.value}@{storm.address}" for c in (TechnicalCondition.DISCONNECTED, TechnicalCondition.NO_DATA)
    ]
    sql = "DELETE FROM alarm_events WHERE session_id = ? AND event = 'raised' AND mono >= ? AND mono <= ? "
    sql += f"AND alarm_key IN ({', '.join('?' for _ in keys)})"
    params = (storm.session_id, lost - 20.0, back, *keys)
    failures = _broken(storm, tmp_path, sql, params, table="alarm_events")
    assert any("drop 4" in f and "no technical alarm" in f for f in failures), failures


def test_a_trend_that_bridges_a_gap_fails_the_storm(storm: StormRun) -> None:
    keep = ~np.isnan(storm.trend_v)
    bridged = dataclasses.replace(storm, trend_t=storm.trend_t[keep], trend_v=storm.trend_v[keep])
    failures = check(bridged).failures
    assert sum("live trend bridges it" in f for f in failures) == FAST_DROPS, failures
