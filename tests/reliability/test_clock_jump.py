"""Clock: the wall clock steps ±1 h mid-session, the monotonic one does not: order, durations, dose clock."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kapmonitor.alarms import AlarmEngine, kap_defaults
from kapmonitor.clock import FakeClock
from kapmonitor.export.report_data import report_data
from kapmonitor.measurements import BloodPressure, DeviceInfo, DeviceState, Numeric, Param, Waveform
from kapmonitor.observations import press
from kapmonitor.replay.model import MarkerKind, load_markers
from kapmonitor.session import Session
from kapmonitor.storage import (
    Database,
    Recorder,
    alarm_events,
    audit_entries,
    device_events,
    get_session,
    numerics,
    open_database,
    waveform,
)
from kapmonitor.storage.session_log import SessionLog, restore_workflow
from kapmonitor.workflow import DEVICE_REST_S, SessionDetails, SessionWorkflow, TreatmentProtocol

#: An NTP step or a DST mistake: one hour either way (issue 7).
JUMPS = (3600.0, -3600.0)
DURATION_S = 240
DOSE_AT_S = 20
JUMP_AT_S = 120
OBSERVATIONS_AT_S = (60, 150)
PLETH_HZ = 50
OXI = "OX:11:22:33:44:55"
#: Tables of the record whose rows share the session's seq counter, and each one's monotonic time
#: (observations get their seq when saved). Waveform chunks get theirs when cut, so they are
#: checked on their own (sample times), not here.
SEQ_TABLES = {
    "numerics": "mono",
    "device_events": "mono",
    "alarm_events": "mono",
    "blood_pressure": "mono",
    "audit": "mono",
    "observations": "saved_mono",
    "phase_changes": "mono",
    "decisions": "mono",
}

DETAILS = SessionDetails(
    patient="P-017",
    clinicians=("Dr Ada Okafor",),
    protocol=TreatmentProtocol.ESKETAMINE_IN,
    planned_dose_mg=56.0,
    route="intranasal",
)


@dataclass
class Run:
    db: Database
    session_id: str
    clock: FakeClock
    session: Session
    workflow: SessionWorkflow
    log: SessionLog
    start_mono: float
    start_wall: float
    jump: float


def record(path: Path, jump: float) -> Run:
    """A 4-minute esketamine session through the real Session, Recorder, SessionLog and workflow,
    with the wall clock stepping by `jump` seconds at JUMP_AT_S."""
    clock = FakeClock()
    db = open_database(path)
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    session = Session(clock, rec, alarms=AlarmEngine(clock, kap_defaults(), hold_off_s=0))
    log = SessionLog(db, clock, sid, seq=rec.next_seq)
    log.save_details(DETAILS)
    wf = SessionWorkflow(DETAILS, clock)
    run = Run(db, sid, clock, session, wf, log, clock.monotonic(), clock.wall(), jump)
    session.register_device(DeviceInfo(OXI, "KAP-Emu PLX", "pulse-oximeter"))
    session.device_state(OXI, DeviceState.CONNECTED, "test")
    baseline = BloodPressure(128.0, 80.0, 96.0, 70.0, clock.monotonic(), clock.wall(), "CUFF")
    session.ingest([baseline])
    log.write(wf.start_baseline("Dr Ada Okafor"))
    log.write(wf.record_baseline(baseline, "Dr Ada Okafor"))
    log.write(wf.start_dosing("Dr Ada Okafor"))
    for t in range(DURATION_S):
        if t == DOSE_AT_S:
            log.write(wf.log_device("Dr Ada Okafor"))
        if t == JUMP_AT_S:
            clock.jump_wall(jump)
        if t in OBSERVATIONS_AT_S:
            log.add_observation(press("nausea", clock), "RN Ben Lund", text=f"at {t} s")
        mono, wall = clock.monotonic(), clock.wall()
        spo2 = 85.0 if 90 <= t < 110 else 97.0  # a desaturation: alarm transitions around the jump
        session.ingest(
            [
                Numeric(Param.SPO2, spo2, mono, wall, OXI),
                Numeric(Param.PULSE_RATE, 72.0, mono, wall, OXI),
                Waveform("pleth", PLETH_HZ, tuple(range(PLETH_HZ)), mono - 1 + 1 / PLETH_HZ, wall, OXI),
            ]
        )
        clock.advance(0.5)
        session.tick()
        clock.advance(0.5)
        session.tick()
    rec.end_session("completed")
    return run


@pytest.fixture(params=JUMPS, ids=["wall+1h", "wall-1h"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Run]:
    r = record(tmp_path / "kap.sqlite", float(request.param))
    yield r
    r.db.close()


def test_the_record_keeps_the_real_wall_times_and_the_order(run: Run) -> None:
    rows = numerics(run.db, run.session_id, Param.SPO2)
    mono, t_utc = rows[0], rows[1]
    assert len(mono) == DURATION_S
    assert np.all(np.diff(mono) > 0)
    # the wall time as it was read (the jump is visible in the record) ...
    steps = np.diff(t_utc)
    assert np.count_nonzero(np.abs(steps - 1.0) > 1e-6) == 1
    assert steps[JUMP_AT_S - 1] == pytest.approx(1.0 + run.jump)
    # ... while the whole log, in seq order, follows the monotonic clock
    merged: list[tuple[int, float, str]] = []
    for table, column in SEQ_TABLES.items():
        merged += [
            (int(s), float(m), table)
            for s, m in run.db.execute(
                f"SELECT seq, {column} FROM {table} WHERE session_id = ?", (run.session_id,)
            ).fetchall()
        ]
    merged.sort()
    seqs = [s for s, _, _ in merged]
    assert len(set(seqs)) == len(seqs), "a seq number was used twice"
    monos = [m for _, m, _ in merged]
    assert all(b >= a for a, b in itertools.pairwise(monos)), "seq order and mono order disagree"
    assert {t for _, _, t in merged} >= {"numerics", "alarm_events", "observations", "phase_changes"}


def test_alarm_events_and_device_events_read_back_in_order(run: Run) -> None:
    events = alarm_events(run.db, run.session_id)
    assert any(e.event == "raised" for e in events) and any(e.event == "cleared" for e in events)
    for rows in (events, device_events(run.db, run.session_id), audit_entries(run.db, run.session_id)):
        monos = [r.mono for r in rows]
        assert monos == sorted(monos)


def test_pleth_samples_stay_in_order_across_the_jump(run: Run) -> None:
    t, samples = waveform(run.db, run.session_id, "pleth", OXI)
    assert samples.size == DURATION_S * PLETH_HZ
    assert np.all(np.diff(t) > 0)
    assert np.allclose(np.diff(t), 1 / PLETH_HZ)


def test_replay_places_the_observations_by_the_monotonic_clock(run: Run) -> None:
    markers = [
        m for m in load_markers(run.db, run.session_id, run.start_mono) if m.kind == MarkerKind.OBSERVATION
    ]
    # the first device is logged as an observation (dose_given) too
    assert [round(m.position, 6) for m in markers] == [float(t) for t in (DOSE_AT_S, *OBSERVATIONS_AT_S)]


def test_durations_follow_the_monotonic_clock(run: Run) -> None:
    elapsed = run.clock.monotonic() - run.start_mono
    assert elapsed == pytest.approx(DURATION_S)
    assert run.session.elapsed() == pytest.approx(elapsed)
    row = get_session(run.db, run.session_id)
    assert row is not None and row.ended_mono is not None
    assert row.ended_mono - row.started_mono == pytest.approx(elapsed)


@pytest.mark.parametrize("jump", [3600.0, -3600.0], ids=["wall+1h", "wall-1h"])
def test_the_session_report_follows_the_monotonic_clock(tmp_path: Path, jump: float) -> None:
    run = record(tmp_path / "kap.sqlite", jump)
    try:
        data = report_data(run.db, run.session_id, run.clock)
        assert data.duration_s == pytest.approx(run.clock.monotonic() - run.start_mono)
        positions = data.trends[Param.SPO2].position_s
        assert positions.size == DURATION_S
        assert np.all(np.diff(positions) > 0)
    finally:
        run.db.close()


def test_the_dose_clock_follows_the_monotonic_clock(run: Run) -> None:
    since_dose = DURATION_S - DOSE_AT_S
    assert run.workflow.dose_elapsed() == pytest.approx(since_dose)
    assert run.workflow.clock_text() == "T+00:03"  # 3 min 40 s since the first device, not 1 h more
    assert run.workflow.rest_remaining() == pytest.approx(DEVICE_REST_S - since_dose)


def test_a_resumed_workflow_keeps_the_dose_clock_after_a_wall_jump(run: Run) -> None:
    restored = restore_workflow(run.log, run.clock)
    assert restored is not None
    assert restored.dose_elapsed() == pytest.approx(run.workflow.dose_elapsed())


def test_the_log_shows_the_jump(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        run = record(tmp_path / "kap.sqlite", 3600.0)
    try:
        in_record = [e.seq for e in alarm_events(run.db, run.session_id) if e.alarm_key.startswith("clock")]
        in_record += [e.seq for e in device_events(run.db, run.session_id) if "clock" in e.detail.lower()]
        logged = [
            r for r in caplog.records if r.levelno >= logging.WARNING and "clock" in r.getMessage().lower()
        ]
        assert in_record, "the session record does not mention the wall-clock step"
        assert logged, "the application log does not mention the wall-clock step"
    finally:
        run.db.close()
