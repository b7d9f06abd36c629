"""Tests of the session workflow state machine on a FakeClock: phases, BP gate, dosing, schedule."""

from __future__ import annotations

import logging

import pytest

from kapmonitor.alarms import (
    Alarm,
    AlarmEngine,
    AlarmKind,
    AlarmState,
    Priority,
    TechnicalCondition,
    kap_defaults,
)
from kapmonitor.clock import FakeClock
from kapmonitor.measurements import BloodPressure
from kapmonitor.session import Session
from kapmonitor.workflow import (
    DEFAULT_BP_INTERVAL_S,
    BpDueAlarm,
    ChecklistItem,
    Decision,
    Dose,
    GateChoice,
    Phase,
    PhaseChange,
    Record,
    SessionDetails,
    SessionWorkflow,
    TreatmentProtocol,
    WorkflowError,
    format_elapsed,
    timeline_shift,
)

MIN = 60.0


def esk(dose: float = 84.0) -> SessionDetails:
    return SessionDetails(
        patient="P-017",
        clinicians=("Dr A", "RN B"),
        protocol=TreatmentProtocol.ESKETAMINE_IN,
        planned_dose_mg=dose,
        route="intranasal",
        lot="L123",
    )


def iv() -> SessionDetails:
    return SessionDetails("P-2", ("Dr A",), TreatmentProtocol.KETAMINE_IV, 35.0, "intravenous")


def bp(clock: FakeClock, sys: float, dia: float, *, stored: bool = False) -> BloodPressure:
    return BloodPressure(sys, dia, None, 70.0, clock.monotonic(), clock.wall(), "cuff", stored=stored)


def to_dosing(wf: SessionWorkflow, clock: FakeClock, sys: float = 128, dia: float = 80) -> None:
    wf.start_baseline("dr")
    wf.record_baseline(bp(clock, sys, dia), "dr")
    wf.start_dosing("dr")


def test_details_validation() -> None:
    assert esk(56).planned_devices == 2
    assert esk(84).planned_devices == 3
    with pytest.raises(ValueError, match="whole number"):
        esk(60)
    with pytest.raises(ValueError, match="patient"):
        SessionDetails(" ", ("a",), TreatmentProtocol.KETAMINE_IM, None, "intramuscular")
    with pytest.raises(ValueError, match="clinician"):
        SessionDetails("p", (), TreatmentProtocol.KETAMINE_IM, None, "intramuscular")
    assert iv().planned_devices is None


def test_phases_follow_the_order_and_illegal_transitions_raise() -> None:
    clock = FakeClock()
    wf = SessionWorkflow(iv(), clock)
    assert wf.phase == Phase.PREPARATION
    with pytest.raises(WorkflowError, match="cannot go from preparation to dosing"):
        wf.start_dosing("dr")
    with pytest.raises(WorkflowError, match="cannot go from preparation to recovery"):
        wf.start_recovery("dr")
    recs = wf.start_baseline("dr")
    assert recs == [PhaseChange(Phase.PREPARATION, Phase.BASELINE, "dr", clock.monotonic(), clock.wall())]
    wf.record_baseline(bp(clock, 120, 80), "dr")
    wf.start_dosing("dr")
    with pytest.raises(WorkflowError, match="no dose"):
        wf.start_monitoring("dr")
    clock.advance(60)
    wf.log_dose("dr", mg=35.0, detail="infusion start")
    wf.start_monitoring("dr")
    with pytest.raises(WorkflowError, match="cancelled"):
        wf.cancel("changed mind", "dr")
    wf.start_recovery("dr")
    wf.start_discharge("dr")
    assert [p for p, _ in wf.timeline] == [
        Phase.PREPARATION,
        Phase.BASELINE,
        Phase.DOSING,
        Phase.MONITORING,
        Phase.RECOVERY,
        Phase.DISCHARGE,
    ]


