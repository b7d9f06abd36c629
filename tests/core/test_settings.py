"""Tests of the workstation settings file (remembered devices per role)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kapmonitor.alarms import kap_defaults
from kapmonitor.settings import RememberedDevice, Settings


def test_round_trip_keeps_unknown_keys_and_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"devices": {}, "future_option": 3}))
    settings = Settings.load(path)
    assert settings.remember("oximeter", "C1:00:00:00:00:02", "KAP-Emu PLX")
    assert not settings.remember("oximeter", "C1:00:00:00:00:02", "KAP-Emu PLX")
    settings.save(path)
    again = Settings.load(path)
    assert again.devices == {"oximeter": RememberedDevice("C1:00:00:00:00:02", "KAP-Emu PLX")}
    assert again.extra == {"future_option": 3}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again.forget("oximeter")
    assert again.devices == {}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"devices": {"x": 5}}'])
def test_a_damaged_file_gives_defaults(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content)
    settings = Settings.load(path)
    assert settings.devices == {}


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert Settings.load(tmp_path / "none.json").devices == {}


def test_alarm_defaults_of_the_workstation_round_trip_and_fall_back_to_kap(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    settings = Settings.load(path)
    assert settings.alarm_preset() == (kap_defaults(), "")
    assert settings.audio_pause_s == 120.0
    edited = kap_defaults().with_rule("spo2.low.medium", threshold=88.0)
    settings.set_alarm_preset(edited)
    settings.audio_pause_s = 180.0
    settings.save(path)
    again = Settings.load(path)
    assert again.alarm_preset() == (edited, "")
    assert again.audio_pause_s == 180.0
    with pytest.raises(ValueError, match="60-180"):
        again.audio_pause_s = 30.0
    again.set_alarm_preset(None)
    assert again.alarm_preset() == (kap_defaults(), "")


def test_a_damaged_saved_preset_is_never_half_applied(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    saved = kap_defaults().to_dict()
    saved["rules"][0]["threshold"] = "ninety"
    path.write_text(json.dumps({"alarm_preset": saved, "audio_pause_s": 999}))
    preset, problem = Settings.load(path).alarm_preset()
    assert preset == kap_defaults()
    assert "KAP defaults in force" in problem
    assert Settings.load(path).audio_pause_s == 120.0
