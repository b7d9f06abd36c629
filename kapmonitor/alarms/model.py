"""Alarm vocabulary: priorities, rules, alarm states and records, transitions and audit entries."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from kapmonitor.measurements import UNITS, Param


class Priority(IntEnum):
    """IEC 60601-1-8 alarm priority; compares high > medium > low."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def marker(self) -> str:
        """The conventional text marker (../shared/reference/alarms.md "Priorities and signals")."""
        return "*" * int(self)

    @property
    def label(self) -> str:
        return self.name.lower()


class AlarmKind(StrEnum):
    PHYSIOLOGICAL = "physiological"
    TECHNICAL = "technical"


class LimitKind(StrEnum):
    """How a rule compares: below a low limit, above a high limit, or a rise over the baseline."""

    BELOW = "below"  # value < threshold
    ABOVE = "above"  # value > threshold
    RISE = "rise"  # value − pre-dose baseline ≥ threshold


class TechnicalCondition(StrEnum):
    """Technical alarm conditions (../shared/reference/alarms.md "Technical alarms")."""

    DISCONNECTED = "disconnected"
    NO_DATA = "no_data"
    SENSOR_OFF = "sensor_off"
    SEARCHING = "searching"
    LOW_BATTERY = "low_battery"
    BP_ERROR = "bp_error"
    BP_QUALITY = "bp_quality"
    IMPLAUSIBLE = "implausible"
    AUDIO_FAILURE = "audio_failure"
    CLOCK = "clock"
    #: The BP schedule says a reading is due (40 min after the dose, then every N min; issue 5):
    #: "an automatic BP series stopping silently: never allow" (alarms.md "States the operator can set").
    BP_DUE = "bp_due"


TECHNICAL_MESSAGES: dict[TechnicalCondition, str] = {
    TechnicalCondition.DISCONNECTED: "Device disconnected",
    TechnicalCondition.NO_DATA: "No data from device",
    TechnicalCondition.SENSOR_OFF: "Sensor off / no finger",
    TechnicalCondition.SEARCHING: "Searching for pulse",
    TechnicalCondition.LOW_BATTERY: "Battery low",
    TechnicalCondition.BP_ERROR: "BP measurement failed",
    TechnicalCondition.BP_QUALITY: "BP reading questionable",
    TechnicalCondition.IMPLAUSIBLE: "Implausible value",
    TechnicalCondition.AUDIO_FAILURE: "ALARM AUDIO FAILURE",
    TechnicalCondition.CLOCK: "Clock problem",
    TechnicalCondition.BP_DUE: "BP reading due",
}

PARAM_NAMES: dict[Param, str] = {
    Param.SPO2: "SpO2",
    Param.PULSE_RATE: "Pulse",
    Param.PERFUSION_INDEX: "PI",
    Param.HEART_RATE: "Heart rate",
    Param.SYSTOLIC: "Systolic",
    Param.DIASTOLIC: "Diastolic",
    Param.MAP: "MAP",
    Param.BATTERY: "Battery",
}

#: Parameters measured continuously (about 1 Hz): their rules have a condition delay in seconds.
CONTINUOUS_PARAMS: frozenset[Param] = frozenset({Param.SPO2, Param.PULSE_RATE, Param.HEART_RATE})
#: Parameters measured by a cuff reading: their rules act "on reading" (delay None).
READING_PARAMS: frozenset[Param] = frozenset({Param.SYSTOLIC, Param.DIASTOLIC, Param.MAP})


@dataclass(frozen=True, slots=True)
class Rule:
    """One physiological alarm rule.

    `delay_s` is the alarm condition delay: the condition must persist that long before the alarm
    is raised (0 = at once). Cuff parameters have `delay_s=None`: they act on each reading.
    `hysteresis` widens the limit once raised: a BELOW rule clears at threshold + hysteresis, an
    ABOVE rule at threshold − hysteresis. A `latching` alarm keeps signalling after its condition
    ends until acknowledged. `escalate_to`, when set, is the priority an unacknowledged alarm of
    this rule rises to at its first escalation step.
    """

    id: str
    param: Param
    kind: LimitKind
    threshold: float
    priority: Priority
    delay_s: float | None
    hysteresis: float = 0.0
    latching: bool = False
    escalate_to: Priority | None = None

    def describe(self) -> str:
        """Operator text of the condition, e.g. 'SpO2 < 90 %'."""
        name = PARAM_NAMES[self.param]
        unit = UNITS[self.param]
        if self.kind is LimitKind.BELOW:
            return f"{name} < {self.threshold:g} {unit}"
        if self.kind is LimitKind.ABOVE:
            return f"{name} > {self.threshold:g} {unit}"
        return f"{name} ≥ baseline +{self.threshold:g} {unit}"

    def delay_text(self) -> str:
        return "on reading" if self.delay_s is None else f"{self.delay_s:g} s"