def test_dosing_refused_until_a_baseline() -> None:
    clock = FakeClock()
    wf = SessionWorkflow(esk(), clock)
    wf.start_baseline("dr")
    with pytest.raises(WorkflowError, match="baseline BP is required"):
        wf.start_dosing("dr")
    with pytest.raises(WorkflowError, match="memory"):
        wf.record_baseline(bp(clock, 120, 80, stored=True), "dr")
    recs = wf.record_baseline(bp(clock, 140, 90), "dr")  # at the limit, not above
    assert recs[0] == Decision("baseline", "taken", "", "dr", clock.monotonic(), clock.wall(), "140/90")
    assert not wf.needs_decision
    wf.start_dosing("dr")
    assert wf.phase == Phase.DOSING


@pytest.mark.parametrize(("sys", "dia"), [(141, 80), (120, 91)])
def test_bp_gate_above_140_90_needs_a_decision(sys: float, dia: float) -> None:
    clock = FakeClock()
    wf = SessionWorkflow(esk(), clock)
    wf.start_baseline("dr")
    wf.record_baseline(bp(clock, sys, dia), "dr")
    assert wf.needs_decision
    with pytest.raises(WorkflowError, match="record a decision"):
        wf.start_dosing("dr")
    with pytest.raises(WorkflowError, match="needs a reason"):
        wf.decide(GateChoice.PROCEED, " ", "dr")
    recs = wf.decide("proceed", "usual for this patient, asymptomatic", "dr")
    assert recs == [
        Decision(
            "bp_gate",
            "proceed",
            "usual for this patient, asymptomatic",
            "dr",
            clock.monotonic(),
            clock.wall(),
            f"{sys:.0f}/{dia:.0f}",
        )
    ]
    assert wf.can_dose() == (True, "")  # the decision was recorded (needs_decision is now False)
    wf.start_dosing("dr")


def test_bp_gate_delay_then_a_new_reading_and_cancel() -> None:
    clock = FakeClock()
    wf = SessionWorkflow(esk(), clock)
    wf.start_baseline("dr")
    with pytest.raises(WorkflowError, match="awaits a decision"):
        wf.decide("delay", "", "dr")
    wf.record_baseline(bp(clock, 160, 95), "dr")
    wf.decide("delay", "rest 10 min", "dr")
    with pytest.raises(WorkflowError, match="already has a decision"):
        wf.decide("proceed", "x", "dr")
    with pytest.raises(WorkflowError, match="take a new baseline"):
        wf.start_dosing("dr")
    clock.advance(10 * MIN)
    wf.record_baseline(bp(clock, 150, 92), "dr")  # still high: a new decision
    assert wf.needs_decision
    recs = wf.decide("cancel", "still high", "dr")
    assert [type(r) for r in recs] == [Decision, PhaseChange]
    assert wf.phase == Phase.CANCELLED
    with pytest.raises(WorkflowError):
        wf.start_dosing("dr")


def test_esketamine_devices_rest_and_dose_clock() -> None:
    clock = FakeClock()
    wf = SessionWorkflow(esk(84), clock)
    to_dosing(wf, clock)
    assert wf.dose_elapsed() is None
    assert wf.clock_text() == "T+--:--"
    with pytest.raises(WorkflowError, match="log_device"):
        wf.log_dose("dr", mg=28)
    [d1] = wf.log_device("dr")
    assert d1 == Dose(1, 28.0, "dr", clock.monotonic(), clock.wall(), "device 1 of 3")
    assert wf.rest_remaining() == 300.0
    clock.advance(4 * MIN)
    assert wf.rest_remaining() == 60.0
    with pytest.raises(WorkflowError, match="60 s of the 5-minute rest"):
        wf.log_device("dr")
    clock.advance(60)
    assert wf.rest_remaining() == 0.0
    wf.log_device("dr")
    clock.advance(2 * MIN)
    recs = wf.log_device("dr", override_reason="patient asked to finish")  # overridden, audited
    assert isinstance(recs[0], Decision) and recs[0].kind == "rest_override"
    assert recs[0].detail == "180 s left"
    assert isinstance(recs[-1], Dose) and recs[-1].number == 3
    clock.advance(10 * MIN)
    with pytest.raises(WorkflowError, match="planned dose is 3"):
        wf.log_device("dr")
    assert wf.dose_elapsed() == 17 * MIN  # from the FIRST device
    clock.advance(25 * MIN)
    assert wf.clock_text() == "T+00:42"
    clock.advance(2 * 60 * MIN)
    assert wf.clock_text() == "T+02:42"


