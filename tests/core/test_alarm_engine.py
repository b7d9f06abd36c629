"""Tests of the alarm engine on a FakeClock: delays, hysteresis, latching, pause, escalation, audit."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kapmonitor.alarms import (
    Alarm,
    AlarmEngine,
    AlarmKind,
    AlarmState,
    AuditEntry,
    LimitKind,
    Preset,
    PresetError,
    Priority,
    Rule,
    TechnicalCondition,
    Transition,
    TransitionEvent,
    kap_defaults,
    validate,
)
from kapmonitor.clock import FakeClock
from kapmonitor.measurements import BloodPressure, BPStatus, DeviceState, Numeric, Param, Quality

TC = TechnicalCondition
TE = TransitionEvent


class Rig:
    """An engine on a fake clock with its transitions and audit entries collected."""

    def __init__(self, preset: Preset | None = None, **kwargs: float) -> None:
        kwargs.setdefault("hold_off_s", 0.0)
        self.clock = FakeClock()
        self.engine = AlarmEngine(self.clock, preset, **kwargs)  # type: ignore[arg-type]
        self.events: list[Transition] = []
        self.audit: list[AuditEntry] = []
        self.engine.subscribe(self.events.append)
        self.engine.subscribe_audit(self.audit.append)

    def num(self, param: Param, value: float | None, device: str = "oxi", q: Quality = Quality.NONE) -> None:
        c = self.clock
        self.engine.on_numeric(Numeric(param, value, c.monotonic(), c.wall(), device, q))

    def bp(
        self, sys: float | None, dia: float | None, *, stored: bool = False, status: BPStatus = BPStatus.NONE
    ) -> BloodPressure:
        c = self.clock
        mean = None if sys is None or dia is None else round((sys + 2 * dia) / 3)
        reading = BloodPressure(
            sys, dia, mean, 70, c.monotonic(), c.wall(), "cuff", stored=stored, status=status
        )
        self.engine.on_blood_pressure(reading)
        return reading

    def step(self, seconds: float = 1.0, param: Param | None = None, value: float | None = None) -> None:
        """Advance the clock in 1-s steps, feeding `value` each second (a 1 Hz sensor) and ticking."""
        for _ in range(round(seconds)):
            self.clock.advance(1.0)
            if param is not None:
                self.num(param, value)
            self.engine.tick()

    def live(self, key: str) -> Alarm | None:
        for a in self.engine.active_alarms():
            if a.key == key:
                return a
        return None

    def physio_keys(self) -> set[str]:
        return {a.key for a in self.engine.active_alarms() if a.kind is AlarmKind.PHYSIOLOGICAL}

    def tech(self, cond: TechnicalCondition, source: str) -> Alarm | None:
        return self.live(f"{cond.value}@{source}")

    def kinds(self) -> list[TransitionEvent]:
        return [e.event for e in self.events]


def state(alarm: Alarm) -> AlarmState:
    """The alarm's state now (a call, so mypy does not narrow it across engine actions)."""
    return alarm.state


def prio(alarm: Alarm) -> Priority:
    return alarm.priority


def violating(rule: Rule) -> float:
    return rule.threshold - 1 if rule.kind is LimitKind.BELOW else rule.threshold + 1


CONTINUOUS = [r for r in kap_defaults().rules if r.delay_s is not None]


@pytest.mark.parametrize("rule", CONTINUOUS, ids=lambda r: r.id)
def test_each_continuous_rule_raises_exactly_at_its_delay(rule: Rule) -> None:
    rig = Rig()
    value = violating(rule)
    rig.num(rule.param, value)
    assert rule.delay_s is not None
    delay = round(rule.delay_s)
    if delay == 0:
        assert rig.live(rule.id) is not None
        return
    assert rule.id in rig.engine.pending()
    rig.step(delay - 1, rule.param, value)
    assert rig.live(rule.id) is None, "raised before its delay"
    assert rule.id in rig.engine.pending()
    rig.clock.advance(1.0)
    rig.engine.tick()  # the delay completes on the tick, even before the next sample
    alarm = rig.live(rule.id)
    assert alarm is not None and state(alarm) is AlarmState.ACTIVE
    assert alarm.priority is rule.priority
    assert alarm.raised_mono - alarm.onset_mono == pytest.approx(rule.delay_s)
    assert alarm.trigger_value == value
    assert rig.engine.audio_signal() is not None


BP_CASES = [
    ("sys.high.medium", 165, 80),
    ("dia.high.medium", 130, 105),
    ("sys.low.medium", 85, 60),
]
BP_HIGH_CASES = [
    ("sys.high.high", 185, 80, "sys.high.medium"),
    ("dia.high.high", 130, 115, "dia.high.medium"),
]


