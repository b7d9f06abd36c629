"""Tests of the alarm presets: the KAP default table, JSON round trip, and validation errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kapmonitor.alarms import LimitKind, Preset, PresetError, Priority, Rule, TechnicalCondition, kap_defaults
from kapmonitor.alarms.presets import validate
from kapmonitor.measurements import Param
from kapmonitor.settings import ALARM_PRESET_KEY, Settings

B, A, R = LimitKind.BELOW, LimitKind.ABOVE, LimitKind.RISE
H, M, L = Priority.HIGH, Priority.MEDIUM, Priority.LOW

# ../shared/reference/alarms.md "KAP-oriented defaults", row by row (the pulse row also for a strap's HR)
EXPECTED = {
    "spo2.low.medium": (Param.SPO2, B, 90, M, 10.0),
    "spo2.low.high": (Param.SPO2, B, 85, H, 0.0),
    "pulse.low.medium": (Param.PULSE_RATE, B, 50, M, 10.0),
    "pulse.high.medium": (Param.PULSE_RATE, A, 120, M, 10.0),
    "pulse.low.high": (Param.PULSE_RATE, B, 40, H, 5.0),
    "pulse.high.high": (Param.PULSE_RATE, A, 140, H, 5.0),
    "hr.low.medium": (Param.HEART_RATE, B, 50, M, 10.0),
    "hr.high.medium": (Param.HEART_RATE, A, 120, M, 10.0),
    "hr.low.high": (Param.HEART_RATE, B, 40, H, 5.0),
    "hr.high.high": (Param.HEART_RATE, A, 140, H, 5.0),
    "sys.high.medium": (Param.SYSTOLIC, A, 160, M, None),
    "dia.high.medium": (Param.DIASTOLIC, A, 100, M, None),
    "sys.high.high": (Param.SYSTOLIC, A, 180, H, None),
    "dia.high.high": (Param.DIASTOLIC, A, 110, H, None),
    "sys.low.medium": (Param.SYSTOLIC, B, 90, M, None),
    "sys.rise.medium": (Param.SYSTOLIC, R, 40, M, None),
    "dia.rise.medium": (Param.DIASTOLIC, R, 25, M, None),
}


def test_kap_defaults_are_the_reference_table_exactly() -> None:
    preset = kap_defaults()
    got = {r.id: (r.param, r.kind, r.threshold, r.priority, r.delay_s) for r in preset.rules}
    assert got == EXPECTED


def test_kap_technical_rows() -> None:
    t = kap_defaults().technical
    assert t[TechnicalCondition.NO_DATA] is M
    assert t[TechnicalCondition.DISCONNECTED] is M
    assert t[TechnicalCondition.LOW_BATTERY] is L
    assert t[TechnicalCondition.AUDIO_FAILURE] is H
    assert t[TechnicalCondition.BP_DUE] is L  # issue 5: a due BP reading is a low-priority alert
    assert set(t) == set(TechnicalCondition)


def test_a_preset_saved_before_bp_due_keeps_its_limits_and_gets_the_new_alarm(tmp_path: Path) -> None:
    edited = kap_defaults().with_rule("spo2.low.medium", threshold=92)
    old = edited.to_dict()
    del old["technical"][TechnicalCondition.BP_DUE.value]  # what a settings file from before holds
    with pytest.raises(PresetError, match="technical priorities missing for: bp_due"):
        Preset.from_dict(old)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({ALARM_PRESET_KEY: old}), encoding="utf-8")
    preset, reason = Settings.load(path).alarm_preset()
    assert preset == edited  # the clinic's limits kept, the new technical alarm at its KAP priority
    assert preset.technical[TechnicalCondition.BP_DUE] is L
    assert reason == "new technical alarms at their KAP priority: bp_due"


def test_default_hysteresis_and_latching() -> None:
    p = kap_defaults()
    assert p.rule("spo2.low.medium").hysteresis == 1
    assert p.rule("pulse.high.medium").hysteresis == 2
    assert p.rule("sys.high.medium").hysteresis == 0
    latching = {r.id for r in p.rules if r.latching}
    assert latching == {r.id for r in p.rules if r.priority is H}


def test_rule_texts_and_markers() -> None:
    p = kap_defaults()
    assert p.rule("spo2.low.medium").describe() == "SpO2 < 90 %"
    assert p.rule("pulse.high.high").describe() == "Pulse > 140 /min"
    assert p.rule("sys.rise.medium").describe() == "Systolic ≥ baseline +40 mmHg"
    assert p.rule("sys.rise.medium").delay_text() == "on reading"
    assert p.rule("spo2.low.medium").delay_text() == "10 s"
    assert (H.marker, M.marker, L.marker) == ("***", "**", "*")
    assert H > M > L


def test_json_round_trip() -> None:
    p = kap_defaults().with_rule("spo2.low.medium", threshold=88.0, escalate_to=Priority.HIGH)
    text = json.dumps(p.to_dict())
    back = Preset.from_dict(json.loads(text))
    assert back == p
    assert back.rule("spo2.low.medium").threshold == 88.0
    assert back.rule("spo2.low.medium").escalate_to is Priority.HIGH


def test_with_rule_returns_a_new_validated_preset() -> None:
    p = kap_defaults()
    q = p.with_rule("pulse.high.medium", threshold=125.0, delay_s=15.0)
    assert q.rule("pulse.high.medium").threshold == 125.0
    assert p.rule("pulse.high.medium").threshold == 120  # the original is unchanged
    with pytest.raises(PresetError, match="cannot change id"):
        p.with_rule("pulse.high.medium", id="x")
    with pytest.raises(PresetError, match="no alarm rule"):
        p.with_rule("nope", threshold=1.0)


@pytest.mark.parametrize(
    ("rule_id", "changes", "message"),
    [
        ("pulse.low.medium", {"threshold": 130.0}, r"low limit 130 /min .* must be below high limit 120"),
        ("spo2.low.medium", {"delay_s": -1.0}, r"delay must be a number of seconds ≥ 0"),
        ("spo2.low.medium", {"delay_s": None}, r"delay must be a number of seconds ≥ 0"),
        ("spo2.low.medium", {"delay_s": 600.0}, r"longer than 120 s"),
        ("sys.high.medium", {"delay_s": 5.0}, r"acts on each reading"),
        ("spo2.low.high", {"threshold": 92.0}, r"high-priority limit 92 % .* lies inside the medium"),
        ("pulse.high.high", {"threshold": 110.0}, r"lies inside the medium-priority limit 120"),
        ("spo2.low.medium", {"threshold": 120.0}, r"outside 50–100 %"),
        ("spo2.low.medium", {"hysteresis": -1.0}, r"hysteresis must be ≥ 0"),
        ("spo2.low.medium", {"threshold": float("nan")}, r"threshold must be a number"),
        ("spo2.low.high", {"escalate_to": Priority.MEDIUM}, r"escalation must go to a higher priority"),
        ("sys.rise.medium", {"threshold": 0.0}, r"rise must be between 0 and"),
    ],
)
def test_invalid_rule_changes_are_refused_with_clear_errors(
    rule_id: str, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(PresetError, match=message):
        kap_defaults().with_rule(rule_id, **changes)


def test_whole_preset_checks() -> None:
    p = kap_defaults()
    dup = replace(p, rules=(*p.rules, p.rules[0]))
    with pytest.raises(PresetError, match="appears twice"):
        validate(dup)
    rise_spo2 = replace(p, rules=(*p.rules, Rule("x", Param.SPO2, R, 5, M, 0.0)))
    with pytest.raises(PresetError, match="blood pressure only"):
        validate(rise_spo2)
    no_tech = replace(p, technical={})
    with pytest.raises(PresetError, match="technical priorities missing"):
        validate(no_tech)
    quiet_audio = replace(p, technical={**p.technical, TechnicalCondition.AUDIO_FAILURE: Priority.LOW})
    with pytest.raises(PresetError, match="audio failure must stay high"):
        validate(quiet_audio)
    with pytest.raises(PresetError, match="battery low level"):
        validate(replace(p, battery_low_pct=90.0))
    on_battery = replace(p, rules=(*p.rules, Rule("b", Param.BATTERY, B, 10, L, 0.0)))
    with pytest.raises(PresetError, match="no alarms on this parameter"):
        validate(on_battery)


def _saved() -> dict[str, Any]:
    return json.loads(json.dumps(kap_defaults().to_dict()))  # type: ignore[no-any-return]


def test_from_dict_errors() -> None:
    d = _saved()
    d["format"] = 99
    with pytest.raises(PresetError, match="unknown preset format"):
        Preset.from_dict(d)
    d = _saved()
    d["extra"] = 1
    with pytest.raises(PresetError, match="unknown preset keys: extra"):
        Preset.from_dict(d)
    d = _saved()
    del d["rules"]
    with pytest.raises(PresetError, match="missing 'rules'"):
        Preset.from_dict(d)
    d = _saved()
    d["rules"][0]["priority"] = "urgent"
    with pytest.raises(PresetError, match="priority must be high, medium or low, got 'urgent'"):
        Preset.from_dict(d)
    d = _saved()
    d["rules"][0]["param"] = "temperature"
    with pytest.raises(PresetError, match=r"rule 'spo2\.low\.medium'"):
        Preset.from_dict(d)
    d = _saved()
    d["rules"][0]["colour"] = "red"
    with pytest.raises(PresetError, match="unknown keys colour"):
        Preset.from_dict(d)
    d = _saved()
    d["rules"][0]["latching"] = "yes"
    with pytest.raises(PresetError, match="latching must be true or false"):
        Preset.from_dict(d)
    d = _saved()
    d["rules"][0]["threshold"] = 95.0
    d["rules"][0]["delay_s"] = -3
    with pytest.raises(PresetError, match="delay must be"):
        Preset.from_dict(d)
    d = _saved()
    del d["rules"][0]["threshold"]
    with pytest.raises(PresetError, match="missing 'threshold'"):
        Preset.from_dict(d)
    d = _saved()
    d["technical"]["no_data"] = "loud"
    with pytest.raises(PresetError, match="technical 'no_data'"):
        Preset.from_dict(d)
