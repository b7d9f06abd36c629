"""Tests of the session log in a real SQLite file: details, append-only observations, phases,
decisions, the shared seq, crash recovery and durability across a SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlite_utils import Database

from kapmonitor.clock import FakeClock
from kapmonitor.measurements import BloodPressure, Numeric, Param
from kapmonitor.observations import DOSE_GIVEN, NOTE, ObservationError, ScaleScore, press
from kapmonitor.storage import (
    Recorder,
    audit_entries,
    device_events,
    get_session,
    max_seq,
    open_database,
    schema_version,
)
from kapmonitor.storage.session_log import (
    CONSOLE_DEVICE,
    SessionLog,
    close_interrupted,
    find_unfinished,
    load_details,
    recent_clinicians,
    recent_patients,
    rems_for_session,
    restore_workflow,
    resume,
    unfinished_overview,
)
from kapmonitor.workflow import (
    ChecklistItem,
    Phase,
    PhaseChange,
    SessionDetails,
    SessionWorkflow,
    TreatmentProtocol,
)

MIN = 60.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "kap.sqlite"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = open_database(db_path, busy_timeout_ms=50)
    yield database
    database.close()


@pytest.fixture
def plain(db: Database, db_path: Path) -> Iterator[sqlite3.Connection]:
    """A second, plain sqlite3 connection: sees only what was committed."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    yield conn
    conn.close()


def details(patient: str = "P-017", clinicians: tuple[str, ...] = ("Dr A", "RN B")) -> SessionDetails:
    return SessionDetails(
        patient=patient,
        clinicians=clinicians,
        protocol=TreatmentProtocol.ESKETAMINE_IN,
        planned_dose_mg=56.0,
        route="intranasal",
        lot="L123",
        concomitant=("lorazepam",),
    )


def started(db: Database, clock: FakeClock) -> tuple[Recorder, SessionLog]:
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    return rec, SessionLog(db, clock, sid, seq=rec.next_seq)


def test_migration_3_is_applied(db: Database) -> None:
    assert schema_version(db) >= 3  # later migrations may follow
    assert {"session_details", "observations", "phase_changes", "decisions"} <= set(db.table_names())


def test_details_round_trip_and_replace(db: Database) -> None:
    clock = FakeClock()
    _rec, log = started(db, clock)
    assert log.details() is None
    log.save_details(details())
    assert log.details() == details()
    clock.advance(60)
    log.save_details(replace(details(), lot="L999"))
    loaded = load_details(db, log.session_id)
    assert loaded is not None and loaded.lot == "L999"
    created, updated = db.execute(
        "SELECT created_utc, updated_utc FROM session_details WHERE session_id = ?", (log.session_id,)
    ).fetchone()
    assert updated - created == 60


def test_recent_patients_and_clinicians_most_recent_first(db: Database) -> None:
    clock = FakeClock()
    for patient, clinicians in [("P-1", ("Dr A",)), ("P-2", ("Dr B", "RN C")), ("P-1", ("Dr D", "Dr A"))]:
        rec = Recorder(db, clock)
        rec.begin_session()
        assert rec.session_id is not None
        SessionLog(db, clock, rec.session_id).save_details(details(patient, clinicians))
        clock.advance(3600)
    assert recent_patients(db) == ["P-1", "P-2"]
    # most recent session first; within one session, alphabetical
    assert recent_clinicians(db) == ["Dr A", "Dr D", "Dr B", "RN C"]
    assert recent_clinicians(db, limit=1) == ["Dr A"]


