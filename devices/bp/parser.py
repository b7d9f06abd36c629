"""Pure parser and encoder of Blood Pressure bytes: measurement 0x2A35, cuff 0x2A36, feature 0x2A49."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import IntEnum, IntFlag

from devices.ieee11073 import decode_sfloat, encode_sfloat
from kapmonitor.measurements import BloodPressure, BPStatus

# Wire format: ../../docs/devices/bp.md, after ../../../shared/reference/gatt.md
# ("Blood Pressure Service 0x1810", "IEEE 11073 numbers").

type ByteData = bytes | bytearray | memoryview

#: 1 kPa in mmHg (the brief's factor; 101.325 kPa = 760 mmHg gives 7.50062).
MMHG_PER_KPA = 7.50062
#: The user id that means "unknown user" (gatt.md).
UNKNOWN_USER = 255
#: Earliest year a Date Time may carry (Bluetooth Date Time: 1582–9999, 0 = unknown).
FIRST_YEAR = 1582


class ParseError(ValueError):
    """The bytes are not a valid packet; the message says why (the caller logs the bytes)."""


class BPFlags(IntFlag):
    """Flags byte of 0x2A35/0x2A36: the unit and which optional fields follow (bits 5–7 reserved)."""

    KPA = 1 << 0  # 0: mmHg, 1: kPa
    TIMESTAMP = 1 << 1  # Date Time, 7 bytes
    PULSE_RATE = 1 << 2  # SFLOAT
    USER_ID = 1 << 3  # u8
    MEASUREMENT_STATUS = 1 << 4  # u16


KNOWN_FLAGS = 0x1F
RESERVED_FLAGS = 0xE0


class BPMeasurementStatus(IntFlag):
    """Measurement Status (u16) of 0x2A35; bits 3–4 are a 2-bit field (see PulseRateRange), 6–15 reserved."""

    BODY_MOVEMENT = 1 << 0
    CUFF_TOO_LOOSE = 1 << 1
    IRREGULAR_PULSE = 1 << 2
    PULSE_RATE_RANGE_LOW_BIT = 1 << 3
    PULSE_RATE_RANGE_HIGH_BIT = 1 << 4
    IMPROPER_POSITION = 1 << 5


PULSE_RATE_RANGE_SHIFT = 3
PULSE_RATE_RANGE_MASK = 0b11 << PULSE_RATE_RANGE_SHIFT
RESERVED_STATUS_BITS = 0xFFC0


class PulseRateRange(IntEnum):
    """Bits 3–4 of the measurement status: where the pulse rate is relative to the cuff's range."""

    IN_RANGE = 0
    ABOVE_UPPER_LIMIT = 1
    BELOW_LOWER_LIMIT = 2
    RESERVED = 3


class BPFeature(IntFlag):
    """Blood Pressure Feature (u16) of 0x2A49: what the cuff can detect; bits 6–15 reserved."""

    BODY_MOVEMENT_DETECTION = 1 << 0
    CUFF_FIT_DETECTION = 1 << 1
    IRREGULAR_PULSE_DETECTION = 1 << 2
    PULSE_RATE_RANGE_DETECTION = 1 << 3
    MEASUREMENT_POSITION_DETECTION = 1 << 4
    MULTIPLE_BOND = 1 << 5


RESERVED_FEATURE_BITS = 0xFFC0

#: BPStatus for each single status bit (the pulse-rate range field is mapped separately).
_STATUS_BITS: dict[BPMeasurementStatus, BPStatus] = {
    BPMeasurementStatus.BODY_MOVEMENT: BPStatus.BODY_MOVEMENT,
    BPMeasurementStatus.CUFF_TOO_LOOSE: BPStatus.CUFF_TOO_LOOSE,
    BPMeasurementStatus.IRREGULAR_PULSE: BPStatus.IRREGULAR_PULSE,
    BPMeasurementStatus.IMPROPER_POSITION: BPStatus.IMPROPER_POSITION,
}
_RANGE_STATUS: dict[PulseRateRange, BPStatus] = {
    PulseRateRange.IN_RANGE: BPStatus.NONE,
    PulseRateRange.ABOVE_UPPER_LIMIT: BPStatus.PULSE_ABOVE_RANGE,
    PulseRateRange.BELOW_LOWER_LIMIT: BPStatus.PULSE_BELOW_RANGE,
    PulseRateRange.RESERVED: BPStatus.NONE,  # undefined by the profile: no claim either way
}


