"""Scan for supported devices only, with name, kind and signal strength, for the device picker."""

from __future__ import annotations

from dataclasses import dataclass

from bleak import BleakScanner

from devices._ble.link import ScannerBackend
from devices.registry import identify


@dataclass(frozen=True)
class FoundDevice:
    """A supported device seen on the air."""

    address: str
    name: str
    family: str
    role: str
    label: str
    rssi: int


async def scan_supported(timeout_s: float = 5.0, backend: ScannerBackend | None = None) -> list[FoundDevice]:
    """Scan for `timeout_s`; return supported devices (strongest signal first), others left out."""
    if backend is None:
        seen = await BleakScanner.discover(timeout=timeout_s, return_adv=True)
    else:
        seen = await BleakScanner.discover(timeout=timeout_s, return_adv=True, backend=backend)
    found: list[FoundDevice] = []
    for device, adv in seen.values():
        name = adv.local_name or device.name
        entry = identify(name, adv.service_uuids)
        if entry is None:
            continue
        found.append(
            FoundDevice(device.address, name or entry.label, entry.family, entry.role, entry.label, adv.rssi)
        )
    return sorted(found, key=lambda f: (-f.rssi, f.name))
