"""Pure parser and encoder of PLX bytes: continuous 0x2A5F, spot-check 0x2A5E, features 0x2A60, RACP."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, IntFlag

from devices.ieee11073 import decode_sfloat, encode_sfloat
from kapmonitor.measurements import Numeric, Param, Quality

# Wire format: ../../docs/devices/plx.md, after ../../../shared/reference/gatt.md
# ("Pulse Oximeter Service 0x1822", "IEEE 11073 numbers").

type ByteData = bytes | bytearray | memoryview


class ParseError(ValueError):
    """The bytes are not a valid packet; the message says why (the caller logs the bytes)."""


class PlxContinuousFlags(IntFlag):
    """Flags byte of 0x2A5F: which optional fields follow SpO2 and PR (bits 5–7 reserved)."""

    FAST = 1 << 0  # SpO2PR-Fast: 2 SFLOAT
    SLOW = 1 << 1  # SpO2PR-Slow: 2 SFLOAT
    MEASUREMENT_STATUS = 1 << 2  # u16
    DEVICE_SENSOR_STATUS = 1 << 3  # u24
    PULSE_AMPLITUDE_INDEX = 1 << 4  # SFLOAT


KNOWN_CONTINUOUS_FLAGS = 0x1F
RESERVED_CONTINUOUS_FLAGS = 0xE0


class MeasurementStatus(IntFlag):
    """Measurement Status (u16) of a PLX measurement; bits 0–4 are reserved."""

    MEASUREMENT_ONGOING = 1 << 5
    EARLY_ESTIMATED_DATA = 1 << 6
    VALIDATED_DATA = 1 << 7
    FULLY_QUALIFIED_DATA = 1 << 8
    DATA_FROM_MEASUREMENT_STORAGE = 1 << 9
    DATA_FOR_DEMONSTRATION = 1 << 10
    DATA_FOR_TESTING = 1 << 11
    CALIBRATION_ONGOING = 1 << 12
    MEASUREMENT_UNAVAILABLE = 1 << 13
    QUESTIONABLE_MEASUREMENT_DETECTED = 1 << 14
    INVALID_MEASUREMENT_DETECTED = 1 << 15


class DeviceSensorStatus(IntFlag):
    """Device and Sensor Status (u24) of a PLX measurement; bits 16–23 are reserved."""

    EXTENDED_DISPLAY_UPDATE_ONGOING = 1 << 0
    EQUIPMENT_MALFUNCTION_DETECTED = 1 << 1
    SIGNAL_PROCESSING_IRREGULARITY_DETECTED = 1 << 2
    INADEQUATE_SIGNAL_DETECTED = 1 << 3
    POOR_SIGNAL_DETECTED = 1 << 4
    LOW_PERFUSION_DETECTED = 1 << 5
    ERRATIC_SIGNAL_DETECTED = 1 << 6
    NONPULSATILE_SIGNAL_DETECTED = 1 << 7
    QUESTIONABLE_PULSE_DETECTED = 1 << 8
    SIGNAL_ANALYSIS_ONGOING = 1 << 9
    SENSOR_INTERFERENCE_DETECTED = 1 << 10
    SENSOR_UNCONNECTED_TO_USER = 1 << 11
    UNKNOWN_SENSOR_CONNECTED = 1 << 12
    SENSOR_DISPLACED = 1 << 13
    SENSOR_MALFUNCTIONING = 1 << 14
    SENSOR_DISCONNECTED = 1 << 15


class PlxSupportedFeatures(IntFlag):
    """Supported Features (u16) of 0x2A60; bits 8–15 are reserved."""

    MEASUREMENT_STATUS_SUPPORT = 1 << 0
    DEVICE_SENSOR_STATUS_SUPPORT = 1 << 1
    SPOT_CHECK_MEASUREMENT_STORAGE = 1 << 2
    SPOT_CHECK_TIMESTAMP = 1 << 3
    SPO2PR_FAST = 1 << 4
    SPO2PR_SLOW = 1 << 5
    PULSE_AMPLITUDE_INDEX = 1 << 6
    MULTIPLE_BONDS = 1 << 7


RESERVED_FEATURE_BITS = 0xFF00

#: Bits 11, 13, 15: the sensor is not on the patient ("sensor off" technical alarm).
SENSOR_OFF_BITS = (
    DeviceSensorStatus.SENSOR_UNCONNECTED_TO_USER
    | DeviceSensorStatus.SENSOR_DISPLACED
    | DeviceSensorStatus.SENSOR_DISCONNECTED
)
#: Bits 3–7: signal-quality problems of the values.
SIGNAL_QUALITY_BITS = (
    DeviceSensorStatus.INADEQUATE_SIGNAL_DETECTED
    | DeviceSensorStatus.POOR_SIGNAL_DETECTED
    | DeviceSensorStatus.LOW_PERFUSION_DETECTED
    | DeviceSensorStatus.ERRATIC_SIGNAL_DETECTED
    | DeviceSensorStatus.NONPULSATILE_SIGNAL_DETECTED
)

#: Quality flag for each Measurement Status bit; bits not listed carry no quality flag.
MEASUREMENT_STATUS_QUALITY: dict[MeasurementStatus, Quality] = {
    MeasurementStatus.DATA_FROM_MEASUREMENT_STORAGE: Quality.FROM_STORAGE,
    MeasurementStatus.DATA_FOR_DEMONSTRATION: Quality.DEMO,
    MeasurementStatus.DATA_FOR_TESTING: Quality.DEMO,
    MeasurementStatus.MEASUREMENT_UNAVAILABLE: Quality.INVALID,
    MeasurementStatus.QUESTIONABLE_MEASUREMENT_DETECTED: Quality.QUESTIONABLE,
    MeasurementStatus.INVALID_MEASUREMENT_DETECTED: Quality.INVALID,
}

#: Quality flag for each Device and Sensor Status bit; bits not listed carry no quality flag.
DEVICE_SENSOR_STATUS_QUALITY: dict[DeviceSensorStatus, Quality] = {
    DeviceSensorStatus.EQUIPMENT_MALFUNCTION_DETECTED: Quality.QUESTIONABLE,
    DeviceSensorStatus.SIGNAL_PROCESSING_IRREGULARITY_DETECTED: Quality.QUESTIONABLE,
    DeviceSensorStatus.INADEQUATE_SIGNAL_DETECTED: Quality.POOR_SIGNAL,
    DeviceSensorStatus.POOR_SIGNAL_DETECTED: Quality.POOR_SIGNAL,
    DeviceSensorStatus.LOW_PERFUSION_DETECTED: Quality.LOW_PERFUSION,
    DeviceSensorStatus.ERRATIC_SIGNAL_DETECTED: Quality.POOR_SIGNAL,
    DeviceSensorStatus.NONPULSATILE_SIGNAL_DETECTED: Quality.POOR_SIGNAL,
    DeviceSensorStatus.QUESTIONABLE_PULSE_DETECTED: Quality.QUESTIONABLE,
    DeviceSensorStatus.SIGNAL_ANALYSIS_ONGOING: Quality.SEARCHING,
    DeviceSensorStatus.SENSOR_INTERFERENCE_DETECTED: Quality.QUESTIONABLE,
    DeviceSensorStatus.SENSOR_UNCONNECTED_TO_USER: Quality.SENSOR_OFF,
    DeviceSensorStatus.UNKNOWN_SENSOR_CONNECTED: Quality.QUESTIONABLE,
    DeviceSensorStatus.SENSOR_DISPLACED: Quality.SENSOR_OFF,
    DeviceSensorStatus.SENSOR_MALFUNCTIONING: Quality.QUESTIONABLE,
    DeviceSensorStatus.SENSOR_DISCONNECTED: Quality.SENSOR_OFF,
}


@dataclass(frozen=True, slots=True)
class PlxContinuous:
    """One PLX Continuous Measurement (0x2A5F) as the device sent it.

    A value is None when the device sent an SFLOAT special (NaN, NRes, ±INF, reserved) or, for the
    optional fields, when its flag was clear (`flags` tells which). `flags` is the raw flags byte,
    reserved bits included. Status fields are None when absent.
    """

    spo2: float | None
    pulse_rate: float | None
    spo2_fast: float | None
    pr_fast: float | None
    spo2_slow: float | None
    pr_slow: float | None
    measurement_status: MeasurementStatus | None
    device_sensor_status: DeviceSensorStatus | None
    pulse_amplitude_index: float | None
    flags: int

    @property
    def has_fast(self) -> bool:
        """SpO2PR-Fast was present (flag bit 0)."""
        return bool(self.flags & PlxContinuousFlags.FAST)

    @property
    def has_slow(self) -> bool:
        """SpO2PR-Slow was present (flag bit 1)."""
        return bool(self.flags & PlxContinuousFlags.SLOW)

    @property
    def has_pulse_amplitude_index(self) -> bool:
        """The Pulse Amplitude Index field was present (flag bit 4), even if it held no value."""
        return bool(self.flags & PlxContinuousFlags.PULSE_AMPLITUDE_INDEX)

    @property
    def reserved_flags(self) -> int:
        """Reserved flag bits 5–7 the device set (ignored when parsing; worth logging once)."""
        return self.flags & RESERVED_CONTINUOUS_FLAGS

    @property
    def sensor_off(self) -> bool:
        """Sensor unconnected to user, displaced or disconnected (device/sensor bits 11, 13, 15)."""
        return bool(self.device_sensor_status is not None and self.device_sensor_status & SENSOR_OFF_BITS)

    @property
    def signal_quality_issue(self) -> bool:
        """Inadequate, poor, low-perfusion, erratic or nonpulsatile signal (device/sensor bits 3–7)."""
        return bool(self.device_sensor_status is not None and self.device_sensor_status & SIGNAL_QUALITY_BITS)

    @property
    def invalid(self) -> bool:
        """The device flagged the measurement invalid (measurement status bit 15)."""
        return self._status(MeasurementStatus.INVALID_MEASUREMENT_DETECTED)

    @property
    def questionable(self) -> bool:
        """The device flagged the measurement questionable (measurement status bit 14)."""
        return self._status(MeasurementStatus.QUESTIONABLE_MEASUREMENT_DETECTED)

    @property
    def unavailable(self) -> bool:
        """The device says no measurement is available (measurement status bit 13)."""
        return self._status(MeasurementStatus.MEASUREMENT_UNAVAILABLE)

    @property
    def from_storage(self) -> bool:
        """Data from the device's measurement storage, not live (measurement status bit 9)."""
        return self._status(MeasurementStatus.DATA_FROM_MEASUREMENT_STORAGE)

    @property
    def demo(self) -> bool:
        """Data for demonstration or for testing (measurement status bits 10, 11)."""
        return self._status(MeasurementStatus.DATA_FOR_DEMONSTRATION | MeasurementStatus.DATA_FOR_TESTING)

    def _status(self, bits: MeasurementStatus) -> bool:
        return bool(self.measurement_status is not None and self.measurement_status & bits)


