"""Tests of the Recorder: batching on the fake clock, one transaction, seq, attach, failed flushes."""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

import kapmonitor
from kapmonitor.clock import FakeClock
from kapmonitor.measurements import (
    BloodPressure,
    BPStatus,
    DeviceEvent,
    DeviceInfo,
    DeviceState,
    MalformedPacket,
    Numeric,
    Param,
    Waveform,
)
from kapmonitor.session import Session, Sink
from kapmonitor.storage import (
    DEFAULT_FLUSH_INTERVAL_S,
    Recorder,
    RecorderError,
    audit_entries,
    get_session,
    max_seq,
    numerics,
    open_database,
    queries,
    schema_version,
    session_devices,
    waveform,
)

EVENT_TABLES = (
    "numerics",
    "waveform_chunks",
    "device_events",
    "malformed_packets",
    "audit",
    "blood_pressure",
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "kap.sqlite"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = open_database(db_path, busy_timeout_ms=50)
    yield database
    database.close()


@pytest.fixture
def reader(db: Database, db_path: Path) -> Iterator[sqlite3.Connection]:
    """A second connection: sees only what the recorder has committed."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    yield conn
    conn.close()


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def spo2(clock: FakeClock, value: float | None = 97.0) -> Numeric:
    return Numeric(Param.SPO2, value, clock.monotonic(), clock.wall(), "ox")


def test_recorder_is_a_session_sink(db: Database) -> None:
    sink: Sink = Recorder(db, FakeClock())  # mypy checks the protocol; this checks it at run time too
    for name in ("add_numeric", "add_waveform", "add_device_event", "add_malformed", "maybe_flush"):
        assert callable(getattr(sink, name))


def test_begin_session_commits_a_readable_id_at_once(db: Database, reader: sqlite3.Connection) -> None:
    clock = FakeClock(start_wall=1_795_607_112.0)  # 2026-11-25T11:45:12Z
    assert Recorder(db, clock).session_id is None
    rec = Recorder(db, clock)
    sid = rec.begin_session(kind="demo", note="emulated devices")
    assert re.fullmatch(r"20261125-114512-[0-9a-f]{4}", sid)
    assert rec.session_id == sid
    row = reader.execute("SELECT status, kind, note, app_version, started_mono FROM sessions").fetchone()
    assert row == ("recording", "demo", "emulated devices", kapmonitor.__version__, 1000.0)
    with pytest.raises(RuntimeError, match="already"):
        rec.begin_session()


def test_session_ids_differ_within_one_second(db: Database) -> None:
    clock = FakeClock()
    ids = {Recorder(db, clock).begin_session() for _ in range(20)}
    assert len(ids) == 20


def test_nothing_is_written_before_the_flush_interval(db: Database, reader: sqlite3.Connection) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock, flush_interval_s=1.0)
    rec.begin_session()
    for _ in range(9):
        rec.add_numeric(spo2(clock))
        clock.advance(0.1)
        assert rec.maybe_flush() is False
    assert clock.monotonic() == pytest.approx(1000.9)
    assert count(reader, "numerics") == 0
    assert rec.pending == 9
    clock.advance(0.1)  # 1.0 s since begin_session
    assert rec.maybe_flush() is True
    assert count(reader, "numerics") == 9
    assert rec.pending == 0
    assert rec.maybe_flush() is False  # the interval restarts from the flush
    clock.advance(0.99)
    rec.add_numeric(spo2(clock))
    assert rec.maybe_flush() is False
    clock.advance(0.01)
    assert rec.maybe_flush() is True
    assert count(reader, "numerics") == 10


def test_flush_interval_is_configurable(db: Database, reader: sqlite3.Connection) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock, flush_interval_s=0.25)
    rec.begin_session()
    rec.add_numeric(spo2(clock))
    clock.advance(0.2)
    assert not rec.maybe_flush()
    clock.advance(0.05)
    assert rec.maybe_flush()
    assert count(reader, "numerics") == 1
    with pytest.raises(ValueError):
        Recorder(db, clock, flush_interval_s=0)


def test_flush_is_one_transaction(db: Database) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    rec.begin_session()
    for i in range(50):
        rec.add_numeric(spo2(clock, 90.0 + i % 10))
        rec.add_waveform(Waveform("pleth", 100.0, tuple(range(5)), 1000.0 + i * 0.05, 0.0, "ox"))
        clock.advance(0.02)
    rec.add_device_event(DeviceEvent("ox", DeviceState.CONNECTED, "", 1.0, 1.0))
    rec.add_malformed(MalformedPacket("ox", "2a5e", b"\x01", "short", 1.0, 1.0))
    rec.add_device(DeviceInfo("ox", "Nonin 3150", "pulse-oximeter"))
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        written = rec.flush()
    finally:
        db.conn.set_trace_callback(None)
    assert written == 50 + 3 + 1 + 1 + 1  # 250 samples at 100 Hz: two full chunks and a partial one
    keywords = [s.split()[0].upper() for s in statements]
    assert keywords.count("BEGIN") == 1
    assert keywords.count("COMMIT") == 1
    assert keywords[0] == "BEGIN" and keywords[-1] == "COMMIT"
    assert rec.flush() == 0  # nothing pending: no transaction at all
    assert [d.name for d in session_devices(db, rec.session_id or "")] == ["Nonin 3150"]


def test_seq_is_strictly_increasing_and_unique_across_tables(db: Database) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    for i in range(30):
        rec.add_numeric(spo2(clock))
        rec.add_waveform(Waveform("pleth", 50.0, (i, i + 1), clock.monotonic(), clock.wall(), "ox"))
        if i % 7 == 0:
            rec.add_device_event(DeviceEvent("ox", None, f"note {i}", clock.monotonic(), clock.wall()))
            rec.add_audit("nurse", "observation", f"{i}")
        if i % 11 == 0:
            rec.add_malformed(MalformedPacket("ox", "c", b"", "empty", clock.monotonic(), clock.wall()))
        if i == 13:
            clock.jump_wall(-3600)  # the wall clock steps back: seq order must not care
        clock.advance(0.04)
        rec.maybe_flush()
    rec.end_session()
    every: list[int] = []
    for table in EVENT_TABLES:
        seqs = [
            r[0] for r in db.execute(f"SELECT seq FROM {table} WHERE session_id = ? ORDER BY rowid", (sid,))
        ]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), table
        every += seqs
    assert len(every) == len(set(every))
    assert min(every) >= 1
    assert max(every) == rec.last_seq == max_seq(db, sid)
    # numerics by seq are in arrival order even though t_utc jumped back
    mono = [r[0] for r in db.execute("SELECT mono FROM numerics WHERE session_id = ? ORDER BY seq", (sid,))]
    assert mono == sorted(mono)


def test_attach_continues_seq_and_the_session(db: Database, db_path: Path) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    for _ in range(5):
        rec.add_numeric(spo2(clock))
    rec.add_audit("dr.x", "note", "")
    rec.flush()
    last = rec.last_seq
    assert last == 6
    db.close()  # the app dies; the session stays 'recording'

    db2 = open_database(db_path)
    try:
        clock.advance(60)
        resumed = Recorder.attach(db2, clock, sid)
        assert resumed.session_id == sid
        assert resumed.last_seq == last
        resumed.add_numeric(spo2(clock, 88.0))
        resumed.end_session("interrupted")
        seqs = [
            r[0] for r in db2.execute("SELECT seq FROM numerics WHERE session_id = ? ORDER BY seq", (sid,))
        ]
        assert seqs == [1, 2, 3, 4, 5, 7]
        row = get_session(db2, sid)
        assert row is not None and row.status == "interrupted"

        again = Recorder.attach(db2, clock, sid)  # an interrupted session can be resumed
        row = get_session(db2, sid)
        assert row is not None and (row.status, row.ended_utc) == ("recording", None)
        assert again.last_seq == 7
        again.end_session()
        with pytest.raises(ValueError, match="completed"):
            Recorder.attach(db2, clock, sid)
        with pytest.raises(KeyError):
            Recorder.attach(db2, clock, "20260101-000000-dead")
    finally:
        db2.close()


def test_end_session_flushes_and_marks_completed(db: Database, reader: sqlite3.Connection) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    rec.add_numeric(spo2(clock))
    rec.add_waveform(Waveform("pleth", 100.0, (1, 2, 3), clock.monotonic(), clock.wall(), "ox"))
    clock.advance(0.3)
    rec.end_session()
    assert count(reader, "numerics") == 1
    assert count(reader, "waveform_chunks") == 1  # the partial chunk is not lost
    status, ended = reader.execute("SELECT status, ended_utc FROM sessions WHERE id = ?", (sid,)).fetchone()
    assert (status, ended) == ("completed", clock.wall())
    with pytest.raises(RuntimeError, match="ended"):
        rec.add_numeric(spo2(clock))
    assert rec.maybe_flush() is False


def test_data_before_begin_session_is_refused(db: Database) -> None:
    rec = Recorder(db, FakeClock())
    with pytest.raises(RuntimeError, match="begin_session"):
        rec.add_numeric(spo2(FakeClock()))
    assert rec.maybe_flush() is False
    assert rec.flush() == 0


def test_audit_is_committed_at_once(db: Database, reader: sqlite3.Connection) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    rec.add_audit("admin", "settings.change", "alarm limits preset KAP")  # before any session
    rec.add_audit("admin", "settings.change", "volume 60%")
    sid = rec.begin_session()
    rec.add_numeric(spo2(clock))
    rec.add_audit("dr.x", "alarm.pause", "120 s")
    assert count(reader, "audit") == 3  # no flush needed
    assert count(reader, "numerics") == 0
    outside = audit_entries(db, None)
    assert [(a.seq, a.detail) for a in outside] == [(1, "alarm limits preset KAP"), (2, "volume 60%")]
    (inside,) = audit_entries(db, sid)
    assert (inside.who, inside.action, inside.seq) == ("dr.x", "alarm.pause", 2)  # after the numeric's 1


def test_waveform_chunks_are_cut_at_one_second(db: Database) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    for k in range(9):  # 90 samples at 100 Hz: not yet a second
        rec.add_waveform(Waveform("pleth", 100.0, (k,) * 10, 10.0 + k * 0.1, 0.0, "ox"))
    assert rec.pending == 0
    rec.add_waveform(Waveform("pleth", 100.0, (9,) * 10, 10.9, 0.0, "ox"))
    assert rec.pending == 1  # one full second: cut into a chunk
    rec.add_waveform(Waveform("pleth", 100.0, (10,) * 10, 11.0, 0.0, "ox"))
    rec.flush()
    rows = db.execute(
        "SELECT start_mono, n FROM waveform_chunks WHERE session_id = ? ORDER BY seq", (sid,)
    ).fetchall()
    assert rows == [(10.0, 100), (11.0, 10)]


def test_a_gap_or_a_rate_change_starts_a_new_chunk(db: Database) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    rec.add_waveform(Waveform("pleth", 100.0, (1, 2, 3, 4, 5), 10.0, 0.0, "ox"))
    rec.add_waveform(Waveform("pleth", 100.0, (6, 7), 25.0, 0.0, "ox"))  # 15 s later: device came back
    rec.add_waveform(Waveform("pleth", 50.0, (8, 9), 25.02, 0.0, "ox"))  # same time, new rate
    rec.flush()
    times, samples = waveform(db, sid, "pleth")
    assert samples.tolist() == list(range(1, 10))
    assert times.tolist() == pytest.approx([10.0, 10.01, 10.02, 10.03, 10.04, 25.0, 25.01, 25.02, 25.04])


def test_waveform_out_of_range_is_refused_and_buffers_nothing(db: Database) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    rec.begin_session()
    with pytest.raises(ValueError, match="int16"):
        rec.add_waveform(Waveform("pleth", 100.0, (1, 40000), 10.0, 0.0, "ox"))
    rec.flush()
    assert db.execute("SELECT COUNT(*) FROM waveform_chunks").fetchone()[0] == 0


# -- failures --------------------------------------------------------------------------------
def _fill(rec: Recorder, clock: FakeClock) -> None:
    for i in range(20):
        rec.add_numeric(spo2(clock, None if i % 5 == 0 else 95.0 + i % 3))
        rec.add_waveform(Waveform("pleth", 100.0, (i, -i), clock.monotonic(), clock.wall(), "ox"))
        clock.advance(0.01)
    rec.add_device_event(DeviceEvent("ox", DeviceState.LOST, "link", clock.monotonic(), clock.wall()))


def test_a_failed_flush_keeps_every_row_for_the_next(db: Database, db_path: Path) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    _fill(rec, clock)
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another writer holds the lock past our 50 ms busy timeout
    try:
        with pytest.raises(RecorderError, match="kept") as info:
            rec.flush()
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert "locked" in str(info.value)
        assert rec.pending == 20 + 1 + 1  # numerics, the partial chunk, the event
        assert not db.conn.in_transaction  # rolled back, not left open
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert count(db.conn, "numerics") == 0
    assert rec.flush() == 22
    assert rec.pending == 0
    seqs = [r[0] for r in db.execute("SELECT seq FROM numerics ORDER BY seq")]
    assert len(seqs) == 20 and len(set(seqs)) == 20  # each row once, with its original seq
    _, _, values = numerics(db, sid, Param.SPO2)
    assert int(np.isnan(values).sum()) == 4  # the None values are NaN
    assert waveform(db, sid, "pleth")[1].tolist() == [x for i in range(20) for x in (i, -i)]


def test_maybe_flush_raises_and_retries_after_the_next_interval(db: Database, db_path: Path) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    rec.begin_session()
    _fill(rec, clock)
    clock.advance(1.0)
    locker = sqlite3.connect(db_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RecorderError):
            rec.maybe_flush()
        assert rec.maybe_flush() is False  # no retry storm on every tick
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    clock.advance(1.0)
    assert rec.maybe_flush() is True
    assert rec.pending == 0
    assert count(db.conn, "numerics") == 20


def test_a_closed_connection_fails_clearly_and_keeps_rows(db_path: Path) -> None:
    db = open_database(db_path)
    clock = FakeClock()
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    _fill(rec, clock)
    db.close()
    with pytest.raises(RecorderError, match="22 buffered rows"):
        rec.flush()
    assert rec.pending == 22
    with pytest.raises(RecorderError):
        rec.add_audit("dr.x", "note", "")  # an audit entry is never lost silently either
    # after a reopen, a resumed recorder starts from what the database holds
    db2 = open_database(db_path)
    try:
        assert Recorder.attach(db2, clock, sid).last_seq == 0
    finally:
        db2.close()


def test_session_tick_flushes_through_the_recorder(db: Database, reader: sqlite3.Connection) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock, flush_interval_s=1.0)
    sid = rec.begin_session()
    session = Session(clock, sink=rec)
    session.device_state("ox", DeviceState.CONNECTED)
    for _ in range(10):
        session.ingest([spo2(clock)])
        clock.advance(0.1)
        session.tick()
    assert count(reader, "numerics") == 10
    assert count(reader, "device_events") == 1
    assert numerics(db, sid, Param.SPO2)[2].tolist() == [97.0] * 10


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=25)
@given(st.lists(st.floats(0.0, 0.7), min_size=1, max_size=40))
def test_flushes_follow_the_fake_clock(db: Database, steps: list[float]) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    last_flush = clock.monotonic()
    for added, step in enumerate(steps, start=1):
        rec.add_numeric(spo2(clock))
        clock.advance(step)
        due = clock.monotonic() - last_flush >= DEFAULT_FLUSH_INTERVAL_S
        assert rec.maybe_flush() is due
        if due:
            last_flush = clock.monotonic()
            assert rec.pending == 0
        stored = db.execute("SELECT COUNT(*) FROM numerics WHERE session_id = ?", (sid,)).fetchone()[0]
        assert stored + rec.pending == added


# -- blood pressure (migration 0002) -----------------------------------------------------------
def _bp(
    clock: FakeClock, sys_: float | None, measured: float | None, *, stored: bool = False
) -> BloodPressure:
    return BloodPressure(
        systolic=sys_,
        diastolic=80.0,
        mean=93.0,
        pulse_rate=72.0,
        mono=clock.monotonic(),
        wall=clock.wall(),
        device="CUFF",
        measured_wall=measured,
        stored=stored,
        status=BPStatus.IRREGULAR_PULSE,
        user_id=1,
    )


def test_blood_pressure_round_trip_and_no_duplicate_stored_reading(tmp_path: Path) -> None:
    clock = FakeClock()
    db = open_database(tmp_path / "bp.sqlite")
    recorder = Recorder(db, clock)
    sid = recorder.begin_session()
    first = _bp(clock, 120.0, clock.wall() - 600, stored=True)
    recorder.add_blood_pressure(first)
    recorder.flush()
    clock.advance(5)
    recorder.add_blood_pressure(_bp(clock, 120.0, first.measured_wall, stored=True))  # uploaded again
    live = _bp(clock, None, None)  # no timestamp: never de-duplicated
    recorder.add_blood_pressure(live)
    recorder.add_blood_pressure(live)
    recorder.flush()
    got = queries.blood_pressure(db, sid)
    assert got == [first, live, live]
    assert got[0].stored and got[0].status is BPStatus.IRREGULAR_PULSE
    assert schema_version(db) >= 2
    db.close()


def test_at_the_consoles_tick_flushes_are_at_most_a_second_apart(db: Database) -> None:
    """design.md "Storage": a crash costs at most the unflushed second. The console ticks every
    0.25 s and the recorder flushes at the first tick past its interval."""
    clock = FakeClock()
    rec = Recorder(db, clock)
    rec.begin_session()
    flushed_at = [clock.monotonic()]
    for _ in range(40):
        rec.add_numeric(spo2(clock))
        clock.advance(0.25)
        if rec.maybe_flush():
            flushed_at.append(clock.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(flushed_at)]
    assert len(gaps) >= 9
    assert max(gaps) <= 1.0
