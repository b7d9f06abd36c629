"""Workstation settings kept between sessions (devices per role, alarm defaults), as a small JSON file."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from kapmonitor.alarms import Preset, PresetError, kap_defaults
from kapmonitor.alarms.engine import PAUSE_MAX_S, PAUSE_MIN_S

log = logging.getLogger(__name__)

#: Keys of `Settings.extra` this module owns.
ALARM_PRESET_KEY = "alarm_preset"
AUDIO_PAUSE_KEY = "audio_pause_s"
#: The audio pause when the workstation has not chosen one (reference/alarms.md "Audio pause": 2 min).
DEFAULT_AUDIO_PAUSE_S = 120.0


def default_settings_path() -> Path:
    """`settings.json` in the platform's per-user configuration folder."""
    return platformdirs.user_config_path("kapmonitor") / "settings.json"


@dataclass
class RememberedDevice:
    """The device last used in a role."""

    address: str
    name: str


@dataclass
class Settings:
    """What the workstation remembers. Unknown keys in the file are kept when it is saved again."""

    devices: dict[str, RememberedDevice] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Read the file; a missing file gives defaults, an unreadable one is logged and ignored."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("settings file %s unreadable (%s); using defaults", path, exc)
            return cls()
        if not isinstance(raw, dict):
            log.warning("settings file %s is not a JSON object; using defaults", path)
            return cls()
        devices: dict[str, RememberedDevice] = {}
        for role, value in dict(raw.get("devices", {})).items():
            if isinstance(value, dict) and isinstance(value.get("address"), str):
                devices[str(role)] = RememberedDevice(value["address"], str(value.get("name", "")))
        extra = {k: v for k, v in raw.items() if k != "devices"}
        return cls(devices=devices, extra=extra)

    def save(self, path: Path) -> None:
        """Write atomically (a temporary file renamed over the old one), owner-only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = dict(self.extra)
        data["devices"] = {role: {"address": d.address, "name": d.name} for role, d in self.devices.items()}
        fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remember(self, role: str, address: str, name: str) -> bool:
        """Note the device of a role; returns whether anything changed."""
        new = RememberedDevice(address, name)
        if self.devices.get(role) == new:
            return False
        self.devices[role] = new
        return True

    def forget(self, role: str) -> None:
        self.devices.pop(role, None)

    # -- alarm defaults of the workstation (every new session starts from them) ----------------
    def alarm_preset(self) -> tuple[Preset, str]:
        """The workstation's default alarm limits, and a note for the console ("" when there is none).

        A saved preset that no longer validates is never half-applied: the KAP defaults of the
        reference are used and the reason is returned, for the console to show.
        """
        raw = self.extra.get(ALARM_PRESET_KEY)
        if raw is None:
            return kap_defaults(), ""
        added: list[str] = []
        if isinstance(raw, dict) and isinstance(raw.get("technical"), dict):
            # A technical alarm added by a newer kapmonitor is not a limit the clinic chose: it comes
            # in with its KAP priority, and the clinic's own limits are kept (and it is said).
            technical = dict(raw["technical"])
            for condition, priority in kap_defaults().technical.items():
                if condition.value not in technical:
                    technical[condition.value] = priority.label
                    added.append(condition.value)
            raw = {**raw, "technical": technical}
        try:
            preset = Preset.from_dict(raw)  # type: ignore[arg-type]
        except (PresetError, TypeError, ValueError) as exc:
            log.warning("saved alarm preset unusable (%s); using the KAP defaults", exc)
            return kap_defaults(), f"saved alarm limits unusable ({exc}); KAP defaults in force"
        if added:
            log.info("saved alarm limits: new technical alarms at their KAP priority: %s", ", ".join(added))
            return preset, f"new technical alarms at their KAP priority: {', '.join(added)}"
        return preset, ""

    def set_alarm_preset(self, preset: Preset | None) -> None:
        """Keep `preset` as the workstation default (None: back to the KAP defaults)."""
        if preset is None:
            self.extra.pop(ALARM_PRESET_KEY, None)
        else:
            self.extra[ALARM_PRESET_KEY] = preset.to_dict()

    @property
    def audio_pause_s(self) -> float:
        """How long an audio pause lasts on this workstation (60-180 s); out-of-range values are ignored."""
        raw = self.extra.get(AUDIO_PAUSE_KEY)
        if isinstance(raw, int | float) and PAUSE_MIN_S <= float(raw) <= PAUSE_MAX_S:
            return float(raw)
        return DEFAULT_AUDIO_PAUSE_S

    @audio_pause_s.setter
    def audio_pause_s(self, seconds: float) -> None:
        if not PAUSE_MIN_S <= seconds <= PAUSE_MAX_S:
            raise ValueError(f"audio pause must be {PAUSE_MIN_S:g}-{PAUSE_MAX_S:g} s, got {seconds:g}")
        self.extra[AUDIO_PAUSE_KEY] = float(seconds)