@dataclass(frozen=True, slots=True)
class PlxFeatures:
    """PLX Features (0x2A60): what the oximeter supports; the masks are None when not announced."""

    supported: PlxSupportedFeatures
    measurement_status_support: MeasurementStatus | None
    device_sensor_status_support: DeviceSensorStatus | None


def _continuous_length(flags: int) -> int:
    """Bytes a 0x2A5F packet with these flags must hold (known fields only)."""
    return (
        5
        + (4 if flags & PlxContinuousFlags.FAST else 0)
        + (4 if flags & PlxContinuousFlags.SLOW else 0)
        + (2 if flags & PlxContinuousFlags.MEASUREMENT_STATUS else 0)
        + (3 if flags & PlxContinuousFlags.DEVICE_SENSOR_STATUS else 0)
        + (2 if flags & PlxContinuousFlags.PULSE_AMPLITUDE_INDEX else 0)
    )


def _check_length(what: str, size: int, expected: int, flags_text: str, reserved_set: bool) -> None:
    if size < expected:
        raise ParseError(f"{what}: {size} bytes, but {flags_text} announce {expected}")
    if size > expected and not reserved_set:
        raise ParseError(
            f"{what}: {size - expected} trailing byte(s) after the {expected} that {flags_text} announce"
        )


def parse_plx_continuous(data: ByteData) -> PlxContinuous:
    """Parse a PLX Continuous Measurement (0x2A5F); raise ParseError (only) for malformed bytes.

    Length rule (docs/devices/plx.md): the packet must hold every field its flags announce. Reserved
    flag bits 5–7 are ignored, and with one of them set the bytes after the known fields are ignored
    too (a later revision appends its fields there); with none set, trailing bytes are an error.
    """
    buf = bytes(data)
    if not buf:
        raise ParseError("PLX continuous 0x2A5F: empty packet")
    flags = buf[0]
    _check_length(
        "PLX continuous 0x2A5F",
        len(buf),
        _continuous_length(flags),
        f"flags 0x{flags:02X}",
        bool(flags & RESERVED_CONTINUOUS_FLAGS),
    )
    try:
        spo2_raw, pr_raw = struct.unpack_from("<HH", buf, 1)
        offset = 5
        spo2_fast: float | None = None
        pr_fast: float | None = None
        spo2_slow: float | None = None
        pr_slow: float | None = None
        pai: float | None = None
        measurement_status: MeasurementStatus | None = None
        device_sensor_status: DeviceSensorStatus | None = None
        if flags & PlxContinuousFlags.FAST:
            spo2_fast, pr_fast = (decode_sfloat(r) for r in struct.unpack_from("<HH", buf, offset))
            offset += 4
        if flags & PlxContinuousFlags.SLOW:
            spo2_slow, pr_slow = (decode_sfloat(r) for r in struct.unpack_from("<HH", buf, offset))
            offset += 4
        if flags & PlxContinuousFlags.MEASUREMENT_STATUS:
            measurement_status = MeasurementStatus(struct.unpack_from("<H", buf, offset)[0])
            offset += 2
        if flags & PlxContinuousFlags.DEVICE_SENSOR_STATUS:
            low, high = struct.unpack_from("<HB", buf, offset)
            device_sensor_status = DeviceSensorStatus(low | high << 16)
            offset += 3
        if flags & PlxContinuousFlags.PULSE_AMPLITUDE_INDEX:
            pai = decode_sfloat(struct.unpack_from("<H", buf, offset)[0])
            offset += 2
    except (struct.error, IndexError) as exc:  # pragma: no cover - the length check above rules it out
        raise ParseError(f"PLX continuous 0x2A5F: truncated ({exc})") from exc
    return PlxContinuous(
        spo2=decode_sfloat(spo2_raw),
        pulse_rate=decode_sfloat(pr_raw),
        spo2_fast=spo2_fast,
        pr_fast=pr_fast,
        spo2_slow=spo2_slow,
        pr_slow=pr_slow,
        measurement_status=measurement_status,
        device_sensor_status=device_sensor_status,
        pulse_amplitude_index=pai,
        flags=flags,
    )