def test_observation_committed_at_once_with_key_press_time_and_author(
    db: Database, plain: sqlite3.Connection
) -> None:
    clock = FakeClock()
    _rec, log = started(db, clock)
    pressed = press(NOTE, clock)
    clock.advance(45)  # the clinician types the note
    oid = log.add_observation(pressed, "Dr A", text="talks about her brother")
    row = plain.execute(
        "SELECT code, text, pressed_utc, saved_utc, author FROM observations WHERE id = ?", (oid,)
    ).fetchone()
    assert row == (NOTE, "talks about her brother", pressed.wall, pressed.wall + 45, "Dr A")
    [o] = log.observations()
    assert o.t_pressed_mono == pressed.mono and o.t_saved_utc == pressed.wall + 45
    sid = log.add_observation(press("cadss6", clock), "Dr A", scale=ScaleScore.cadss6([1, 2, 0, 0, 4, 1]))
    assert plain.execute("SELECT scale, score FROM observations WHERE id = ?", (sid,)).fetchone() == (
        "cadss6",
        8,
    )
    assert log.observations()[-1].scale == ScaleScore.cadss6([1, 2, 0, 0, 4, 1])


def test_observation_validation(db: Database) -> None:
    clock = FakeClock()
    _rec, log = started(db, clock)
    with pytest.raises(ObservationError, match="text is required"):
        log.add_observation(press(NOTE, clock), "Dr A")
    with pytest.raises(ObservationError, match="author"):
        log.add_observation(press("nausea", clock), " ")
    with pytest.raises(ObservationError, match="workflow"):
        log.add_observation(press(DOSE_GIVEN, clock), "Dr A")
    with pytest.raises(ObservationError, match="moaas score"):
        log.add_observation(press("moaas", clock), "Dr A")
    assert log.observations() == []


def test_database_checks_scale_ranges(db: Database, plain: sqlite3.Connection) -> None:
    clock = FakeClock()
    _rec, log = started(db, clock)
    sql = (
        "INSERT INTO observations (session_id, seq, code, scale, score, pressed_mono, pressed_utc, "
        "saved_mono, saved_utc, author) VALUES (?, 99, 'rass', 'rass', ?, 0, 0, 0, 0, 'x')"
    )
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        plain.execute(sql, (log.session_id, 5))
    plain.execute(sql, (log.session_id, -5))


def test_amendment_keeps_the_original(db: Database, plain: sqlite3.Connection) -> None:
    clock = FakeClock()
    _rec, log = started(db, clock)
    first = log.add_observation(press("nausea", clock), "RN B")
    clock.advance(120)
    fix = log.amend(first, "Dr A", code="vomiting", text="small amount")
    assert plain.execute("SELECT code, amends FROM observations ORDER BY id").fetchall() == [
        ("nausea", None),
        ("vomiting", first),
    ]
    [cur] = log.current_observations()
    assert (cur.id, cur.code, cur.text, cur.author) == (first, "vomiting", "small amount", "Dr A")
    assert cur.t_pressed_utc == clock.wall() - 120
    again = log.amend(fix, "Dr A", text="moderate")  # a chain
    assert log.current_observations()[0].text == "moderate"
    assert log.current_observations()[0].amends == fix
    with pytest.raises(KeyError):
        log.amend(12345, "Dr A")
    with pytest.raises(ObservationError, match="dose"):
        log.amend(first, "Dr A", code=DOSE_GIVEN)
    assert again > fix


def test_amendment_must_reference_the_same_session(db: Database, plain: sqlite3.Connection) -> None:
    clock = FakeClock()
    _rec, log = started(db, clock)
    oid = log.add_observation(press("crying", clock), "Dr A")
    clock.advance(2)
    _rec2, other = started(db, clock)
    with pytest.raises(sqlite3.IntegrityError, match="same session"):
        plain.execute(
            "INSERT INTO observations (session_id, seq, code, pressed_mono, pressed_utc, saved_mono, "
            "saved_utc, author, amends) VALUES (?, 1, 'crying', 0, 0, 0, 0, 'x', ?)",
            (other.session_id, oid),
        )


