"""Reviewer annotations and alarm adjudications: append-only, named, never altering the record."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kapmonitor.clock import FakeClock
from kapmonitor.storage import Database, Recorder, max_seq, open_database, schema_version
from kapmonitor.storage.review import (
    REVIEW_TABLES,
    ReviewError,
    ReviewLog,
    Verdict,
    load_adjudications,
)
from tests.core.test_report_data import START_MONO, START_WALL, Built, build_session

RECORD_TABLES = (
    "numerics",
    "blood_pressure",
    "alarm_events",
    "observations",
    "audit",
    "sessions",
    "session_details",
)


@pytest.fixture
def built(tmp_path: Path) -> Built:
    return build_session(tmp_path / "kap.sqlite", review=False)


@pytest.fixture
def db(built: Built) -> Iterator[Database]:
    d = open_database(built.path)
    yield d
    d.close()


def _dump(db: Database) -> dict[str, list[tuple[object, ...]]]:
    return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in RECORD_TABLES}


def test_migration_5_applied(db: Database) -> None:
    assert schema_version(db) >= 5
    for t in REVIEW_TABLES:
        assert db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (t,)).fetchone() is not None


def test_annotate_at_position_or_utc(db: Database, built: Built) -> None:
    log = ReviewLog(db, built.clock, built.session_id)
    a = log.annotate("looks drowsy", "Dr Moss", position_s=90.0)
    b = log.annotate("eyes open", "Dr Moss", t_utc=START_WALL + 30.0)
    got = log.annotations()
    assert [x.id for x in got] == [b, a]  # time order
    assert (got[0].position_s, got[0].t_utc, got[0].mono) == (30.0, START_WALL + 30.0, START_MONO + 30.0)
    assert (got[1].text, got[1].reviewer, got[1].created_utc) == (
        "looks drowsy",
        "Dr Moss",
        built.clock.wall(),
    )


def test_seq_continues_the_session_counter(db: Database, built: Built) -> None:
    before = max_seq(db, built.session_id)
    log = ReviewLog(db, built.clock, built.session_id)
    log.annotate("one", "Dr Moss", position_s=1.0)
    log.adjudicate(1, Verdict.TRUE, "", "Dr Moss")
    log.annotate("two", "Dr Moss", position_s=2.0)
    seqs = sorted([x.seq for x in log.annotations()] + [x.seq for x in log.adjudications()])
    assert seqs == [before + 1, before + 2, before + 3]


def test_later_adjudication_supersedes_both_kept(db: Database, built: Built) -> None:
    log = ReviewLog(db, built.clock, built.session_id)
    first = log.adjudicate(1, Verdict.FALSE, "artefact", "Dr Okafor")
    built.clock.advance(60.0)
    second = log.adjudicate(1, Verdict.TRUE, "on review of the pleth: real", "Dr Moss")
    other = log.adjudicate(2, Verdict.NON_ACTIONABLE, "", "Dr Moss")
    assert [a.id for a in log.adjudications()] == [first, second, other]
    current = log.current_adjudications()
    assert set(current) == {1, 2}
    assert (current[1].id, current[1].verdict, current[1].reviewer) == (second, Verdict.TRUE, "Dr Moss")
    assert current[2].verdict == Verdict.NON_ACTIONABLE
    assert load_adjudications(db, built.session_id)[0].verdict == Verdict.FALSE


def test_review_never_alters_the_record(db: Database, built: Built) -> None:
    before = _dump(db)
    log = ReviewLog(db, built.clock, built.session_id)
    log.annotate("note", "Dr Moss", position_s=5.0)
    log.adjudicate(3, Verdict.TRUE, "sustained", "Dr Moss")
    assert _dump(db) == before


@pytest.mark.parametrize("table", REVIEW_TABLES)
@pytest.mark.parametrize("sql", ["UPDATE {t} SET reviewer = 'someone else'", "DELETE FROM {t}"])
def test_tables_are_append_only(db: Database, built: Built, table: str, sql: str) -> None:
    log = ReviewLog(db, built.clock, built.session_id)
    log.annotate("note", "Dr Moss", position_s=5.0)
    log.adjudicate(1, Verdict.FALSE, "", "Dr Moss")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), db.atomic():
        db.execute(sql.format(t=table))
    assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 1


def test_reviewer_and_text_required(db: Database, built: Built) -> None:
    log = ReviewLog(db, built.clock, built.session_id)
    with pytest.raises(ReviewError, match="reviewer"):
        log.annotate("note", "  ", position_s=1.0)
    with pytest.raises(ReviewError, match="reviewer"):
        log.adjudicate(1, Verdict.TRUE, "ok", "")
    with pytest.raises(ReviewError, match="text"):
        log.annotate(" ", "Dr Moss", position_s=1.0)
    # the schema refuses a nameless row too, whoever writes it
    with pytest.raises(sqlite3.IntegrityError), db.atomic():
        db.execute(
            "INSERT INTO annotations (session_id, seq, mono, t_utc, text, reviewer, created_utc) "
            "VALUES (?, 999999, 0, 0, 'x', ' ', 0)",
            (built.session_id,),
        )
    assert log.annotations() == [] and log.adjudications() == []


def test_time_point_inside_the_session(db: Database, built: Built) -> None:
    log = ReviewLog(db, built.clock, built.session_id)
    with pytest.raises(ReviewError, match="outside"):
        log.annotate("before", "Dr Moss", position_s=-1.0)
    with pytest.raises(ReviewError, match="outside"):
        log.annotate("after", "Dr Moss", t_utc=START_WALL + 4 * 3600.0)
    with pytest.raises(ReviewError, match="exactly one"):
        log.annotate("both", "Dr Moss", position_s=1.0, t_utc=START_WALL + 1.0)
    with pytest.raises(ReviewError, match="exactly one"):
        log.annotate("neither", "Dr Moss")


def test_adjudication_needs_an_alarm_of_the_session(db: Database, built: Built) -> None:
    log = ReviewLog(db, built.clock, built.session_id)
    with pytest.raises(ReviewError, match="alarm of the same session"):
        log.adjudicate(99, Verdict.TRUE, "", "Dr Moss")
    with pytest.raises(ValueError):
        log.adjudicate(1, "maybe", "", "Dr Moss")  # type: ignore[arg-type]
    assert log.adjudications() == []


def test_a_recording_session_is_not_reviewed(tmp_path: Path) -> None:
    clock = FakeClock(start_wall=START_WALL, start_mono=START_MONO)
    db = open_database(tmp_path / "live.sqlite")
    try:
        rec = Recorder(db, clock)
        sid = rec.begin_session()
        log = ReviewLog(db, clock, sid)
        with pytest.raises(ReviewError, match="still recording"):
            log.annotate("too early", "Dr Moss", position_s=0.0)
        rec.end_session()
        assert log.annotate("now", "Dr Moss", position_s=0.0) > 0
        with pytest.raises(KeyError):
            ReviewLog(db, clock, "nope")
    finally:
        db.close()
