"""Read-side queries over recorded sessions: session list, numeric and waveform series, events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlite_utils import Database

from kapmonitor.measurements import BloodPressure, BPStatus, DeviceState, Param

FloatArray = npt.NDArray[np.float64]
SampleArray = npt.NDArray[np.int16]

_SESSION_COLUMNS = "id, started_utc, started_mono, ended_utc, ended_mono, status, kind, app_version, note"


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One row of `sessions`."""

    id: str
    started_utc: float
    started_mono: float
    ended_utc: float | None
    ended_mono: float | None
    status: str  # 'recording' | 'completed' | 'interrupted'
    kind: str  # 'live' | 'demo'
    app_version: str
    note: str


@dataclass(frozen=True, slots=True)
class DeviceEventRow:
    """One row of `device_events`; `state` is None for a note (stale data, data resumed...)."""

    seq: int
    mono: float
    t_utc: float
    device: str
    state: DeviceState | None
    detail: str


@dataclass(frozen=True, slots=True)
class MalformedRow:
    """One row of `malformed_packets`."""

    seq: int
    mono: float
    t_utc: float
    device: str
    characteristic: str
    data: bytes
    error: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One row of the append-only `audit` trail."""

    session_id: str | None
    seq: int
    mono: float
    t_utc: float
    who: str
    action: str
    detail: str


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One row of `devices`: what a device was in a session."""

    device: str
    name: str
    kind: str


def _session(row: tuple[object, ...]) -> SessionRow:
    return SessionRow(*row)  # type: ignore[arg-type]  # columns match _SESSION_COLUMNS


def list_sessions(db: Database) -> list[SessionRow]:
    """All sessions, newest first."""
    cursor = db.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY started_utc DESC, id DESC")
    return [_session(r) for r in cursor.fetchall()]


def get_session(db: Database, session_id: str) -> SessionRow | None:
    """The session with this id, or None."""
    row = db.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None else _session(row)


def unfinished_sessions(db: Database) -> list[SessionRow]:
    """Sessions still marked 'recording' (the app stopped without ending them), newest first."""
    cursor = db.execute(
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE status = 'recording' "
        "ORDER BY started_utc DESC, id DESC"
    )
    return [_session(r) for r in cursor.fetchall()]


def numerics(db: Database, session_id: str, param: Param | str) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(mono, t_utc, value) of one parameter in time order; "no valid value" (NULL) is NaN."""
    rows = db.execute(
        "SELECT mono, t_utc, value FROM numerics WHERE session_id = ? AND param = ? ORDER BY mono, seq",
        (session_id, str(param)),
    ).fetchall()
    if not rows:
        empty = np.empty(0, dtype=np.float64)
        return empty, empty.copy(), empty.copy()
    table = np.array(rows, dtype=np.float64)  # None becomes NaN
    return (
        np.ascontiguousarray(table[:, 0]),
        np.ascontiguousarray(table[:, 1]),
        np.ascontiguousarray(table[:, 2]),
    )


def waveform_devices(db: Database, session_id: str, name: str) -> list[str]:
    """The devices that recorded waveform `name` in a session."""
    rows = db.execute(
        "SELECT DISTINCT device FROM waveform_chunks WHERE session_id = ? AND name = ? ORDER BY device",
        (session_id, name),
    ).fetchall()
    return [str(r[0]) for r in rows]


def waveform(
    db: Database, session_id: str, name: str, device: str | None = None
) -> tuple[FloatArray, SampleArray]:
    """(times, samples) of waveform `name`: monotonic seconds and the exact int16 samples.

    Sample i of a chunk is at start_mono + i / rate_hz. If two devices recorded the same waveform,
    say which with `device` (ValueError otherwise).
    """
    sql = (
        "SELECT start_mono, rate_hz, n, samples, device FROM waveform_chunks "
        "WHERE session_id = ? AND name = ?"
    )
    params: tuple[str, ...] = (session_id, name)
    if device is not None:
        sql += " AND device = ?"
        params += (device,)
    rows = db.execute(sql + " ORDER BY start_mono", params).fetchall()  # the index order: no sort
    if device is None:
        devices = {r[4] for r in rows}
        if len(devices) > 1:
            raise ValueError(f"waveform {name!r} came from several devices {sorted(devices)}; pick one")
    if not rows:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int16)
    samples = np.frombuffer(b"".join(r[3] for r in rows), dtype="<i2").astype(np.int16)
    meta = np.array([(r[0], r[1], r[2]) for r in rows], dtype=np.float64)
    starts, rates, counts = meta[:, 0], meta[:, 1], meta[:, 2].astype(np.int64)
    first = np.cumsum(counts) - counts  # index of each chunk's first sample in `samples`
    index = np.arange(samples.size, dtype=np.float64)
    # sample j of the series, in chunk c, is at starts[c] + (j - first[c]) / rates[c]
    if np.all(rates == rates[0]):  # the usual case: one repeat instead of three
        times = np.repeat(starts - first / rates[0], counts) + index / rates[0]
    else:
        times = np.repeat(starts - first / rates, counts) + index * np.repeat(1.0 / rates, counts)
    return times, samples


def device_events(db: Database, session_id: str) -> list[DeviceEventRow]:
    """A session's device state changes and notes, in log (seq) order."""
    rows = db.execute(
        "SELECT seq, mono, t_utc, device, state, detail FROM device_events WHERE session_id = ? ORDER BY seq",
        (session_id,),
    ).fetchall()
    return [
        DeviceEventRow(
            seq=r[0],
            mono=r[1],
            t_utc=r[2],
            device=r[3],
            state=None if r[4] is None else DeviceState(r[4]),
            detail=r[5],
        )
        for r in rows
    ]