@pytest.mark.parametrize("table", ["observations", "phase_changes", "decisions"])
def test_update_and_delete_refused(db: Database, plain: sqlite3.Connection, table: str) -> None:
    clock = FakeClock()
    _rec, log = started(db, clock)
    wf = SessionWorkflow(details(), clock)
    log.write(wf.start_baseline("dr"))
    log.write(wf.record_baseline(BloodPressure(120, 80, None, 60, 0, clock.wall(), "cuff"), "dr"))
    log.add_observation(press("nausea", clock), "dr")
    assert plain.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE refused"):
        plain.execute(f"UPDATE {table} SET seq = seq + 100")
    with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE refused"):
        plain.execute(f"DELETE FROM {table}")
    assert plain.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 1


def test_seq_shared_with_the_recorder_without_collisions(db: Database) -> None:
    clock = FakeClock()
    rec, log = started(db, clock)
    rec.add_numeric(Numeric(Param.SPO2, 97, clock.monotonic(), clock.wall(), "ox"))  # seq 1, buffered
    log.add_observation(press("nausea", clock), "dr")  # seq 2, committed at once
    rec.add_numeric(Numeric(Param.SPO2, 96, clock.monotonic(), clock.wall(), "ox"))  # seq 3
    rec.add_audit("dr", "note")  # seq 4
    wf = SessionWorkflow(details(), clock)
    log.write(wf.start_baseline("dr"))  # seq 5
    rec.flush()
    sid = log.session_id
    seqs = [
        r[0]
        for t in ("numerics", "observations", "audit", "phase_changes")
        for r in db.execute(f"SELECT seq FROM {t} WHERE session_id = ?", (sid,)).fetchall()
    ]
    assert sorted(seqs) == [1, 2, 3, 4, 5]
    assert max_seq(db, sid) == 5
    # a recorder attached after a crash continues after the session log's rows too
    later = Recorder.attach(db, clock, sid)
    assert later.next_seq() == 6


def test_without_a_recorder_the_next_seq_comes_from_the_database(db: Database) -> None:
    clock = FakeClock()
    rec, _log = started(db, clock)
    rec.add_audit("dr", "x")  # seq 1
    assert rec.session_id is not None
    log = SessionLog(db, clock, rec.session_id)
    log.add_observation(press("asleep", clock), "dr")
    log.add_observation(press("responsive", clock), "dr")
    assert [o.seq for o in log.observations()] == [2, 3]
    with pytest.raises(KeyError):
        SessionLog(db, clock, "no-such-session")


def _run_to_dosing(log: SessionLog, wf: SessionWorkflow, clock: FakeClock) -> None:
    log.save_details(wf.details)
    log.write(wf.start_baseline("dr"))
    log.write(
        wf.record_baseline(BloodPressure(150, 95, None, 60, clock.monotonic(), clock.wall(), "cuff"), "dr")
    )
    log.write(wf.decide("proceed", "usual for her", "dr"))
    log.write(wf.start_dosing("dr"))
    log.write(wf.log_device("dr"))


def test_workflow_records_written_and_read_back(db: Database) -> None:
    clock = FakeClock()
    _rec, log = started(db, clock)
    wf = SessionWorkflow(details(), clock)
    _run_to_dosing(log, wf, clock)
    assert [(p.from_phase, p.to_phase) for p in log.phase_changes()] == [
        (Phase.PREPARATION, Phase.BASELINE),
        (Phase.BASELINE, Phase.DOSING),
    ]
    assert [(d.kind, d.choice, d.reason, d.detail) for d in log.decisions()] == [
        ("baseline", "taken", "", "150/95"),
        ("bp_gate", "proceed", "usual for her", "150/95"),
    ]
    [dose] = [o for o in log.observations() if o.code == DOSE_GIVEN]
    assert (dose.dose_mg, dose.text, dose.author) == (28.0, "device 1 of 2", "dr")
    kinds = [type(r).__name__ for r in log.records()]
    assert kinds == ["PhaseChange", "Decision", "Decision", "PhaseChange", "Dose"]