def test_a_map_rule_acts_on_the_cuffs_mean_pressure() -> None:
    # alarms.md has no KAP default for MAP; a preset may add one, and it acts on each live reading
    base = kap_defaults()
    map_low = Rule("map.low.medium", Param.MAP, LimitKind.BELOW, 65, Priority.MEDIUM, None)
    preset = Preset("with MAP", (*base.rules, map_low), dict(base.technical))
    validate(preset)
    rig = Rig(preset)
    rig.bp(100, 60)  # mean 73
    assert rig.live("map.low.medium") is None
    rig.bp(85, 50)  # mean 62
    alarm = rig.live("map.low.medium")
    assert alarm is not None and alarm.priority is Priority.MEDIUM and alarm.trigger_value == 62
    rig.bp(85, 50, stored=True)  # a stored reading neither raises nor clears
    assert rig.live("map.low.medium") is alarm
    rig.bp(100, 60)
    assert rig.live("map.low.medium") is None  # not latching: cleared by the next normal reading


@pytest.mark.parametrize(("rule_id", "sys", "dia"), BP_CASES)
def test_bp_rules_raise_on_the_reading(rule_id: str, sys: float, dia: float) -> None:
    rig = Rig(hold_off_s=120.0)  # a cuff reading is never held off
    rig.bp(sys, dia)
    assert rig.physio_keys() == {rule_id}
    rig.bp(120, 80)
    assert rig.physio_keys() == set()
    assert [a.key for a in rig.engine.history()] == [rule_id]


@pytest.mark.parametrize(("rule_id", "sys", "dia", "medium"), BP_HIGH_CASES)
def test_bp_high_priority_rules_raise_on_the_reading_and_latch(
    rule_id: str, sys: float, dia: float, medium: str
) -> None:
    rig = Rig()
    rig.bp(sys, dia)
    assert rig.physio_keys() == {rule_id, medium}
    signal = rig.engine.audio_signal()
    assert signal is not None and signal.priority is Priority.HIGH
    rig.bp(120, 80)
    high = rig.live(rule_id)
    assert high is not None and state(high) is AlarmState.LATCHED
    assert rig.live(medium) is None


def test_rise_rules_need_a_baseline_and_follow_its_changes() -> None:
    rig = Rig()
    rig.bp(160, 80)  # +40 over nothing: no rise alarm without a baseline (and 160 is not > 160)
    assert rig.physio_keys() == set()
    base = rig.bp(120, 80)
    rig.engine.set_baseline(base, "nurse A")
    assert rig.audit[-1].who == "nurse A" and "120/80" in rig.audit[-1].detail
    rig.bp(159, 80)  # +39
    assert rig.physio_keys() == set()
    rig.bp(160, 80)  # +40
    assert rig.physio_keys() == {"sys.rise.medium"}
    rig.bp(130, 105)  # diastolic +25 and > 100
    assert rig.physio_keys() == {"dia.rise.medium", "dia.high.medium"}
    rig.engine.set_baseline(rig.bp(140, 90, stored=True), "nurse A")  # a stored reading may be the baseline
    assert rig.audit[-1].detail == "pre-dose baseline 120/80 → 140/90 mmHg"
    rig.bp(175, 114)  # +35 / +24 over the new baseline
    assert rig.physio_keys() == {"sys.high.medium", "dia.high.medium", "dia.high.high"}
    with pytest.raises(ValueError, match="systolic and a diastolic"):
        rig.engine.set_baseline(rig.bp(None, None), "nurse A")


def test_stored_bp_readings_never_raise_nor_clear() -> None:
    rig = Rig()
    rig.bp(200, 120, stored=True)
    assert rig.engine.history() == []
    rig.bp(165, 80)
    rig.bp(120, 70, stored=True)  # an old normal reading must not clear the fresh alarm
    assert rig.physio_keys() == {"sys.high.medium"}


def test_pending_condition_that_ends_before_its_delay_raises_nothing() -> None:
    rig = Rig()
    rig.num(Param.SPO2, 88)
    rig.step(5, Param.SPO2, 88)
    rig.step(1, Param.SPO2, 95)
    assert rig.engine.pending() == {}
    rig.step(20, Param.SPO2, 95)
    assert rig.engine.history() == []
    rig.num(Param.SPO2, 88)  # the delay starts again from zero
    rig.step(9, Param.SPO2, 88)
    assert rig.live("spo2.low.medium") is None
    rig.step(1, Param.SPO2, 88)
    assert rig.live("spo2.low.medium") is not None


