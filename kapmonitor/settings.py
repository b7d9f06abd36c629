"""Workstation settings kept between sessions (remembered devices per role), as a small JSON file."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

log = logging.getLogger(__name__)


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
