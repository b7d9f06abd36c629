"""Tamper: append-only tables refuse edits from a raw sqlite3 connection; the files are owner-only."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kapmonitor.alarms.model import AlarmState, Priority, Transition, TransitionEvent
from kapmonitor.clock import FakeClock
from kapmonitor.export.csv_export import export_csv, export_csv_zip
from kapmonitor.export.edf_export import export_edf
from kapmonitor.export.session_file import export_session_file
from kapmonitor.measurements import Numeric, Param, Waveform
from kapmonitor.observations import press
from kapmonitor.storage import Recorder, open_database
from kapmonitor.storage.review import ReviewLog, Verdict
from kapmonitor.storage.session_log import SessionLog

#: The append-only tables (design.md, "Storage": observations and the audit trail; the alarm record
#: and the review are append-only too) and, for each, a text column a tamperer would rewrite.
APPEND_ONLY = {
    "observations": "text",
    "audit": "who",
    "alarm_events": "message",
    "annotations": "text",
    "alarm_adjudications": "comment",
}

#: The unique key of each table that an upsert or a replace would collide on (default `id`).
KEYS = {"alarm_events": "session_id, seq"}


@dataclass(frozen=True)
class Recorded:
    path: Path
    session_id: str


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """A umask that would leave new files world-readable: owner-only must not depend on it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def record_session(path: Path) -> Recorded:
    """A short ended and reviewed session with a row in every append-only table."""
    clock = FakeClock()
    db = open_database(path)
    try:
        rec = Recorder(db, clock)
        sid = rec.begin_session()
        log = SessionLog(db, clock, sid, seq=rec.next_seq)
        for t in range(30):
            rec.add_numeric(Numeric(Param.SPO2, 97.0, clock.monotonic(), clock.wall(), "OX"))
            rec.add_waveform(Waveform("pleth", 50.0, tuple(range(50)), clock.monotonic(), clock.wall(), "OX"))
            if t == 5:
                obs = log.add_observation(press("nausea", clock), "RN Ben Lund", text="mild, settled")
                log.amend(obs, "RN Ben Lund", text="moderate")
            if t == 10:
                raised = Transition(
                    TransitionEvent.RAISED, clock.monotonic(), clock.wall(), 1, "spo2.low",
                    AlarmState.ACTIVE, Priority.HIGH, "SpO2 low", param=Param.SPO2,
                )  # fmt: skip
                rec.add_alarm_transition(raised, 86.0)
                rec.add_audit("RN Ben Lund", "acknowledge", "SpO2 low")
            rec.maybe_flush()
            clock.advance(1.0)
        rec.end_session("completed")
        review = ReviewLog(db, clock, sid)
        review.annotate("settled after the dip", "Dr Cyd Moss", position_s=12.0)
        review.adjudicate(1, Verdict.TRUE, "real desaturation", "Dr Cyd Moss")
    finally:
        db.close()
    return Recorded(path, sid)


@pytest.fixture
def recorded(tmp_path: Path) -> Recorded:
    return record_session(tmp_path / "kap.sqlite")


def _dump(con: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {t: con.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in APPEND_ONLY}


@pytest.fixture
def raw(recorded: Recorded) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection, as any program with access to the file could open."""
    con = sqlite3.connect(recorded.path)
    yield con
    con.close()


def test_every_append_only_table_has_rows(raw: sqlite3.Connection) -> None:
    for table, rows in _dump(raw).items():
        assert rows, f"the fixture wrote nothing to {table}: the tamper tests would prove nothing"


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_update_refused(raw: sqlite3.Connection, table: str) -> None:
    before = _dump(raw)
    column = APPEND_ONLY[table]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute(f"UPDATE {table} SET {column} = 'tampered'")
    raw.rollback()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute(f"UPDATE {table} SET seq = seq + 1000 WHERE rowid = (SELECT MAX(rowid) FROM {table})")
    raw.rollback()
    assert _dump(raw) == before


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_delete_refused(raw: sqlite3.Connection, table: str) -> None:
    before = _dump(raw)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute(f"DELETE FROM {table}")
    raw.rollback()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute(f"DELETE FROM {table} WHERE rowid = (SELECT MIN(rowid) FROM {table})")
    raw.rollback()
    assert _dump(raw) == before


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_upsert_refused(raw: sqlite3.Connection, table: str) -> None:
    """INSERT ... ON CONFLICT DO UPDATE is an UPDATE: the trigger refuses it."""
    before = _dump(raw)
    columns = [str(r[1]) for r in raw.execute(f"PRAGMA table_info({table})").fetchall()]
    names = ", ".join(columns)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {table} WHERE true "
            f"ON CONFLICT({KEYS.get(table, 'id')}) DO UPDATE SET {APPEND_ONLY[table]} = 'tampered'"
        )
    raw.rollback()
    assert _dump(raw) == before


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_replace_refused(raw: sqlite3.Connection, table: str) -> None:
    """INSERT OR REPLACE would delete the old row without DELETE triggers: migration 0006 refuses it."""
    before = _dump(raw)
    columns = [str(r[1]) for r in raw.execute(f"PRAGMA table_info({table})").fetchall()]
    target = APPEND_ONLY[table]
    values = ", ".join("'tampered'" if c == target else c for c in columns)
    try:
        raw.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) SELECT {values} FROM {table}")
        raw.commit()
    except sqlite3.IntegrityError:
        raw.rollback()
    assert _dump(raw) == before


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_and_its_wal_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "kap.sqlite"
    db = open_database(path)
    try:
        rec = Recorder(db, FakeClock())
        rec.begin_session()
        rec.add_audit("RN Ben Lund", "start", "")
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
        assert all(f.exists() for f in files)  # WAL mode: the side files hold patient data too
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(path.parent) == 0o700
    finally:
        db.close()


def test_exported_files_are_owner_only(recorded: Recorded, tmp_path: Path) -> None:
    db = open_database(recorded.path)
    try:
        session_file = tmp_path / "export" / "session.kapsession"
        session_file.parent.mkdir()
        export_session_file(db, recorded.session_id, session_file)
        csv_files = export_csv(db, recorded.session_id, tmp_path / "csv")
        zipped = export_csv_zip(db, recorded.session_id, tmp_path / "session.zip")
        edf = export_edf(db, recorded.session_id, tmp_path / "session.edf")
    finally:
        db.close()
    written = [session_file, *csv_files, zipped, edf]
    assert len(csv_files) > 1
    assert {str(p): _mode(p) for p in written} == {str(p): 0o600 for p in written}
    # the exported session file is a record too: still append-only after the copy
    con = sqlite3.connect(session_file)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("DELETE FROM observations")
    finally:
        con.close()