def test_hysteresis_spo2_clears_at_limit_plus_1() -> None:
    rig = Rig()
    rig.num(Param.SPO2, 88)
    rig.step(10, Param.SPO2, 88)
    assert rig.live("spo2.low.medium") is not None
    rig.step(3, Param.SPO2, 90)  # at the limit: still an alarm (hysteresis 1 %)
    assert rig.live("spo2.low.medium") is not None
    rig.step(1, Param.SPO2, 91)
    assert rig.live("spo2.low.medium") is None
    (alarm,) = rig.engine.history()
    assert state(alarm) is AlarmState.CLEARED and alarm.worst_value == 88


def test_hysteresis_pulse_high_clears_at_limit_minus_2() -> None:
    rig = Rig()
    rig.num(Param.PULSE_RATE, 125)
    rig.step(10, Param.PULSE_RATE, 130)
    assert rig.live("pulse.high.medium") is not None
    rig.step(2, Param.PULSE_RATE, 119)
    assert rig.live("pulse.high.medium") is not None
    rig.step(1, Param.PULSE_RATE, 118)
    assert rig.live("pulse.high.medium") is None
    assert rig.engine.history()[0].worst_value == 130


def test_high_priority_latches_until_acknowledged() -> None:
    rig = Rig()
    rig.num(Param.SPO2, 80)  # < 85: high priority, no delay (the rapid-desaturation limit)
    high = rig.live("spo2.low.high")
    assert high is not None and state(high) is AlarmState.ACTIVE and high.priority is Priority.HIGH
    rig.step(1, Param.SPO2, 97)
    assert state(high) is AlarmState.LATCHED
    assert rig.live("spo2.low.medium") is None  # the medium one does not latch; and it never got raised
    signal = rig.engine.audio_signal()
    assert signal is not None and signal.alarm_id == high.id  # a latched alarm still sounds
    rig.step(1, Param.SPO2, 82)  # the condition returns: the same alarm is active again
    assert state(high) is AlarmState.ACTIVE and rig.live("spo2.low.high") is high
    rig.step(1, Param.SPO2, 97)
    assert rig.engine.acknowledge(high.id, "dr B") == 1
    assert state(high) is AlarmState.CLEARED and high.acked_by == "dr B"
    assert TE.LATCHED in rig.kinds() and TE.RETURNED in rig.kinds()
    assert rig.engine.audio_signal() is None


def test_acknowledge_stops_sound_keeps_the_alarm_shown_until_it_ends() -> None:
    rig = Rig()
    rig.num(Param.SPO2, 87)
    rig.step(10, Param.SPO2, 87)
    alarm = rig.live("spo2.low.medium")
    assert alarm is not None
    rig.clock.advance(0.5)
    assert rig.engine.acknowledge("all", "nurse A") == 1
    assert state(alarm) is AlarmState.ACKNOWLEDGED
    assert alarm.acked_wall == rig.clock.wall()
    assert rig.engine.audio_signal() is None
    assert rig.engine.active_alarms() == [alarm]
    assert rig.audit[-1].who == "nurse A" and rig.audit[-1].action == "acknowledge"
    assert str(alarm.id) in rig.audit[-1].detail
    rig.step(1, Param.SPO2, 95)
    assert state(alarm) is AlarmState.CLEARED and rig.engine.active_alarms() == []
    assert rig.engine.acknowledge(alarm.id, "nurse A") == 0  # nothing left to acknowledge
    with pytest.raises(KeyError):
        rig.engine.acknowledge(999, "nurse A")
    with pytest.raises(ValueError, match="who"):
        rig.engine.acknowledge("all", " ")


def test_reminder_when_an_acknowledged_condition_persists() -> None:
    rig = Rig(reminder_s=180.0)
    rig.num(Param.SPO2, 87)
    rig.step(10, Param.SPO2, 87)
    alarm = rig.live("spo2.low.medium")
    assert alarm is not None
    rig.engine.acknowledge(alarm.id, "nurse A")
    rig.step(179, Param.SPO2, 87)
    assert state(alarm) is AlarmState.ACKNOWLEDGED and rig.engine.audio_signal() is None
    rig.step(1, Param.SPO2, 87)
    assert state(alarm) is AlarmState.ACTIVE and alarm.reminders == 1
    signal = rig.engine.audio_signal()
    assert signal is not None and signal.alarm_id == alarm.id
    assert rig.events[-1].event is TE.REMINDER


