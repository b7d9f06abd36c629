"""Tests of the workstation settings file (remembered devices per role)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