def test_format_elapsed() -> None:
    assert format_elapsed(0) == "T+00:00"
    assert format_elapsed(59.9) == "T+00:00"
    assert format_elapsed(42 * MIN + 30) == "T+00:42"
    assert format_elapsed(10 * 60 * MIN + 5 * MIN) == "T+10:05"


def test_bp_schedule_first_at_40_min_then_every_interval() -> None:
    clock = FakeClock()
    wf = SessionWorkflow(esk(56), clock, bp_interval_s=15 * MIN)
    to_dosing(wf, clock)
    assert wf.due_at() is None  # before the dose
    assert wf.last_bp_age() == 0.0  # the baseline
    t0 = clock.monotonic()
    wf.log_device("dr")
    assert wf.due_at() == t0 + 40 * MIN
    clock.advance(20 * MIN)
    wf.note_bp(bp(clock, 130, 85))  # an early reading does not replace the 40-minute one
    assert wf.due_at() == t0 + 40 * MIN
    clock.advance(19 * MIN)
    assert not wf.is_due()
    clock.advance(1 * MIN)
    assert wf.is_due()
    assert wf.last_bp_age() == 20 * MIN
    clock.advance(3 * MIN)
    wf.note_bp(bp(clock, 150, 95, stored=True))  # from the cuff's memory: no reset
    assert wf.is_due()
    wf.note_bp(BloodPressure(None, None, None, None, clock.monotonic(), clock.wall(), "cuff"))  # failed
    assert wf.is_due()
    wf.note_bp(bp(clock, 150, 95))
    assert not wf.is_due()
    assert wf.due_at() == t0 + 43 * MIN + 15 * MIN
    assert wf.last_bp_age() == 0.0
    clock.advance(15 * MIN)
    assert wf.is_due()


def test_bp_reading_from_35_min_counts_as_the_40_min_one() -> None:
    clock = FakeClock()
    wf = SessionWorkflow(iv(), clock, bp_interval_s=10 * MIN)
    to_dosing(wf, clock)
    t0 = clock.monotonic()
    wf.log_dose("dr", detail="infusion start")
    clock.advance(35 * MIN)
    wf.note_bp(bp(clock, 130, 85))
    assert wf.due_at() == t0 + 45 * MIN
    assert DEFAULT_BP_INTERVAL_S == 15 * MIN
    with pytest.raises(ValueError):
        SessionWorkflow(iv(), clock, bp_interval_s=0)


def _to_recovery(clock: FakeClock) -> SessionWorkflow:
    wf = SessionWorkflow(esk(56), clock)
    to_dosing(wf, clock)
    wf.log_device("dr")
    clock.advance(5 * MIN)
    wf.log_device("dr")
    wf.start_monitoring("dr")
    clock.advance(60 * MIN)
    wf.start_recovery("dr")
    return wf


def test_discharge_checklist_ready_to_leave_and_two_hour_minimum() -> None:
    clock = FakeClock()
    wf = _to_recovery(clock)
    with pytest.raises(WorkflowError, match="checklist incomplete"):
        wf.ready_to_leave("dr")
    for item in ChecklistItem:
        wf.check(item, "dr")
    assert all(wf.checklist.values())
    clock.advance(10 * MIN)  # 75 min after the first device
    [ready] = wf.ready_to_leave("dr")
    assert isinstance(ready, Decision) and ready.kind == "ready_to_leave"
    assert wf.ready_wall == clock.wall()
    with pytest.raises(WorkflowError, match="already recorded"):
        wf.ready_to_leave("dr")
    wf.start_discharge("dr")
    assert wf.minimum_remaining() == 45 * MIN
    with pytest.raises(WorkflowError, match="45 min of the 2-hour minimum"):
        wf.end("dr")
    clock.advance(45 * MIN)
    recs = wf.end("dr")
    assert [type(r) for r in recs] == [PhaseChange]
    assert wf.phase == Phase.ENDED
    assert wf.due_at() is None


