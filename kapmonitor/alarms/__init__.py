"""Alarm system: rules and presets (KAP defaults), and the pure clock-driven alarm engine."""

from __future__ import annotations

from kapmonitor.alarms.engine import AlarmEngine
from kapmonitor.alarms.model import (
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
from kapmonitor.alarms.presets import Preset, PresetError, kap_defaults, validate

__all__ = [
    "Alarm",
    "AlarmEngine",
    "AlarmKind",
    "AlarmOff",
    "AlarmState",
    "AudioSignal",
    "AuditEntry",
    "LimitKind",
    "Preset",
    "PresetError",
    "Priority",
    "Rule",
    "TechnicalCondition",
    "Transition",
    "TransitionEvent",
    "kap_defaults",
    "validate",
]