@dataclass(frozen=True, slots=True)
class BPDateTime:
    """A Bluetooth Date Time (7 bytes) exactly as sent: the fields may be 0 (unknown) or impossible."""

    year: int  # 0 = unknown
    month: int  # 1–12, 0 = unknown
    day: int  # 1–31, 0 = unknown
    hours: int
    minutes: int
    seconds: int

    @classmethod
    def from_datetime(cls, value: datetime) -> BPDateTime:
        """The Date Time of a (naive, local) datetime; sub-second parts are dropped."""
        return cls(value.year, value.month, value.day, value.hour, value.minute, value.second)

    def to_datetime(self, tz: tzinfo) -> datetime | None:
        """This wall time in zone `tz`; None when the year is unknown (0) or the date is impossible."""
        if self.year < FIRST_YEAR:
            return None
        try:
            return datetime(
                self.year, self.month, self.day, self.hours, self.minutes, self.seconds, tzinfo=tz
            )
        except ValueError:  # month 0/13, 31 April, hour 24, ... : a wrong clock, not a crash
            return None


@dataclass(frozen=True, slots=True)
class BPMeasurement:
    """One Blood Pressure Measurement (0x2A35) or Intermediate Cuff Pressure (0x2A36) as sent.

    Pressures are in the cuff's unit (`kpa` tells which); a value is None when the cuff sent an
    SFLOAT special. Optional fields are None when their flag was clear. For 0x2A36 the current cuff
    pressure is in `systolic` (`cuff_pressure`) and the other two are normally NaN (None).
    `user_id` is the raw byte (255 = unknown user; `known_user_id` maps it to None).
    """

    systolic: float | None
    diastolic: float | None
    mean: float | None
    kpa: bool
    timestamp: BPDateTime | None
    pulse_rate: float | None
    user_id: int | None
    status: BPMeasurementStatus | None
    flags: int

    @property
    def cuff_pressure(self) -> float | None:
        """0x2A36: the current cuff pressure (the systolic slot), in the cuff's unit."""
        return self.systolic

    @property
    def has_pulse_rate(self) -> bool:
        """The pulse rate field was present (flag bit 2), even if it held no value."""
        return bool(self.flags & BPFlags.PULSE_RATE)

    @property
    def known_user_id(self) -> int | None:
        """The user id, or None when absent or 255 ("unknown user")."""
        return None if self.user_id is None or self.user_id == UNKNOWN_USER else self.user_id

    @property
    def pulse_rate_range(self) -> PulseRateRange | None:
        """Status bits 3–4 as a value, None when no status was sent."""
        if self.status is None:
            return None
        return PulseRateRange((int(self.status) & PULSE_RATE_RANGE_MASK) >> PULSE_RATE_RANGE_SHIFT)

    @property
    def reserved_flags(self) -> int:
        """Reserved flag bits 5–7 the cuff set (ignored when parsing; worth logging once)."""
        return self.flags & RESERVED_FLAGS

    def pressures_mmhg(self) -> tuple[float | None, float | None, float | None]:
        """(systolic, diastolic, mean) in mmHg: kPa × 7.50062, rounded to 0.1 mmHg."""
        return (_mmhg(self.systolic, self.kpa), _mmhg(self.diastolic, self.kpa), _mmhg(self.mean, self.kpa))


def _mmhg(value: float | None, kpa: bool) -> float | None:
    if value is None or not kpa:
        return value
    return round(value * MMHG_PER_KPA, 1)


def measurement_length(flags: int) -> int:
    """Bytes a 0x2A35/0x2A36 packet with these flags must hold (known fields only)."""
    return (
        7
        + (7 if flags & BPFlags.TIMESTAMP else 0)
        + (2 if flags & BPFlags.PULSE_RATE else 0)
        + (1 if flags & BPFlags.USER_ID else 0)
        + (2 if flags & BPFlags.MEASUREMENT_STATUS else 0)
    )