def parse_plx_features(data: ByteData) -> PlxFeatures:
    """Parse PLX Features (0x2A60); raise ParseError (only) for malformed bytes.

    Same length rule as 0x2A5F: the masks that bits 0/1 announce must be there; trailing bytes are an
    error unless a reserved feature bit (8–15) is set.
    """
    buf = bytes(data)
    if len(buf) < 2:
        raise ParseError(f"PLX features 0x2A60: {len(buf)} byte(s), need at least 2")
    bits = buf[0] | buf[1] << 8
    supported = PlxSupportedFeatures(bits)
    has_ms = bool(supported & PlxSupportedFeatures.MEASUREMENT_STATUS_SUPPORT)
    has_dss = bool(supported & PlxSupportedFeatures.DEVICE_SENSOR_STATUS_SUPPORT)
    expected = 2 + (2 if has_ms else 0) + (3 if has_dss else 0)
    _check_length(
        "PLX features 0x2A60",
        len(buf),
        expected,
        f"features 0x{bits:04X}",
        bool(bits & RESERVED_FEATURE_BITS),
    )
    offset = 2
    ms_support: MeasurementStatus | None = None
    dss_support: DeviceSensorStatus | None = None
    if has_ms:
        ms_support = MeasurementStatus(buf[offset] | buf[offset + 1] << 8)
        offset += 2
    if has_dss:
        dss_support = DeviceSensorStatus(int.from_bytes(buf[offset : offset + 3], "little"))
    return PlxFeatures(supported, ms_support, dss_support)


