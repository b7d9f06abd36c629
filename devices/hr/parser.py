"""Pure parser and encoder of Heart Rate Measurement (0x2A37) bytes, and its conversion to Numerics."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum, IntFlag

from kapmonitor.measurements import Numeric, Param, Quality

# Wire format: ../../docs/devices/hr.md, after ../../../shared/reference/gatt.md
# ("Heart Rate 0x180D, Battery 0x180F, Device Information 0x180A").

type ByteData = bytes | bytearray | memoryview

#: RR intervals are counted in 1/1024 s (gatt.md).
RR_UNITS_PER_SECOND = 1024
#: Energy Expended saturates here: a strap keeps sending 0xFFFF until it is reset (u16 kJ).
MAX_ENERGY_KJ = 0xFFFF


class ParseError(ValueError):
    """The bytes are not a valid packet; the message says why (the caller logs the bytes)."""


class HeartRateFlags(IntFlag):
    """Flags byte of 0x2A37 (bits 5–7 reserved). Bits 1–2 together are the sensor contact status."""

    HR_UINT16 = 1 << 0  # the value is u16, else u8
    SENSOR_CONTACT_DETECTED = 1 << 1
    SENSOR_CONTACT_SUPPORTED = 1 << 2
    ENERGY_EXPENDED = 1 << 3  # u16 kJ
    RR_INTERVALS = 1 << 4  # u16 each, 1/1024 s, as many as fit, oldest first


KNOWN_FLAGS = 0x1F
RESERVED_FLAGS = 0xE0
CONTACT_BITS = HeartRateFlags.SENSOR_CONTACT_DETECTED | HeartRateFlags.SENSOR_CONTACT_SUPPORTED


class SensorContact(Enum):
    """What flag bits 1–2 say about skin contact (gatt.md: 0/1 not supported, 2 no contact, 3 contact)."""

    NOT_SUPPORTED = "not supported"
    NO_CONTACT = "no contact"
    CONTACT = "contact"

    @classmethod
    def from_flags(cls, flags: int) -> SensorContact:
        """The contact status of a flags byte."""
        bits = flags >> 1 & 0b11
        if bits == 0b11:
            return cls.CONTACT
        if bits == 0b10:
            return cls.NO_CONTACT
        return cls.NOT_SUPPORTED

    @property
    def flag_bits(self) -> int:
        """The canonical flag bits 1–2 for this status (NOT_SUPPORTED → both clear)."""
        return {
            SensorContact.NOT_SUPPORTED: 0,
            SensorContact.NO_CONTACT: int(HeartRateFlags.SENSOR_CONTACT_SUPPORTED),
            SensorContact.CONTACT: int(CONTACT_BITS),
        }[self]


class BodySensorLocation(IntEnum):
    """Body Sensor Location (0x2A38, read): where the strap is worn (codes: SIG GATT supplement)."""

    OTHER = 0
    CHEST = 1
    WRIST = 2
    FINGER = 3
    HAND = 4
    EAR_LOBE = 5
    FOOT = 6


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """One Heart Rate Measurement (0x2A37) as the strap sent it.

    `heart_rate` is the value on the wire (/min), also when the strap says it has no skin contact
    (to_numerics withholds it then). `energy_expended` (kJ) is None when flag bit 3 is clear.
    `rr_intervals` are in 1/1024 s, oldest first, exactly as sent; empty when flag bit 4 is clear.
    `flags` is the raw flags byte, reserved bits included.
    """

    heart_rate: int
    contact: SensorContact
    energy_expended: int | None
    rr_intervals: tuple[int, ...]
    flags: int

    @property
    def rr_seconds(self) -> tuple[float, ...]:
        """The RR intervals in seconds, oldest first."""
        return tuple(rr / RR_UNITS_PER_SECOND for rr in self.rr_intervals)

    @property
    def uint16(self) -> bool:
        """The value was sent as u16 (flag bit 0)."""
        return bool(self.flags & HeartRateFlags.HR_UINT16)

    @property
    def has_rr_intervals(self) -> bool:
        """The RR-interval field was present (flag bit 4)."""
        return bool(self.flags & HeartRateFlags.RR_INTERVALS)

    @property
    def reserved_flags(self) -> int:
        """Reserved flag bits 5–7 the strap set (ignored when parsing; worth logging once)."""
        return self.flags & RESERVED_FLAGS


def _fixed_length(flags: int) -> int:
    """Bytes before the RR intervals that these flags announce: flags, value, energy."""
    return (
        1
        + (2 if flags & HeartRateFlags.HR_UINT16 else 1)
        + (2 if flags & HeartRateFlags.ENERGY_EXPENDED else 0)
    )


def parse_heart_rate(data: ByteData) -> HeartRateMeasurement:
    """Parse a Heart Rate Measurement (0x2A37); raise ParseError (only) for malformed bytes.

    Length rule (docs/devices/hr.md, the same as docs/devices/plx.md): the packet must hold every
    field its flags announce, and flag bit 4 announces at least one RR interval. The RR intervals
    fill the rest of the packet, so with bit 4 set an odd byte at the end is a broken interval;
    without bit 4, any byte after the known fields is trailing. Either is refused unless a reserved
    flag bit (5–7) is set, in which case it belongs to a later revision's field and is ignored.
    """
    buf = bytes(data)
    if not buf:
        raise ParseError("heart rate 0x2A37: empty packet")
    flags = buf[0]
    reserved_set = bool(flags & RESERVED_FLAGS)
    fixed = _fixed_length(flags)
    has_rr = bool(flags & HeartRateFlags.RR_INTERVALS)
    needed = fixed + (2 if has_rr else 0)
    if len(buf) < needed:
        raise ParseError(f"heart rate 0x2A37: {len(buf)} bytes, but flags 0x{flags:02X} announce {needed}")
    rest = len(buf) - fixed
    if has_rr:
        extra = rest % 2
        if extra and not reserved_set:
            raise ParseError(
                f"heart rate 0x2A37: {rest} bytes of RR intervals after the {fixed} that flags "
                f"0x{flags:02X} announce, an odd count (a broken interval)"
            )
    else:
        extra = rest
        if extra and not reserved_set:
            raise ParseError(
                f"heart rate 0x2A37: {extra} trailing byte(s) after the {fixed} "
                f"that flags 0x{flags:02X} announce"
            )
    if flags & HeartRateFlags.HR_UINT16:
        (heart_rate,) = struct.unpack_from("<H", buf, 1)
    else:
        heart_rate = buf[1]
    energy: int | None = None
    if flags & HeartRateFlags.ENERGY_EXPENDED:
        (energy,) = struct.unpack_from("<H", buf, fixed - 2)
    rr: tuple[int, ...] = ()
    if has_rr:
        count = rest // 2
        rr = struct.unpack_from(f"<{count}H", buf, fixed)
    return HeartRateMeasurement(
        heart_rate=heart_rate,
        contact=SensorContact.from_flags(flags),
        energy_expended=energy,
        rr_intervals=tuple(rr),
        flags=flags,
    )


def heart_rate_quality(m: HeartRateMeasurement) -> Quality:
    """SENSOR_OFF when the strap reports "contact supported, no contact"; NONE otherwise."""
    return Quality.SENSOR_OFF if m.contact is SensorContact.NO_CONTACT else Quality.NONE


def to_numerics(m: HeartRateMeasurement, *, device: str, mono: float, wall: float) -> list[Numeric]:
    """Turn a measurement into one Numeric of Param.HEART_RATE.

    With "supported, no contact" (flag bits 1–2 = 2) the value is None and the Quality SENSOR_OFF:
    straps keep sending a stale or zero number without skin contact, and it must never reach a
    plot or an alarm as a number. Otherwise the value is the number sent, 0 included (see
    docs/devices/hr.md, decision 2). RR intervals and energy are parsed, not turned into Numerics.
    """
    quality = heart_rate_quality(m)
    value = None if quality & Quality.SENSOR_OFF else float(m.heart_rate)
    return [Numeric(Param.HEART_RATE, value, mono, wall, device, quality)]


# ------------------------------------------------------------------------------------------ encoder


def rr_units(seconds: float) -> int:
    """An RR interval in seconds as the nearest count of 1/1024 s (ValueError beyond u16)."""
    units = round(seconds * RR_UNITS_PER_SECOND)
    if not 0 <= units <= 0xFFFF:
        raise ValueError(f"RR interval {seconds} s does not fit u16 in 1/1024 s")
    return units


def _fits(name: str, value: int, bits: int) -> int:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} {value:#x} does not fit {bits} bits")
    return int(value)


def build_heart_rate(
    heart_rate: int,
    *,
    contact: SensorContact | None = None,
    energy_expended: int | None = None,
    rr_intervals: Sequence[int] | None = None,
    flags: int | None = None,
) -> bytes:
    """Encode a Heart Rate Measurement (0x2A37): the inverse of parse_heart_rate.

    `rr_intervals` are in 1/1024 s (rr_units converts seconds), oldest first. With `flags` None:
    the value is u8 when it fits, contact bits come from `contact` (None → not supported), energy
    and RR are sent when given (an empty RR list is not sent). With explicit `flags` (0–255), they
    are sent as given: bit 0 picks u16, bits 1–2 are the contact status (`contact` must then be None
    or agree), bit 3 sends energy (None → 0), bit 4 needs at least one RR interval; a value for a
    field whose bit is clear is a ValueError; reserved bits 5–7 are sent as given (append any bytes
    of such "future" fields yourself).
    """
    if flags is None:
        flags = 0
        if heart_rate > 0xFF:
            flags |= HeartRateFlags.HR_UINT16
        flags |= (contact or SensorContact.NOT_SUPPORTED).flag_bits
        if energy_expended is not None:
            flags |= HeartRateFlags.ENERGY_EXPENDED
        if rr_intervals:
            flags |= HeartRateFlags.RR_INTERVALS
    else:
        _fits("flags", flags, 8)
        if contact is not None and SensorContact.from_flags(flags) is not contact:
            raise ValueError(f"contact {contact.name} disagrees with flag bits 1–2 of 0x{flags:02X}")
        if energy_expended is not None and not flags & HeartRateFlags.ENERGY_EXPENDED:
            raise ValueError("energy_expended given but flag bit 3 is clear")
        if rr_intervals and not flags & HeartRateFlags.RR_INTERVALS:
            raise ValueError("rr_intervals given but flag bit 4 is clear")
        if flags & HeartRateFlags.RR_INTERVALS and not rr_intervals:
            raise ValueError("flag bit 4 announces RR intervals but none were given")
    out = bytearray([flags])
    if flags & HeartRateFlags.HR_UINT16:
        out += struct.pack("<H", _fits("heart_rate", heart_rate, 16))
    else:
        out.append(_fits("heart_rate", heart_rate, 8))
    if flags & HeartRateFlags.ENERGY_EXPENDED:
        out += struct.pack("<H", _fits("energy_expended", energy_expended or 0, 16))
    if flags & HeartRateFlags.RR_INTERVALS:
        for rr in rr_intervals or ():
            out += struct.pack("<H", _fits("RR interval", rr, 16))
    return bytes(out)