def test_crash_recovery_resume_marks_the_gap_and_continues_the_workflow(db_path: Path) -> None:
    clock = FakeClock()
    db = open_database(db_path)
    rec, log = started(db, clock)
    sid = log.session_id
    wf = SessionWorkflow(details(), clock)
    _run_to_dosing(log, wf, clock)
    clock.advance(60)
    rec.add_blood_pressure(BloodPressure(140, 88, None, 60, clock.monotonic(), clock.wall(), "cuff"))
    rec.flush()
    last = clock.wall()
    db.close()  # the app dies here

    later = FakeClock(start_wall=last + 4 * MIN, start_mono=3.0)  # after a reboot
    db2 = open_database(db_path)
    try:
        assert [s.id for s in find_unfinished(db2)] == [sid]
        r = resume(db2, later, sid, "Dr A")
        assert (r.gap_from_utc, r.gap_to_utc) == (last, last + 4 * MIN)
        [note] = [e for e in device_events(db2, sid) if e.device == CONSOLE_DEVICE]
        assert note.detail == (
            "resumed after interruption; gap from 2026-01-01T00:01:00.000Z to 2026-01-01T00:05:00.000Z"
        )
        assert audit_entries(db2, sid)[-1].action == "session resumed"
        assert r.workflow is not None
        assert r.workflow.phase == Phase.DOSING
        assert r.workflow.dose_elapsed() == 5 * MIN
        assert r.workflow.last_bp_age() == 4 * MIN
        # the same session continues: the next device and an observation land in it, seq after the gap
        r.log.write(r.workflow.log_device("Dr A"))
        oid = r.log.add_observation(press("nausea", later), "Dr A")
        r.recorder.flush()
        assert r.log.observations()[-1].id == oid
        assert r.log.observations()[-1].seq == max_seq(db2, sid)
        assert [o.text for o in r.log.observations() if o.code == DOSE_GIVEN] == [
            "device 1 of 2",
            "device 2 of 2",
        ]
        session = get_session(db2, sid)
        assert session is not None and session.status == "recording"
    finally:
        db2.close()


def test_two_restarts_keep_the_dose_clock_through_wall_steps_inside_each_run(db_path: Path) -> None:
    """Each run's rows keep their monotonic spacing; only the gaps (a reboot each) are bridged by
    the wall clock, once per restart, from the newest row of the run that died."""
    clock = FakeClock()
    db = open_database(db_path)
    rec, log = started(db, clock)
    sid = log.session_id
    wf = SessionWorkflow(details(), clock)
    _run_to_dosing(log, wf, clock)
    clock.advance(2 * MIN)
    clock.jump_wall(-3600.0)  # an NTP step an hour back while the first run records
    clock.advance(1 * MIN)
    rec.add_numeric(Numeric(Param.SPO2, 97.0, clock.monotonic(), clock.wall(), "ox"))
    rec.flush()
    db.close()  # dies 3 min after the first device

    second = FakeClock(start_wall=clock.wall() + 4 * MIN, start_mono=3.0)  # a reboot, 4 min later
    db2 = open_database(db_path)
    r = resume(db2, second, sid, "Dr A")
    assert r.workflow is not None
    assert r.workflow.dose_elapsed() == 7 * MIN
    assert r.workflow.rest_remaining() == 0.0
    assert r.workflow.due_at() == second.monotonic() + 33 * MIN
    r.log.write(r.workflow.start_monitoring("Dr A"))
    second.advance(5 * MIN)
    second.jump_wall(3600.0)  # and an hour forward during the second run
    second.advance(1 * MIN)
    r.recorder.add_numeric(Numeric(Param.SPO2, 96.0, second.monotonic(), second.wall(), "ox"))
    r.recorder.flush()
    db2.close()  # dies again, 13 min after the first device

    third = FakeClock(start_wall=second.wall() + 2 * MIN, start_mono=7.0)
    db3 = open_database(db_path)
    try:
        again = resume(db3, third, sid, "Dr A")
        assert again.workflow is not None
        assert again.workflow.phase == Phase.MONITORING
        assert again.workflow.dose_elapsed() == 15 * MIN
        assert again.workflow.due_at() == third.monotonic() + 25 * MIN
        assert [p for p, _ in again.workflow.timeline][-1] == Phase.MONITORING
        # restoring again in the same run (no new marker) gives the same clock
        same = restore_workflow(again.log, third)
        assert same is not None and same.dose_elapsed() == 15 * MIN
    finally:
        db3.close()


