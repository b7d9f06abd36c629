"""Tests of the SQLite database: file mode, PRAGMAs, numbered migrations, triggers, query round trips."""

from __future__ import annotations

import math
import os
import sqlite3
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from kapmonitor.clock import FakeClock
from kapmonitor.measurements import (
    DeviceEvent,
    DeviceState,
    MalformedPacket,
    Numeric,
    Param,
    Quality,
    Waveform,
)
from kapmonitor.storage import (
    Recorder,
    SchemaError,
    applied_migrations,
    default_database_path,
    device_events,
    get_session,
    list_sessions,
    malformed_packets,
    migrate,
    migration_names,
    numerics,
    open_database,
    pack_samples,
    schema_version,
    unfinished_sessions,
    waveform,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
reuse_db = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=40
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "folder" / "kap.sqlite"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = open_database(db_path)
    yield database
    database.close()


def _schema(db: Database) -> list[tuple[str, str, str]]:
    return sorted(
        db.execute("SELECT type, name, COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    )


# -- opening ---------------------------------------------------------------------------------
@posix_only
def test_creates_parent_folders_and_an_owner_only_file(db_path: Path) -> None:
    old_umask = os.umask(0o022)  # a typical umask would make a plain new file 0o644
    try:
        db = open_database(db_path)
    finally:
        os.umask(old_umask)
    try:
        assert db_path.parent.is_dir()
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
        rec = Recorder(db, FakeClock())
        rec.begin_session()
        wal = Path(f"{db_path}-wal")
        assert wal.exists()
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600  # SQLite copies the database file's mode
    finally:
        db.close()


def test_pragmas_are_set_wal_full_foreign_keys_busy_timeout(db: Database, db_path: Path) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # 2 = FULL (1 would be NORMAL)
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 1000
    # WAL is a property of the file: a plain second connection sees it too
    other = sqlite3.connect(db_path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()


def test_busy_timeout_is_configurable(tmp_path: Path) -> None:
    db = open_database(tmp_path / "a.sqlite", busy_timeout_ms=50)
    try:
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 50
    finally:
        db.close()


def test_default_database_path_is_in_the_user_data_folder() -> None:
    import platformdirs

    path = default_database_path()
    assert path.name == "kapmonitor.sqlite"
    assert path.parent == platformdirs.user_data_path("kapmonitor")


# -- migrations ------------------------------------------------------------------------------
def test_migrations_are_numbered_in_order() -> None:
    names = migration_names()
    assert names, "at least the initial migration"
    assert [int(n[:4]) for n in names] == list(range(1, len(names) + 1))
    assert names[0] == "0001_initial"


def test_migrations_are_recorded_with_their_numbers(db: Database) -> None:
    assert applied_migrations(db) == migration_names()
    recorded = [r["name"] for r in db["_sqlite_migrations"].rows_where("migration_set = 'kapmonitor'")]
    assert recorded == migration_names()
    assert schema_version(db) == len(migration_names())
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema_version(db)


def test_migrations_are_idempotent(db_path: Path) -> None:
    db = open_database(db_path)
    schema = _schema(db)
    assert migrate(db) == []  # nothing pending on a migrated database
    db.close()
    db = open_database(db_path)  # reopening applies nothing either
    try:
        assert _schema(db) == schema
        assert db.execute("SELECT COUNT(*) FROM _sqlite_migrations").fetchone()[0] == len(migration_names())
    finally:
        db.close()


def test_initial_schema_has_the_tables_and_indexes(db: Database) -> None:
    tables = set(db.table_names())
    assert {
        "sessions",
        "numerics",
        "waveform_chunks",
        "device_events",
        "malformed_packets",
        "devices",
        "audit",
    } <= tables
    numerics_index = [i for i in db.table("numerics").indexes if i.name == "numerics_by_param"]
    assert numerics_index and numerics_index[0].columns == ["session_id", "param", "mono"]
    chunk_index = [i for i in db.table("waveform_chunks").indexes if i.name == "waveform_chunks_by_name"]
    assert chunk_index and chunk_index[0].columns == ["session_id", "name", "start_mono"]
    plan = " ".join(
        str(r[-1])
        for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT mono FROM numerics WHERE session_id = 'x' AND param = 'spo2' "
            "ORDER BY mono"
        )
    )
    assert "numerics_by_param" in plan


def test_a_database_from_a_newer_version_is_refused(db_path: Path) -> None:
    db = open_database(db_path)
    db.table("_sqlite_migrations").insert(
        {"migration_set": "kapmonitor", "name": "0099_from_the_future", "applied_at": "2030"}
    )
    db.close()
    with pytest.raises(SchemaError, match="newer"):
        open_database(db_path)


def test_a_fresh_database_has_no_schema_before_migrating(tmp_path: Path) -> None:
    raw = Database(tmp_path / "raw.sqlite")
    try:
        assert schema_version(raw) == 0
        assert migrate(raw) == migration_names()
        assert schema_version(raw) == len(migration_names())
    finally:
        raw.close()


# -- constraints and triggers ----------------------------------------------------------------
def _audit_db(db: Database) -> tuple[Recorder, str]:
    rec = Recorder(db, FakeClock())
    sid = rec.begin_session()
    rec.add_audit("dr.x", "alarm.acknowledge", "SpO2 low")
    return rec, sid


def test_audit_refuses_update(db: Database) -> None:
    _audit_db(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit SET detail = 'changed'")
    assert [r[0] for r in db.execute("SELECT detail FROM audit")] == ["SpO2 low"]


def test_audit_refuses_delete(db: Database, db_path: Path) -> None:
    _audit_db(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit")
    # also through a plain connection that knows nothing of kapmonitor
    other = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            other.execute("DELETE FROM audit")
        other.rollback()
    finally:
        other.close()
    assert db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 1


def test_audit_can_still_be_appended_to(db: Database) -> None:
    rec, sid = _audit_db(db)
    rec.add_audit("dr.x", "alarm.acknowledge", "correction: SpO2 probe off")
    assert db.execute("SELECT COUNT(*) FROM audit WHERE session_id = ?", (sid,)).fetchone()[0] == 2


def test_foreign_keys_refuse_rows_of_an_unknown_session(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        db.execute(
            "INSERT INTO numerics (session_id, seq, mono, t_utc, param, value, quality, device) "
            "VALUES ('nope', 1, 0, 0, 'spo2', 97, 0, 'dev')"
        )


def test_session_status_and_kind_are_checked(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        db.execute(
            "INSERT INTO sessions (id, started_utc, started_mono, status, kind, app_version) "
            "VALUES ('s', 0, 0, 'paused', 'live', '0')"
        )
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        db.execute(
            "INSERT INTO sessions (id, started_utc, started_mono, status, kind, app_version) "
            "VALUES ('s', 0, 0, 'recording', 'test', '0')"
        )


# -- queries ---------------------------------------------------------------------------------
def test_list_get_and_unfinished_sessions(db: Database) -> None:
    clock = FakeClock()
    first = Recorder(db, clock)
    a = first.begin_session(kind="demo", note="first")
    clock.advance(10)
    second = Recorder(db, clock)
    b = second.begin_session()
    first.end_session()
    rows = list_sessions(db)
    assert [r.id for r in rows] == [b, a]  # newest first
    row_a = get_session(db, a)
    assert row_a is not None
    assert (row_a.kind, row_a.note, row_a.status) == ("demo", "first", "completed")
    assert row_a.started_utc == 1_767_225_600.0
    assert row_a.ended_utc == 1_767_225_610.0
    assert get_session(db, "no-such-session") is None
    assert [r.id for r in unfinished_sessions(db)] == [b]


values = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)


@reuse_db
@given(st.lists(values, max_size=60))
def test_numeric_none_is_stored_as_null_and_read_as_nan(db: Database, vals: list[float | None]) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    for i, v in enumerate(vals):
        rec.add_numeric(Numeric(Param.SPO2, v, 1000.0 + i, 2e9 + i, "ox", Quality.QUESTIONABLE))
    rec.add_numeric(Numeric(Param.PULSE_RATE, 60.0, 5.0, 5.0, "ox"))  # another param, not returned
    rec.flush()
    nulls = db.execute(
        "SELECT COUNT(*) FROM numerics WHERE session_id = ? AND param = 'spo2' AND value IS NULL", (sid,)
    ).fetchone()[0]
    assert nulls == sum(v is None for v in vals)
    mono, t_utc, value = numerics(db, sid, Param.SPO2)
    assert mono.dtype == t_utc.dtype == value.dtype == np.float64
    assert mono.tolist() == [1000.0 + i for i in range(len(vals))]
    assert t_utc.tolist() == [2e9 + i for i in range(len(vals))]
    for got, want in zip(value.tolist(), vals, strict=True):
        if want is None:
            assert math.isnan(got)
        else:
            assert got == want  # REAL is an IEEE double: exact


def test_numerics_of_an_unknown_param_are_empty(db: Database) -> None:
    rec = Recorder(db, FakeClock())
    sid = rec.begin_session()
    mono, t_utc, value = numerics(db, sid, "sys")
    assert mono.shape == t_utc.shape == value.shape == (0,)


packets = st.lists(
    st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=40),
    min_size=1,
    max_size=30,
)


@reuse_db
@given(
    packets,
    st.sampled_from([25.0, 50.0, 64.0, 100.0, 125.0]),
    st.sets(st.integers(0, 29)),
)
def test_waveform_round_trip_across_chunks(
    db: Database, chunks: list[list[int]], rate: float, flush_after: set[int]
) -> None:
    clock = FakeClock()
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    mono0, wall0 = 500.0, 1_800_000_000.0
    expected_t: list[float] = []
    sent = 0
    for k, samples in enumerate(chunks):
        mono = mono0 + sent / rate  # contiguous packets, as a device streams them
        rec.add_waveform(Waveform("pleth", rate, tuple(samples), mono, wall0 + sent / rate, "ox"))
        expected_t += [mono + i / rate for i in range(len(samples))]
        sent += len(samples)
        if k in flush_after:
            rec.flush()  # a flush cuts a partial chunk: boundaries fall anywhere
    rec.flush()
    times, got = waveform(db, sid, "pleth")
    assert got.dtype == np.int16
    assert got.tolist() == [s for p in chunks for s in p]  # exact sample equality
    np.testing.assert_allclose(times, expected_t, rtol=0, atol=1e-9)
    n_chunks = db.execute("SELECT COUNT(*) FROM waveform_chunks WHERE session_id = ?", (sid,)).fetchone()[0]
    assert n_chunks >= math.ceil(sent / (rate + 39))  # cut at >= 1 s: at most a second plus a packet
    longest = db.execute("SELECT MAX(n) FROM waveform_chunks WHERE session_id = ?", (sid,)).fetchone()[0]
    assert longest < rate + 40


def test_waveform_blob_is_packed_little_endian_int16(db: Database) -> None:
    rec = Recorder(db, FakeClock())
    sid = rec.begin_session()
    rec.add_waveform(Waveform("pleth", 100.0, (1, -2, 32767, -32768), 10.0, 20.0, "ox"))
    rec.flush()
    n, blob = db.execute("SELECT n, samples FROM waveform_chunks WHERE session_id = ?", (sid,)).fetchone()
    assert n == 4
    assert blob == b"\x01\x00\xfe\xff\xff\x7f\x00\x80"


def test_pack_samples_refuses_values_outside_int16() -> None:
    assert pack_samples([0, 32767]) == b"\x00\x00\xff\x7f"
    with pytest.raises(ValueError, match="int16"):
        pack_samples([32768])
    with pytest.raises(ValueError, match="int16"):
        pack_samples([-32769])


def test_waveform_from_two_devices_needs_a_device(db: Database) -> None:
    rec = Recorder(db, FakeClock())
    sid = rec.begin_session()
    rec.add_waveform(Waveform("pleth", 50.0, (1, 2, 3), 1.0, 1.0, "ox-a"))
    rec.add_waveform(Waveform("pleth", 50.0, (7, 8), 1.0, 1.0, "ox-b"))
    rec.flush()
    with pytest.raises(ValueError, match="several devices"):
        waveform(db, sid, "pleth")
    assert waveform(db, sid, "pleth", device="ox-b")[1].tolist() == [7, 8]
    times, samples = waveform(db, sid, "resp")
    assert times.shape == samples.shape == (0,)


def test_device_events_and_malformed_packets_round_trip(db: Database) -> None:
    rec = Recorder(db, FakeClock())
    sid = rec.begin_session()
    rec.add_device_event(DeviceEvent("ox", DeviceState.CONNECTED, "", 1.0, 11.0))
    rec.add_device_event(DeviceEvent("ox", None, "no data for 15 s", 16.0, 26.0))
    rec.add_malformed(MalformedPacket("ox", "2a5f", b"\x00\xff\x10", "too short", 17.0, 27.0))
    rec.flush()
    events = device_events(db, sid)
    assert [(e.device, e.state, e.detail, e.mono, e.t_utc) for e in events] == [
        ("ox", DeviceState.CONNECTED, "", 1.0, 11.0),
        ("ox", None, "no data for 15 s", 16.0, 26.0),
    ]
    assert events[0].seq < events[1].seq
    (bad,) = malformed_packets(db, sid)
    assert (bad.device, bad.characteristic, bad.data, bad.error) == (
        "ox",
        "2a5f",
        b"\x00\xff\x10",
        "too short",
    )
    assert (bad.mono, bad.t_utc) == (17.0, 27.0)