def test_early_end_needs_an_override_reason_that_is_recorded() -> None:
    clock = FakeClock()
    wf = _to_recovery(clock)
    wf.start_discharge("dr")
    recs = wf.end("dr", override_reason="left against advice")
    assert isinstance(recs[0], Decision) and recs[0].kind == "early_end"
    assert "2-hour minimum" in recs[0].detail and "ready to leave" in recs[0].detail
    assert wf.phase == Phase.ENDED


def test_checklist_only_in_recovery_or_discharge() -> None:
    clock = FakeClock()
    wf = SessionWorkflow(esk(), clock)
    with pytest.raises(WorkflowError, match="checklist"):
        wf.check(ChecklistItem.SEDATION_RESOLVED, "dr")


def test_restore_rebuilds_the_state_from_records_after_a_monotonic_restart() -> None:
    clock = FakeClock()
    wf = SessionWorkflow(esk(84), clock)
    log: list[Record] = []
    log += wf.start_baseline("dr")
    baseline = bp(clock, 150, 95)
    log += wf.record_baseline(baseline, "dr")
    log += wf.decide("proceed", "anxious, usual", "dr")
    log += wf.start_dosing("dr")
    log += wf.log_device("dr")
    clock.advance(1 * MIN)
    clock.jump_wall(-3600.0)  # an NTP step while the first run records: it moves nothing
    clock.advance(1 * MIN)
    start_wall = 1_767_225_600.0
    last_seen = (clock.monotonic(), clock.wall())  # the newest row the first run wrote
    # a reboot: the monotonic clock restarts near zero, the wall clock goes on 3 minutes later
    later = FakeClock(start_wall=clock.wall() + 3 * MIN, start_mono=5.0)
    again = SessionWorkflow(esk(84), later)
    again.restore(log, [baseline], started_wall=start_wall, last_seen=last_seen)
    assert again.phase == Phase.DOSING
    assert again.baseline == (150.0, 95.0)
    assert not again.needs_decision
    assert again.dose_elapsed() == 5 * MIN
    assert again.rest_remaining() == 0.0
    assert again.last_bp_age() == 5 * MIN
    assert [p for p, _ in again.timeline] == [Phase.PREPARATION, Phase.BASELINE, Phase.DOSING]
    assert again.timeline[0][1] == start_wall
    again.log_device("dr")
    assert again.doses[-1].number == 2


# -- the "BP reading due" technical alarm (issue 5) ------------------------------------------------
def _bp_due(engine: AlarmEngine) -> list[Alarm]:
    return [a for a in engine.active_alarms() if a.key == f"{TechnicalCondition.BP_DUE.value}@"]


def test_a_due_bp_is_a_low_priority_alarm_until_a_live_reading() -> None:
    clock = FakeClock()
    engine = AlarmEngine(clock, kap_defaults(), hold_off_s=0)
    wf = SessionWorkflow(esk(56), clock, bp_interval_s=10 * MIN)
    watch = BpDueAlarm(wf, engine)
    to_dosing(wf, clock)
    clock.advance(50 * MIN)  # a long baseline: nothing is due before the dose
    assert watch.update() is False and _bp_due(engine) == []
    wf.log_device("dr")
    clock.advance(40 * MIN - 1)
    assert watch.update() is False and _bp_due(engine) == []
    clock.advance(1)
    assert watch.update() is True  # due at T+40 min
    (alarm,) = _bp_due(engine)
    assert alarm.priority is Priority.LOW and alarm.kind is AlarmKind.TECHNICAL
    assert alarm.message == "BP reading due"
    assert alarm.detail == "since T+00:40"
    assert watch.active
    clock.advance(2 * MIN)
    assert watch.update() is True
    assert [a.id for a in _bp_due(engine)] == [alarm.id]  # the same alarm, not a second one
    wf.note_bp(bp(clock, 150, 95, stored=True))  # from the cuff's memory: still due
    wf.note_bp(BloodPressure(None, None, None, None, clock.monotonic(), clock.wall(), "cuff"))  # failed
    assert watch.update() is True and len(_bp_due(engine)) == 1
    wf.note_bp(bp(clock, 132, 84))  # a live reading at T+42
    assert watch.update() is False
    assert _bp_due(engine) == []
    assert alarm.state is AlarmState.CLEARED
    clock.advance(10 * MIN - 1)
    assert watch.update() is False
    clock.advance(1)
    assert watch.update() is True  # due again N minutes after the last reading
    (again,) = _bp_due(engine)
    assert again.id != alarm.id and again.priority is Priority.LOW
    assert again.detail == "since T+00:52"


