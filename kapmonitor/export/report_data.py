"""Everything the PDF session report shows, read from the database into one value (the PDF only draws)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kapmonitor.clock import Clock
from kapmonitor.measurements import BloodPressure, Param
from kapmonitor.observations import Observation
from kapmonitor.rems import RemsForm
from kapmonitor.storage import AlarmEventRow, Database, SessionRow, alarm_events, get_session, numerics
from kapmonitor.storage import blood_pressure as read_blood_pressure
from kapmonitor.storage.review import (
    Adjudication,
    Annotation,
    load_annotations,
    load_current_adjudications,
)
from kapmonitor.storage.session_log import SessionLog, rems_for_session
from kapmonitor.workflow import SessionDetails

FloatArray = npt.NDArray[np.float64]

#: Printed on every report: what the console is, and is not.
NOT_A_MEDICAL_DEVICE = "kapmonitor is a monitoring aid, not a medical device."

_PRIORITY_RANK = {"low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True, slots=True)
class Trend:
    """One parameter over the session: seconds since the start, and values (NaN = no valid value)."""

    param: Param
    position_s: FloatArray
    value: FloatArray


@dataclass(frozen=True, slots=True)
class AlarmSummary:
    """One alarm from its onset to its end, with the reviewer's current verdict (if any)."""

    alarm_id: int
    key: str
    priority: str  # the highest priority it reached
    param: str | None
    message: str
    onset_utc: float
    onset_position_s: float
    value_at_onset: float | None
    cleared_position_s: float | None  # None: not cleared before the session ended
    acknowledged: bool
    events: int
    adjudication: Adjudication | None


@dataclass(frozen=True, slots=True)
class ReportData:
    """The session report's contents."""

    session: SessionRow
    details: SessionDetails | None
    trends: dict[Param, Trend]
    blood_pressure: list[BloodPressure]
    alarms: list[AlarmSummary]
    observations: list[Observation]  # as last corrected, in time order
    annotations: list[Annotation]
    rems: RemsForm | None  # esketamine sessions with a dose logged
    generated_utc: float

    @property
    def duration_s(self) -> float | None:
        s = self.session
        return None if s.ended_mono is None else s.ended_mono - s.started_mono


def summarise_alarms(
    rows: list[AlarmEventRow], origin_mono: float, verdicts: dict[int, Adjudication]
) -> list[AlarmSummary]:
    """One summary per alarm_id (engine-wide events, alarm_id None, are left out), by onset."""
    by_id: dict[int, list[AlarmEventRow]] = {}
    for r in rows:
        if r.alarm_id is not None:
            by_id.setdefault(r.alarm_id, []).append(r)
    out: list[AlarmSummary] = []
    for alarm_id, events in by_id.items():
        first = next((e for e in events if e.event == "raised"), events[0])
        cleared = [e for e in events if e.event == "cleared"]
        priorities = [e.priority for e in events if e.priority is not None]
        out.append(
            AlarmSummary(
                alarm_id=alarm_id,
                key=first.alarm_key,
                priority=max(priorities, key=lambda p: _PRIORITY_RANK.get(p, 0)) if priorities else "",
                param=first.param,
                message=first.message,
                onset_utc=first.t_utc,
                onset_position_s=first.mono - origin_mono,
                value_at_onset=first.value,
                cleared_position_s=cleared[-1].mono - origin_mono if cleared else None,
                acknowledged=any(e.event == "acknowledged" for e in events),
                events=len(events),
                adjudication=verdicts.get(alarm_id),
            )
        )
    out.sort(key=lambda a: (a.onset_position_s, a.alarm_id))
    return out


def report_data(db: Database, session_id: str, clock: Clock) -> ReportData:
    """Read what the report of `session_id` needs; `clock` gives the generation time."""
    session = get_session(db, session_id)
    if session is None:
        raise KeyError(f"no session {session_id!r} in the database")
    origin = session.started_mono
    trends: dict[Param, Trend] = {}
    for param in (Param.SPO2, Param.PULSE_RATE):
        mono, _wall, value = numerics(db, session_id, param)
        trends[param] = Trend(param, mono - origin, value)
    log = SessionLog(db, clock, session_id)
    observations = sorted(log.current_observations(), key=lambda o: (o.t_pressed_utc, o.seq))
    return ReportData(
        session=session,
        details=log.details(),
        trends=trends,
        blood_pressure=sorted(read_blood_pressure(db, session_id), key=lambda b: b.wall),
        alarms=summarise_alarms(
            alarm_events(db, session_id), origin, load_current_adjudications(db, session_id)
        ),
        observations=observations,
        annotations=load_annotations(db, session_id),
        rems=rems_for_session(log, clock),
        generated_utc=clock.wall(),
    )


__all__ = ["NOT_A_MEDICAL_DEVICE", "AlarmSummary", "ReportData", "Trend", "report_data", "summarise_alarms"]