def test_audio_pause_counts_down_and_alarms_sound_again_when_it_ends() -> None:
    rig = Rig(escalate_after_s=60.0)
    rig.num(Param.SPO2, 87)
    rig.step(10, Param.SPO2, 87)
    alarm = rig.live("spo2.low.medium")
    assert alarm is not None
    rig.engine.pause_audio("nurse A")
    assert rig.audit[-1].action == "audio_pause" and "120 s" in rig.audit[-1].detail
    assert rig.engine.audio_signal() is None
    assert rig.engine.pause_remaining() == 120.0
    rig.step(119, Param.SPO2, 87)
    assert rig.engine.pause_remaining() == pytest.approx(1.0)
    assert rig.engine.audio_signal() is None
    assert alarm.volume_step == 0  # no escalation while paused
    rig.step(1, Param.SPO2, 87)
    assert rig.engine.pause_remaining() == 0.0 and not rig.engine.is_paused()
    signal = rig.engine.audio_signal()
    assert signal is not None and signal.alarm_id == alarm.id
    assert TE.PAUSE_STARTED in rig.kinds() and TE.PAUSE_ENDED in rig.kinds()


def test_pause_length_is_1_to_3_minutes_and_can_be_cancelled() -> None:
    rig = Rig()
    for bad in (30.0, 181.0):
        with pytest.raises(ValueError, match="60–180 s"):
            rig.engine.pause_audio("nurse A", bad)
    with pytest.raises(ValueError):
        AlarmEngine(rig.clock, pause_s=300.0)
    rig.engine.pause_audio("nurse A", 180.0)
    rig.step(30)
    rig.engine.cancel_pause("nurse B")
    assert not rig.engine.is_paused()
    assert rig.audit[-1].who == "nurse B" and rig.audit[-1].action == "audio_pause_cancel"
    assert "150 s were left" in rig.audit[-1].detail


def test_a_new_higher_priority_alarm_breaks_through_the_pause() -> None:
    rig = Rig()
    rig.num(Param.PULSE_RATE, 125)
    rig.step(10, Param.PULSE_RATE, 125)  # medium sounding
    rig.engine.pause_audio("nurse A")
    rig.num(Param.SPO2, 88)
    rig.step(10, Param.SPO2, 88)  # a new medium: stays paused
    assert rig.live("spo2.low.medium") is not None
    assert rig.engine.audio_signal() is None
    rig.step(1, Param.SPO2, 80)  # a new high: breaks through
    high = rig.live("spo2.low.high")
    assert high is not None and high.breakthrough
    signal = rig.engine.audio_signal()
    assert signal is not None and signal.alarm_id == high.id
    assert rig.events[-1].event is TE.BREAKTHROUGH
    rig.engine.acknowledge(high.id, "nurse A")
    assert rig.engine.audio_signal() is None  # the pause still covers the medium alarms
    assert rig.engine.is_paused()


def test_a_pause_with_nothing_sounding_still_lets_high_through() -> None:
    rig = Rig()
    rig.engine.pause_audio("nurse A", 60.0)  # e.g. before repositioning the sensor
    rig.num(Param.SPO2, 88)
    rig.step(10, Param.SPO2, 88)
    assert rig.engine.audio_signal() is None
    rig.step(1, Param.SPO2, 84)
    signal = rig.engine.audio_signal()
    assert signal is not None and signal.priority is Priority.HIGH


def test_escalation_raises_volume_steps_then_stops_and_ack_resets() -> None:
    rig = Rig(escalate_after_s=120.0)
    rig.num(Param.SPO2, 88)
    rig.step(10, Param.SPO2, 88)
    alarm = rig.live("spo2.low.medium")
    assert alarm is not None
    rig.step(119, Param.SPO2, 88)
    assert alarm.volume_step == 0
    rig.step(1, Param.SPO2, 88)
    assert alarm.volume_step == 1 and rig.events[-1].event is TE.ESCALATED
    signal = rig.engine.audio_signal()
    assert signal is not None and signal.volume_step == 1
    rig.step(120, Param.SPO2, 88)
    assert alarm.volume_step == 2
    rig.step(240, Param.SPO2, 88)
    assert alarm.volume_step == 2  # max step
    assert alarm.priority is Priority.MEDIUM  # volume only, unless the rule says otherwise
    rig.engine.acknowledge(alarm.id, "nurse A")
    assert alarm.volume_step == 0