def test_the_bp_due_alarm_clears_when_the_session_ends_and_never_comes_before_a_dose() -> None:
    clock = FakeClock()
    engine = AlarmEngine(clock, kap_defaults(), hold_off_s=0)
    wf = _to_recovery(clock)
    watch = BpDueAlarm(wf, engine)
    clock.advance(3 * 60 * MIN)
    assert watch.update() and len(_bp_due(engine)) == 1
    wf.start_discharge("dr")
    for item in ChecklistItem:
        wf.check(item, "dr")
    wf.ready_to_leave("dr")
    wf.end("dr")
    assert watch.update() is False and _bp_due(engine) == []
    cancelled = SessionWorkflow(esk(56), clock)
    other = BpDueAlarm(cancelled, engine)
    cancelled.start_baseline("dr")
    clock.advance(60 * MIN)
    assert other.update() is False
    cancelled.cancel("patient declined", "dr")
    clock.advance(60 * MIN)
    assert other.update() is False and _bp_due(engine) == []


def test_restore_in_the_same_run_keeps_the_records_mono_whatever_the_wall_clock_did() -> None:
    clock = FakeClock()
    wf = SessionWorkflow(esk(56), clock)
    log: list[Record] = []
    log += wf.start_baseline("dr")
    baseline = bp(clock, 128, 80)
    log += wf.record_baseline(baseline, "dr")
    log += wf.start_dosing("dr")
    log += wf.log_device("dr")
    clock.advance(2 * MIN)
    clock.jump_wall(3600.0)
    clock.advance(1 * MIN)
    again = SessionWorkflow(esk(56), clock)
    again.restore(log, [baseline])
    assert again.dose_elapsed() == wf.dose_elapsed() == 3 * MIN
    assert again.rest_remaining() == wf.rest_remaining() == 2 * MIN
    assert again.due_at() == wf.due_at()
    assert again.last_bp_age() == 3 * MIN


def test_timeline_shift_measures_only_the_gap_on_the_wall_clock() -> None:
    # the earlier run's newest row at mono 5000 / wall W; now mono 12 and wall W + 600 (10 min later)
    shift = timeline_shift(5000.0, 1_767_225_600.0, 12.0, 1_767_225_600.0 + 600)
    assert 5000.0 + shift == 12.0 - 600
    assert 4700.0 + shift == 12.0 - 900  # 5 min before that row stays 5 min before it


def test_the_session_tick_drives_the_bp_due_alarm_and_a_failing_hook_stops_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    engine = AlarmEngine(clock, kap_defaults(), hold_off_s=0)
    session = Session(clock, alarms=engine)
    wf = SessionWorkflow(esk(56), clock, bp_interval_s=10 * MIN)
    watch = BpDueAlarm(wf, engine)
    ran: list[float] = []

    def broken() -> None:
        ran.append(clock.monotonic())
        raise RuntimeError("a broken rule")

    session.add_tick_hook(broken)
    remove = session.add_tick_hook(watch.update)
    to_dosing(wf, clock)
    wf.log_device("dr")
    clock.advance(40 * MIN - 1)
    session.tick()
    assert _bp_due(engine) == []
    clock.advance(1)
    with caplog.at_level(logging.ERROR, logger="kapmonitor.session"):
        session.tick()  # no view, no timer: the session's own tick raises it
    assert [a.message for a in _bp_due(engine)] == ["BP reading due"]
    assert len(ran) == 2 and "a broken rule" in caplog.text  # logged, and the next hook still ran
    remove()
    wf.note_bp(bp(clock, 132, 84))
    session.tick()
    assert len(_bp_due(engine)) == 1  # removed: the tick no longer updates it
