"""The session browser's model: every recorded session with summary figures, search and sort."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from kapmonitor.clock import utc_iso
from kapmonitor.replay.model import Database, has_table
from kapmonitor.storage import list_sessions


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One line of the session browser."""

    session_id: str
    started_utc: float
    ended_utc: float | None
    duration_s: float | None  # None while a session has no end and no data
    status: str
    kind: str
    note: str
    patient: str  # '' when the session has no details (before migration 0003, or none entered)
    protocol: str
    bp_readings: int
    observations: int
    alarms: int | None  # None: the database has no alarm record (before migration 0004)
    device_events: int
    malformed_packets: int

    @property
    def started_iso(self) -> str:
        return utc_iso(self.started_utc)

    def matches(self, text: str) -> bool:
        """Case-insensitive search over id, patient, protocol, note, status, kind and start date.

        Every word must match somewhere (``"p-017 2026-01"`` finds that patient's January sessions).
        """
        haystack = " ".join(
            (
                self.session_id,
                self.patient,
                self.protocol,
                self.note,
                self.status,
                self.kind,
                self.started_iso,
                datetime.fromtimestamp(self.started_utc, tz=UTC).strftime("%d.%m.%Y %d/%m/%Y"),
            )
        ).casefold()
        return all(word in haystack for word in text.casefold().split())


def _counts(db: Database, table: str, extra: str = "") -> dict[str, int]:
    if not has_table(db, table):
        return {}
    rows = db.execute(f"SELECT session_id, COUNT(*) FROM {table} {extra} GROUP BY session_id").fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def _last_times(db: Database) -> dict[str, float]:
    """Newest monotonic time of any numeric or waveform chunk, per session (for unfinished ones)."""
    last: dict[str, float] = {}
    for sql in (
        "SELECT session_id, MAX(mono) FROM numerics GROUP BY session_id",
        "SELECT session_id, MAX(start_mono) FROM waveform_chunks GROUP BY session_id",
    ):
        for sid, mono in db.execute(sql).fetchall():
            if mono is not None:
                last[str(sid)] = max(last.get(str(sid), float(mono)), float(mono))
    return last


def session_summaries(db: Database) -> list[SessionSummary]:
    """Every recorded session with its summary figures, newest first (a few grouped queries)."""
    bp = _counts(db, "blood_pressure")
    # an amended observation counts once: corrections are not new observations
    observations = _counts(db, "observations", "WHERE amends IS NULL")
    # an alarm counts once, when raised (its acknowledgement, clearing... are further rows)
    alarms = _counts(db, "alarm_events", "WHERE event = 'raised'") if has_table(db, "alarm_events") else None
    events = _counts(db, "device_events")
    malformed = _counts(db, "malformed_packets")
    details: dict[str, tuple[str, str]] = {}
    if has_table(db, "session_details"):
        for sid, patient, protocol in db.execute(
            "SELECT session_id, patient, protocol FROM session_details"
        ).fetchall():
            details[str(sid)] = (str(patient), str(protocol))
    last = _last_times(db)
    out: list[SessionSummary] = []
    for row in list_sessions(db):  # type: ignore[arg-type]  # a sqlite_utils Database
        if row.ended_mono is not None:
            duration: float | None = row.ended_mono - row.started_mono
        elif row.id in last:
            duration = last[row.id] - row.started_mono
        else:
            duration = None
        patient, protocol = details.get(row.id, ("", ""))
        out.append(
            SessionSummary(
                session_id=row.id,
                started_utc=row.started_utc,
                ended_utc=row.ended_utc,
                duration_s=duration,
                status=row.status,
                kind=row.kind,
                note=row.note,
                patient=patient,
                protocol=protocol,
                bp_readings=bp.get(row.id, 0),
                observations=observations.get(row.id, 0),
                alarms=None if alarms is None else alarms.get(row.id, 0),
                device_events=events.get(row.id, 0),
                malformed_packets=malformed.get(row.id, 0),
            )
        )
    return out


#: Columns the browser sorts by.
SORT_KEYS = (
    "started",
    "duration",
    "patient",
    "protocol",
    "status",
    "bp_readings",
    "observations",
    "alarms",
)


def search_sessions(summaries: Iterable[SessionSummary], text: str) -> list[SessionSummary]:
    """The sessions whose text matches every word of `text` (all of them for blank text)."""
    return [s for s in summaries if s.matches(text)]


def sort_sessions(
    summaries: Iterable[SessionSummary], key: str = "started", *, descending: bool = True
) -> list[SessionSummary]:
    """Sort by one of SORT_KEYS; unknown values (no duration, no alarm record) go last either way."""
    if key not in SORT_KEYS:
        raise ValueError(f"cannot sort sessions by {key!r}; choose one of {SORT_KEYS}")

    def value(s: SessionSummary) -> float | str | None:
        match key:
            case "started":
                return s.started_utc
            case "duration":
                return s.duration_s
            case "patient":
                return s.patient.casefold() or None
            case "protocol":
                return s.protocol.casefold() or None
            case "status":
                return s.status
            case "bp_readings":
                return s.bp_readings
            case "observations":
                return s.observations
            case _:
                return s.alarms

    items = list(summaries)
    known = [s for s in items if value(s) is not None]
    unknown = [s for s in items if value(s) is None]
    known.sort(key=lambda s: (value(s), s.started_utc), reverse=descending)
    return known + unknown
