"""The session report's data: read from a recorded and reviewed session, compared with what went in."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from kapmonitor.alarms.model import AlarmState, Priority, Transition, TransitionEvent
from kapmonitor.clock import FakeClock
from kapmonitor.export.report_data import report_data
from kapmonitor.measurements import BloodPressure, Numeric, Param
from kapmonitor.observations import Pressed, Scale, ScaleScore
from kapmonitor.storage import Database, Recorder, open_database
from kapmonitor.storage.review import ReviewLog, Verdict
from kapmonitor.storage.session_log import SessionLog
from kapmonitor.workflow import Dose, SessionDetails, TreatmentProtocol

START_WALL = 1_767_258_000.0  # 2026-01-01T09:00:00Z
START_MONO = 700.0
DURATION_S = 2.5 * 3600  # 2 h 30 min
OXI = "oxi"
CUFF = "cuff"

DETAILS = SessionDetails(
    patient="P-042",
    clinicians=("Dr Ada Okafor", "RN Ben Lund"),
    protocol=TreatmentProtocol.ESKETAMINE_IN,
    planned_dose_mg=84.0,
    route="intranasal",
    lot="LOT-7781",
)
#: (minutes after start, systolic, diastolic, mean, pulse)
BP_READINGS = ((2, 128, 82, 97, 71), (45, 151, 94, 113, 77), (90, 139, 88, 105, 74), (145, 124, 79, 94, 69))
#: (alarm_id, key, priority, message, onset min, value, cleared min or None, param)
ALARMS = (
    (1, "spo2_low", Priority.MEDIUM, "SpO2 low 89 %", 30.0, 89.0, 31.0, Param.SPO2),
    (2, "pulse_high", Priority.HIGH, "Pulse high 131 /min", 60.0, 131.0, 62.5, Param.PULSE_RATE),
    (3, "bp_sys_high", Priority.MEDIUM, "Systolic high 151 mmHg", 45.0, 151.0, None, Param.SYSTOLIC),
)
#: (minutes, code, text, scale score)
OBSERVATIONS = (
    (12.0, "nausea", "", None),
    (20.0, "note", "Patient reports tingling in both hands", None),
    (40.0, "moaas", "", ScaleScore(Scale.MOAAS, (4,))),
    (70.0, "anxiety", "", None),
)
DOSES = ((5.0, 28.0), (10.0, 28.0), (15.0, 28.0))  # three 28 mg devices = 84 mg


def spo2_at(t: float) -> float:
    return 97.0 - 8.0 * math.exp(-(((t - 30.5 * 60) / 60.0) ** 2))


def pulse_at(t: float) -> float:
    return 72.0 + 60.0 * math.exp(-(((t - 61.0 * 60) / 90.0) ** 2))


@dataclass
class Built:
    path: Path
    session_id: str
    clock: FakeClock
    observation_ids: list[int] = field(default_factory=list)


def build_session(path: Path, *, review: bool = True) -> Built:
    """Record a 2.5-hour esketamine session (numerics every 10 s, BP, alarms, observations, doses)
    through the real Recorder and SessionLog; then review it (annotations, adjudications)."""
    clock = FakeClock(start_wall=START_WALL, start_mono=START_MONO)
    db = open_database(path)
    try:
        rec = Recorder(db, clock)
        sid = rec.begin_session(kind="demo", note="report fixture")
        log = SessionLog(db, clock, sid, seq=rec.next_seq)
        log.save_details(DETAILS)
        built = Built(path, sid, clock)
        bp_at = {m * 60.0: (s, d, mean, p) for m, s, d, mean, p in BP_READINGS}
        alarm_on = {a[4] * 60.0: a for a in ALARMS}
        alarm_off = {a[6] * 60.0: a for a in ALARMS if a[6] is not None}
        obs_at = {m * 60.0: (c, t, sc) for m, c, t, sc in OBSERVATIONS}
        dose_at = {m * 60.0: (n, mg) for n, (m, mg) in enumerate(DOSES, 1)}
        t = 0.0
        while t <= DURATION_S:
            mono, wall = clock.monotonic(), clock.wall()
            rec.add_numeric(Numeric(Param.SPO2, round(spo2_at(t)), mono, wall, OXI))
            rec.add_numeric(Numeric(Param.PULSE_RATE, round(pulse_at(t)), mono, wall, OXI))
            if t in bp_at:
                s, d, mean, p = bp_at[t]
                rec.add_blood_pressure(BloodPressure(s, d, mean, p, mono, wall, CUFF, measured_wall=wall))
            if t in alarm_on:
                aid, key, prio, msg, _on, value, _off, param = alarm_on[t]
                raised = Transition(
                    TransitionEvent.RAISED, mono, wall, aid, key, AlarmState.ACTIVE, prio, msg, param=param
                )
                rec.add_alarm_transition(raised, value)
                if aid == 2:
                    ack = Transition(
                        TransitionEvent.ACKNOWLEDGED, mono, wall, aid, key, AlarmState.ACKNOWLEDGED, prio, msg
                    )
                    rec.add_alarm_transition(ack, value)
            if t in alarm_off:
                aid, key, prio, msg, *_ = alarm_off[t]
                tr = Transition(TransitionEvent.CLEARED, mono, wall, aid, key, AlarmState.CLEARED, prio, msg)
                rec.add_alarm_transition(tr, None)
            if t in obs_at:
                code, text, scale = obs_at[t]
                built.observation_ids.append(
                    log.add_observation(Pressed(code, mono, wall), "RN Ben Lund", text=text, scale=scale)
                )
            if t in dose_at:
                n, mg = dose_at[t]
                log.write([Dose(n, mg, "Dr Ada Okafor", mono, wall, f"device {n}")])
            rec.maybe_flush()
            clock.advance(10.0)
            t += 10.0
        # an engine-wide event (no alarm_id) is not an alarm of the summary
        rec.add_alarm_transition(Transition(TransitionEvent.PAUSE_STARTED, clock.monotonic(), clock.wall()))
        # the nausea note corrected: the report shows the correction
        log.amend(built.observation_ids[0], "RN Ben Lund", code="vomiting")
        rec.end_session("completed")
        if review:
            clock.advance(3600.0)
            review_log = ReviewLog(db, clock, sid)
            review_log.adjudicate(1, Verdict.FALSE, "probe slipped; pleth flat", "Dr Ada Okafor")
            review_log.adjudicate(1, Verdict.NON_ACTIONABLE, "real dip, recovered alone", "Dr Cyd Moss")
            review_log.adjudicate(2, Verdict.TRUE, "tachycardia with anxiety", "Dr Cyd Moss")
            review_log.annotate("Anxious after second device", "Dr Cyd Moss", position_s=11 * 60.0)
            review_log.annotate("Calm, eyes closed", "Dr Cyd Moss", t_utc=START_WALL + 100 * 60.0)
    finally:
        db.close()
    return built


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_session(tmp_path_factory.mktemp("report") / "kap.sqlite")


@pytest.fixture
def db(built: Built) -> Iterator[Database]:
    d = open_database(built.path)
    yield d
    d.close()


def test_header_and_duration(built: Built, db: Database) -> None:
    data = report_data(db, built.session_id, built.clock)
    assert data.details == DETAILS
    assert data.session.id == built.session_id
    assert data.duration_s == pytest.approx(DURATION_S + 10.0)
    assert data.generated_utc == built.clock.wall()


def test_trends_are_the_recorded_numerics(built: Built, db: Database) -> None:
    data = report_data(db, built.session_id, built.clock)
    spo2 = data.trends[Param.SPO2]
    n = int(DURATION_S / 10) + 1
    assert len(spo2.position_s) == n
    np.testing.assert_allclose(spo2.position_s, np.arange(n) * 10.0)
    np.testing.assert_array_equal(spo2.value, [round(spo2_at(t)) for t in spo2.position_s])
    pulse = data.trends[Param.PULSE_RATE]
    assert float(np.max(pulse.value)) == round(pulse_at(61 * 60.0))


def test_blood_pressure_in_time_order(built: Built, db: Database) -> None:
    data = report_data(db, built.session_id, built.clock)
    got = [
        (round((b.wall - START_WALL) / 60), b.systolic, b.diastolic, b.mean, b.pulse_rate)
        for b in data.blood_pressure
    ]
    assert got == [tuple(float(x) if i else x for i, x in enumerate(r)) for r in BP_READINGS]


def test_alarm_summary_with_current_verdicts(built: Built, db: Database) -> None:
    data = report_data(db, built.session_id, built.clock)
    assert [a.alarm_id for a in data.alarms] == [1, 3, 2]  # by onset: 30, 45, 60 min
    by_id = {a.alarm_id: a for a in data.alarms}
    for aid, key, prio, msg, on, value, off, param in ALARMS:
        a = by_id[aid]
        assert (a.key, a.priority, a.message, a.value_at_onset) == (key, prio.name.lower(), msg, value)
        assert a.param == param.value
        assert a.onset_position_s == pytest.approx(on * 60.0)
        assert a.onset_utc == pytest.approx(START_WALL + on * 60.0)
        if off is None:
            assert a.cleared_position_s is None
        else:
            assert a.cleared_position_s == pytest.approx(off * 60.0)
    assert by_id[2].acknowledged and not by_id[1].acknowledged
    first = by_id[1].adjudication
    assert first is not None
    assert (first.verdict, first.comment, first.reviewer) == (
        Verdict.NON_ACTIONABLE,
        "real dip, recovered alone",
        "Dr Cyd Moss",
    )  # the later verdict supersedes the earlier
    second = by_id[2].adjudication
    assert second is not None and second.verdict == Verdict.TRUE
    assert by_id[3].adjudication is None


def test_observations_as_corrected_and_annotations(built: Built, db: Database) -> None:
    data = report_data(db, built.session_id, built.clock)
    codes = [o.code for o in data.observations]
    assert "nausea" not in codes and codes[0] == "dose_given"
    assert [c for c in codes if c != "dose_given"] == ["vomiting", "note", "moaas", "anxiety"]
    assert sum(o.dose_mg or 0.0 for o in data.observations) == 84.0
    assert [(round(a.position_s), a.text) for a in data.annotations] == [
        (660, "Anxious after second device"),
        (6000, "Calm, eyes closed"),
    ]


def test_rems_only_for_esketamine(built: Built, db: Database, tmp_path: Path) -> None:
    data = report_data(db, built.session_id, built.clock)
    assert data.rems is not None
    assert data.rems.dose_mg == 84.0 and data.rems.lot == "LOT-7781"
    other = open_database(tmp_path / "iv.sqlite")
    try:
        clock = FakeClock(start_wall=START_WALL, start_mono=START_MONO)
        rec = Recorder(other, clock)
        sid = rec.begin_session()
        log = SessionLog(other, clock, sid, seq=rec.next_seq)
        log.save_details(
            SessionDetails("P-1", ("Dr A",), TreatmentProtocol.KETAMINE_IM, 50.0, "intramuscular")
        )
        log.write([Dose(1, 50.0, "Dr A", clock.monotonic(), clock.wall())])
        rec.end_session()
        assert report_data(other, sid, clock).rems is None
    finally:
        other.close()


def test_unknown_session_is_refused(db: Database, built: Built) -> None:
    with pytest.raises(KeyError):
        report_data(db, "no-such-session", built.clock)