def test_close_interrupted(db: Database) -> None:
    clock = FakeClock()
    rec, log = started(db, clock)
    rec.add_audit("dr", "start")
    clock.advance(600)
    close_interrupted(db, clock, log.session_id, "Dr A")
    session = get_session(db, log.session_id)
    assert session is not None and session.status == "interrupted"
    assert find_unfinished(db) == []
    entry = audit_entries(db, log.session_id)[-1]
    assert (entry.action, entry.detail) == (
        "session closed as interrupted",
        "last record at 2026-01-01T00:00:00.000Z",
    )


def test_restore_workflow_without_details_is_none(db: Database) -> None:
    clock = FakeClock()
    _rec, log = started(db, clock)
    assert restore_workflow(log, clock) is None
    log.save_details(details())
    wf = restore_workflow(log, clock)
    assert wf is not None and wf.phase == Phase.PREPARATION


def test_discharge_records_round_trip(db: Database) -> None:
    clock = FakeClock()
    _rec, log = started(db, clock)
    wf = SessionWorkflow(details(), clock)
    _run_to_dosing(log, wf, clock)
    clock.advance(5 * MIN)
    log.write(wf.log_device("dr"))
    log.write(wf.start_monitoring("dr"))
    clock.advance(60 * MIN)
    log.write(wf.start_recovery("dr"))
    for item in ChecklistItem:
        log.write(wf.check(item, "dr"))
    log.write(wf.ready_to_leave("dr"))
    again = restore_workflow(log, clock)
    assert again is not None
    assert again.phase == Phase.RECOVERY
    assert all(again.checklist.values())
    assert again.ready_wall == wf.ready_wall
    assert log.phase_changes()[-1] == PhaseChange(
        Phase.MONITORING, Phase.RECOVERY, "dr", clock.monotonic(), clock.wall()
    )


def _baseline_then_two_devices(
    rec: Recorder, log: SessionLog, wf: SessionWorkflow, clock: FakeClock
) -> float:
    """Baseline with a 132/84 reading after a minute, dosing, a device a minute later and another
    5 min after it; returns the wall time of the first device."""
    log.write(wf.start_baseline("dr"))
    clock.advance(60)
    before = BloodPressure(132, 84, None, 60, clock.monotonic(), clock.wall(), "cuff")
    rec.add_blood_pressure(before)
    log.write(wf.record_baseline(before, "dr"))
    log.write(wf.start_dosing("dr"))
    clock.advance(60)
    first_wall = clock.wall()
    log.write(wf.log_device("dr"))
    clock.advance(5 * MIN)
    log.write(wf.log_device("dr"))
    return first_wall


def test_rems_form_from_the_stored_session(db: Database) -> None:
    clock = FakeClock()
    rec, log = started(db, clock)
    assert rems_for_session(log, clock) is None  # no details
    wf = SessionWorkflow(details(), clock)
    log.save_details(details())
    assert rems_for_session(log, clock) is None  # no device yet
    first_wall = _baseline_then_two_devices(rec, log, wf, clock)
    clock.advance(36 * MIN)  # 41 min after the first device
    rec.add_blood_pressure(BloodPressure(150, 92, None, 70, clock.monotonic(), clock.wall(), "cuff"))
    log.add_observation(press("moaas", clock), "dr", scale=ScaleScore.moaas(3))
    log.write(wf.start_monitoring("dr"))
    clock.advance(60 * MIN)
    log.write(wf.start_recovery("dr"))
    for item in ChecklistItem:
        log.write(wf.check(item, "dr"))
    log.write(wf.ready_to_leave("dr"))  # 101 min
    clock.advance(20 * MIN)
    rec.add_blood_pressure(BloodPressure(128, 80, None, 66, clock.monotonic(), clock.wall(), "cuff"))
    log.write(wf.start_discharge("dr"))
    log.write(wf.end("dr"))  # 121 min
    rec.end_session()
    form = rems_for_session(log, clock)
    assert form is not None
    assert (form.bp_before_dosing.text, form.bp_at_40_min.text, form.bp_before_completion.text) == (
        "132/84",
        "150/92",
        "128/80",
    )
    assert form.total_minutes == pytest.approx(121)
    assert form.ready_to_leave_minutes == pytest.approx(101)
    assert form.dose_mg == 56 and form.dose_category == "56"
    assert form.sedation_occurred is True
    assert form.session_date == "2026-01-01"
    assert first_wall + 121 * MIN == pytest.approx(get_session(db, log.session_id).ended_utc)  # type: ignore[union-attr]
    assert form.flags == ()


