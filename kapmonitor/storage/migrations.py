"""Numbered schema migrations of the kapmonitor database (sqlite-utils Migrations, one set)."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlite_utils import Database, Migrations

#: The one migration set; each migration is named "NNNN_what" and applied in number order.
MIGRATION_SET = "kapmonitor"

migrations = Migrations(MIGRATION_SET)
_names: list[str] = []

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+$")
_Fn = Callable[[Database], None]


class SchemaError(RuntimeError):
    """The database's schema history does not match this version of kapmonitor."""


def _number(name: str) -> int:
    match = _NAME.match(name)
    if match is None:
        raise SchemaError(f"migration name {name!r} is not 'NNNN_description'")
    return int(match.group(1))


def _check_numbering(names: list[str]) -> None:
    numbers = [_number(n) for n in names]
    if numbers != list(range(1, len(numbers) + 1)):
        raise SchemaError(f"migrations must be numbered 1, 2, 3... in order; got {numbers}")


def _run(db: Database, statements: list[str], number: int) -> None:
    # db.execute() joins the transaction Migrations.apply() opened (each migration runs inside
    # db.atomic(), together with the row that records it), so a failing statement undoes it all.
    for sql in statements:
        db.execute(sql)
    db.execute(f"PRAGMA user_version = {number:d}")


_EVENT_KEY = "PRIMARY KEY (session_id, seq)"
_SESSION_FK = "session_id TEXT NOT NULL REFERENCES sessions(id)"

