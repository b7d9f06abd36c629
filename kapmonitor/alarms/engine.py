"""The alarm engine: rules and technical conditions → per-alarm state machines, audio pause, audit.

Pure and clock-driven: feed it samples (on_numeric, on_blood_pressure), technical conditions
(set_technical, on_device_state) and call tick() a few times a second. It emits Transition and
AuditEntry events to listeners and answers queries; it knows nothing of colour or sound.

State machine of one rule (a technical condition skips PENDING and never latches)::

    INACTIVE --condition--> PENDING --delay elapsed, hold-off over--> ACTIVE
        ^                     |  (delay 0 or "on reading": straight to ACTIVE)
        +--condition ends-----+
    ACTIVE --acknowledge--> ACKNOWLEDGED --condition ends--> CLEARED
    ACKNOWLEDGED --reminder_s, condition persists--> ACTIVE (signals again)
    ACTIVE --condition ends, not latching--> CLEARED
    ACTIVE --condition ends, latching--> LATCHED --acknowledge--> CLEARED
    LATCHED --condition returns--> ACTIVE (same alarm)
    any raised state --operator turns the parameter's alarms off (with a reason)--> CLEARED

Decisions (../shared/reference/alarms.md):
- A None value, an implausible value, or a value flagged invalid / sensor off / searching / from
  storage neither starts nor ends a physiological condition: the last condition holds (a pending
  delay keeps running) and the flags feed the technical side.
- Hysteresis applies once raised (SpO2 clears at limit + 1 %, rates at limit ∓ 2 /min); the delay
  needs the raw condition.
- Hold-off: physiological alarms from continuous sensors wait `hold_off_s` after a device first
  delivers a valid value (Nonin practice); technical alarms show at once; cuff readings are not held.
- One sound: the highest-priority ACTIVE/LATCHED alarm not silenced by the pause.
- Audio pause silences everything; an alarm raised or escalated during the pause with a priority
  above the pause's ceiling (the highest priority sounding when it started, at least medium) breaks
  through. When the pause ends, every unacknowledged alarm sounds again.
- Escalation: an alarm sounding unacknowledged for `escalate_after_s` goes up one volume step (up to
  `max_volume_step`) and, if its rule says so, to its `escalate_to` priority. Priorities never go down.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kapmonitor.alarms.model import (
    CONTINUOUS_PARAMS,
    PARAM_NAMES,
    SOUNDING_STATES,
    TECHNICAL_MESSAGES,
    Alarm,
    AlarmKind,
    AlarmOff,
    AlarmState,
    AudioSignal,
    AuditEntry,
    LimitKind,
    Priority,
    Rule,
    TechnicalCondition,
    Transition,
    TransitionEvent,
)
from kapmonitor.alarms.presets import Preset, kap_defaults
from kapmonitor.clock import Clock
from kapmonitor.measurements import BloodPressure, BPStatus, DeviceState, Numeric, Param, Quality

log = logging.getLogger(__name__)

#: Audio pause length limits (Masimo 1/2/3 min, default 2 min; alarms.md "States the operator can set").
PAUSE_MIN_S = 60.0
PAUSE_MAX_S = 180.0
#: Reminder interval for a parameter whose alarms are off (Masimo every 3 min).
OFF_REMINDER_S = 180.0
#: A value outside these bounds is physically impossible: a technical "implausible value", not a reading.
PLAUSIBLE: dict[Param, tuple[float, float]] = {
    Param.SPO2: (0.0, 100.0),
    Param.PULSE_RATE: (0.0, 350.0),
    Param.HEART_RATE: (0.0, 350.0),
    Param.SYSTOLIC: (0.0, 350.0),
    Param.DIASTOLIC: (0.0, 350.0),
    Param.MAP: (0.0, 350.0),
    Param.PERFUSION_INDEX: (0.0, 100.0),
    Param.BATTERY: (0.0, 100.0),
}
_UNUSABLE = Quality.INVALID | Quality.SENSOR_OFF | Quality.SEARCHING | Quality.FROM_STORAGE
_SENSOR_PARAMS = frozenset({Param.SPO2, Param.PULSE_RATE, Param.HEART_RATE})
_BP_PROBLEMS = {
    BPStatus.BODY_MOVEMENT: "body movement",
    BPStatus.CUFF_TOO_LOOSE: "cuff too loose",
    BPStatus.IRREGULAR_PULSE: "irregular pulse",
    BPStatus.PULSE_ABOVE_RANGE: "pulse above range",
    BPStatus.PULSE_BELOW_RANGE: "pulse below range",
    BPStatus.IMPROPER_POSITION: "improper position",
}
_EPS = 1e-9
_LIMIT_FIELDS = ("threshold", "priority", "delay_s", "hysteresis", "latching", "escalate_to")

TransitionListener = Callable[[Transition], None]
AuditListener = Callable[[AuditEntry], None]


@dataclass(slots=True)
class _Slot:
    """Per-rule state: the pending onset, or the live alarm."""

    rule: Rule
    onset_mono: float | None = None
    onset_wall: float = 0.0
    source: str = ""
    value: float | None = None  # latest usable value
    worst: float | None = None  # worst while pending
    alarm: Alarm | None = None


@dataclass(slots=True)
class _Live:
    """Timers of a raised, not yet cleared alarm."""

    alarm: Alarm
    rule: Rule | None
    escalate_due: float
    reminder_due: float | None = None


@dataclass(slots=True)
class _Off:
    off: AlarmOff
    next_reminder: float


class AlarmEngine:
    """Physiological rules and technical conditions → alarms, one audio signal, audit trail."""

    def __init__(
        self,
        clock: Clock,
        preset: Preset | None = None,
        *,
        hold_off_s: float = 120.0,
        pause_s: float = 120.0,
        escalate_after_s: float = 120.0,
        max_volume_step: int = 2,
        reminder_s: float = 180.0,
        off_reminder_s: float = OFF_REMINDER_S,
    ) -> None:
        if hold_off_s < 0:
            raise ValueError("hold_off_s must be ≥ 0")
        _check_pause(pause_s)
        if escalate_after_s <= 0 or reminder_s <= 0 or off_reminder_s <= 0:
            raise ValueError("escalation, reminder and alarm-off reminder intervals must be > 0")
        if max_volume_step < 0:
            raise ValueError("max_volume_step must be ≥ 0")
        self.clock = clock
        self.hold_off_s = hold_off_s
        self.pause_s = pause_s
        self.escalate_after_s = escalate_after_s
        self.max_volume_step = max_volume_step
        self.reminder_s = reminder_s
        self.off_reminder_s = off_reminder_s
        self._preset = preset if preset is not None else kap_defaults()
        self._slots: dict[str, _Slot] = {}
        self._by_param: dict[Param, list[_Slot]] = {}
        for rule in self._preset.rules:
            slot = _Slot(rule)
            self._slots[rule.id] = slot
            self._by_param.setdefault(rule.param, []).append(slot)
        self._pending: dict[str, _Slot] = {}
        self._tech: dict[tuple[TechnicalCondition, str], Alarm] = {}
        self._live: dict[int, _Live] = {}
        self._history: list[Alarm] = []
        self._by_id: dict[int, Alarm] = {}
        self._audit: list[AuditEntry] = []
        self._next_id = 1
        self._first_data: dict[str, float] = {}
        self._last: dict[Param, tuple[float, str]] = {}
        self._baseline: BloodPressure | None = None
        self._off: dict[Param, _Off] = {}
        self._pause_until: float | None = None
        self._pause_ceiling = Priority.MEDIUM
        self._transition_listeners: list[TransitionListener] = []
        self._audit_listeners: list[AuditListener] = []

    # -- listeners ---------------------------------------------------------------------------
    def subscribe(self, listener: TransitionListener) -> Callable[[], None]:
        """Call `listener` with every Transition; returns a function that unsubscribes."""
        self._transition_listeners.append(listener)
        return lambda: self._transition_listeners.remove(listener)

    def subscribe_audit(self, listener: AuditListener) -> Callable[[], None]:
        """Call `listener` with every AuditEntry (the session records them); returns an unsubscriber."""
        self._audit_listeners.append(listener)
        return lambda: self._audit_listeners.remove(listener)

    def _emit(self, t: Transition) -> None:
        for listener in list(self._transition_listeners):
            try:
                listener(t)
            except Exception:  # a broken view must never stop the alarm system
                log.exception("alarm transition listener failed on %r", t)

    def _emit_alarm(self, event: TransitionEvent, alarm: Alarm, detail: str = "") -> None:
        self._emit(
            Transition(
                event=event,
                mono=self.clock.monotonic(),
                wall=self.clock.wall(),
                alarm_id=alarm.id,
                key=alarm.key,
                state=alarm.state,
                priority=alarm.priority,
                message=alarm.message,
                detail=detail,
                param=alarm.param,
            )
        )

    def _emit_event(self, event: TransitionEvent, detail: str = "", param: Param | None = None) -> None:
        self._emit(Transition(event, self.clock.monotonic(), self.clock.wall(), detail=detail, param=param))

    def _record(self, who: str, action: str, detail: str) -> None:
        entry = AuditEntry(who, action, detail, self.clock.monotonic(), self.clock.wall())
        self._audit.append(entry)
        for listener in list(self._audit_listeners):
            try:
                listener(entry)
            except Exception:
                log.exception("alarm audit listener failed on %r", entry)

    # -- samples -----------------------------------------------------------------------------
    def on_numeric(self, n: Numeric) -> None:
        """Take one numeric sample. Costs a few dict lookups and comparisons."""
        now = self.clock.monotonic()
        device = n.device
        if self._tech:
            self._set_tech(TechnicalCondition.NO_DATA, device, False, "")
        value = n.value
        q = n.quality
        if n.param is Param.BATTERY:
            if value is not None and math.isfinite(value) and not q & Quality.FROM_STORAGE:
                low = self._tech.get((TechnicalCondition.LOW_BATTERY, device))
                limit = self._preset.battery_low_pct
                # 5 % hysteresis so a level hovering at the limit does not flap
                if value <= limit or (low is not None and value < limit + 5):
                    self._set_tech(TechnicalCondition.LOW_BATTERY, device, True, f"battery {value:g} %")
                else:
                    self._set_tech(TechnicalCondition.LOW_BATTERY, device, False, "")
            return
        usable = value is not None and not q & _UNUSABLE
        if n.param in _SENSOR_PARAMS and not q & Quality.FROM_STORAGE:
            self._sensor_flags(device, q, usable)
        if value is not None:
            lo, hi = PLAUSIBLE.get(n.param, (-math.inf, math.inf))
            src = f"{device}/{n.param.value}"
            if not (lo <= value <= hi):  # NaN fails too
                usable = False
                self._set_tech(
                    TechnicalCondition.IMPLAUSIBLE, src, True, f"{PARAM_NAMES[n.param]} {value:g}", n.param
                )
            elif self._tech:
                self._set_tech(TechnicalCondition.IMPLAUSIBLE, src, False, "")
        if not usable or value is None:
            return  # a missing or flagged value neither raises nor clears (see module docstring)
        if device not in self._first_data:
            self._first_data[device] = now
        self._last[n.param] = (value, device)
        slots = self._by_param.get(n.param)
        if slots is not None and n.param not in self._off:
            held = self._first_data[device] + self.hold_off_s
            for slot in slots:
                self._evaluate(slot, value, device, now, held)

    def _sensor_flags(self, device: str, q: Quality, usable: bool) -> None:
        if q & Quality.SENSOR_OFF:
            self._set_tech(TechnicalCondition.SENSOR_OFF, device, True, "")
        elif (usable or q & Quality.SEARCHING) and self._tech:
            self._set_tech(TechnicalCondition.SENSOR_OFF, device, False, "")
        if q & Quality.SEARCHING and not q & Quality.SENSOR_OFF:
            self._set_tech(TechnicalCondition.SEARCHING, device, True, "")
        elif (usable or q & Quality.SENSOR_OFF) and self._tech:
            self._set_tech(TechnicalCondition.SEARCHING, device, False, "")

    def on_blood_pressure(self, bp: BloodPressure) -> None:
        """Take one cuff reading; BP rules act on each live reading. A stored reading never alarms."""
        if bp.stored:
            return  # uploaded from the cuff's memory: recorded by the session, never a fresh alarm
        now = self.clock.monotonic()
        device = bp.device
        self._set_tech(TechnicalCondition.NO_DATA, device, False, "")
        failed = bool(bp.status & BPStatus.MEASUREMENT_ERROR) or bp.systolic is None or bp.diastolic is None
        self._set_tech(TechnicalCondition.BP_ERROR, device, failed, "no valid systolic/diastolic")
        problems = [text for bit, text in _BP_PROBLEMS.items() if bp.status & bit]
        self._set_tech(TechnicalCondition.BP_QUALITY, device, bool(problems), ", ".join(problems))
        for param, value in (
            (Param.SYSTOLIC, bp.systolic),
            (Param.DIASTOLIC, bp.diastolic),
            (Param.MAP, bp.mean),
        ):
            if value is None:
                continue
            lo, hi = PLAUSIBLE[param]
            src = f"{device}/{param.value}"
            if not (lo <= value <= hi):
                self._set_tech(
                    TechnicalCondition.IMPLAUSIBLE, src, True, f"{PARAM_NAMES[param]} {value:g}", param
                )
                continue
            self._set_tech(TechnicalCondition.IMPLAUSIBLE, src, False, "")
            self._last[param] = (value, device)
            slots = self._by_param.get(param)
            if slots is not None and param not in self._off:
                for slot in slots:
                    self._evaluate(slot, value, device, now, now)

    def set_baseline(self, bp: BloodPressure, who: str) -> None:
        """Set the pre-dose baseline reading the rise rules compare with (audited)."""
        _need_who(who)
        if bp.systolic is None or bp.diastolic is None:
            raise ValueError("a baseline needs a systolic and a diastolic value")
        old = self._baseline
        self._baseline = bp
        was = "none" if old is None else f"{old.systolic:g}/{old.diastolic:g}"
        self._record(who, "baseline", f"pre-dose baseline {was} → {bp.systolic:g}/{bp.diastolic:g} mmHg")

    @property
    def baseline(self) -> BloodPressure | None:
        return self._baseline

    def _baseline_of(self, param: Param) -> float | None:
        b = self._baseline
        if b is None:
            return None
        return b.systolic if param is Param.SYSTOLIC else b.diastolic if param is Param.DIASTOLIC else b.mean

    # -- the rule state machine --------------------------------------------------------------
    def _present(self, rule: Rule, value: float, raised: bool) -> bool | None:
        hyst = rule.hysteresis if raised else 0.0
        if rule.kind is LimitKind.BELOW:
            return value < rule.threshold + hyst
        if rule.kind is LimitKind.ABOVE:
            return value > rule.threshold - hyst
        base = self._baseline_of(rule.param)
        if base is None:
            return None  # no baseline yet: the rise rule cannot say
        return value - base >= rule.threshold - hyst

    def _evaluate(self, slot: _Slot, value: float, source: str, now: float, held_until: float) -> None:
        rule = slot.rule
        alarm = slot.alarm
        present = self._present(rule, value, alarm is not None)
        if present is None:
            return
        if alarm is not None:
            alarm.last_value = value
            if present:
                alarm.worst_value = _worse(rule, alarm.worst_value, value)
                if alarm.state is AlarmState.LATCHED:
                    alarm.state = AlarmState.ACTIVE
                    alarm.condition_end_mono = alarm.condition_end_wall = None
                    self._emit_alarm(TransitionEvent.RETURNED, alarm)
            elif alarm.state is AlarmState.ACTIVE and rule.latching:
                alarm.state = AlarmState.LATCHED
                alarm.condition_end_mono, alarm.condition_end_wall = now, self.clock.wall()
                self._emit_alarm(TransitionEvent.LATCHED, alarm)
            elif alarm.state is not AlarmState.LATCHED:
                self._clear(alarm, "condition ended")
            return
        if not present:
            if slot.onset_mono is not None:
                slot.onset_mono = None
                self._pending.pop(rule.id, None)
            return
        if slot.onset_mono is None:
            slot.onset_mono, slot.onset_wall = now, self.clock.wall()
            slot.worst = value
            self._pending[rule.id] = slot
        else:
            slot.worst = _worse(rule, slot.worst, value)
        slot.value = value
        slot.source = source
        self._maybe_raise(slot, now, held_until)

    def _held_until(self, slot: _Slot) -> float:
        if slot.rule.param not in CONTINUOUS_PARAMS:
            return -math.inf
        first = self._first_data.get(slot.source)
        return -math.inf if first is None else first + self.hold_off_s

    def _maybe_raise(self, slot: _Slot, now: float, held_until: float) -> None:
        onset = slot.onset_mono
        if onset is None:
            return
        delay = slot.rule.delay_s or 0.0
        if now + _EPS < onset + delay or (now + _EPS < held_until and slot.rule.param in CONTINUOUS_PARAMS):
            return
        self._pending.pop(slot.rule.id, None)
        rule = slot.rule
        alarm = self._new_alarm(
            key=rule.id,
            kind=AlarmKind.PHYSIOLOGICAL,
            priority=rule.priority,
            message=rule.describe(),
            source=slot.source,
            param=rule.param,
            onset=(onset, slot.onset_wall),
            rule=rule,
        )
        alarm.trigger_value = alarm.last_value = slot.value
        alarm.worst_value = slot.worst
        slot.alarm = alarm
        slot.onset_mono = None
        self._announce(alarm)

    def _new_alarm(
        self,
        *,
        key: str,
        kind: AlarmKind,
        priority: Priority,
        message: str,
        source: str,
        param: Param | None,
        onset: tuple[float, float] | None,
        rule: Rule | None,
        detail: str = "",
    ) -> Alarm:
        now, wall = self.clock.monotonic(), self.clock.wall()
        on_mono, on_wall = onset if onset is not None else (now, wall)
        alarm = Alarm(
            id=self._next_id,
            key=key,
            kind=kind,
            priority=priority,
            base_priority=priority,
            message=message,
            source=source,
            param=param,
            state=AlarmState.ACTIVE,
            onset_mono=on_mono,
            onset_wall=on_wall,
            raised_mono=now,
            raised_wall=wall,
            detail=detail,
        )
        self._next_id += 1
        self._history.append(alarm)
        self._by_id[alarm.id] = alarm
        self._live[alarm.id] = _Live(alarm, rule, escalate_due=now + self.escalate_after_s)
        return alarm

    def _announce(self, alarm: Alarm) -> None:
        self._emit_alarm(TransitionEvent.RAISED, alarm, alarm.detail)
        self._check_breakthrough(alarm)

    def _check_breakthrough(self, alarm: Alarm) -> None:
        if self._pause_until is not None and not alarm.breakthrough and alarm.priority > self._pause_ceiling:
            alarm.breakthrough = True
            self._emit_alarm(TransitionEvent.BREAKTHROUGH, alarm, "sounds through the audio pause")

    def _clear(self, alarm: Alarm, reason: str) -> None:
        now, wall = self.clock.monotonic(), self.clock.wall()
        if alarm.condition_end_mono is None:
            alarm.condition_end_mono, alarm.condition_end_wall = now, wall
        alarm.state = AlarmState.CLEARED
        alarm.cleared_mono, alarm.cleared_wall = now, wall
        alarm.cleared_reason = reason
        alarm.breakthrough = False
        self._live.pop(alarm.id, None)
        if alarm.kind is AlarmKind.PHYSIOLOGICAL:
            slot = self._slots.get(alarm.key)
            if slot is not None and slot.alarm is alarm:
                slot.alarm = None
        else:
            for key, a in list(self._tech.items()):
                if a is alarm:
                    del self._tech[key]
        self._emit_alarm(TransitionEvent.CLEARED, alarm, reason)

    # -- technical conditions ----------------------------------------------------------------
    def set_technical(
        self, condition: TechnicalCondition, source: str, active: bool, detail: str = ""
    ) -> None:
        """Raise or end a technical condition for a source (a device id, "audio", "clock"...)."""
        self._set_tech(condition, source, active, detail)

    def _set_tech(
        self,
        condition: TechnicalCondition,
        source: str,
        active: bool,
        detail: str,
        param: Param | None = None,
    ) -> None:
        key = (condition, source)
        alarm = self._tech.get(key)
        if not active:
            if alarm is not None:
                self._clear(alarm, "condition ended")
            return
        if alarm is not None:
            alarm.detail = detail
            return
        message = TECHNICAL_MESSAGES[condition]
        alarm = self._new_alarm(
            key=f"{condition.value}@{source}",
            kind=AlarmKind.TECHNICAL,
            priority=self._preset.technical[condition],
            message=f"{message}: {source}" if source else message,
            source=source,
            param=param,
            onset=None,
            rule=None,
            detail=detail,
        )
        self._tech[key] = alarm
        self._announce(alarm)

    def on_device_state(self, device: str, state: DeviceState, detail: str = "") -> None:
        """Map a device's connection state to the 'device disconnected' technical alarm.

        LOST (link dropped unexpectedly) raises it; CONNECTED, or DISCONNECTED (closed on purpose by
        the operator), ends it.
        """
        if state is DeviceState.LOST:
            self._set_tech(TechnicalCondition.DISCONNECTED, device, True, detail)
        elif state in (DeviceState.CONNECTED, DeviceState.DISCONNECTED):
            self._set_tech(TechnicalCondition.DISCONNECTED, device, False, "")
            if state is DeviceState.DISCONNECTED:
                self._set_tech(TechnicalCondition.NO_DATA, device, False, "")

    def technical_active(self, condition: TechnicalCondition, source: str) -> bool:
        return (condition, source) in self._tech

    # -- time --------------------------------------------------------------------------------
    def tick(self) -> None:
        """Periodic work: condition delays and hold-off, pause expiry, reminders, escalation."""
        now = self.clock.monotonic()
        for slot in list(self._pending.values()):
            self._maybe_raise(slot, now, self._held_until(slot))
        if self._pause_until is not None and now + _EPS >= self._pause_until:
            self._end_pause("pause ended")
        paused = self._pause_until is not None
        for live in list(self._live.values()):
            alarm = live.alarm
            if (
                alarm.state is AlarmState.ACKNOWLEDGED
                and live.reminder_due is not None
                and now + _EPS >= live.reminder_due
            ):
                alarm.state = AlarmState.ACTIVE
                alarm.reminders += 1
                alarm.volume_step = 0
                live.reminder_due = None
                live.escalate_due = now + self.escalate_after_s
                self._emit_alarm(TransitionEvent.REMINDER, alarm, "acknowledged condition persists")
            if alarm.state not in SOUNDING_STATES or (paused and not alarm.breakthrough):
                continue
            if now + _EPS >= live.escalate_due:
                live.escalate_due = now + self.escalate_after_s
                changes = []
                if alarm.volume_step < self.max_volume_step:
                    alarm.volume_step += 1
                    changes.append(f"volume step {alarm.volume_step}")
                rule = live.rule
                if rule is not None and rule.escalate_to is not None and rule.escalate_to > alarm.priority:
                    changes.append(f"priority {alarm.priority.label} → {rule.escalate_to.label}")
                    alarm.priority = rule.escalate_to
                if changes:
                    self._emit_alarm(TransitionEvent.ESCALATED, alarm, "; ".join(changes))
        for param, off in self._off.items():
            if now + _EPS >= off.next_reminder:
                off.next_reminder = now + self.off_reminder_s
                o = off.off
                self._emit_event(
                    TransitionEvent.ALARM_OFF_REMINDER,
                    f"{PARAM_NAMES[param]} alarms are OFF (by {o.who}: {o.reason})",
                    param,
                )

    # -- operator actions --------------------------------------------------------------------
    def acknowledge(self, target: int | Literal["all"], who: str) -> int:
        """Acknowledge one alarm by id, or "all"; returns how many changed. Audited."""
        _need_who(who)
        if target == "all":
            alarms = [lv.alarm for lv in self._live.values()]
        else:
            live = self._live.get(target)
            if live is None:
                if not 1 <= target < self._next_id:
                    raise KeyError(f"no alarm {target}")
                return 0  # already cleared
            alarms = [live.alarm]
        done: list[Alarm] = []
        now, wall = self.clock.monotonic(), self.clock.wall()
        for alarm in alarms:
            if alarm.state not in SOUNDING_STATES:
                continue
            alarm.acked_mono, alarm.acked_wall, alarm.acked_by = now, wall, who
            alarm.volume_step = 0
            alarm.breakthrough = False
            if alarm.state is AlarmState.LATCHED:
                self._emit_alarm(TransitionEvent.ACKNOWLEDGED, alarm, f"by {who}")
                self._clear(alarm, f"latched alarm acknowledged by {who}")
            else:
                alarm.state = AlarmState.ACKNOWLEDGED
                self._live[alarm.id].reminder_due = now + self.reminder_s
                self._emit_alarm(TransitionEvent.ACKNOWLEDGED, alarm, f"by {who}")
            done.append(alarm)
        if done:
            self._record(who, "acknowledge", "; ".join(f"#{a.id} {a.label}" for a in done))
        return len(done)

    def pause_audio(self, who: str, seconds: float | None = None) -> None:
        """Silence alarm audio for `seconds` (60–180, default pause_s) with a countdown. Audited."""
        _need_who(who)
        seconds = self.pause_s if seconds is None else seconds
        _check_pause(seconds)
        now = self.clock.monotonic()
        sounding = [lv.alarm.priority for lv in self._live.values() if lv.alarm.state in SOUNDING_STATES]
        ceiling = max([Priority.MEDIUM, *sounding])
        if self._pause_until is not None:
            ceiling = max(ceiling, self._pause_ceiling)
        self._pause_until = now + seconds
        self._pause_ceiling = ceiling
        for live in self._live.values():
            live.alarm.breakthrough = False
        self._record(who, "audio_pause", f"audio paused for {seconds:g} s")
        self._emit_event(TransitionEvent.PAUSE_STARTED, f"{seconds:g} s by {who}")

    def set_pause_length(self, seconds: float, who: str) -> None:
        """Set how long an audio pause lasts (60–180 s, reference/alarms.md "Audio pause"); audited."""
        _need_who(who)
        _check_pause(seconds)
        if seconds == self.pause_s:
            return
        old, self.pause_s = self.pause_s, seconds
        self._record(who, "pause_length", f"audio pause {old:g} s → {seconds:g} s")

    def audit_setting(self, who: str, action: str, detail: str) -> None:
        """Audit an alarm setting kept outside the engine (the alarm volume, the workstation default
        limits) with who and when, in the same trail as the engine's own actions."""
        _need_who(who)
        self._record(who, action, detail)

    def cancel_pause(self, who: str) -> None:
        """End an audio pause early (audited); active alarms sound again."""
        _need_who(who)
        if self._pause_until is None:
            return
        self._record(who, "audio_pause_cancel", f"{self.pause_remaining():.0f} s were left")
        self._end_pause(f"cancelled by {who}")

    def _end_pause(self, detail: str) -> None:
        self._pause_until = None
        now = self.clock.monotonic()
        for live in self._live.values():
            live.alarm.breakthrough = False
            live.escalate_due = now + self.escalate_after_s
        self._emit_event(TransitionEvent.PAUSE_ENDED, detail)

    def set_alarm_off(self, param: Param, who: str, reason: str) -> None:
        """Turn a parameter's alarms off: needs a reason; shown in alarms_off and reminded. Audited."""
        _need_who(who)
        if not reason or not reason.strip():
            raise ValueError(f"turning {PARAM_NAMES.get(param, param)} alarms off needs a reason")
        if param not in self._by_param:
            raise ValueError(f"{PARAM_NAMES.get(param, param)} has no alarm rules")
        now, wall = self.clock.monotonic(), self.clock.wall()
        off = AlarmOff(param, who, reason.strip(), now, wall)
        self._off[param] = _Off(off, next_reminder=now + self.off_reminder_s)
        self._record(who, "alarm_off", f"{PARAM_NAMES[param]} alarms off: {off.reason}")
        for slot in self._by_param[param]:
            slot.onset_mono = None
            self._pending.pop(slot.rule.id, None)
            if slot.alarm is not None:
                self._clear(slot.alarm, f"{PARAM_NAMES[param]} alarms turned off by {who}: {off.reason}")
        self._emit_event(
            TransitionEvent.ALARM_OFF, f"{PARAM_NAMES[param]} alarms off by {who}: {off.reason}", param
        )

    def set_alarm_on(self, param: Param, who: str) -> None:
        """Turn a parameter's alarms back on (audited); the latest value is evaluated at once."""
        _need_who(who)
        if self._off.pop(param, None) is None:
            return
        self._record(who, "alarm_on", f"{PARAM_NAMES[param]} alarms on")
        self._emit_event(TransitionEvent.ALARM_ON, f"{PARAM_NAMES[param]} alarms on by {who}", param)
        self._reevaluate(param)

    def _reevaluate(self, param: Param) -> None:
        last = self._last.get(param)
        if last is None or param in self._off:
            return
        value, source = last
        now = self.clock.monotonic()
        for slot in self._by_param.get(param, ()):
            held = self._first_data.get(source, now) + self.hold_off_s if param in CONTINUOUS_PARAMS else now
            self._evaluate(slot, value, source, now, held)

    def set_limit(self, rule_id: str, who: str, **changes: Any) -> None:
        """Change a rule (threshold, priority, delay_s, hysteresis, latching, escalate_to); audited old → new.

        Raises PresetError (a ValueError) for an invalid change; a live alarm's priority is raised to a
        new higher priority but never lowered.
        """
        _need_who(who)
        old = self._preset.rule(rule_id)
        preset = self._preset.with_rule(rule_id, **changes)
        new = preset.rule(rule_id)
        diffs = [
            f"{name} {_fmt(getattr(old, name))} → {_fmt(getattr(new, name))}"
            for name in _LIMIT_FIELDS
            if getattr(old, name) != getattr(new, name)
        ]
        if not diffs:
            return
        self._preset = preset
        slot = self._slots[rule_id]
        slot.rule = new
        alarm = slot.alarm
        if alarm is not None:
            self._live[alarm.id].rule = new
            if new.priority > alarm.priority:
                alarm.priority = new.priority
                self._check_breakthrough(alarm)
            alarm.message = new.describe()
        self._record(who, "limit_change", f"{rule_id}: " + "; ".join(diffs))
        self._emit_event(TransitionEvent.LIMIT_CHANGED, f"{rule_id}: " + "; ".join(diffs), new.param)
        # the latest value is judged against the new rule at once (a pending delay restarts)
        slot.onset_mono = None
        self._pending.pop(rule_id, None)
        last = self._last.get(new.param)
        if last is not None and new.param not in self._off:
            value, source = last
            now = self.clock.monotonic()
            held = (
                self._first_data.get(source, now) + self.hold_off_s if new.param in CONTINUOUS_PARAMS else now
            )
            self._evaluate(slot, value, source, now, held)

    def apply_preset(self, preset: Preset, who: str) -> int:
        """Bring every rule to its value in `preset` through set_limit (each change audited).

        Only rules both presets have are changed; returns how many changed. Like set_limit, a live
        alarm is never downgraded by it.
        """
        _need_who(who)
        changed = 0
        for target in preset.rules:
            if target.id not in self._slots:
                continue
            current = self._preset.rule(target.id)
            changes = {
                n: getattr(target, n) for n in _LIMIT_FIELDS if getattr(current, n) != getattr(target, n)
            }
            if changes:
                self.set_limit(target.id, who, **changes)
                changed += 1
        return changed

    # -- queries -----------------------------------------------------------------------------
    @property
    def preset(self) -> Preset:
        """The rules in force (with every edit), for saving."""
        return self._preset

    @property
    def alarms_off(self) -> dict[Param, AlarmOff]:
        """Parameters whose alarms are off: the UI must show these at all times."""
        return {p: o.off for p, o in self._off.items()}

    def active_alarms(self) -> list[Alarm]:
        """Raised alarms not yet cleared: highest priority first, newest first within a priority."""
        return sorted(
            (lv.alarm for lv in self._live.values()), key=lambda a: (-a.priority, -a.raised_mono, -a.id)
        )

    def pending(self) -> dict[str, float]:
        """Rule id → seconds its condition has been present while the delay or hold-off runs."""
        now = self.clock.monotonic()
        return {rid: now - (s.onset_mono or now) for rid, s in self._pending.items()}

    def is_paused(self) -> bool:
        return self._pause_until is not None

    def pause_remaining(self) -> float:
        """Seconds left of the audio pause (0.0 when not paused), for the countdown."""
        if self._pause_until is None:
            return 0.0
        return max(0.0, self._pause_until - self.clock.monotonic())

    def is_sounding(self, alarm: Alarm) -> bool:
        return alarm.state in SOUNDING_STATES and (self._pause_until is None or alarm.breakthrough)

    def audio_signal(self) -> AudioSignal | None:
        """The single alarm sound to play now (highest priority, newest), or None."""
        for alarm in self.active_alarms():
            if self.is_sounding(alarm):
                return AudioSignal(alarm.id, alarm.priority, alarm.volume_step, alarm.message)
        return None

    def alarm(self, alarm_id: int) -> Alarm | None:
        """The record of one alarm (live or past) by id."""
        return self._by_id.get(alarm_id)

    def history(self) -> list[Alarm]:
        """Every alarm ever raised, in raise order, with its times (cleared ones included)."""
        return list(self._history)

    def audit_log(self) -> list[AuditEntry]:
        return list(self._audit)

    def held_off(self, device: str) -> bool:
        """True while physiological alarms from this device are held off after its first data."""
        first = self._first_data.get(device)
        return first is None or self.clock.monotonic() + _EPS < first + self.hold_off_s


def _worse(rule: Rule, old: float | None, value: float) -> float:
    if old is None:
        return value
    return min(old, value) if rule.kind is LimitKind.BELOW else max(old, value)


def _need_who(who: str) -> None:
    if not who or not who.strip():
        raise ValueError("an alarm action must say who did it")


def _check_pause(seconds: float) -> None:
    if not PAUSE_MIN_S <= seconds <= PAUSE_MAX_S:
        raise ValueError(f"audio pause must be {PAUSE_MIN_S:g}–{PAUSE_MAX_S:g} s, got {seconds:g}")


def _fmt(v: object) -> str:
    if isinstance(v, Priority):
        return v.label
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


__all__ = ["PAUSE_MAX_S", "PAUSE_MIN_S", "PLAUSIBLE", "AlarmEngine"]