def test_configured_priority_escalation_never_downgrades() -> None:
    rig = Rig(escalate_after_s=60.0)
    rig.engine.set_limit("spo2.low.medium", "dr B", escalate_to=Priority.HIGH)
    rig.num(Param.SPO2, 88)
    rig.step(10, Param.SPO2, 88)
    alarm = rig.live("spo2.low.medium")
    assert alarm is not None and alarm.priority is Priority.MEDIUM
    rig.step(60, Param.SPO2, 88)
    assert prio(alarm) is Priority.HIGH and alarm.base_priority is Priority.MEDIUM
    assert "priority medium → high" in rig.events[-1].detail
    rig.engine.set_limit("spo2.low.medium", "dr B", escalate_to=None, priority=Priority.LOW)
    assert prio(alarm) is Priority.HIGH  # a live alarm is never downgraded


def test_exactly_one_audio_signal_the_highest_priority() -> None:
    rig = Rig()
    rig.num(Param.BATTERY, 10)
    rig.engine.set_technical(TC.NO_DATA, "cuff", True, "no data for 15 s")
    rig.num(Param.SPO2, 80)
    signal = rig.engine.audio_signal()
    assert signal is not None and signal.priority is Priority.HIGH
    assert [a.priority for a in rig.engine.active_alarms()] == [
        Priority.HIGH,
        Priority.MEDIUM,
        Priority.LOW,
    ]
    rig.engine.acknowledge(signal.alarm_id, "nurse A")
    signal = rig.engine.audio_signal()
    assert signal is not None and signal.priority is Priority.MEDIUM
    assert signal.message == "No data from device: cuff"


def test_hold_off_after_first_data_but_sensor_off_shows_at_once() -> None:
    rig = Rig(hold_off_s=120.0)
    rig.num(Param.SPO2, None, q=Quality.SENSOR_OFF)
    assert rig.tech(TC.SENSOR_OFF, "oxi") is not None  # technical: immediately
    assert rig.engine.held_off("oxi")
    rig.step(30)
    rig.num(Param.SPO2, 80)  # first valid value: the hold-off starts now
    assert rig.tech(TC.SENSOR_OFF, "oxi") is None
    assert rig.physio_keys() == set()
    rig.step(119, Param.SPO2, 80)
    assert rig.physio_keys() == set()
    assert set(rig.engine.pending()) == {"spo2.low.medium", "spo2.low.high"}
    rig.clock.advance(1.0)
    rig.engine.tick()  # at the end of the hold-off a condition still present is raised
    assert rig.physio_keys() == {"spo2.low.medium", "spo2.low.high"}
    high = rig.live("spo2.low.high")
    assert high is not None and high.onset_mono < high.raised_mono
    # a second device has its own hold-off
    rig.num(Param.HEART_RATE, 150, device="strap")
    rig.step(10)
    assert rig.live("hr.high.high") is None and rig.engine.held_off("strap")


def test_condition_gone_during_hold_off_is_not_raised() -> None:
    rig = Rig(hold_off_s=120.0)
    rig.num(Param.SPO2, 70)  # placement artefact
    rig.step(5, Param.SPO2, 97)
    rig.step(200, Param.SPO2, 97)
    assert rig.engine.history() == []


def test_alarm_off_needs_a_reason_stays_visible_and_reminds() -> None:
    rig = Rig(off_reminder_s=180.0)
    rig.num(Param.SPO2, 80)
    high = rig.live("spo2.low.high")
    assert high is not None
    for reason in ("", "   "):
        with pytest.raises(ValueError, match="needs a reason"):
            rig.engine.set_alarm_off(Param.SPO2, "nurse A", reason)
    assert rig.engine.alarms_off == {}
    rig.engine.set_alarm_off(Param.SPO2, "nurse A", "probe on a cold finger, checking manually")
    off = rig.engine.alarms_off[Param.SPO2]
    assert off.who == "nurse A" and off.reason == "probe on a cold finger, checking manually"
    assert state(high) is AlarmState.CLEARED and "turned off by nurse A" in high.cleared_reason
    assert rig.audit[-1].action == "alarm_off" and "cold finger" in rig.audit[-1].detail
    rig.step(179, Param.SPO2, 80)
    assert rig.physio_keys() == set()
    assert TE.ALARM_OFF_REMINDER not in rig.kinds()
    rig.step(1, Param.SPO2, 80)
    assert rig.events[-1].event is TE.ALARM_OFF_REMINDER and rig.events[-1].param is Param.SPO2
    rig.step(180, Param.SPO2, 80)
    assert rig.kinds().count(TE.ALARM_OFF_REMINDER) == 2
    rig.engine.set_alarm_on(Param.SPO2, "nurse B")
    assert rig.engine.alarms_off == {}
    assert rig.audit[-1].who == "nurse B" and rig.audit[-1].action == "alarm_on"
    assert rig.live("spo2.low.high") is not None  # the latest value is judged at once
    with pytest.raises(ValueError, match="no alarm rules"):
        rig.engine.set_alarm_off(Param.BATTERY, "nurse A", "x")