def _parse(what: str, data: ByteData) -> BPMeasurement:
    buf = bytes(data)
    if not buf:
        raise ParseError(f"{what}: empty packet")
    flags = buf[0]
    expected = measurement_length(flags)
    if len(buf) < expected:
        raise ParseError(f"{what}: {len(buf)} bytes, but flags 0x{flags:02X} announce {expected}")
    if len(buf) > expected and not flags & RESERVED_FLAGS:
        raise ParseError(
            f"{what}: {len(buf) - expected} trailing byte(s) after the {expected} "
            f"that flags 0x{flags:02X} announce"
        )
    systolic_raw, diastolic_raw, mean_raw = struct.unpack_from("<HHH", buf, 1)
    offset = 7
    timestamp: BPDateTime | None = None
    pulse_rate: float | None = None
    user_id: int | None = None
    status: BPMeasurementStatus | None = None
    if flags & BPFlags.TIMESTAMP:
        year, month, day, hours, minutes, seconds = struct.unpack_from("<HBBBBB", buf, offset)
        timestamp = BPDateTime(year, month, day, hours, minutes, seconds)
        offset += 7
    if flags & BPFlags.PULSE_RATE:
        pulse_rate = decode_sfloat(struct.unpack_from("<H", buf, offset)[0])
        offset += 2
    if flags & BPFlags.USER_ID:
        user_id = buf[offset]
        offset += 1
    if flags & BPFlags.MEASUREMENT_STATUS:
        status = BPMeasurementStatus(struct.unpack_from("<H", buf, offset)[0])
    return BPMeasurement(
        systolic=decode_sfloat(systolic_raw),
        diastolic=decode_sfloat(diastolic_raw),
        mean=decode_sfloat(mean_raw),
        kpa=bool(flags & BPFlags.KPA),
        timestamp=timestamp,
        pulse_rate=pulse_rate,
        user_id=user_id,
        status=status,
        flags=flags,
    )


def parse_bp_measurement(data: ByteData) -> BPMeasurement:
    """Parse a Blood Pressure Measurement (0x2A35); raise ParseError (only) for malformed bytes.

    Length rule (docs/devices/bp.md, as for PLX): every field the flags announce must be there;
    reserved flag bits 5–7 are ignored, and with one of them set the bytes after the known fields
    are ignored too; with none set, trailing bytes are an error.
    """
    return _parse("BP measurement 0x2A35", data)


def parse_intermediate_cuff_pressure(data: ByteData) -> BPMeasurement:
    """Parse an Intermediate Cuff Pressure (0x2A36): the 0x2A35 layout, cuff pressure in `systolic`."""
    return _parse("intermediate cuff pressure 0x2A36", data)


def parse_bp_feature(data: ByteData) -> BPFeature:
    """Parse Blood Pressure Feature (0x2A49): exactly 2 bytes, or more with a reserved bit (6–15) set."""
    buf = bytes(data)
    if len(buf) < 2:
        raise ParseError(f"BP feature 0x2A49: {len(buf)} byte(s), need 2")
    bits = buf[0] | buf[1] << 8
    if len(buf) > 2 and not bits & RESERVED_FEATURE_BITS:
        raise ParseError(f"BP feature 0x2A49: {len(buf) - 2} trailing byte(s) and no reserved feature bit")
    return BPFeature(bits)


def bp_status(m: BPMeasurement) -> BPStatus:
    """The BPStatus of a measurement from its status bits (no MEASUREMENT_ERROR: see to_blood_pressure)."""
    status = BPStatus.NONE
    if m.status is None:
        return status
    for bit, flag in _STATUS_BITS.items():
        if m.status & bit:
            status |= flag
    pulse_range = m.pulse_rate_range
    assert pulse_range is not None
    return status | _RANGE_STATUS[pulse_range]


def measured_wall(timestamp: BPDateTime | None, tz: tzinfo) -> float | None:
    """UTC POSIX seconds of a cuff's Date Time, read as local time in `tz`.

    Assumption (docs/devices/bp.md): a cuff's clock shows local wall time (it is set by hand or by
    the phone app, and the profile carries no zone), so the Date Time is interpreted in the
    console's zone `tz`. In a repeated DST hour the first occurrence is taken (fold=0); a time that
    does not exist (skipped hour) is placed as tzinfo places it. Unknown (year 0) or impossible
    dates give None, never an exception.
    """
    if timestamp is None:
        return None
    local = timestamp.to_datetime(tz)
    if local is None:
        return None
    try:
        return local.timestamp()
    except (ValueError, OverflowError):  # pragma: no cover - defensive: a tzinfo may refuse a far date
        return None


