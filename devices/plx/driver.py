"""Driver glue for the standard Pulse Oximeter profile (0x1822): characteristics, parsers, stored records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

import tzlocal

from devices.driver import Decoder, DriverSpec, Subscription, uuid16
from devices.plx.parser import (
    ParseError,
    PlxSpotCheck,
    parse_plx_continuous,
    parse_plx_spot_check,
    spot_check_to_numerics,
    to_numerics,
)
from kapmonitor.measurements import Measurement

#: gatt.md, "Pulse Oximeter Service 0x1822"
PLX_SERVICE = uuid16(0x1822)
PLX_SPOT_CHECK = uuid16(0x2A5E)
PLX_CONTINUOUS = uuid16(0x2A5F)
PLX_FEATURES = uuid16(0x2A60)
#: Record Access Control Point: write + indicate, stored spot-checks (gatt.md "RACP")
PLX_RACP = uuid16(0x2A52)


def plx_spec(tz: tzinfo | None = None) -> DriverSpec:
    """The driver spec of a standard PLX oximeter whose clock shows local time in `tz`.

    `tz` (the workstation's zone when None, as for the BP cuff) reads the Date Time of stored
    spot-checks; live values are placed by their arrival.
    """
    zone = tz if tz is not None else tzlocal.get_localzone()
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
                PLX_SPOT_CHECK,
                spot_check_decoder(zone),
                "PLX spot-check 0x2A5E",
                optional=True,
                streams=False,
            ),
        ),
        # after subscribing, ask for the spot-checks stored while disconnected (`01 01`, gatt.md)
        record_access=PLX_RACP,
    )


def _decode_continuous(data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
    return to_numerics(parse_plx_continuous(data), device=device, mono=mono, wall=wall)


def record_wall(m: PlxSpotCheck, tz: tzinfo) -> float | None:
    """UTC POSIX seconds of a spot-check's own Date Time read as local time in `tz`.

    None when there is no usable time: no timestamp, an unknown or impossible one (the parser gives
    None), or a device clock that was never set (flag bit 4: the time is not wall time).
    """
    if m.timestamp is None or m.device_clock_not_set:
        return None
    try:
        return datetime.timestamp(m.timestamp.replace(tzinfo=tz))
    except (ValueError, OverflowError):  # pragma: no cover - defensive: a tzinfo may refuse a far date
        return None


def spot_check_decoder(tz: tzinfo) -> Decoder:
    """The 0x2A5E decoder: live spot-checks at their arrival, stored ones at their own time.

    A stored record (Measurement Status bit 9, as RACP uploads carry it) is placed by its Date
    Time: `wall` is that time, `mono` the arrival's monotonic time moved back by the record's age,
    so the record lands where it was taken (e.g. inside a gap while disconnected). Its Numerics
    carry Quality.FROM_STORAGE: recorded once, never live, never alarmed on (kapmonitor.session).
    A stored record without a usable time cannot be placed on the timeline and must not pass for a
    live one: it raises UnplacedRecordError, so the link counts it as a malformed packet and the
    session logs and records it with its bytes (no values).
    """

    def decode(data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
        m = parse_plx_spot_check(data)
        if m.from_storage:
            placed = record_wall(m, tz)
            if placed is None:
                raise UnplacedRecordError(f"stored spot-check {_why_unplaced(m)}: not placed, not live")
            mono, wall = mono - (wall - placed), placed
        return spot_check_to_numerics(m, device=device, mono=mono, wall=wall)

    return decode


class UnplacedRecordError(ParseError):
    """A stored record (Measurement Status bit 9) without a usable time: refused like a malformed packet."""


def _why_unplaced(m: PlxSpotCheck) -> str:
    if not m.has_timestamp:
        return "without a timestamp"
    if m.device_clock_not_set:
        return "from a device whose clock was never set"
    return "with an unknown or impossible timestamp"
