"""Alarm presets: the KAP default rules of the reference, validation, and JSON-able (de)serialisation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kapmonitor.alarms.model import (
    PARAM_NAMES,
    READING_PARAMS,
    LimitKind,
    Priority,
    Rule,
    TechnicalCondition,
)
from kapmonitor.measurements import UNITS, Param

PRESET_FORMAT = 1

#: Limits must lie inside what the parameter can physically be (a limit outside never fires).
LIMIT_RANGES: dict[Param, tuple[float, float]] = {
    Param.SPO2: (50.0, 100.0),
    Param.PULSE_RATE: (20.0, 300.0),
    Param.HEART_RATE: (20.0, 300.0),
    Param.SYSTOLIC: (40.0, 300.0),
    Param.DIASTOLIC: (20.0, 250.0),
    Param.MAP: (20.0, 280.0),
}
#: Largest accepted baseline rise (mmHg) and hysteresis, to catch typing errors.
MAX_RISE = 150.0
MAX_DELAY_S = 120.0

RULE_FIELDS = (
    "id",
    "param",
    "kind",
    "threshold",
    "priority",
    "delay_s",
    "hysteresis",
    "latching",
    "escalate_to",
)


class PresetError(ValueError):
    """A preset or rule that cannot be used, with a message an operator can act on."""


@dataclass(frozen=True)
class Preset:
    """A named set of alarm rules plus the priority of each technical condition."""

    name: str
    rules: tuple[Rule, ...]
    technical: Mapping[TechnicalCondition, Priority] = field(default_factory=dict)
    battery_low_pct: float = 20.0

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise PresetError(f"no alarm rule {rule_id!r} in preset {self.name!r}")

    def with_rule(self, rule_id: str, **changes: Any) -> Preset:
        """A copy with one rule changed (threshold, priority, delay_s, hysteresis, latching, escalate_to)."""
        bad = set(changes) - set(RULE_FIELDS[3:])
        if bad:
            raise PresetError(f"cannot change {', '.join(sorted(bad))} of rule {rule_id!r}")
        old = self.rule(rule_id)
        new = replace(old, **changes)
        preset = replace(self, rules=tuple(new if r.id == rule_id else r for r in self.rules))
        validate(preset)
        return preset

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for saving."""
        return {
            "format": PRESET_FORMAT,
            "name": self.name,
            "battery_low_pct": self.battery_low_pct,
            "technical": {c.value: p.label for c, p in self.technical.items()},
            "rules": [_rule_to_dict(r) for r in self.rules],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preset:
        """Parse and validate a saved preset; raises PresetError naming what is wrong."""
        if not isinstance(data, Mapping):
            raise PresetError("a preset must be a mapping")
        if data.get("format") != PRESET_FORMAT:
            raise PresetError(f"unknown preset format {data.get('format')!r} (expected {PRESET_FORMAT})")
        unknown = set(data) - {"format", "name", "battery_low_pct", "technical", "rules"}
        if unknown:
            raise PresetError(f"unknown preset keys: {', '.join(sorted(unknown))}")
        try:
            name = str(data["name"])
            rules = tuple(_rule_from_dict(r) for r in data["rules"])
            technical = {
                TechnicalCondition(c): _priority(p, f"technical {c!r}") for c, p in data["technical"].items()
            }
            battery = float(data["battery_low_pct"])
        except KeyError as exc:
            raise PresetError(f"preset is missing {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise PresetError(f"preset is malformed: {exc}") from None
        except ValueError as exc:
            if isinstance(exc, PresetError):
                raise
            raise PresetError(f"preset is malformed: {exc}") from None
        preset = cls(name=name, rules=rules, technical=technical, battery_low_pct=battery)
        validate(preset)
        return preset


def _priority(value: Any, where: str) -> Priority:
    if isinstance(value, str) and value.upper() in Priority.__members__:
        return Priority[value.upper()]
    raise PresetError(f"{where}: priority must be high, medium or low, got {value!r}")


def _rule_to_dict(r: Rule) -> dict[str, Any]:
    return {
        "id": r.id,
        "param": r.param.value,
        "kind": r.kind.value,
        "threshold": r.threshold,
        "priority": r.priority.label,
        "delay_s": r.delay_s,
        "hysteresis": r.hysteresis,
        "latching": r.latching,
        "escalate_to": None if r.escalate_to is None else r.escalate_to.label,
    }


def _rule_from_dict(d: Mapping[str, Any]) -> Rule:
    rid = d.get("id", "?")
    unknown = set(d) - set(RULE_FIELDS)
    if unknown:
        raise PresetError(f"rule {rid!r}: unknown keys {', '.join(sorted(unknown))}")
    try:
        param = Param(d["param"])
        kind = LimitKind(d["kind"])
    except KeyError as exc:
        raise PresetError(f"rule {rid!r} is missing {exc.args[0]!r}") from None
    except ValueError as exc:
        raise PresetError(f"rule {rid!r}: {exc}") from None
    delay = d.get("delay_s")
    esc = d.get("escalate_to")
    try:
        return Rule(
            id=str(d["id"]),
            param=param,
            kind=kind,
            threshold=float(d["threshold"]),
            priority=_priority(d["priority"], f"rule {rid!r}"),
            delay_s=None if delay is None else float(delay),
            hysteresis=float(d.get("hysteresis", 0.0)),
            latching=_bool(d.get("latching", False), rid),
            escalate_to=None if esc is None else _priority(esc, f"rule {rid!r} escalate_to"),
        )
    except KeyError as exc:
        raise PresetError(f"rule {rid!r} is missing {exc.args[0]!r}") from None


def _bool(value: Any, rid: str) -> bool:
    if not isinstance(value, bool):
        raise PresetError(f"rule {rid!r}: latching must be true or false, got {value!r}")
    return value


def validate_rule(r: Rule) -> None:
    """Check one rule on its own; raises PresetError."""
    where = f"rule {r.id!r} ({PARAM_NAMES.get(r.param, r.param)})"
    if not r.id:
        raise PresetError("a rule needs an id")
    if r.param not in LIMIT_RANGES:
        raise PresetError(f"{where}: no alarms on this parameter")
    for name in ("threshold", "hysteresis"):
        if not math.isfinite(getattr(r, name)):
            raise PresetError(f"{where}: {name} must be a number")
    if r.kind is LimitKind.RISE:
        if r.param not in READING_PARAMS:
            raise PresetError(f"{where}: a rise over baseline applies to blood pressure only")
        if not 0 < r.threshold <= MAX_RISE:
            raise PresetError(f"{where}: rise must be between 0 and {MAX_RISE:g} mmHg, got {r.threshold:g}")
    else:
        lo, hi = LIMIT_RANGES[r.param]
        if not lo <= r.threshold <= hi:
            raise PresetError(
                f"{where}: limit {r.threshold:g} {UNITS[r.param]} is outside {lo:g}–{hi:g} {UNITS[r.param]}"
            )
    if r.param in READING_PARAMS:
        if r.delay_s is not None:
            raise PresetError(f"{where}: a cuff parameter acts on each reading; its delay must be empty")
    elif r.delay_s is None or not math.isfinite(r.delay_s) or r.delay_s < 0:
        raise PresetError(f"{where}: delay must be a number of seconds ≥ 0, got {r.delay_s!r}")
    elif r.delay_s > MAX_DELAY_S:
        raise PresetError(f"{where}: delay {r.delay_s:g} s is longer than {MAX_DELAY_S:g} s")
    if r.hysteresis < 0:
        raise PresetError(f"{where}: hysteresis must be ≥ 0, got {r.hysteresis:g}")
    if r.kind is not LimitKind.RISE and r.hysteresis >= 20:
        raise PresetError(f"{where}: hysteresis {r.hysteresis:g} is implausibly wide")
    if r.escalate_to is not None and r.escalate_to <= r.priority:
        raise PresetError(f"{where}: escalation must go to a higher priority than {r.priority.label}")


def validate(preset: Preset) -> None:
    """Check a whole preset: each rule, unique ids, low limits below high limits, technical priorities."""
    seen: set[str] = set()
    for r in preset.rules:
        validate_rule(r)
        if r.id in seen:
            raise PresetError(f"rule id {r.id!r} appears twice")
        seen.add(r.id)
    by_param: dict[Param, list[Rule]] = {}
    for r in preset.rules:
        by_param.setdefault(r.param, []).append(r)
    for param, rules in by_param.items():
        name, unit = PARAM_NAMES[param], UNITS[param]
        lows = [r for r in rules if r.kind is LimitKind.BELOW]
        highs = [r for r in rules if r.kind is LimitKind.ABOVE]
        for lo in lows:
            for hi in highs:
                if lo.threshold >= hi.threshold:
                    raise PresetError(
                        f"{name}: low limit {lo.threshold:g} {unit} ({lo.id}) must be below "
                        f"high limit {hi.threshold:g} {unit} ({hi.id})"
                    )
        # a more urgent limit must lie beyond the less urgent one, never inside it
        for group, outer_is_lower in ((lows, True), (highs, False)):
            for a in group:
                for b in group:
                    if a.priority > b.priority and (
                        a.threshold > b.threshold if outer_is_lower else a.threshold < b.threshold
                    ):
                        raise PresetError(
                            f"{name}: the {a.priority.label}-priority limit {a.threshold:g} {unit} "
                            f"({a.id}) lies inside the {b.priority.label}-priority limit "
                            f"{b.threshold:g} {unit} ({b.id})"
                        )
    missing = set(TechnicalCondition) - set(preset.technical)
    if missing:
        raise PresetError(f"technical priorities missing for: {', '.join(sorted(m.value for m in missing))}")
    if preset.technical[TechnicalCondition.AUDIO_FAILURE] is not Priority.HIGH:
        raise PresetError("an alarm audio failure must stay high priority (it must never go unnoticed)")
    if not 5 <= preset.battery_low_pct <= 50:
        raise PresetError(f"battery low level must be 5–50 %, got {preset.battery_low_pct:g}")


#: Technical alarm priorities. no data / disconnected (medium) and battery low (low) are the
#: reference's KAP rows; the others are this console's choices (documented in the README).
KAP_TECHNICAL: dict[TechnicalCondition, Priority] = {
    TechnicalCondition.DISCONNECTED: Priority.MEDIUM,
    TechnicalCondition.NO_DATA: Priority.MEDIUM,
    TechnicalCondition.LOW_BATTERY: Priority.LOW,
    TechnicalCondition.SENSOR_OFF: Priority.MEDIUM,
    TechnicalCondition.SEARCHING: Priority.LOW,
    TechnicalCondition.BP_ERROR: Priority.MEDIUM,
    TechnicalCondition.BP_QUALITY: Priority.LOW,
    TechnicalCondition.IMPLAUSIBLE: Priority.LOW,
    TechnicalCondition.AUDIO_FAILURE: Priority.HIGH,
    TechnicalCondition.CLOCK: Priority.LOW,
    # a reminder, not a danger: BP at ~40 min after the dose, then at intervals (kap-session.md
    # "Monitoring"); low priority until the reading is taken (issue 5)
    TechnicalCondition.BP_DUE: Priority.LOW,
}

_B, _A, _R = LimitKind.BELOW, LimitKind.ABOVE, LimitKind.RISE
_H, _M = Priority.HIGH, Priority.MEDIUM


def _rate_rules(param: Param, prefix: str) -> tuple[Rule, ...]:
    # "pulse < 50 or > 120 /min: medium, 10 s; < 40 or > 140 /min: high, 5 s" (alarms.md, KAP defaults)
    return (
        Rule(f"{prefix}.low.medium", param, _B, 50, _M, 10.0, hysteresis=2),
        Rule(f"{prefix}.high.medium", param, _A, 120, _M, 10.0, hysteresis=2),
        Rule(f"{prefix}.low.high", param, _B, 40, _H, 5.0, hysteresis=2, latching=True),
        Rule(f"{prefix}.high.high", param, _A, 140, _H, 5.0, hysteresis=2, latching=True),
    )


def kap_defaults() -> Preset:
    """The KAP-oriented defaults of ../shared/reference/alarms.md, every row with its delay.

    Hysteresis (SpO2 1 %, rates 2 /min, cuff 0) and latching (high priority latches) are this
    console's choices. The pulse row also applies to a heart-rate strap's rate.
    """
    rules = (
        # "SpO2 < 90 %: medium, 10 s"; "SpO2 < 85 %: high, 0 s" (the rapid-desaturation limit)
        Rule("spo2.low.medium", Param.SPO2, _B, 90, _M, 10.0, hysteresis=1),
        Rule("spo2.low.high", Param.SPO2, _B, 85, _H, 0.0, hysteresis=1, latching=True),
        *_rate_rules(Param.PULSE_RATE, "pulse"),
        *_rate_rules(Param.HEART_RATE, "hr"),
        # "systolic > 160 or diastolic > 100 mmHg: medium, on reading"
        Rule("sys.high.medium", Param.SYSTOLIC, _A, 160, _M, None),
        Rule("dia.high.medium", Param.DIASTOLIC, _A, 100, _M, None),
        # "systolic > 180 or diastolic > 110 mmHg: high, on reading"
        Rule("sys.high.high", Param.SYSTOLIC, _A, 180, _H, None, latching=True),
        Rule("dia.high.high", Param.DIASTOLIC, _A, 110, _H, None, latching=True),
        # "systolic < 90 mmHg: medium, on reading"
        Rule("sys.low.medium", Param.SYSTOLIC, _B, 90, _M, None),
        # "systolic +40 or diastolic +25 over the pre-dose baseline: medium, on reading"
        Rule("sys.rise.medium", Param.SYSTOLIC, _R, 40, _M, None),
        Rule("dia.rise.medium", Param.DIASTOLIC, _R, 25, _M, None),
    )
    preset = Preset(name="KAP defaults", rules=rules, technical=dict(KAP_TECHNICAL))
    validate(preset)
    return preset