def test_limit_change_is_audited_old_to_new_and_applied_at_once() -> None:
    rig = Rig()
    rig.num(Param.SPO2, 89)
    rig.step(10, Param.SPO2, 89)
    alarm = rig.live("spo2.low.medium")
    assert alarm is not None
    rig.clock.advance(0.25)
    rig.engine.set_limit("spo2.low.medium", "dr B", threshold=88.0, delay_s=15.0)
    entry = rig.audit[-1]
    assert entry.who == "dr B" and entry.action == "limit_change" and entry.wall == rig.clock.wall()
    assert entry.detail == "spo2.low.medium: threshold 90 → 88; delay_s 10 → 15"
    assert state(alarm) is AlarmState.CLEARED  # 89 ≥ 88 + 1
    assert rig.engine.preset.rule("spo2.low.medium").threshold == 88.0
    n = len(rig.audit)
    rig.engine.set_limit("spo2.low.medium", "dr B", threshold=88.0)  # no change: nothing audited
    assert len(rig.audit) == n
    with pytest.raises(PresetError, match="delay must be"):
        rig.engine.set_limit("spo2.low.medium", "dr B", delay_s=-1.0)
    assert rig.engine.preset.rule("spo2.low.medium").delay_s == 15.0
    assert len(rig.audit) == n


def test_priority_change_upgrades_a_live_alarm_but_never_downgrades_it() -> None:
    rig = Rig()
    rig.bp(165, 80)
    alarm = rig.live("sys.high.medium")
    assert alarm is not None
    rig.engine.set_limit("sys.high.medium", "dr B", priority=Priority.LOW)
    assert alarm.priority is Priority.MEDIUM
    assert "priority medium → low" in rig.audit[-1].detail


def test_device_state_drives_disconnected() -> None:
    rig = Rig()
    rig.engine.on_device_state("oxi", DeviceState.LOST, "link dropped")
    alarm = rig.tech(TC.DISCONNECTED, "oxi")
    assert alarm is not None and alarm.priority is Priority.MEDIUM and alarm.kind is AlarmKind.TECHNICAL
    assert alarm.detail == "link dropped"
    rig.engine.on_device_state("oxi", DeviceState.CONNECTED)
    assert rig.tech(TC.DISCONNECTED, "oxi") is None
    assert state(alarm) is AlarmState.CLEARED
    rig.engine.on_device_state("oxi", DeviceState.LOST)
    rig.engine.on_device_state("oxi", DeviceState.DISCONNECTED)  # closed on purpose
    assert rig.tech(TC.DISCONNECTED, "oxi") is None


def test_no_data_clears_when_data_arrives() -> None:
    rig = Rig()
    rig.engine.set_technical(TC.NO_DATA, "oxi", True, "no data for 15 s")
    assert rig.tech(TC.NO_DATA, "oxi") is not None
    rig.num(Param.SPO2, 97)
    assert rig.tech(TC.NO_DATA, "oxi") is None


def test_quality_flags_feed_the_technical_side_not_the_physiological() -> None:
    rig = Rig()
    rig.num(Param.SPO2, 80)
    high = rig.live("spo2.low.high")
    assert high is not None
    rig.step(1, Param.SPO2, 99)  # latched
    rig.engine.acknowledge("all", "nurse A")
    rig.num(Param.SPO2, 70, q=Quality.SENSOR_OFF)  # flagged value: no physiological alarm
    assert rig.physio_keys() == set()
    off = rig.tech(TC.SENSOR_OFF, "oxi")
    assert off is not None and off.priority is Priority.MEDIUM
    rig.num(Param.PULSE_RATE, 0, q=Quality.SEARCHING)
    assert rig.tech(TC.SEARCHING, "oxi") is not None
    assert rig.tech(TC.SENSOR_OFF, "oxi") is None  # the finger is back, pulse being searched
    assert rig.physio_keys() == set()
    rig.num(Param.SPO2, 50, q=Quality.INVALID)
    assert rig.physio_keys() == set()
    rig.num(Param.SPO2, 97)
    assert rig.tech(TC.SEARCHING, "oxi") is None
    rig.num(Param.SPO2, 80, q=Quality.QUESTIONABLE)  # questionable values still alarm
    assert rig.live("spo2.low.high") is not None