_CHILD = textwrap.dedent(
    """
    import sys
    from kapmonitor.clock import FakeClock
    from kapmonitor.observations import press
    from kapmonitor.storage import Recorder, open_database
    from kapmonitor.storage.session_log import SessionLog

    db = open_database(sys.argv[1])
    clock = FakeClock()
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    log = SessionLog(db, clock, sid, seq=rec.next_seq)
    oid = log.add_observation(press("note", clock), "Dr A", text="saved before the kill")
    print(sid, oid, flush=True)
    sys.stdin.readline()  # wait to be killed
    """
)


def test_observation_survives_sigkill_right_after_add_observation(db_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL
    sid, oid = line.split()
    db = open_database(db_path)
    try:
        row = db.execute(
            "SELECT session_id, text, author FROM observations WHERE id = ?", (int(oid),)
        ).fetchone()
        assert row == (sid, "saved before the kill", "Dr A")
        assert [s.id for s in find_unfinished(db)] == [sid]
    finally:
        db.close()


def test_unfinished_overview_says_who_where_and_since_when(db: Database) -> None:
    clock = FakeClock()
    _rec, log = started(db, clock)  # a live session with a dose, then the app dies
    wf = SessionWorkflow(details(), clock)
    _run_to_dosing(log, wf, clock)
    dosed = clock.wall()
    clock.advance(90)
    log.add_observation(press("nausea", clock), "dr")
    demo = Recorder(db, clock)
    demo_id = demo.begin_session(kind="demo")  # no details yet
    [u] = unfinished_overview(db, "live")
    assert (u.session.id, u.phase, u.first_dose_utc, u.last_record_utc) == (
        log.session_id,
        Phase.DOSING,
        dosed,
        dosed + 90,
    )
    assert u.details is not None and u.details.patient == "P-017"
    [d] = unfinished_overview(db, "demo")
    assert (d.session.id, d.details, d.phase, d.first_dose_utc) == (demo_id, None, None, None)
    assert [x.session.id for x in unfinished_overview(db)] == [demo_id, log.session_id]  # newest first


def test_rems_end_of_monitoring_is_when_the_clinician_ended_the_session(db: Database) -> None:
    clock = FakeClock()
    rec, log = started(db, clock)
    wf = SessionWorkflow(details(), clock)
    _run_to_dosing(log, wf, clock)
    clock.advance(5 * MIN)
    log.write(wf.log_device("dr"))
    log.write(wf.start_monitoring("dr"))
    clock.advance(60 * MIN)
    log.write(wf.start_recovery("dr"))
    log.write(wf.start_discharge("dr"))
    for item in ChecklistItem:
        log.write(wf.check(item, "dr"))
    log.write(wf.ready_to_leave("dr"))
    clock.advance(60 * MIN)
    log.write(wf.end("dr"))  # 125 min after the first device
    clock.advance(20 * MIN)  # the console stays open a while: the recording goes on
    form = rems_for_session(log, clock)
    assert form is not None and form.total_minutes == pytest.approx(125)
    rec.end_session()
    form = rems_for_session(log, clock)
    assert form is not None and form.total_minutes == pytest.approx(125)  # not the recording's end


def test_the_rems_form_follows_the_monotonic_clock_through_a_wall_step_and_a_restart(db_path: Path) -> None:
    """An hour's NTP step back 22 min after the first device, a crash and a reboot at 41 min: the
    form's minutes and readings are those of the monotonic clock, bridged once at the restart."""
    clock = FakeClock()
    db = open_database(db_path)
    rec, log = started(db, clock)
    sid = log.session_id
    wf = SessionWorkflow(details(), clock)
    log.save_details(details())
    first_wall = _baseline_then_two_devices(rec, log, wf, clock)
    clock.advance(17 * MIN)
    clock.jump_wall(-3600.0)  # the wall clock now reads 38 min before the first device
    clock.advance(19 * MIN)  # 41 min after the first device
    rec.add_blood_pressure(BloodPressure(150, 92, None, 70, clock.monotonic(), clock.wall(), "cuff"))
    log.write(wf.start_monitoring("dr"))
    rec.flush()
    db.close()  # the app dies

    later = FakeClock(start_wall=clock.wall() + 4 * MIN, start_mono=2.0)  # a reboot, at 45 min
    db2 = open_database(db_path)
    try:
        r = resume(db2, later, sid, "Dr A")
        assert r.workflow is not None and r.workflow.dose_elapsed() == 45 * MIN
        later.advance(56 * MIN)
        r.log.write(r.workflow.start_recovery("dr"))
        for item in ChecklistItem:
            r.log.write(r.workflow.check(item, "dr"))
        r.log.write(r.workflow.ready_to_leave("dr"))  # 101 min
        later.advance(20 * MIN)
        r.recorder.add_blood_pressure(
            BloodPressure(128, 80, None, 66, later.monotonic(), later.wall(), "cuff")
        )
        r.log.write(r.workflow.start_discharge("dr"))
        r.log.write(r.workflow.end("dr"))  # 121 min
        r.recorder.end_session()
        form = rems_for_session(r.log, later)
        assert form is not None
        assert (form.bp_before_dosing.text, form.bp_at_40_min.text, form.bp_before_completion.text) == (
            "132/84",
            "150/92",
            "128/80",
        )
        assert form.bp_before_dosing.minutes_after_first_device == pytest.approx(-1)
        assert form.bp_at_40_min.minutes_after_first_device == pytest.approx(41)
        assert form.total_minutes == pytest.approx(121)
        assert form.ready_to_leave_minutes == pytest.approx(101)
        assert form.session_date == "2026-01-01"  # printed from the wall time of the first device
        assert form.bp_at_40_min.reading is not None
        assert form.bp_at_40_min.reading.wall == pytest.approx(first_wall + 41 * MIN - 3600)  # as recorded
        assert form.flags == ()
    finally:
        db2.close()


def test_a_session_closed_as_interrupted_then_resumed_bridges_both_restarts(db_path: Path) -> None:
    clock = FakeClock()
    db = open_database(db_path)
    rec, log = started(db, clock)
    sid = log.session_id
    wf = SessionWorkflow(details(), clock)
    _run_to_dosing(log, wf, clock)
    clock.advance(3 * MIN)
    rec.add_numeric(Numeric(Param.SPO2, 97.0, clock.monotonic(), clock.wall(), "ox"))
    rec.flush()
    db.close()  # dies 3 min after the first device

    closer = FakeClock(start_wall=clock.wall() + 2 * MIN, start_mono=50_000.0)  # another boot
    db2 = open_database(db_path)
    close_interrupted(db2, closer, sid, "Dr A")
    db2.close()

    later = FakeClock(start_wall=closer.wall() + 5 * MIN, start_mono=9.0)  # and another
    db3 = open_database(db_path)
    try:
        r = resume(db3, later, sid, "Dr A")
        assert r.workflow is not None
        assert r.workflow.dose_elapsed() == 10 * MIN
    finally:
        db3.close()
