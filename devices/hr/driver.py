"""Driver glue for the standard Heart Rate profile (0x180D): which characteristic, which parser."""

from __future__ import annotations

from collections.abc import Sequence

from devices.driver import DriverSpec, Subscription, uuid16
from devices.hr.parser import parse_heart_rate, to_numerics
from kapmonitor.measurements import Measurement

#: gatt.md, "Heart Rate 0x180D, Battery 0x180F, Device Information 0x180A"
HR_SERVICE = uuid16(0x180D)
HR_MEASUREMENT = uuid16(0x2A37)
BODY_SENSOR_LOCATION = uuid16(0x2A38)


def hr_spec() -> DriverSpec:
    """The driver spec of a standard heart-rate strap: notifications of 0x2A37."""
    return DriverSpec(
        kind="heart-rate",
        service_uuids=(HR_SERVICE,),
        subscriptions=(Subscription(HR_MEASUREMENT, decode_heart_rate, "heart rate 0x2A37"),),
    )


def decode_heart_rate(data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
    """The 0x2A37 decoder: one heart-rate Numeric per notification (ParseError on malformed bytes)."""
    return to_numerics(parse_heart_rate(data), device=device, mono=mono, wall=wall)