def test_none_values_neither_clear_nor_raise() -> None:
    rig = Rig()
    rig.num(Param.SPO2, 87)
    rig.step(10, Param.SPO2, 87)
    alarm = rig.live("spo2.low.medium")
    assert alarm is not None
    rig.step(60, Param.SPO2, None)
    assert state(alarm) is AlarmState.ACTIVE
    rig.step(1, Param.SPO2, 97)
    assert state(alarm) is AlarmState.CLEARED
    rig.step(30, Param.PULSE_RATE, None)
    assert len(rig.engine.history()) == 1


def test_implausible_values_are_technical() -> None:
    rig = Rig()
    for value in (127.0, -1.0, math.nan):
        rig.num(Param.SPO2, value)
        alarm = rig.tech(TC.IMPLAUSIBLE, "oxi/spo2")
        assert alarm is not None and alarm.param is Param.SPO2
        assert rig.physio_keys() == set()
    rig.num(Param.SPO2, 97)
    assert rig.tech(TC.IMPLAUSIBLE, "oxi/spo2") is None
    rig.bp(400, 80)
    assert rig.tech(TC.IMPLAUSIBLE, "cuff/sys") is not None
    assert rig.physio_keys() == set()


def test_low_battery_with_hysteresis() -> None:
    rig = Rig()
    rig.num(Param.BATTERY, 21)
    assert rig.tech(TC.LOW_BATTERY, "oxi") is None
    rig.num(Param.BATTERY, 20)
    alarm = rig.tech(TC.LOW_BATTERY, "oxi")
    assert alarm is not None and alarm.priority is Priority.LOW
    rig.num(Param.BATTERY, 24)
    assert rig.tech(TC.LOW_BATTERY, "oxi") is alarm
    rig.num(Param.BATTERY, 25)
    assert rig.tech(TC.LOW_BATTERY, "oxi") is None


def test_bp_measurement_error_and_status_bits() -> None:
    rig = Rig()
    rig.bp(None, None, status=BPStatus.MEASUREMENT_ERROR)
    err = rig.tech(TC.BP_ERROR, "cuff")
    assert err is not None and err.priority is Priority.MEDIUM
    rig.bp(130, 85, status=BPStatus.BODY_MOVEMENT | BPStatus.CUFF_TOO_LOOSE)
    assert rig.tech(TC.BP_ERROR, "cuff") is None
    q = rig.tech(TC.BP_QUALITY, "cuff")
    assert q is not None and q.detail == "body movement, cuff too loose" and q.priority is Priority.LOW
    rig.bp(165, 85, status=BPStatus.IRREGULAR_PULSE)  # a questionable reading still alarms
    assert rig.physio_keys() == {"sys.high.medium"}
    rig.bp(125, 85)
    assert rig.tech(TC.BP_QUALITY, "cuff") is None


def test_audio_failure_is_high_priority() -> None:
    rig = Rig()
    rig.engine.set_technical(TC.AUDIO_FAILURE, "audio", True, "no output device")
    alarm = rig.tech(TC.AUDIO_FAILURE, "audio")
    assert alarm is not None and alarm.priority is Priority.HIGH
    assert alarm.label == "*** ALARM AUDIO FAILURE: audio"


def test_every_raised_alarm_stays_in_history_with_its_times() -> None:
    rig = Rig()
    rig.num(Param.SPO2, 88)
    rig.step(10, Param.SPO2, 88)
    rig.step(2, Param.SPO2, 95)
    rig.bp(170, 90)
    rig.bp(120, 80)
    rig.engine.on_device_state("oxi", DeviceState.LOST)
    rig.step(3)
    rig.engine.on_device_state("oxi", DeviceState.CONNECTED)
    history = rig.engine.history()
    assert [a.key for a in history] == ["spo2.low.medium", "sys.high.medium", "disconnected@oxi"]
    for a in history:
        assert state(a) is AlarmState.CLEARED
        assert a.cleared_mono is not None and a.cleared_wall is not None
        assert a.onset_mono <= a.raised_mono <= a.cleared_mono
    assert history[0].raised_mono - history[0].onset_mono == 10
    raised = [e.alarm_id for e in rig.events if e.event is TE.RAISED]
    cleared = [e.alarm_id for e in rig.events if e.event is TE.CLEARED]
    assert raised == cleared == [a.id for a in history]


def test_a_failing_listener_does_not_stop_the_engine() -> None:
    rig = Rig()

    def broken(_: Transition) -> None:
        raise RuntimeError("view died")

    rig.engine.subscribe(broken)
    rig.num(Param.SPO2, 80)
    assert rig.live("spo2.low.high") is not None
    assert rig.events[-1].event is TE.RAISED