def to_blood_pressure(
    m: BPMeasurement, *, device: str, mono: float, wall: float, tz: tzinfo
) -> BloodPressure:
    """Turn a 0x2A35 measurement into a BloodPressure in mmHg (`stored` is left to the driver).

    kPa is converted (× 7.50062, 0.1 mmHg). The cuff's Date Time becomes `measured_wall` (see
    measured_wall()). When systolic or diastolic holds no value (an SFLOAT special: a failed
    measurement), the reading carries BPStatus.MEASUREMENT_ERROR and systolic, diastolic and mean
    are all None: a half reading is not a blood pressure and must not reach a plot as one. The
    pulse rate is kept as sent. User 255 (unknown) becomes None.
    """
    systolic, diastolic, mean = m.pressures_mmhg()
    status = bp_status(m)
    if systolic is None or diastolic is None:
        status |= BPStatus.MEASUREMENT_ERROR
        systolic = diastolic = mean = None
    return BloodPressure(
        systolic=systolic,
        diastolic=diastolic,
        mean=mean,
        pulse_rate=m.pulse_rate,
        mono=mono,
        wall=wall,
        device=device,
        measured_wall=measured_wall(m.timestamp, tz),
        stored=False,
        status=status,
        user_id=m.known_user_id,
    )


# ------------------------------------------------------------------------------------------ encoder


def _fits(name: str, value: int, bits: int) -> int:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} {value:#x} does not fit {bits} bits")
    return int(value)


def build_bp_measurement(
    *,
    systolic: float | None,
    diastolic: float | None,
    mean: float | None,
    kpa: bool = False,
    timestamp: BPDateTime | datetime | None = None,
    pulse_rate: float | None = None,
    user_id: int | None = None,
    status: int | None = None,
    flags: int | None = None,
) -> bytes:
    """Encode a Blood Pressure Measurement (0x2A35) or Intermediate Cuff Pressure (0x2A36).

    The inverse of parse_bp_measurement. Values are rounded to the nearest SFLOAT, preferring whole
    mmHg or 0.1 kPa; None (or NaN) is sent as the NaN code. With `flags` None, the unit bit comes
    from `kpa` and an optional field is sent when it is not None. With explicit `flags` (0–255) the
    flags decide (bit 0 overrides `kpa`; an announced field given as None is sent as NaN, or 0 for
    timestamp/user/status), a value given for a field whose bit is clear is a ValueError, and
    reserved bits 5–7 are sent as given (append any bytes of such "future" fields yourself).
    """
    fields = (
        (BPFlags.TIMESTAMP, timestamp is not None, "timestamp"),
        (BPFlags.PULSE_RATE, pulse_rate is not None, "pulse_rate"),
        (BPFlags.USER_ID, user_id is not None, "user_id"),
        (BPFlags.MEASUREMENT_STATUS, status is not None, "status"),
    )
    if flags is None:
        flags = BPFlags.KPA if kpa else 0
        for bit, given, _ in fields:
            if given:
                flags |= bit
    else:
        _fits("flags", flags, 8)
        for bit, given, name in fields:
            if given and not flags & bit:
                raise ValueError(f"{name} given but flag bit {bit.bit_length() - 1} is clear")
    decimals = 1 if flags & BPFlags.KPA else 0
    out = bytearray([int(flags)])
    for value in (systolic, diastolic, mean):
        out += struct.pack("<H", encode_sfloat(value, decimals))
    if flags & BPFlags.TIMESTAMP:
        if isinstance(timestamp, datetime):
            timestamp = BPDateTime.from_datetime(timestamp)
        ts = timestamp or BPDateTime(0, 0, 0, 0, 0, 0)
        out += struct.pack(
            "<HBBBBB",
            _fits("year", ts.year, 16),
            _fits("month", ts.month, 8),
            _fits("day", ts.day, 8),
            _fits("hours", ts.hours, 8),
            _fits("minutes", ts.minutes, 8),
            _fits("seconds", ts.seconds, 8),
        )
    if flags & BPFlags.PULSE_RATE:
        out += struct.pack("<H", encode_sfloat(pulse_rate))
    if flags & BPFlags.USER_ID:
        out.append(_fits("user_id", user_id or 0, 8))
    if flags & BPFlags.MEASUREMENT_STATUS:
        out += struct.pack("<H", _fits("status", status or 0, 16))
    return bytes(out)


def build_bp_feature(features: int) -> bytes:
    """Encode Blood Pressure Feature (0x2A49): the u16, little-endian."""
    return struct.pack("<H", _fits("features", features, 16))