def plx_quality(m: PlxContinuous) -> Quality:
    """The Quality flags of a measurement, from its status bits (tables above; docs/devices/plx.md)."""
    quality = Quality.NONE
    if m.measurement_status is not None:
        for ms_bit, ms_quality in MEASUREMENT_STATUS_QUALITY.items():
            if m.measurement_status & ms_bit:
                quality |= ms_quality
    if m.device_sensor_status is not None:
        for dss_bit, dss_quality in DEVICE_SENSOR_STATUS_QUALITY.items():
            if m.device_sensor_status & dss_bit:
                quality |= dss_quality
    return quality


def values_withheld(m: PlxContinuous) -> bool:
    """True when no value of this packet may be used as a number (invalid, unavailable, sensor off)."""
    return m.invalid or m.unavailable or m.sensor_off


def to_numerics(m: PlxContinuous, *, device: str, mono: float, wall: float) -> list[Numeric]:
    """Turn a measurement into Numerics: SpO2, pulse rate, and the perfusion index when present.

    All of them carry the same Quality (plx_quality). A value is None when the device sent "no value"
    AND ALSO when the device flagged the measurement invalid (status bit 15) or unavailable (bit 13),
    or the sensor is off (device/sensor bits 11, 13, 15): an invalid value must never reach a plot or
    an alarm as a number, so it becomes a gap, and the Quality says why. The fast/slow averages are
    parsed but not turned into Numerics.
    """
    quality = plx_quality(m)
    withheld = values_withheld(m)

    def numeric(param: Param, value: float | None) -> Numeric:
        return Numeric(param, None if withheld else value, mono, wall, device, quality)

    out = [numeric(Param.SPO2, m.spo2), numeric(Param.PULSE_RATE, m.pulse_rate)]
    if m.has_pulse_amplitude_index:
        out.append(numeric(Param.PERFUSION_INDEX, m.pulse_amplitude_index))
    return out


# ------------------------------------------------------------------------------------------ encoder


def sfloat_nearest(value: float | None) -> int:
    """Raw SFLOAT nearest to `value` (devices.ieee11073.encode_sfloat with no preferred decimals)."""
    return encode_sfloat(value)