def test_a_sample_costs_microseconds() -> None:
    rig = Rig()
    samples = [Numeric(Param.SPO2, 97.0, 1000.0 + i, 0.0, "oxi") for i in range(20_000)]
    t0 = time.perf_counter()
    for s in samples:
        rig.engine.on_numeric(s)
    per_sample = (time.perf_counter() - t0) / len(samples)
    assert per_sample < 50e-6, f"{per_sample * 1e6:.1f} µs per sample"


# -- property: nothing active is left unsignalled once a pause ends ------------------------------
OPS = st.one_of(
    st.tuples(st.just("spo2"), st.one_of(st.none(), st.integers(70, 100))),
    st.tuples(st.just("advance"), st.integers(1, 200)),
    st.tuples(st.just("ack"), st.just(0)),
    st.tuples(st.just("pause"), st.integers(60, 180)),
    st.tuples(st.just("tech"), st.booleans()),
)


@given(st.lists(OPS, max_size=40))
def test_property_active_conditions_always_signal_when_not_paused(ops: list[tuple[str, object]]) -> None:
    rig = Rig(hold_off_s=0.0)
    for op, arg in ops:
        if op == "spo2":
            rig.num(Param.SPO2, arg)  # type: ignore[arg-type]
        elif op == "advance":
            rig.clock.advance(float(arg))  # type: ignore[arg-type]
            rig.engine.tick()
        elif op == "ack":
            rig.engine.acknowledge("all", "nurse")
        elif op == "pause":
            rig.engine.pause_audio("nurse", float(arg))  # type: ignore[arg-type]
        else:
            rig.engine.set_technical(TC.NO_DATA, "oxi", bool(arg))
        _check_invariants(rig)
    rig.clock.advance(181.0)
    rig.engine.tick()
    assert not rig.engine.is_paused()
    _check_invariants(rig)
    # a severe desaturation now always ends up signalled, whatever happened before
    rig.num(Param.SPO2, 75)
    high = rig.live("spo2.low.high")
    assert high is not None
    if state(high) is AlarmState.ACKNOWLEDGED:
        rig.clock.advance(rig.engine.reminder_s)
        rig.num(Param.SPO2, 75)
        rig.engine.tick()
    signal = rig.engine.audio_signal()
    assert signal is not None and signal.priority is Priority.HIGH


def _check_invariants(rig: Rig) -> None:
    engine = rig.engine
    live = engine.active_alarms()
    history = engine.history()
    assert all(a in history for a in live)
    assert all(state(a) is AlarmState.CLEARED for a in history if a not in live)
    sounding = [a for a in live if a.state in (AlarmState.ACTIVE, AlarmState.LATCHED)]
    signal = engine.audio_signal()
    if not engine.is_paused() and sounding:
        assert signal is not None
        assert signal.priority == max(a.priority for a in sounding)
    if signal is not None:
        assert signal.priority == max(a.priority for a in sounding)
    keys = [a.key for a in live]
    assert len(keys) == len(set(keys)), "one live alarm per rule or condition"


def test_pause_length_setting_is_audited_bounded_and_used_by_the_next_pause() -> None:
    rig = Rig()
    rig.engine.set_pause_length(180.0, "dr B")
    assert rig.audit[-1].who == "dr B" and rig.audit[-1].action == "pause_length"
    assert rig.audit[-1].detail == "audio pause 120 s → 180 s"
    rig.engine.set_pause_length(180.0, "dr B")  # no change: nothing audited
    assert len(rig.audit) == 1
    for bad in (59.0, 181.0):
        with pytest.raises(ValueError, match="60–180"):
            rig.engine.set_pause_length(bad, "dr B")
    with pytest.raises(ValueError, match="who"):
        rig.engine.set_pause_length(60.0, " ")
    rig.engine.pause_audio("nurse A")
    assert rig.engine.pause_remaining() == pytest.approx(180.0)


def test_apply_preset_restores_each_changed_rule_through_the_audited_limit_change() -> None:
    rig = Rig()
    rig.engine.set_limit("spo2.low.medium", "dr B", threshold=88.0, delay_s=15.0)
    rig.engine.set_limit("pulse.high.medium", "dr B", threshold=130.0)
    before = len(rig.audit)
    assert rig.engine.apply_preset(kap_defaults(), "dr C") == 2
    assert rig.engine.preset == kap_defaults()
    changes = rig.audit[before:]
    assert [(a.who, a.action) for a in changes] == [("dr C", "limit_change")] * 2
    assert any("threshold 88 → 90" in a.detail for a in changes)
    assert rig.engine.apply_preset(kap_defaults(), "dr C") == 0