class AlarmState(StrEnum):
    """State of one alarm condition (see engine.py for the diagram).

    INACTIVE and PENDING belong to a rule's slot before anything is raised; a raised Alarm record is
    ACTIVE, ACKNOWLEDGED, LATCHED, and finally CLEARED.
    """

    INACTIVE = "inactive"
    PENDING = "pending"  # condition present, condition delay (or hold-off) running
    ACTIVE = "active"  # condition present (or returned), signalling, not acknowledged
    ACKNOWLEDGED = "acknowledged"  # condition present, sound stopped, still shown
    LATCHED = "latched"  # condition ended, still signalling until acknowledged
    CLEARED = "cleared"  # over; kept in history


#: States of a raised alarm that is still on the list (shown).
LIVE_STATES: frozenset[AlarmState] = frozenset(
    {AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED, AlarmState.LATCHED}
)
#: States that generate an audio signal (unless the audio is paused).
SOUNDING_STATES: frozenset[AlarmState] = frozenset({AlarmState.ACTIVE, AlarmState.LATCHED})


@dataclass(slots=True, eq=False)
class Alarm:
    """One raised alarm, from raise to clear; owned and updated by the engine (read-only elsewhere).

    Times are monotonic (`*_mono`) for ordering and UTC wall (`*_wall`) for the record.
    `onset_*` is when the condition was first seen (the delay started); `condition_end_*` when it
    ended; `cleared_*` when the alarm finished. `trigger_value` is the value that raised it and
    `worst_value` the most extreme value while the condition lasted.
    """

    id: int
    key: str  # rule id, or "<condition>@<source>" for a technical alarm
    kind: AlarmKind
    priority: Priority
    base_priority: Priority
    message: str
    source: str
    param: Param | None
    state: AlarmState
    onset_mono: float
    onset_wall: float
    raised_mono: float
    raised_wall: float
    trigger_value: float | None = None
    worst_value: float | None = None
    last_value: float | None = None
    detail: str = ""
    acked_mono: float | None = None
    acked_wall: float | None = None
    acked_by: str | None = None
    condition_end_mono: float | None = None
    condition_end_wall: float | None = None
    cleared_mono: float | None = None
    cleared_wall: float | None = None
    cleared_reason: str = ""
    volume_step: int = 0
    breakthrough: bool = False  # sounds through an audio pause (a new higher-priority alarm)
    reminders: int = 0

    @property
    def label(self) -> str:
        """Marker and message, e.g. '** SpO2 < 90 %' (colour is never the only cue)."""
        return f"{self.priority.marker} {self.message}"


class TransitionEvent(StrEnum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    LATCHED = "latched"  # condition ended, signal held until acknowledged
    RETURNED = "returned"  # a latched alarm's condition came back
    CLEARED = "cleared"
    REMINDER = "reminder"  # an acknowledged condition persists: signals again
    ESCALATED = "escalated"  # volume step (and possibly priority) raised
    BREAKTHROUGH = "breakthrough"  # sounds through the audio pause
    PAUSE_STARTED = "pause_started"
    PAUSE_ENDED = "pause_ended"
    ALARM_OFF = "alarm_off"
    ALARM_ON = "alarm_on"
    ALARM_OFF_REMINDER = "alarm_off_reminder"
    LIMIT_CHANGED = "limit_changed"


@dataclass(frozen=True, slots=True)
class Transition:
    """Something the alarm display, sound and record must know; `alarm_id` None for engine-wide events."""

    event: TransitionEvent
    mono: float
    wall: float
    alarm_id: int | None = None
    key: str = ""
    state: AlarmState | None = None
    priority: Priority | None = None
    message: str = ""
    detail: str = ""
    param: Param | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An operator action on the alarm system: who did what, when (wall time for the record)."""

    who: str
    action: str
    detail: str
    mono: float
    wall: float


@dataclass(frozen=True, slots=True)
class AlarmOff:
    """A parameter whose alarms an operator turned off, with the reason; always shown."""

    param: Param
    who: str
    reason: str
    since_mono: float
    since_wall: float


@dataclass(frozen=True, slots=True)
class AudioSignal:
    """The one alarm sound to play now: its alarm, priority and escalation volume step (0 = base)."""

    alarm_id: int
    priority: Priority
    volume_step: int
    message: str