def _fits(name: str, value: int | None, bits: int) -> int:
    if value is None:
        return 0
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} {value:#x} does not fit {bits} bits")
    return int(value)


def build_plx_continuous(
    *,
    spo2: float | None,
    pulse_rate: float | None,
    spo2_fast: float | None = None,
    pr_fast: float | None = None,
    spo2_slow: float | None = None,
    pr_slow: float | None = None,
    measurement_status: int | None = None,
    device_sensor_status: int | None = None,
    pulse_amplitude_index: float | None = None,
    flags: int | None = None,
) -> bytes:
    """Encode a PLX Continuous Measurement (0x2A5F): the inverse of parse_plx_continuous.

    Values are rounded to the nearest SFLOAT; None (or NaN) is sent as the NaN code, ±inf as ±INF.
    With `flags` None, an optional group is sent when any of its values is not None. With explicit
    `flags` (0–255), bits 0–4 decide which groups are sent (None → NaN code, or 0 for a status),
    a value given for a group whose bit is clear is a ValueError, and reserved bits 5–7 are sent
    as given (append any bytes of such "future" fields yourself).
    """
    f = PlxContinuousFlags
    groups = (
        (f.FAST, spo2_fast is not None or pr_fast is not None, "spo2_fast/pr_fast"),
        (f.SLOW, spo2_slow is not None or pr_slow is not None, "spo2_slow/pr_slow"),
        (f.MEASUREMENT_STATUS, measurement_status is not None, "measurement_status"),
        (f.DEVICE_SENSOR_STATUS, device_sensor_status is not None, "device_sensor_status"),
        (f.PULSE_AMPLITUDE_INDEX, pulse_amplitude_index is not None, "pulse_amplitude_index"),
    )
    if flags is None:
        flags = 0
        for bit, given, _ in groups:
            if given:
                flags |= bit
    else:
        if not 0 <= flags <= 0xFF:
            raise ValueError(f"flags {flags:#x} do not fit a byte")
        for bit, given, name in groups:
            if given and not flags & bit:
                raise ValueError(f"{name} given but flag bit {bit.bit_length() - 1} is clear")
    out = bytearray([flags])
    out += struct.pack("<HH", sfloat_nearest(spo2), sfloat_nearest(pulse_rate))
    if flags & PlxContinuousFlags.FAST:
        out += struct.pack("<HH", sfloat_nearest(spo2_fast), sfloat_nearest(pr_fast))
    if flags & PlxContinuousFlags.SLOW:
        out += struct.pack("<HH", sfloat_nearest(spo2_slow), sfloat_nearest(pr_slow))
    if flags & PlxContinuousFlags.MEASUREMENT_STATUS:
        out += struct.pack("<H", _fits("measurement_status", measurement_status, 16))
    if flags & PlxContinuousFlags.DEVICE_SENSOR_STATUS:
        out += _fits("device_sensor_status", device_sensor_status, 24).to_bytes(3, "little")
    if flags & PlxContinuousFlags.PULSE_AMPLITUDE_INDEX:
        out += struct.pack("<H", sfloat_nearest(pulse_amplitude_index))
    return bytes(out)


def build_plx_features(
    supported: int,
    *,
    measurement_status_support: int | None = None,
    device_sensor_status_support: int | None = None,
) -> bytes:
    """Encode PLX Features (0x2A60); the masks are sent when `supported` bits 0/1 say so (None → 0)."""
    bits = _fits("supported", supported, 16)
    out = bytearray(struct.pack("<H", bits))
    if bits & PlxSupportedFeatures.MEASUREMENT_STATUS_SUPPORT:
        out += struct.pack("<H", _fits("measurement_status_support", measurement_status_support, 16))
    elif measurement_status_support is not None:
        raise ValueError("measurement_status_support given but supported bit 0 is clear")
    if bits & PlxSupportedFeatures.DEVICE_SENSOR_STATUS_SUPPORT:
        out += _fits("device_sensor_status_support", device_sensor_status_support, 24).to_bytes(3, "little")
    elif device_sensor_status_support is not None:
        raise ValueError("device_sensor_status_support given but supported bit 1 is clear")
    return bytes(out)


# ------------------------------------------------------------------------------- spot-check 0x2A5E


class PlxSpotCheckFlags(IntFlag):
    """Flags byte of 0x2A5E (gatt.md): numbered differently from 0x2A5F; bits 5–7 reserved."""

    TIMESTAMP = 1 << 0  # Date Time, 7 bytes
    MEASUREMENT_STATUS = 1 << 1  # u16
    DEVICE_SENSOR_STATUS = 1 << 2  # u24
    PULSE_AMPLITUDE_INDEX = 1 << 3  # SFLOAT
    DEVICE_CLOCK_NOT_SET = 1 << 4  # no field: the timestamp is from an unset clock


KNOWN_SPOT_CHECK_FLAGS = 0x1F
RESERVED_SPOT_CHECK_FLAGS = 0xE0
#: Bluetooth Date Time: year u16, month, day, hours, minutes, seconds (u8 each).
DATE_TIME_LENGTH = 7
#: Earliest year a Bluetooth Date Time may carry (1582–9999; 0 = unknown).
FIRST_YEAR = 1582


@dataclass(frozen=True, slots=True)
class PlxSpotCheck:
    """One PLX Spot-check Measurement (0x2A5E) as the device sent it.

    `timestamp` is the device's Date Time as a naive datetime (the profile carries no zone), None
    when absent, unknown (year 0) or impossible (`has_timestamp` tells whether it was sent). Other
    fields follow PlxContinuous: None for an SFLOAT special or an absent field; `flags` is the raw byte.
    """

    spo2: float | None
    pulse_rate: float | None
    timestamp: datetime | None
    measurement_status: MeasurementStatus | None
    device_sensor_status: DeviceSensorStatus | None
    pulse_amplitude_index: float | None
    flags: int

    @property
    def has_timestamp(self) -> bool:
        """The Date Time field was present (flag bit 0), even if it said "unknown"."""
        return bool(self.flags & PlxSpotCheckFlags.TIMESTAMP)

    @property
    def has_pulse_amplitude_index(self) -> bool:
        """The Pulse Amplitude Index field was present (flag bit 3), even if it held no value."""
        return bool(self.flags & PlxSpotCheckFlags.PULSE_AMPLITUDE_INDEX)

    @property
    def device_clock_not_set(self) -> bool:
        """The device says its clock was never set (flag bit 4): the timestamp is not wall time."""
        return bool(self.flags & PlxSpotCheckFlags.DEVICE_CLOCK_NOT_SET)

    @property
    def reserved_flags(self) -> int:
        """Reserved flag bits 5–7 the device set."""
        return self.flags & RESERVED_SPOT_CHECK_FLAGS

    @property
    def sensor_off(self) -> bool:
        """Sensor unconnected to user, displaced or disconnected (device/sensor bits 11, 13, 15)."""
        return bool(self.device_sensor_status is not None and self.device_sensor_status & SENSOR_OFF_BITS)

    @property
    def invalid(self) -> bool:
        """The device flagged the measurement invalid (measurement status bit 15)."""
        return self._status(MeasurementStatus.INVALID_MEASUREMENT_DETECTED)

    @property
    def unavailable(self) -> bool:
        """The device says no measurement is available (measurement status bit 13)."""
        return self._status(MeasurementStatus.MEASUREMENT_UNAVAILABLE)

    @property
    def from_storage(self) -> bool:
        """A stored record, not a new reading (measurement status bit 9; RACP uploads set it)."""
        return self._status(MeasurementStatus.DATA_FROM_MEASUREMENT_STORAGE)

    def _status(self, bits: MeasurementStatus) -> bool:
        return bool(self.measurement_status is not None and self.measurement_status & bits)


def _spot_check_length(flags: int) -> int:
    """Bytes a 0x2A5E packet with these flags must hold (known fields only)."""
    return (
        5
        + (DATE_TIME_LENGTH if flags & PlxSpotCheckFlags.TIMESTAMP else 0)
        + (2 if flags & PlxSpotCheckFlags.MEASUREMENT_STATUS else 0)
        + (3 if flags & PlxSpotCheckFlags.DEVICE_SENSOR_STATUS else 0)
        + (2 if flags & PlxSpotCheckFlags.PULSE_AMPLITUDE_INDEX else 0)
    )


def _parse_date_time(buf: bytes, offset: int) -> datetime | None:
    """A Bluetooth Date Time as a naive datetime; None when unknown (year 0) or impossible.

    Like the BP cuff's clock (devices/bp/parser.py), a wrong clock (year < 1582, month 0/13,
    31 April, hour 24 …) loses only the timestamp, never the measurement.
    """
    year, month, day, hours, minutes, seconds = struct.unpack_from("<HBBBBB", buf, offset)
    if year < FIRST_YEAR:
        return None
    try:
        return datetime(year, month, day, hours, minutes, seconds)  # noqa: DTZ001 - the profile has no zone
    except ValueError:
        return None


def parse_plx_spot_check(data: ByteData) -> PlxSpotCheck:
    """Parse a PLX Spot-check Measurement (0x2A5E); raise ParseError (only) for malformed bytes.

    Same length rule as 0x2A5F (docs/devices/plx.md): every announced field must be there; trailing
    bytes are an error unless a reserved flag bit (5–7) is set. An unknown (year 0) or impossible
    Date Time gives timestamp None (see _parse_date_time).
    """
    buf = bytes(data)
    if not buf:
        raise ParseError("PLX spot-check 0x2A5E: empty packet")
    flags = buf[0]
    _check_length(
        "PLX spot-check 0x2A5E",
        len(buf),
        _spot_check_length(flags),
        f"flags 0x{flags:02X}",
        bool(flags & RESERVED_SPOT_CHECK_FLAGS),
    )
    spo2_raw, pr_raw = struct.unpack_from("<HH", buf, 1)
    offset = 5
    timestamp: datetime | None = None
    measurement_status: MeasurementStatus | None = None
    device_sensor_status: DeviceSensorStatus | None = None
    pai: float | None = None
    if flags & PlxSpotCheckFlags.TIMESTAMP:
        timestamp = _parse_date_time(buf, offset)
        offset += DATE_TIME_LENGTH
    if flags & PlxSpotCheckFlags.MEASUREMENT_STATUS:
        measurement_status = MeasurementStatus(struct.unpack_from("<H", buf, offset)[0])
        offset += 2
    if flags & PlxSpotCheckFlags.DEVICE_SENSOR_STATUS:
        device_sensor_status = DeviceSensorStatus(int.from_bytes(buf[offset : offset + 3], "little"))
        offset += 3
    if flags & PlxSpotCheckFlags.PULSE_AMPLITUDE_INDEX:
        pai = decode_sfloat(struct.unpack_from("<H", buf, offset)[0])
    return PlxSpotCheck(
        spo2=decode_sfloat(spo2_raw),
        pulse_rate=decode_sfloat(pr_raw),
        timestamp=timestamp,
        measurement_status=measurement_status,
        device_sensor_status=device_sensor_status,
        pulse_amplitude_index=pai,
        flags=flags,
    )


def _status_quality(ms: MeasurementStatus | None, dss: DeviceSensorStatus | None) -> Quality:
    quality = Quality.NONE
    if ms is not None:
        for ms_bit, ms_quality in MEASUREMENT_STATUS_QUALITY.items():
            if ms & ms_bit:
                quality |= ms_quality
    if dss is not None:
        for dss_bit, dss_quality in DEVICE_SENSOR_STATUS_QUALITY.items():
            if dss & dss_bit:
                quality |= dss_quality
    return quality


def spot_check_quality(m: PlxSpotCheck) -> Quality:
    """Quality flags of a spot-check, from the tables plx_quality uses (bit 9 → FROM_STORAGE)."""
    return _status_quality(m.measurement_status, m.device_sensor_status)


def spot_check_to_numerics(m: PlxSpotCheck, *, device: str, mono: float, wall: float) -> list[Numeric]:
    """Turn a spot-check into Numerics (SpO2, pulse rate, perfusion index when present).

    Same rules as to_numerics: one Quality for all (a stored record carries FROM_STORAGE), and the
    values are withheld (None) when the device flagged them invalid or unavailable or the sensor is off.
    `mono`/`wall` are the caller's choice (arrival time, or the record's own time for stored records).
    """
    quality = spot_check_quality(m)
    withheld = m.invalid or m.unavailable or m.sensor_off

    def numeric(param: Param, value: float | None) -> Numeric:
        return Numeric(param, None if withheld else value, mono, wall, device, quality)

    out = [numeric(Param.SPO2, m.spo2), numeric(Param.PULSE_RATE, m.pulse_rate)]
    if m.has_pulse_amplitude_index:
        out.append(numeric(Param.PERFUSION_INDEX, m.pulse_amplitude_index))
    return out


def _date_time_bytes(value: datetime | None) -> bytes:
    if value is None:
        return bytes(DATE_TIME_LENGTH)  # year 0 etc.: "unknown"
    return struct.pack("<HBBBBB", value.year, value.month, value.day, value.hour, value.minute, value.second)


def build_plx_spot_check(
    *,
    spo2: float | None,
    pulse_rate: float | None,
    timestamp: datetime | None = None,
    measurement_status: int | None = None,
    device_sensor_status: int | None = None,
    pulse_amplitude_index: float | None = None,
    device_clock_not_set: bool = False,
    flags: int | None = None,
) -> bytes:
    """Encode a PLX Spot-check Measurement (0x2A5E): the inverse of parse_plx_spot_check.

    With `flags` None, a field is sent when its value is not None, and bit 4 from
    `device_clock_not_set`. With explicit `flags` (0–255) bits 0–3 decide which fields are sent
    (None → "unknown" Date Time, NaN, or status 0), a value for a field whose bit is clear is a
    ValueError, and bits 4–7 are sent as given. Sub-second parts of `timestamp` are dropped.
    """
    f = PlxSpotCheckFlags
    fields = (
        (f.TIMESTAMP, timestamp is not None, "timestamp"),
        (f.MEASUREMENT_STATUS, measurement_status is not None, "measurement_status"),
        (f.DEVICE_SENSOR_STATUS, device_sensor_status is not None, "device_sensor_status"),
        (f.PULSE_AMPLITUDE_INDEX, pulse_amplitude_index is not None, "pulse_amplitude_index"),
    )
    if flags is None:
        flags = f.DEVICE_CLOCK_NOT_SET if device_clock_not_set else 0
        for bit, given, _ in fields:
            if given:
                flags |= bit
    else:
        if not 0 <= flags <= 0xFF:
            raise ValueError(f"flags {flags:#x} do not fit a byte")
        for bit, given, name in fields:
            if given and not flags & bit:
                raise ValueError(f"{name} given but flag bit {bit.bit_length() - 1} is clear")
        if device_clock_not_set and not flags & f.DEVICE_CLOCK_NOT_SET:
            raise ValueError("device_clock_not_set given but flag bit 4 is clear")
    out = bytearray([flags])
    out += struct.pack("<HH", sfloat_nearest(spo2), sfloat_nearest(pulse_rate))
    if flags & f.TIMESTAMP:
        out += _date_time_bytes(timestamp)
    if flags & f.MEASUREMENT_STATUS:
        out += struct.pack("<H", _fits("measurement_status", measurement_status, 16))
    if flags & f.DEVICE_SENSOR_STATUS:
        out += _fits("device_sensor_status", device_sensor_status, 24).to_bytes(3, "little")
    if flags & f.PULSE_AMPLITUDE_INDEX:
        out += struct.pack("<H", sfloat_nearest(pulse_amplitude_index))
    return bytes(out)


# ------------------------------------------------------------------------------------- RACP 0x2A52


class RacpOpCode(IntEnum):
    """RACP op codes (Bluetooth RACP; gatt.md "RACP": 01 report, 04 report number, 05/06 responses)."""

    REPORT_STORED_RECORDS = 0x01
    DELETE_STORED_RECORDS = 0x02
    ABORT_OPERATION = 0x03
    REPORT_NUMBER_OF_STORED_RECORDS = 0x04
    NUMBER_OF_STORED_RECORDS_RESPONSE = 0x05
    RESPONSE_CODE = 0x06


class RacpOperator(IntEnum):
    """RACP operators; responses carry NULL (0)."""

    NULL = 0x00
    ALL_RECORDS = 0x01
    LESS_THAN_OR_EQUAL = 0x02
    GREATER_THAN_OR_EQUAL = 0x03
    WITHIN_RANGE = 0x04
    FIRST_RECORD = 0x05
    LAST_RECORD = 0x06


class RacpResponseCode(IntEnum):
    """Response Code values of an `06 00 <request op> <code>` response."""

    SUCCESS = 0x01
    OP_CODE_NOT_SUPPORTED = 0x02
    INVALID_OPERATOR = 0x03
    OPERATOR_NOT_SUPPORTED = 0x04
    INVALID_OPERAND = 0x05
    NO_RECORDS_FOUND = 0x06
    ABORT_UNSUCCESSFUL = 0x07
    PROCEDURE_NOT_COMPLETED = 0x08
    OPERAND_NOT_SUPPORTED = 0x09


@dataclass(frozen=True, slots=True)
class RacpNumberOfRecords:
    """`05 00 <u16>`: how many records the device holds (answer to `04 01`)."""

    count: int


@dataclass(frozen=True, slots=True)
class RacpResponse:
    """`06 00 <request op> <code>`: the outcome of a request; `code` is an int if not a known value."""

    request_op: RacpOpCode
    code: RacpResponseCode | int

    @property
    def success(self) -> bool:
        """The request succeeded (code 0x01)."""
        return self.code == RacpResponseCode.SUCCESS


def build_racp(op: int, operator: int, operand: ByteData = b"") -> bytes:
    """Encode an RACP write: op code, operator, operand; e.g. build_racp(4, 1) == b"\\x04\\x01"."""
    return bytes([_fits("op", op, 8), _fits("operator", operator, 8)]) + bytes(operand)


def parse_racp_response(data: ByteData) -> RacpNumberOfRecords | RacpResponse:
    """Parse an RACP indication; raise ParseError (only) for anything but the two responses we use.

    `05 00 <u16 count>` → RacpNumberOfRecords; `06 00 <request op> <code>` → RacpResponse. Both are
    exactly 4 bytes with operator 0x00; the request op of a response code must be a known op code.
    """
    buf = bytes(data)
    if len(buf) < 2:
        raise ParseError(f"RACP 0x2A52: {len(buf)} byte(s), need at least 2")
    op, operator = buf[0], buf[1]
    if op not in (RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, RacpOpCode.RESPONSE_CODE):
        raise ParseError(f"RACP 0x2A52: op code 0x{op:02X} is not a response")
    if operator != RacpOperator.NULL:
        raise ParseError(f"RACP 0x2A52: response operator 0x{operator:02X}, expected 0x00")
    if len(buf) != 4:
        raise ParseError(f"RACP 0x2A52: response op 0x{op:02X} with {len(buf)} bytes, expected 4")
    if op == RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
        return RacpNumberOfRecords(buf[2] | buf[3] << 8)
    try:
        request_op = RacpOpCode(buf[2])
    except ValueError as exc:
        raise ParseError(f"RACP 0x2A52: response to unknown op code 0x{buf[2]:02X}") from exc
    code: RacpResponseCode | int
    try:
        code = RacpResponseCode(buf[3])
    except ValueError:
        code = buf[3]
    return RacpResponse(request_op, code)