def blood_pressure(db: Database, session_id: str) -> list[BloodPressure]:
    """A session's cuff readings in log (seq) order, as the BloodPressure values that were recorded."""
    rows = db.execute(
        "SELECT mono, t_utc, measured_utc, systolic, diastolic, mean, pulse, status, stored, user_id, "
        "device FROM blood_pressure WHERE session_id = ? ORDER BY seq",
        (session_id,),
    ).fetchall()
    return [
        BloodPressure(
            systolic=r[3],
            diastolic=r[4],
            mean=r[5],
            pulse_rate=r[6],
            mono=r[0],
            wall=r[1],
            device=r[10],
            measured_wall=r[2],
            stored=bool(r[8]),
            status=BPStatus(r[7]),
            user_id=r[9],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class AlarmEventRow:
    """One row of `alarm_events`: a transition of an alarm (or of the alarm system, alarm_id None)."""

    seq: int
    mono: float
    t_utc: float
    event: str
    alarm_id: int | None
    alarm_key: str
    state: str | None
    priority: str | None
    param: str | None
    message: str
    detail: str
    value: float | None


def alarm_events(db: Database, session_id: str) -> list[AlarmEventRow]:
    """A session's alarm transitions in log (seq) order."""
    rows = db.execute(
        "SELECT seq, mono, t_utc, event, alarm_id, alarm_key, state, priority, param, message, detail, value "
        "FROM alarm_events WHERE session_id = ? ORDER BY seq",
        (session_id,),
    ).fetchall()
    return [AlarmEventRow(*r) for r in rows]


def malformed_packets(db: Database, session_id: str) -> list[MalformedRow]:
    """A session's refused packets with their bytes, in log (seq) order."""
    rows = db.execute(
        "SELECT seq, mono, t_utc, device, characteristic, data, error FROM malformed_packets "
        "WHERE session_id = ? ORDER BY seq",
        (session_id,),
    ).fetchall()
    return [MalformedRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6]) for r in rows]


def session_devices(db: Database, session_id: str) -> list[DeviceRow]:
    """The devices noted for a session."""
    rows = db.execute(
        "SELECT device, name, kind FROM devices WHERE session_id = ? ORDER BY device", (session_id,)
    ).fetchall()
    return [DeviceRow(r[0], r[1], r[2]) for r in rows]


def audit_entries(db: Database, session_id: str | None) -> list[AuditRow]:
    """The audit trail of a session (or, with None, the entries outside any session), seq order."""
    rows = db.execute(
        "SELECT session_id, seq, mono, t_utc, who, action, detail FROM audit "
        "WHERE session_id IS ? ORDER BY seq, id",
        (session_id,),
    ).fetchall()
    return [AuditRow(*r) for r in rows]
