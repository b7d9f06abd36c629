"""The session log in SQLite: details, observations, phases and decisions; crash recovery."""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from sqlite_utils import Database

from kapmonitor.clock import Clock, utc_iso
from kapmonitor.measurements import BloodPressure, DeviceEvent
from kapmonitor.observations import (
    DOSE_GIVEN,
    Observation,
    ObservationCatalogue,
    ObservationError,
    Pressed,
    ScaleScore,
    current,
    scale_from_row,
    scale_json,
)
from kapmonitor.rems import RemsForm, rems_form
from kapmonitor.storage.queries import SessionRow, blood_pressure, get_session, unfinished_sessions
from kapmonitor.storage.recorder import Recorder, RecorderError, max_seq
from kapmonitor.workflow import (
    Decision,
    Dose,
    Phase,
    PhaseChange,
    Record,
    SessionDetails,
    SessionWorkflow,
    TreatmentProtocol,
    timeline_shift,
)

#: A source of the session's next seq: Recorder.next_seq while a Recorder records the session.
SeqSource = Callable[[], int]

#: The device name of the console's own notes in device_events (resume after interruption).
CONSOLE_DEVICE = "console"

_OBS_COLUMNS = (
    "id, session_id, seq, code, text, scale, items, dose_mg, pressed_mono, pressed_utc, saved_utc, "
    "author, amends"
)


