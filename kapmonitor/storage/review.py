"""After-the-session review: reviewer annotations and alarm adjudications, append-only (migration 0005)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum

from sqlite_utils import Database

from kapmonitor.clock import Clock
from kapmonitor.storage.queries import SessionRow, get_session
from kapmonitor.storage.recorder import _EVENT_TABLES, RecorderError

#: The review's own tables; their seq continues the session's one counter.
REVIEW_TABLES = ("annotations", "alarm_adjudications")


class ReviewError(ValueError):
    """A review entry that cannot be stored (no reviewer, empty note, time outside the session...)."""


class Verdict(StrEnum):
    """A reviewer's verdict on an alarm."""

    TRUE = "true"  # a real event of the patient
    FALSE = "false"  # artefact: motion, sensor off, a bad reading
    NON_ACTIONABLE = "non_actionable"  # real, but needed no action


@dataclass(frozen=True, slots=True)
class Annotation:
    """A reviewer's note at one time point of the session."""

    id: int
    seq: int
    position_s: float  # seconds since the session start (the replay timeline)
    mono: float
    t_utc: float
    text: str
    reviewer: str
    created_utc: float


@dataclass(frozen=True, slots=True)
class Adjudication:
    """A reviewer's verdict on one alarm (alarm_events.alarm_id)."""

    id: int
    seq: int
    alarm_id: int
    verdict: Verdict
    comment: str
    reviewer: str
    created_utc: float


# The next seq, computed in the INSERT itself: one statement reads the highest seq of every event
# table and writes the row, so no other writer can take the same number in between.
_ALL_TABLES = tuple(dict.fromkeys((*_EVENT_TABLES, *REVIEW_TABLES)))
_NEXT_SEQ = (
    "(SELECT COALESCE(MAX(m), 0) + 1 FROM ("
    + " UNION ALL ".join(f"SELECT MAX(seq) AS m FROM {t} WHERE session_id = :s" for t in _ALL_TABLES)
    + "))"
)


class ReviewLog:
    """Writes and reads the review of one recorded session; never touches the recorded rows.

    A review happens after recording ended: a session still 'recording' (a Recorder may hold seq
    numbers in memory) is refused. Each write is its own committed transaction.
    """

    def __init__(self, db: Database, clock: Clock, session_id: str) -> None:
        session = get_session(db, session_id)
        if session is None:
            raise KeyError(f"no session {session_id!r} in the database")
        self._db = db
        self._clock = clock
        self._session: SessionRow = session

    @property
    def session_id(self) -> str:
        return self._session.id

    def _reviewable(self) -> SessionRow:
        session = get_session(self._db, self._session.id)  # the status may have changed since
        assert session is not None
        if session.status == "recording":
            raise ReviewError(f"session {session.id} is still recording: review it once it has ended")
        self._session = session
        return session

    def _insert(self, sql: str, params: dict[str, object]) -> int:
        try:
            with self._db.atomic():
                cursor = self._db.conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ReviewError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise RecorderError(f"review write failed: {exc}") from exc
        rowid = cursor.lastrowid
        assert rowid is not None
        return rowid

    def annotate(
        self,
        text: str,
        reviewer: str,
        *,
        position_s: float | None = None,
        t_utc: float | None = None,
    ) -> int:
        """Store a note at `position_s` (seconds since the session start) or at `t_utc`; returns its id.

        The time point must lie within the session (start to end).
        """
        if (position_s is None) == (t_utc is None):
            raise ReviewError("give the time point as position_s or as t_utc (exactly one)")
        if not reviewer.strip():
            raise ReviewError("a review entry needs the reviewer's name")
        if not text.strip():
            raise ReviewError("an annotation needs its text")
        session = self._reviewable()
        if position_s is not None:
            position = float(position_s)
        else:
            assert t_utc is not None
            position = float(t_utc) - session.started_utc
        duration = None if session.ended_mono is None else session.ended_mono - session.started_mono
        if position < 0 or (duration is not None and position > duration):
            raise ReviewError(f"time point {position:.3f} s is outside the session (0 to {duration} s)")
        return self._insert(
            "INSERT INTO annotations (session_id, seq, mono, t_utc, text, reviewer, created_utc) "
            f"VALUES (:s, {_NEXT_SEQ}, :mono, :t_utc, :text, :reviewer, :created)",
            {
                "s": session.id,
                "mono": session.started_mono + position,
                "t_utc": session.started_utc + position,
                "text": text,
                "reviewer": reviewer,
                "created": self._clock.wall(),
            },
        )

    def adjudicate(self, alarm_id: int, verdict: Verdict, comment: str, reviewer: str) -> int:
        """Store a verdict on an alarm of this session; a later one supersedes it for display."""
        if not reviewer.strip():
            raise ReviewError("a review entry needs the reviewer's name")
        session = self._reviewable()
        return self._insert(
            "INSERT INTO alarm_adjudications (session_id, seq, alarm_id, verdict, comment, reviewer, "
            f"created_utc) VALUES (:s, {_NEXT_SEQ}, :alarm, :verdict, :comment, :reviewer, :created)",
            {
                "s": session.id,
                "alarm": alarm_id,
                "verdict": Verdict(verdict).value,
                "comment": comment,
                "reviewer": reviewer,
                "created": self._clock.wall(),
            },
        )

    def annotations(self) -> list[Annotation]:
        return load_annotations(self._db, self._session.id)

    def adjudications(self) -> list[Adjudication]:
        return load_adjudications(self._db, self._session.id)

    def current_adjudications(self) -> dict[int, Adjudication]:
        return load_current_adjudications(self._db, self._session.id)


def load_annotations(db: Database, session_id: str) -> list[Annotation]:
    """A session's annotations in time order (then in the order written)."""
    start = get_session(db, session_id)
    origin = 0.0 if start is None else start.started_mono
    rows = db.execute(
        "SELECT id, seq, mono, t_utc, text, reviewer, created_utc FROM annotations WHERE session_id = ? "
        "ORDER BY mono, seq",
        (session_id,),
    ).fetchall()
    return [Annotation(r[0], r[1], r[2] - origin, r[2], r[3], r[4], r[5], r[6]) for r in rows]


def load_adjudications(db: Database, session_id: str) -> list[Adjudication]:
    """Every adjudication of a session's alarms, superseded ones too, in the order written (seq)."""
    rows = db.execute(
        "SELECT id, seq, alarm_id, verdict, comment, reviewer, created_utc FROM alarm_adjudications "
        "WHERE session_id = ? ORDER BY seq",
        (session_id,),
    ).fetchall()
    return [Adjudication(r[0], r[1], r[2], Verdict(r[3]), r[4], r[5], r[6]) for r in rows]


def load_current_adjudications(db: Database, session_id: str) -> dict[int, Adjudication]:
    """The adjudication shown for each alarm: the latest written (alarm_id → adjudication)."""
    return {a.alarm_id: a for a in load_adjudications(db, session_id)}  # seq order: the last one wins


__all__ = [
    "REVIEW_TABLES",
    "Adjudication",
    "Annotation",
    "ReviewError",
    "ReviewLog",
    "Verdict",
    "load_adjudications",
    "load_annotations",
    "load_current_adjudications",
]