_SCHEMA_1 = [
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        started_utc REAL NOT NULL,
        started_mono REAL NOT NULL,
        ended_utc REAL,
        ended_mono REAL,
        status TEXT NOT NULL DEFAULT 'recording'
            CHECK (status IN ('recording', 'completed', 'interrupted')),
        kind TEXT NOT NULL DEFAULT 'live' CHECK (kind IN ('live', 'demo')),
        app_version TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    )""",
    f"""CREATE TABLE numerics (
        {_SESSION_FK},
        seq INTEGER NOT NULL,
        mono REAL NOT NULL,
        t_utc REAL NOT NULL,
        param TEXT NOT NULL,
        value REAL,
        quality INTEGER NOT NULL DEFAULT 0,
        device TEXT NOT NULL,
        {_EVENT_KEY}
    )""",
    "CREATE INDEX numerics_by_param ON numerics (session_id, param, mono)",
    # Packed little-endian int16 samples, about one second per row: a 4-h 100 Hz session is
    # 3.7 MB and loads in 8 ms, against 44 MB and 0.5-1 s as a row per sample (design.md,
    # "Measured facts").
    f"""CREATE TABLE waveform_chunks (
        {_SESSION_FK},
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        device TEXT NOT NULL,
        rate_hz REAL NOT NULL CHECK (rate_hz > 0),
        start_mono REAL NOT NULL,
        start_utc REAL NOT NULL,
        n INTEGER NOT NULL CHECK (n > 0),
        samples BLOB NOT NULL CHECK (length(samples) = 2 * n),
        {_EVENT_KEY}
    )""",
    "CREATE INDEX waveform_chunks_by_name ON waveform_chunks (session_id, name, start_mono)",
    f"""CREATE TABLE device_events (
        {_SESSION_FK},
        seq INTEGER NOT NULL,
        mono REAL NOT NULL,
        t_utc REAL NOT NULL,
        device TEXT NOT NULL,
        state TEXT,
        detail TEXT NOT NULL DEFAULT '',
        {_EVENT_KEY}
    )""",
    f"""CREATE TABLE malformed_packets (
        {_SESSION_FK},
        seq INTEGER NOT NULL,
        mono REAL NOT NULL,
        t_utc REAL NOT NULL,
        device TEXT NOT NULL,
        characteristic TEXT NOT NULL,
        data BLOB NOT NULL,
        error TEXT NOT NULL,
        {_EVENT_KEY}
    )""",
    f"""CREATE TABLE devices (
        {_SESSION_FK},
        device TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        PRIMARY KEY (session_id, device)
    )""",
    # session_id is NULL for actions outside a session (e.g. a setting changed at start-up).
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        session_id TEXT REFERENCES sessions(id),
        seq INTEGER NOT NULL,
        mono REAL NOT NULL,
        t_utc REAL NOT NULL,
        who TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX audit_by_session ON audit (session_id, seq)",
    # The audit trail is append-only (design.md, "Storage"): a correction is a new row.
    """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
       BEGIN SELECT RAISE(ABORT, 'audit is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
       BEGIN SELECT RAISE(ABORT, 'audit is append-only: DELETE refused'); END""",
]


def _migration(name: str) -> Callable[[_Fn], _Fn]:
    """Register a numbered migration with the sqlite-utils set (and remember its name)."""
    _number(name)
    _names.append(name)
    return migrations(name=name)


@_migration("0001_initial")
def m0001_initial(db: Database) -> None:
    """Sessions and their long, time-keyed event tables; the append-only audit trail."""
    _run(db, _SCHEMA_1, 1)


_SCHEMA_2 = [
    # One row per cuff reading. t_utc is when the console received it; measured_utc is the cuff's
    # own timestamp (NULL when it sent none). stored = uploaded from the cuff's memory after a
    # reconnect (gatt.md: "never treat an old reading as a new one").
    f"""CREATE TABLE blood_pressure (
        {_SESSION_FK},
        seq INTEGER NOT NULL,
        mono REAL NOT NULL,
        t_utc REAL NOT NULL,
        measured_utc REAL,
        systolic REAL,
        diastolic REAL,
        mean REAL,
        pulse REAL,
        status INTEGER NOT NULL DEFAULT 0,
        stored INTEGER NOT NULL DEFAULT 0 CHECK (stored IN (0, 1)),
        user_id INTEGER,
        device TEXT NOT NULL,
        {_EVENT_KEY}
    )""",
    "CREATE INDEX blood_pressure_by_time ON blood_pressure (session_id, t_utc)",
    # A cuff that uploads the same stored reading again must not record it twice.
    """CREATE UNIQUE INDEX blood_pressure_once ON blood_pressure
       (session_id, device, measured_utc, systolic, diastolic, mean) WHERE measured_utc IS NOT NULL""",
]


@_migration("0002_blood_pressure")
def m0002_blood_pressure(db: Database) -> None:
    """Blood-pressure readings, each recorded once."""
    _run(db, _SCHEMA_2, 2)


_APPEND_ONLY_3 = ("observations", "phase_changes", "decisions")

_SCHEMA_3 = [
    # The new-session data, one row per session; clinicians and concomitant medicines are JSON lists.
    # Editable until the session ends (a lot number is often entered late): save_details replaces it.
    """CREATE TABLE session_details (
        session_id TEXT PRIMARY KEY REFERENCES sessions(id),
        patient TEXT NOT NULL CHECK (length(trim(patient)) > 0),
        clinicians TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(clinicians)),
        protocol TEXT NOT NULL,
        planned_dose_mg REAL CHECK (planned_dose_mg IS NULL OR planned_dose_mg > 0),
        route TEXT NOT NULL,
        lot TEXT NOT NULL DEFAULT '',
        concomitant TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(concomitant)),
        created_utc REAL NOT NULL,
        updated_utc REAL NOT NULL
    )""",
    "CREATE INDEX session_details_by_patient ON session_details (patient, created_utc)",
    # Observations: pressed_* is the key press (the observation's time), saved_* the commit. `seq`
    # shares the session's counter with the Recorder's tables (one log order). A correction is a
    # new row whose `amends` names the row it corrects, in the same session.
    f"""CREATE TABLE observations (
        id INTEGER PRIMARY KEY,
        {_SESSION_FK},
        seq INTEGER NOT NULL,
        code TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        scale TEXT CHECK (scale IS NULL OR scale IN ('moaas', 'rass', 'cadss6')),
        score INTEGER,
        items TEXT CHECK (items IS NULL OR json_valid(items)),
        dose_mg REAL CHECK (dose_mg IS NULL OR dose_mg > 0),
        pressed_mono REAL NOT NULL,
        pressed_utc REAL NOT NULL,
        saved_mono REAL NOT NULL,
        saved_utc REAL NOT NULL,
        author TEXT NOT NULL CHECK (length(trim(author)) > 0),
        amends INTEGER REFERENCES observations(id),
        UNIQUE (session_id, seq),
        CHECK ((scale IS NULL) = (score IS NULL)),
        CHECK (scale IS NOT 'moaas' OR score BETWEEN 0 AND 5),
        CHECK (scale IS NOT 'rass' OR score BETWEEN -5 AND 4),
        CHECK (scale IS NOT 'cadss6' OR score BETWEEN 0 AND 24)
    )""",
    "CREATE INDEX observations_by_time ON observations (session_id, pressed_utc)",
    """CREATE TRIGGER observations_amend_same_session BEFORE INSERT ON observations
       WHEN NEW.amends IS NOT NULL AND NOT EXISTS
            (SELECT 1 FROM observations WHERE id = NEW.amends AND session_id = NEW.session_id)
       BEGIN SELECT RAISE(ABORT, 'an amendment must correct an observation of the same session'); END""",
    f"""CREATE TABLE phase_changes (
        id INTEGER PRIMARY KEY,
        {_SESSION_FK},
        seq INTEGER NOT NULL,
        mono REAL NOT NULL,
        t_utc REAL NOT NULL,
        from_phase TEXT NOT NULL,
        to_phase TEXT NOT NULL,
        who TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        UNIQUE (session_id, seq)
    )""",
    # BP-gate decisions, overrides (rest between devices, extra device, early end), the baseline
    # taken, discharge checklist items and the ready-to-leave time.
    f"""CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        {_SESSION_FK},
        seq INTEGER NOT NULL,
        mono REAL NOT NULL,
        t_utc REAL NOT NULL,
        kind TEXT NOT NULL,
        choice TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        who TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        UNIQUE (session_id, seq)
    )""",
    # Append-only, like the audit trail (design.md, "Storage").
    *(
        f"""CREATE TRIGGER {t}_no_{op.lower()} BEFORE {op} ON {t}
            BEGIN SELECT RAISE(ABORT, '{t} is append-only: {op} refused'); END"""
        for t in _APPEND_ONLY_3
        for op in ("UPDATE", "DELETE")
    ),
]


@_migration("0003_session_log")
def m0003_session_log(db: Database) -> None:
    """Session details, append-only observations, phase changes and decisions."""
    _run(db, _SCHEMA_3, 3)


_SCHEMA_4 = [
    # Every alarm transition (raised, acknowledged, latched, cleared, reminder, escalated, pause...)
    # with the value that caused it (raised) or the latest value (later events). alarm_id ties the
    # events of one alarm together; who and when of operator actions are in the audit table.
    f"""CREATE TABLE alarm_events (
        {_SESSION_FK},
        seq INTEGER NOT NULL,
        mono REAL NOT NULL,
        t_utc REAL NOT NULL,
        event TEXT NOT NULL,
        alarm_id INTEGER,
        alarm_key TEXT NOT NULL DEFAULT '',
        state TEXT,
        priority TEXT CHECK (priority IS NULL OR priority IN ('low', 'medium', 'high')),
        param TEXT,
        message TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '',
        value REAL,
        {_EVENT_KEY}
    )""",
    "CREATE INDEX alarm_events_by_alarm ON alarm_events (session_id, alarm_id, seq)",
    # the alarm record is evidence: append-only like the audit trail
    """CREATE TRIGGER alarm_events_no_update BEFORE UPDATE ON alarm_events
       BEGIN SELECT RAISE(ABORT, 'alarm_events is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER alarm_events_no_delete BEFORE DELETE ON alarm_events
       BEGIN SELECT RAISE(ABORT, 'alarm_events is append-only: DELETE refused'); END""",
]


@_migration("0004_alarm_events")
def m0004_alarm_events(db: Database) -> None:
    """The alarm record: every transition of every alarm, append-only."""
    _run(db, _SCHEMA_4, 4)


_APPEND_ONLY_5 = ("annotations", "alarm_adjudications")

_SCHEMA_5 = [
    # A reviewer's note at a time point of a recorded session (mono/t_utc on the session's own
    # timeline); created_utc is when the review was written. `seq` continues the session's counter.
    f"""CREATE TABLE annotations (
        id INTEGER PRIMARY KEY,
        {_SESSION_FK},
        seq INTEGER NOT NULL,
        mono REAL NOT NULL,
        t_utc REAL NOT NULL,
        text TEXT NOT NULL CHECK (length(trim(text)) > 0),
        reviewer TEXT NOT NULL CHECK (length(trim(reviewer)) > 0),
        created_utc REAL NOT NULL,
        UNIQUE (session_id, seq)
    )""",
    "CREATE INDEX annotations_by_time ON annotations (session_id, t_utc)",
    # A verdict on one alarm (alarm_events.alarm_id). A later row for the same alarm supersedes the
    # earlier one for display; both are kept.
    f"""CREATE TABLE alarm_adjudications (
        id INTEGER PRIMARY KEY,
        {_SESSION_FK},
        seq INTEGER NOT NULL,
        alarm_id INTEGER NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('true', 'false', 'non_actionable')),
        comment TEXT NOT NULL DEFAULT '',
        reviewer TEXT NOT NULL CHECK (length(trim(reviewer)) > 0),
        created_utc REAL NOT NULL,
        UNIQUE (session_id, seq)
    )""",
    "CREATE INDEX alarm_adjudications_by_alarm ON alarm_adjudications (session_id, alarm_id, seq)",
    """CREATE TRIGGER alarm_adjudications_alarm_exists BEFORE INSERT ON alarm_adjudications
       WHEN NOT EXISTS (SELECT 1 FROM alarm_events
                        WHERE session_id = NEW.session_id AND alarm_id = NEW.alarm_id)
       BEGIN SELECT RAISE(ABORT, 'an adjudication must name an alarm of the same session'); END""",
    # the review never alters the record, and is itself append-only (design.md, "Storage")
    *(
        f"""CREATE TRIGGER {t}_no_{op.lower()} BEFORE {op} ON {t}
            BEGIN SELECT RAISE(ABORT, '{t} is append-only: {op} refused'); END"""
        for t in _APPEND_ONLY_5
        for op in ("UPDATE", "DELETE")
    ),
]


@_migration("0005_review")
def m0005_review(db: Database) -> None:
    """Reviewer annotations and alarm adjudications, append-only."""
    _run(db, _SCHEMA_5, 5)


#: Every append-only table (design.md, "Storage") and the unique key, besides the rowid, an insert
#: could collide on.
_APPEND_ONLY_KEYS: dict[str, str | None] = {
    "audit": None,
    "observations": "session_id, seq",
    "phase_changes": "session_id, seq",
    "decisions": "session_id, seq",
    "alarm_events": "session_id, seq",
    "annotations": "session_id, seq",
    "alarm_adjudications": "session_id, seq",
}


def _no_replace(table: str, key: str | None) -> str:
    # INSERT OR REPLACE (and REPLACE INTO) deletes the colliding row without firing DELETE
    # triggers unless recursive_triggers is on, which a raw connection need not set. Refuse every
    # insert that would collide instead: a plain INSERT would fail on the constraint anyway.
    collide = "rowid = NEW.rowid"
    if key is not None:
        cols = [c.strip() for c in key.split(",")]
        collide += " OR (" + " AND ".join(f"{c} IS NEW.{c}" for c in cols) + ")"
    return (
        f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {collide}) "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: an insert over an existing row refused'); END"
    )


@_migration("0006_append_only_replace")
def m0006_append_only_replace(db: Database) -> None:
    """Append-only tables refuse INSERT OR REPLACE over an existing row (found by the tamper suite)."""
    _run(db, [_no_replace(t, k) for t, k in _APPEND_ONLY_KEYS.items()], 6)


def migration_names() -> list[str]:
    """The names of all migrations this version knows, in number order."""
    return list(_names)


def applied_migrations(db: Database) -> list[str]:
    """Names of the migrations of this set already applied to `db`, in the order applied."""
    return [m.name for m in migrations.applied(db)]


def schema_version(db: Database) -> int:
    """The number of the newest applied migration (0 for an empty database)."""
    applied = applied_migrations(db)
    return max((_number(n) for n in applied), default=0)


def migrate(db: Database) -> list[str]:
    """Apply the pending migrations, each in its own transaction; return the names applied.

    Idempotent. Refuses a database that has migrations this version does not know (it was written by
    a newer kapmonitor) rather than guess at its schema.
    """
    known = migration_names()
    _check_numbering(known)
    unknown = [n for n in applied_migrations(db) if n not in known]
    if unknown:
        raise SchemaError(
            f"the database has migrations this kapmonitor does not know: {unknown}; "
            "it was written by a newer version"
        )
    pending = [m.name for m in migrations.pending(db)]
    migrations.apply(db)
    return pending