class SessionLog:
    """Writes and reads one session's details, observations, phase changes and decisions.

    Every write is its own committed transaction (synchronous=FULL, set by open_database): once a
    method returns, the row survives a kill -9 or a power cut.

    seq: rows share the session's one seq counter with the Recorder's tables. While a Recorder
    records the session, pass `seq=recorder.next_seq`: the Recorder hands out numbers in memory, so
    its buffered, not yet flushed rows and these committed ones never collide. Without a Recorder
    (a finished session, a viewer), the next seq is read from the database (max_seq + 1), which is
    only right when nothing else is writing the session.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        session_id: str,
        *,
        seq: SeqSource | None = None,
        catalogue: ObservationCatalogue | None = None,
    ) -> None:
        if get_session(db, session_id) is None:
            raise KeyError(f"no session {session_id!r} in the database")
        self._db = db
        self._clock = clock
        self._sid = session_id
        self._seq = seq
        self.catalogue = catalogue if catalogue is not None else ObservationCatalogue.default()

    @property
    def session_id(self) -> str:
        return self._sid

    @property
    def db(self) -> Database:
        return self._db

    def _next_seq(self) -> int:
        return self._seq() if self._seq is not None else max_seq(self._db, self._sid) + 1

    def _insert(self, sql: str, params: tuple[object, ...]) -> int:
        try:
            with self._db.atomic():
                cursor = self._db.conn.execute(sql, params)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise RecorderError(f"session log write failed: {exc}") from exc
        rowid = cursor.lastrowid
        assert rowid is not None
        return rowid

    # -- details ---------------------------------------------------------------------------------
    def save_details(self, details: SessionDetails) -> None:
        """Store (or replace) the session's new-session data."""
        wall = self._clock.wall()
        self._insert(
            "INSERT INTO session_details (session_id, patient, clinicians, protocol, planned_dose_mg, route, "
            "lot, concomitant, created_utc, updated_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (session_id) DO UPDATE SET patient = excluded.patient, "
            "clinicians = excluded.clinicians, protocol = excluded.protocol, "
            "planned_dose_mg = excluded.planned_dose_mg, route = excluded.route, lot = excluded.lot, "
            "concomitant = excluded.concomitant, updated_utc = excluded.updated_utc",
            (
                self._sid,
                details.patient,
                json.dumps(list(details.clinicians)),
                details.protocol.value,
                details.planned_dose_mg,
                details.route,
                details.lot,
                json.dumps(list(details.concomitant)),
                wall,
                wall,
            ),
        )

    def details(self) -> SessionDetails | None:
        return load_details(self._db, self._sid)

    # -- observations -----------------------------------------------------------------------------
    def add_observation(
        self,
        pressed: Pressed,
        author: str,
        *,
        text: str = "",
        scale: ScaleScore | None = None,
        dose_mg: float | None = None,
    ) -> int:
        """Commit an observation at once; its time is the key press in `pressed`. Returns its id.

        Doses are not added here: they go through SessionWorkflow.log_device/log_dose and write().
        """
        if pressed.code == DOSE_GIVEN:
            raise ObservationError("a dose is logged through the workflow (log_device / log_dose)")
        self.catalogue.validate(pressed.code, text, scale)
        return self._write_observation(pressed, author, text=text, scale=scale, dose_mg=dose_mg, amends=None)

    def amend(
        self,
        original_id: int,
        author: str,
        *,
        code: str | None = None,
        text: str | None = None,
        scale: ScaleScore | None = None,
    ) -> int:
        """Correct an observation with a new row that keeps the original; unchanged fields carry over.

        `original_id` may be an amendment itself (a chain). Returns the amendment's id.
        """
        orig = self._observation(original_id)
        new_code = orig.code if code is None else code
        if DOSE_GIVEN in (orig.code, new_code) and new_code != orig.code:
            raise ObservationError("a dose cannot be turned into another observation or back")
        new_text = orig.text if text is None else text
        new_scale = scale if scale is not None else (orig.scale if new_code == orig.code else None)
        self.catalogue.validate(new_code, new_text, new_scale)
        pressed = Pressed(new_code, self._clock.monotonic(), self._clock.wall())
        dose = orig.dose_mg if new_code == orig.code else None
        return self._write_observation(
            pressed, author, text=new_text, scale=new_scale, dose_mg=dose, amends=original_id
        )

    def _write_observation(
        self,
        pressed: Pressed,
        author: str,
        *,
        text: str,
        scale: ScaleScore | None,
        dose_mg: float | None,
        amends: int | None,
    ) -> int:
        if not author.strip():
            raise ObservationError("an observation needs its author")
        return self._insert(
            "INSERT INTO observations (session_id, seq, code, text, scale, score, items, dose_mg, "
            "pressed_mono, pressed_utc, saved_mono, saved_utc, author, amends) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self._sid,
                self._next_seq(),
                pressed.code,
                text,
                None if scale is None else scale.scale.value,
                None if scale is None else scale.total,
                scale_json(scale),
                dose_mg,
                pressed.mono,
                pressed.wall,
                self._clock.monotonic(),
                self._clock.wall(),
                author,
                amends,
            ),
        )

    def _observation(self, obs_id: int) -> Observation:
        row = self._db.execute(
            f"SELECT {_OBS_COLUMNS} FROM observations WHERE id = ? AND session_id = ?", (obs_id, self._sid)
        ).fetchone()
        if row is None:
            raise KeyError(f"no observation {obs_id} in session {self._sid}")
        return _obs(row)

    def observations(self) -> list[Observation]:
        """Every stored observation row (originals and amendments), in log (seq) order."""
        rows = self._db.execute(
            f"SELECT {_OBS_COLUMNS} FROM observations WHERE session_id = ? ORDER BY seq", (self._sid,)
        ).fetchall()
        return [_obs(r) for r in rows]

    def current_observations(self) -> list[Observation]:
        """The observations as last corrected (see observations.current)."""
        return current(self.observations())

    # -- workflow records ---------------------------------------------------------------------------
    def write(self, records: Iterable[Record]) -> list[int]:
        """Store the records a SessionWorkflow action returned, each committed; returns their ids."""
        return [self._write_record(r) for r in records]

    def _write_record(self, rec: Record) -> int:
        if isinstance(rec, PhaseChange):
            return self._insert(
                "INSERT INTO phase_changes (session_id, seq, mono, t_utc, from_phase, to_phase, who, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self._sid,
                    self._next_seq(),
                    rec.mono,
                    rec.wall,
                    rec.from_phase.value,
                    rec.to_phase.value,
                    rec.who,
                    rec.detail,
                ),
            )
        if isinstance(rec, Dose):
            return self._write_observation(
                Pressed(DOSE_GIVEN, rec.mono, rec.wall),
                rec.who,
                text=rec.detail,
                scale=None,
                dose_mg=rec.mg,
                amends=None,
            )
        return self._insert(
            "INSERT INTO decisions (session_id, seq, mono, t_utc, kind, choice, reason, who, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self._sid,
                self._next_seq(),
                rec.mono,
                rec.wall,
                rec.kind,
                rec.choice,
                rec.reason,
                rec.who,
                rec.detail,
            ),
        )

    def phase_changes(self) -> list[PhaseChange]:
        rows = self._db.execute(
            "SELECT from_phase, to_phase, who, mono, t_utc, detail FROM phase_changes WHERE session_id = ? "
            "ORDER BY seq",
            (self._sid,),
        ).fetchall()
        return [PhaseChange(Phase(r[0]), Phase(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    def decisions(self) -> list[Decision]:
        rows = self._db.execute(
            "SELECT kind, choice, reason, who, mono, t_utc, detail FROM decisions WHERE session_id = ? "
            "ORDER BY seq",
            (self._sid,),
        ).fetchall()
        return [Decision(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]

    def records(self) -> list[Record]:
        """The workflow records of the session in log order (phase changes, decisions, doses as
        last corrected), for SessionWorkflow.restore."""
        return [rec for _seq, rec in self.keyed_records()]

    def keyed_records(self) -> list[tuple[int, Record]]:
        """(seq, record) of records(), in log order (a dose at the seq of its original row)."""
        keyed: list[tuple[int, Record]] = []
        for r in self._db.execute(
            "SELECT seq, from_phase, to_phase, who, mono, t_utc, detail FROM phase_changes "
            "WHERE session_id = ?",
            (self._sid,),
        ).fetchall():
            keyed.append((r[0], PhaseChange(Phase(r[1]), Phase(r[2]), r[3], r[4], r[5], r[6])))
        for r in self._db.execute(
            "SELECT seq, kind, choice, reason, who, mono, t_utc, detail FROM decisions WHERE session_id = ?",
            (self._sid,),
        ).fetchall():
            keyed.append((r[0], Decision(r[1], r[2], r[3], r[4], r[5], r[6], r[7])))
        doses = [o for o in self.current_observations() if o.code == DOSE_GIVEN]
        for number, o in enumerate(doses, 1):
            original_seq = self._observation(o.id).seq  # a dose sits where it was given
            keyed.append(
                (original_seq, Dose(number, o.dose_mg, o.author, o.t_pressed_mono, o.t_pressed_utc, o.text))
            )
        return sorted(keyed, key=lambda k: k[0])


def _obs(r: tuple[object, ...]) -> Observation:
    return Observation(
        id=int(r[0]),  # type: ignore[call-overload]
        session_id=str(r[1]),
        seq=int(r[2]),  # type: ignore[call-overload]
        code=str(r[3]),
        text=str(r[4]),
        scale=scale_from_row(r[5], r[6]),  # type: ignore[arg-type]
        dose_mg=r[7],  # type: ignore[arg-type]
        t_pressed_mono=r[8],  # type: ignore[arg-type]
        t_pressed_utc=r[9],  # type: ignore[arg-type]
        t_saved_utc=r[10],  # type: ignore[arg-type]
        author=str(r[11]),
        amends=r[12],  # type: ignore[arg-type]
    )


def load_details(db: Database, session_id: str) -> SessionDetails | None:
    """The stored new-session data of a session, or None."""
    r = db.execute(
        "SELECT patient, clinicians, protocol, planned_dose_mg, route, lot, concomitant FROM session_details "
        "WHERE session_id = ?",
        (session_id,),
    ).fetchone()
    if r is None:
        return None
    return SessionDetails(
        patient=r[0],
        clinicians=tuple(json.loads(r[1])),
        protocol=TreatmentProtocol(r[2]),
        planned_dose_mg=r[3],
        route=r[4],
        lot=r[5],
        concomitant=tuple(json.loads(r[6])),
    )


def recent_patients(db: Database, limit: int = 10) -> list[str]:
    """Patient ids of past sessions, most recently used first, each once (offered again)."""
    rows = db.execute(
        "SELECT patient FROM session_details GROUP BY patient "
        "ORDER BY MAX(created_utc) DESC, patient LIMIT ?",
        (limit,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def recent_clinicians(db: Database, limit: int = 10) -> list[str]:
    """Clinicians of past sessions, most recently present first, each once (offered again)."""
    rows = db.execute(
        "SELECT c.value FROM session_details AS d, json_each(d.clinicians) AS c "
        "GROUP BY c.value ORDER BY MAX(d.created_utc) DESC, c.value LIMIT ?",
        (limit,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def rems_for_session(log: SessionLog, clock: Clock) -> RemsForm | None:
    """The REMS form of a stored esketamine session (None without details or before any device).

    The end of monitoring is when the clinician ended the session (its change to "ended"), else the
    recording's end, or now while it is still recording (this process is then the recording run);
    the dose is the sum of the devices logged (as last corrected); the observations are as last
    corrected. Durations and the choice of readings follow the monotonic clock, every row put on
    the newest run's timeline (MonoTimelines); the form's printed times stay UTC wall.
    """
    details = log.details()
    if details is None or details.protocol != TreatmentProtocol.ESKETAMINE_IN:
        return None
    db, sid = log.db, log.session_id
    runs = mono_timelines(db, sid)
    keyed = [(seq, replace(rec, mono=runs.mono(seq, rec.mono))) for seq, rec in log.keyed_records()]
    doses = [r for _seq, r in keyed if isinstance(r, Dose)]
    if not doses:
        return None
    ended = [r for _seq, r in keyed if isinstance(r, PhaseChange) and r.to_phase == Phase.ENDED]
    session = get_session(db, sid)
    if ended:
        end_wall, end_mono = ended[-1].wall, ended[-1].mono
    elif session is not None and session.ended_utc is not None and session.ended_mono is not None:
        end_wall, end_mono = session.ended_utc, session.ended_mono  # written by the newest run
    else:
        end_wall, end_mono = clock.wall(), clock.monotonic()
    ready = [r for _seq, r in keyed if isinstance(r, Decision) and r.kind == "ready_to_leave"]
    return rems_form(
        details,
        readings_on_timeline(db, sid, runs),
        doses[0].wall,
        end_wall,
        ready[0].wall if ready else None,
        dose_mg=sum(d.mg or 0.0 for d in doses),
        observations=log.current_observations(),
        first_device_mono=doses[0].mono,
        end_mono=end_mono,
        ready_to_leave_mono=ready[0].mono if ready else None,
    )


def readings_on_timeline(db: Database, session_id: str, runs: MonoTimelines) -> list[BloodPressure]:
    """The session's cuff readings in seq order, each one's mono on the newest run's timeline."""
    seqs = [
        int(r[0])
        for r in db.execute("SELECT seq FROM blood_pressure WHERE session_id = ? ORDER BY seq", (session_id,))
    ]
    readings = blood_pressure(db, session_id)
    return [replace(bp, mono=runs.mono(seq, bp.mono)) for seq, bp in zip(seqs, readings, strict=True)]


# -- crash recovery -----------------------------------------------------------------------------------
def find_unfinished(db: Database) -> list[SessionRow]:
    """Sessions the app stopped without ending (still 'recording'), newest first: offer each on start."""
    return unfinished_sessions(db)


def last_record_utc(db: Database, session_id: str) -> float | None:
    """The latest UTC time recorded anywhere in a session (where the interruption began)."""
    sql = " UNION ALL ".join(
        [
            "SELECT MAX(t_utc) FROM numerics WHERE session_id = :s",
            "SELECT MAX(start_utc) FROM waveform_chunks WHERE session_id = :s",
            "SELECT MAX(t_utc) FROM device_events WHERE session_id = :s",
            "SELECT MAX(t_utc) FROM malformed_packets WHERE session_id = :s",
            "SELECT MAX(t_utc) FROM audit WHERE session_id = :s",
            "SELECT MAX(t_utc) FROM blood_pressure WHERE session_id = :s",
            "SELECT MAX(saved_utc) FROM observations WHERE session_id = :s",
            "SELECT MAX(t_utc) FROM phase_changes WHERE session_id = :s",
            "SELECT MAX(t_utc) FROM decisions WHERE session_id = :s",
            "SELECT started_utc FROM sessions WHERE id = :s",
        ]
    )
    values = [r[0] for r in db.execute(sql, {"s": session_id}).fetchall() if r[0] is not None]
    return max(values) if values else None


@dataclass(frozen=True, slots=True)
class UnfinishedSession:
    """What the start-up prompt shows of a session the app stopped without ending."""

    session: SessionRow
    details: SessionDetails | None
    last_record_utc: float | None  # where the interruption began
    phase: Phase | None  # the workflow phase it was in (None: no new-session data)
    first_dose_utc: float | None


def unfinished_overview(db: Database, kind: str | None = None) -> list[UnfinishedSession]:
    """The unfinished sessions (of `kind`, 'live' or 'demo', when given), newest first, each with
    its patient, last record, phase and first dose: what the clinician needs to resume or close."""
    out: list[UnfinishedSession] = []
    for row in find_unfinished(db):
        if kind is not None and row.kind != kind:
            continue
        details = load_details(db, row.id)
        last_phase = db.execute(
            "SELECT to_phase FROM phase_changes WHERE session_id = ? ORDER BY seq DESC LIMIT 1", (row.id,)
        ).fetchone()
        phase = Phase(last_phase[0]) if last_phase else (Phase.PREPARATION if details else None)
        dose = db.execute(
            "SELECT MIN(pressed_utc) FROM observations WHERE session_id = ? AND code = ? AND amends IS NULL",
            (row.id, DOSE_GIVEN),
        ).fetchone()
        out.append(UnfinishedSession(row, details, last_record_utc(db, row.id), phase, dose[0]))
    return out


@dataclass(frozen=True, slots=True)
class Resumed:
    """A resumed session: its recorder and log continue it; the gap is marked in device_events."""

    recorder: Recorder
    log: SessionLog
    workflow: SessionWorkflow | None  # None when the session had no details yet
    gap_from_utc: float
    gap_to_utc: float


#: The session's tables that share its seq counter, with the (monotonic, UTC wall) columns of a row:
#: where one run of the console stopped writing (the newest row before a resume marker).
_TIMED_TABLES = (
    ("numerics", "mono", "t_utc"),
    ("device_events", "mono", "t_utc"),
    ("alarm_events", "mono", "t_utc"),
    ("blood_pressure", "mono", "t_utc"),
    ("malformed_packets", "mono", "t_utc"),
    ("audit", "mono", "t_utc"),
    ("observations", "saved_mono", "saved_utc"),
    ("phase_changes", "mono", "t_utc"),
    ("decisions", "mono", "t_utc"),
)
#: The first row of a later run: resume()'s console note, or close_interrupted()'s audit entry
#: (a run of its own: its row and the session's end are on the closing process's clock).
_RESUMED = "resumed after interruption"
_CLOSED = "session closed as interrupted"


@dataclass(frozen=True, slots=True)
class MonoTimelines:
    """Puts every row of a session on the monotonic timeline of its newest run.

    The rule. A row's `mono` is valid against every other row written by the same run of the
    console (one process, one boot), whatever the wall clock did meanwhile. A later run starts at
    its marker: resume()'s console note "resumed after interruption", or close_interrupted()'s
    audit entry, each stamped on that run's own clock. Its monotonic origin may differ (a
    reboot), so the stored mono of an earlier run is moved onto the next run's timeline ONCE per
    restart, by workflow.timeline_shift() from the newest row the earlier run wrote (its wall vs
    mono) and the marker: the gap is measured on the wall clock, which alone spans the restart,
    and everything inside a run keeps its monotonic spacing. The newest run (from the last marker
    on: the process that wrote it, e.g. resume() just before restoring) is left as stored. A
    wall-clock step during a run therefore moves nothing; only one during the gap itself can
    (nothing ran to see it).
    """

    starts: tuple[int, ...] = ()  # first seq of each later run (its resume marker), ascending
    shifts: tuple[float, ...] = (0.0,)  # per run, what to add to its stored mono; the newest's is 0

    def shift(self, seq: int) -> float:
        """What to add to the stored mono of the row numbered `seq`."""
        return self.shifts[bisect_right(self.starts, seq)]

    def mono(self, seq: int, mono: float) -> float:
        return mono + self.shift(seq)


def mono_timelines(db: Database, session_id: str) -> MonoTimelines:
    """The session's runs (split at each resume marker) and each one's shift (see MonoTimelines)."""
    markers = db.execute(
        "SELECT seq, mono, t_utc FROM device_events WHERE session_id = :s AND device = :d AND detail LIKE :r "
        "UNION ALL SELECT seq, mono, t_utc FROM audit WHERE session_id = :s AND action = :c ORDER BY seq",
        {"s": session_id, "d": CONSOLE_DEVICE, "r": f"{_RESUMED}%", "c": _CLOSED},
    ).fetchall()
    bridges: list[float] = []
    for seq, mono, wall in markers:
        last = _newest_row_before(db, session_id, int(seq))
        bridges.append(0.0 if last is None else timeline_shift(last[0], last[1], float(mono), float(wall)))
    # run k (before marker k) is moved across every later restart: the sum of the later bridges
    shifts = [sum(bridges[k:]) for k in range(len(bridges))] + [0.0]
    return MonoTimelines(tuple(int(m[0]) for m in markers), tuple(shifts))


def _newest_row_before(db: Database, session_id: str, seq: int) -> tuple[float, float] | None:
    """(mono, wall) of the session's row with the highest seq below `seq` (else its start)."""
    parts = " UNION ALL ".join(
        f"SELECT seq, {m} AS mono, {w} AS wall FROM {t} WHERE session_id = :s AND seq < :q"
        for t, m, w in _TIMED_TABLES
    )
    row = db.execute(
        f"SELECT mono, wall FROM ({parts}) ORDER BY seq DESC LIMIT 1", {"s": session_id, "q": seq}
    ).fetchone()
    if row is not None:
        return float(row[0]), float(row[1])
    session = get_session(db, session_id)
    return None if session is None else (session.started_mono, session.started_utc)


def restore_workflow(log: SessionLog, clock: Clock, **kwargs: float) -> SessionWorkflow | None:
    """The SessionWorkflow of a stored session rebuilt from its log (None without details).

    Each record's mono is put on the newest run's timeline (MonoTimelines): within a run the
    stored mono is used as it is, so the dose clock and the rest timer survive a wall-clock step.
    """
    details = log.details()
    if details is None:
        return None
    db, sid = log.db, log.session_id
    session = get_session(db, sid)
    runs = mono_timelines(db, sid)
    records = [replace(rec, mono=runs.mono(seq, rec.mono)) for seq, rec in log.keyed_records()]
    readings = readings_on_timeline(db, sid, runs)
    wf = SessionWorkflow(details, clock, **kwargs)
    wf.restore(
        records,
        readings,
        started_wall=None if session is None else session.started_utc,
        started_mono=None if session is None else session.started_mono + runs.shifts[0],
    )
    return wf


def resume(db: Database, clock: Clock, session_id: str, who: str) -> Resumed:
    """Continue an unfinished session: the same session id, a note marking the gap, an audit entry."""
    gap_from = last_record_utc(db, session_id)
    recorder = Recorder.attach(db, clock, session_id)
    gap_to = clock.wall()
    start = gap_to if gap_from is None else gap_from
    detail = f"{_RESUMED}; gap from {utc_iso(start)} to {utc_iso(gap_to)}"
    recorder.add_device_event(DeviceEvent(CONSOLE_DEVICE, None, detail, clock.monotonic(), gap_to))
    recorder.flush()
    recorder.add_audit(who, "session resumed", detail)
    log = SessionLog(db, clock, session_id, seq=recorder.next_seq)
    return Resumed(recorder, log, restore_workflow(log, clock), start, gap_to)


def close_interrupted(db: Database, clock: Clock, session_id: str, who: str) -> None:
    """End an unfinished session as 'interrupted' (audited, with the time of its last record)."""
    last = last_record_utc(db, session_id)
    recorder = Recorder.attach(db, clock, session_id)
    when = "unknown" if last is None else utc_iso(last)
    recorder.add_audit(who, _CLOSED, f"last record at {when}")
    recorder.end_session("interrupted")
