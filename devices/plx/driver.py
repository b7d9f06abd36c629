"""Driver glue for the standard Pulse Oximeter profile (0x1822): which characteristics, which parser."""

from __future__ import annotations

from collections.abc import Sequence

from devices.driver import DriverSpec, Subscription, uuid16
from devices.plx.parser import parse_plx_continuous, parse_plx_spot_check, spot_check_to_numerics, to_numerics
from kapmonitor.measurements import Measurement

#: gatt.md, "Pulse Oximeter Service 0x1822"
PLX_SERVICE = uuid16(0x1822)
PLX_SPOT_CHECK = uuid16(0x2A5E)
PLX_CONTINUOUS = uuid16(0x2A5F)
PLX_FEATURES = uuid16(0x2A60)


def plx_spec() -> DriverSpec:
    """The driver spec of a standard PLX oximeter."""
    return DriverSpec(
        kind="pulse-oximeter",
        service_uuids=(PLX_SERVICE,),
        # the profile requires one of the two, not both: a spot-check-only oximeter is a PLX
        # oximeter too (the link refuses a device that offers neither)
        subscriptions=(
            Subscription(PLX_CONTINUOUS, _decode_continuous, "PLX continuous 0x2A5F", optional=True),
            # spot-checks (indicated) when the oximeter offers them; stored ones come flagged
            # FROM_STORAGE (status bit 9) and carry their own timestamp (gatt.md)
            Subscription(
                PLX_SPOT_CHECK, _decode_spot_check, "PLX spot-check 0x2A5E", optional=True, streams=False
            ),
        ),
    )


def _decode_continuous(data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
    return to_numerics(parse_plx_continuous(data), device=device, mono=mono, wall=wall)


def _decode_spot_check(data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
    return spot_check_to_numerics(parse_plx_spot_check(data), device=device, mono=mono, wall=wall)
