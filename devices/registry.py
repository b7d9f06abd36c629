"""Which devices kapmonitor supports: advertised service UUIDs or names → driver, grouped by role."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tzlocal

from devices.berrymed.driver import berrymed_spec
from devices.bp.driver import bp_spec
from devices.driver import DriverSpec
from devices.hr.driver import hr_spec
from devices.plx.driver import plx_spec
from devices.viatom.driver import viatom_spec

#: The roles a device can fill at the bedside; a session connects one device per role.
OXIMETER = "oximeter"
BP_CUFF = "bp-cuff"
HR_STRAP = "hr-strap"
ROLES = (OXIMETER, BP_CUFF, HR_STRAP)


@dataclass(frozen=True)
class Supported:
    """One supported device family: what it is, which role it fills, how to drive it."""

    family: str
    role: str
    label: str
    make_spec: Callable[[], DriverSpec]


#: Adding a device is a parser, a driver spec, one row here, captured bytes and tests (design.md).
REGISTRY: list[Supported] = [
    Supported("plx", OXIMETER, "Pulse Oximeter profile 0x1822", plx_spec),
    # a cuff's clock shows the workstation's local time (docs/devices/bp.md)
    Supported("bp-sig", BP_CUFF, "Blood Pressure profile 0x1810", lambda: bp_spec(tzlocal.get_localzone())),
    Supported("hr-sig", HR_STRAP, "Heart Rate profile 0x180D", hr_spec),
    # proprietary fingertip oximeters: most of what clinics buy (gatt.md). The Nordic UART service
    # is used by other gadgets too, so the Viatom spec also needs one of its names.
    Supported("viatom-pc60", OXIMETER, "Viatom/Lepu PC-60FW/NW", viatom_spec),
    Supported("berrymed-bci", OXIMETER, "BerryMed BM1000 (BCI)", berrymed_spec),
]


def register(entry: Supported) -> None:
    """Add a family (used by profile modules that load later, and by tests)."""
    if any(e.family == entry.family for e in REGISTRY):
        raise ValueError(f"device family {entry.family!r} is already registered")
    REGISTRY.append(entry)


def specs_for_role(role: str) -> list[DriverSpec]:
    """Fresh driver specs (fresh parser state) for every family that can fill `role`."""
    return [e.make_spec() for e in REGISTRY if e.role == role]


def roles_available() -> list[str]:
    """The roles at least one supported family can fill, in bedside order."""
    return [r for r in ROLES if any(e.role == r for e in REGISTRY)]


def identify(name: str | None, service_uuids: Sequence[str]) -> Supported | None:
    """The supported family an advertisement belongs to, or None (unsupported: not shown)."""
    for entry in REGISTRY:
        if entry.make_spec().matches(name, service_uuids):
            return entry
    return None
