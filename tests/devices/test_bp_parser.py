"""Tests of the Blood Pressure (0x1810) parser, encoder and driver against docs/devices/bp.md and gatt.md."""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from devices.bp.driver import (
    BP_MEASUREMENT,
    BP_SERVICE,
    DEFAULT_STORED_AFTER_S,
    INTERMEDIATE_CUFF_PRESSURE,
    bp_spec,
    is_stored,
)
from devices.bp.parser import (
    MMHG_PER_KPA,
    BPDateTime,
    BPFeature,
    BPMeasurement,
    BPMeasurementStatus,
    ParseError,
    PulseRateRange,
    build_bp_feature,
    build_bp_measurement,
    measured_wall,
    parse_bp_feature,
    parse_bp_measurement,
    parse_intermediate_cuff_pressure,
    to_blood_pressure,
)
from devices.ieee11073 import SFLOAT_SPECIALS
from kapmonitor.measurements import BloodPressure, BPStatus

PAGE = Path(__file__).resolve().parents[2] / "docs" / "devices" / "bp.md"
BERLIN = ZoneInfo("Europe/Berlin")
S = BPMeasurementStatus
B = BPStatus


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _length(flags: int) -> int:
    """Expected length, written out independently of the parser."""
    return 7 + 7 * (flags >> 1 & 1) + 2 * (flags >> 2 & 1) + (flags >> 3 & 1) + 2 * (flags >> 4 & 1)


def _m(
    sys: float | None,
    dia: float | None,
    mean: float | None,
    flags: int,
    *,
    ts: BPDateTime | None = None,
    pulse: float | None = None,
    user: int | None = None,
    status: int | None = None,
) -> BPMeasurement:
    return BPMeasurement(
        systolic=sys,
        diastolic=dia,
        mean=mean,
        kpa=bool(flags & 1),
        timestamp=ts,
        pulse_rate=pulse,
        user_id=user,
        status=None if status is None else BPMeasurementStatus(status),
        flags=flags,
    )


def _kwargs(m: BPMeasurement) -> dict[str, Any]:
    return {
        "systolic": m.systolic,
        "diastolic": m.diastolic,
        "mean": m.mean,
        "kpa": m.kpa,
        "timestamp": m.timestamp,
        "pulse_rate": m.pulse_rate,
        "user_id": m.user_id,
        "status": None if m.status is None else int(m.status),
        "flags": m.flags,
    }


# ------------------------------------------------------------------------ examples of the wire page


@dataclass(frozen=True)
class Example:
    wire: str
    parsed: BPMeasurement
    out: tuple[float | None, float | None, float | None, float | None]  # sys, dia, MAP (mmHg), pulse
    status: BPStatus = B.NONE
    user: int | None = None
    measured: float | None = None  # UTC POSIX seconds with tz Europe/Berlin
    canonical: bool = True  # build_bp_measurement(**parsed) gives exactly these bytes


EXAMPLES = [
    Example(
        "1E 78 00 50 00 5D 00 E8 07 05 06 07 08 09 48 00 01 04 00",
        _m(120, 80, 93, 0x1E, ts=BPDateTime(2024, 5, 6, 7, 8, 9), pulse=72, user=1, status=S.IRREGULAR_PULSE),
        (120, 80, 93, 72),
        B.IRREGULAR_PULSE,
        user=1,
        measured=_utc("2024-05-06T05:08:09"),  # CEST = UTC+2
    ),
    Example("00 79 00 4F 00 5E 00", _m(121, 79, 94, 0x00), (121, 79, 94, None)),
    Example("01 A0 F0 6B F0 7C F0", _m(16.0, 10.7, 12.4, 0x01), (120.0, 80.3, 93.0, None)),
    Example(
        "14 FF 07 FF 07 FF 07 FF 07 01 00",
        _m(None, None, None, 0x14, status=S.BODY_MOVEMENT),
        (None, None, None, None),
        B.BODY_MOVEMENT | B.MEASUREMENT_ERROR,
    ),
    Example(
        "14 96 00 5F 00 71 00 82 00 08 00",
        _m(150, 95, 113, 0x14, pulse=130, status=0x0008),
        (150, 95, 113, 130),
        B.PULSE_ABOVE_RANGE,
    ),
    Example(
        "14 76 00 4C 00 5A 00 2C 00 32 00",
        _m(118, 76, 90, 0x14, pulse=44, status=0x0032),
        (118, 76, 90, 44),
        B.CUFF_TOO_LOOSE | B.PULSE_BELOW_RANGE | B.IMPROPER_POSITION,
    ),
    Example(
        "0A 7D 00 52 00 60 00 00 00 00 00 00 00 00 FF",
        _m(125, 82, 96, 0x0A, ts=BPDateTime(0, 0, 0, 0, 0, 0), user=255),
        (125, 82, 96, None),
    ),
    Example(
        "02 78 00 50 00 5D 00 E9 07 02 1E 0C 00 00",
        _m(120, 80, 93, 0x02, ts=BPDateTime(2025, 2, 30, 12, 0, 0)),
        (120, 80, 93, None),
    ),
    Example("20 78 00 50 00 5D 00 AB", _m(120, 80, 93, 0x20), (120, 80, 93, None), canonical=False),
    Example("00 78 00 50 00 00 08", _m(120, 80, None, 0x00), (120, 80, None, None), canonical=False),  # NRes
    Example("10 78 00 50 00 5D 00 18 80", _m(120, 80, 93, 0x10, status=0x8018), (120, 80, 93, None)),
    Example(
        "1F BB F0 78 F0 8E F0 EA 07 0B 19 0D 05 00 58 00 02 00 00",
        _m(18.7, 12.0, 14.2, 0x1F, ts=BPDateTime(2026, 11, 25, 13, 5, 0), pulse=88, user=2, status=0),
        (140.3, 90.0, 106.5, 88),
        user=2,
        measured=_utc("2026-11-25T12:05:00"),  # CET = UTC+1
    ),
]

REFUSED = [
    "",
    "00 78 00 50 00 5D",
    "02 78 00 50 00 5D 00 E8 07 05 06 07 08",
    "1E 78 00 50 00 5D 00 E8 07 05 06 07 08 09 48 00 01 04",
    "00 78 00 50 00 5D 00 00",
]

INTERMEDIATE_EXAMPLES = [
    ("00 A0 00 FF 07 FF 07", _m(160, None, None, 0x00)),
    ("04 5A 00 FF 07 FF 07 FF 07", _m(90, None, None, 0x04)),
]

FEATURE_EXAMPLES = [
    ("00 00", BPFeature(0)),
    ("3F 00", BPFeature(0x3F)),
    (
        "07 00",
        BPFeature.BODY_MOVEMENT_DETECTION
        | BPFeature.CUFF_FIT_DETECTION
        | BPFeature.IRREGULAR_PULSE_DETECTION,
    ),
    ("40 00 FF", BPFeature(0x40)),
]
FEATURES_REFUSED = ["01", "01 00 00"]


def _page_byte_cells() -> list[str]:
    """Every `XX XX …` cell in the first column of bytes of the page's tables."""
    return re.findall(r"^\| (?:\d+ \| )?`([0-9A-F]{2}(?: [0-9A-F]{2})*)` \|", PAGE.read_text(), re.MULTILINE)


def test_page_lists_exactly_the_examples_tested_here() -> None:
    tested = (
        [e.wire for e in EXAMPLES]
        + [r for r in REFUSED if r]
        + [w for w, _ in INTERMEDIATE_EXAMPLES]
        + [w for w, _ in FEATURE_EXAMPLES]
        + FEATURES_REFUSED
    )
    assert sorted(_page_byte_cells()) == sorted(tested)


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e.wire for e in EXAMPLES])
def test_page_example_parses(ex: Example) -> None:
    m = parse_bp_measurement(bytes.fromhex(ex.wire))
    assert m == ex.parsed
    bp = to_blood_pressure(m, device="AA:BB", mono=12.5, wall=1_800_000_000.0, tz=BERLIN)
    assert (bp.systolic, bp.diastolic, bp.mean, bp.pulse_rate) == ex.out
    assert bp.status == ex.status
    assert bp.user_id == ex.user
    assert bp.measured_wall == ex.measured
    assert (bp.mono, bp.wall, bp.device, bp.stored) == (12.5, 1_800_000_000.0, "AA:BB", False)


@pytest.mark.parametrize("ex", [e for e in EXAMPLES if e.canonical], ids=lambda e: e.wire)
def test_page_example_is_what_the_encoder_sends(ex: Example) -> None:
    assert build_bp_measurement(**_kwargs(ex.parsed)) == bytes.fromhex(ex.wire)


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e.wire for e in EXAMPLES])
def test_page_example_survives_build_and_parse(ex: Example) -> None:
    assert parse_bp_measurement(build_bp_measurement(**_kwargs(ex.parsed))) == ex.parsed


@pytest.mark.parametrize("wire", REFUSED)
def test_page_refused_example(wire: str) -> None:
    with pytest.raises(ParseError):
        parse_bp_measurement(bytes.fromhex(wire))
    with pytest.raises(ParseError):
        parse_intermediate_cuff_pressure(bytes.fromhex(wire))


@pytest.mark.parametrize(("wire", "parsed"), INTERMEDIATE_EXAMPLES)
def test_page_intermediate_example(wire: str, parsed: BPMeasurement) -> None:
    m = parse_intermediate_cuff_pressure(bytes.fromhex(wire))
    assert m == parsed
    assert m.cuff_pressure == parsed.systolic
    assert build_bp_measurement(**_kwargs(parsed)) == bytes.fromhex(wire)


@pytest.mark.parametrize(("wire", "features"), FEATURE_EXAMPLES)
def test_page_feature_example(wire: str, features: BPFeature) -> None:
    assert parse_bp_feature(bytes.fromhex(wire)) == features


@pytest.mark.parametrize("wire", FEATURES_REFUSED)
def test_page_refused_feature_example(wire: str) -> None:
    with pytest.raises(ParseError):
        parse_bp_feature(bytes.fromhex(wire))


def test_feature_bits_have_their_gatt_names() -> None:
    assert [f.name for f in BPFeature] == [
        "BODY_MOVEMENT_DETECTION",
        "CUFF_FIT_DETECTION",
        "IRREGULAR_PULSE_DETECTION",
        "PULSE_RATE_RANGE_DETECTION",
        "MEASUREMENT_POSITION_DETECTION",
        "MULTIPLE_BOND",
    ]
    assert [int(f) for f in BPFeature] == [1, 2, 4, 8, 16, 32]
    for features in (0, 0x3F, 0x0040, 0xFFFF):
        assert parse_bp_feature(build_bp_feature(features)) == features
    with pytest.raises(ValueError, match="does not fit"):
        build_bp_feature(0x10000)


def test_parses_bytearray_and_memoryview() -> None:
    wire = bytes.fromhex(EXAMPLES[0].wire)
    assert parse_bp_measurement(bytearray(wire)) == EXAMPLES[0].parsed
    assert parse_bp_measurement(memoryview(wire)) == EXAMPLES[0].parsed


def test_parse_error_messages_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"0x2A35: 6 bytes, but flags 0x00 announce 7"):
        parse_bp_measurement(bytes.fromhex("00 78 00 50 00 5D"))
    with pytest.raises(ParseError, match=r"0x2A36: 1 trailing byte"):
        parse_intermediate_cuff_pressure(bytes.fromhex("00 78 00 50 00 5D 00 00"))
    with pytest.raises(ParseError, match="empty"):
        parse_bp_measurement(b"")


# ------------------------------------------------------------------------- every flag combination


def _distinct(flags: int) -> dict[str, Any]:
    """Different non-default values in every slot the flags announce (kPa values when bit 0)."""
    kpa = bool(flags & 1)
    return {
        "systolic": 17.3 if kpa else 131,
        "diastolic": 11.1 if kpa else 84,
        "mean": 13.2 if kpa else 99,
        "kpa": kpa,
        "timestamp": BPDateTime(2026, 12, 31, 23, 59, 58) if flags & 2 else None,
        "pulse_rate": 67 if flags & 4 else None,
        "user_id": 7 if flags & 8 else None,
        "status": S.CUFF_TOO_LOOSE | S.IMPROPER_POSITION if flags & 16 else None,
    }


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination_round_trips(flags: int) -> None:
    values = _distinct(flags)
    wire = build_bp_measurement(**values)
    assert wire[0] == flags
    assert len(wire) == _length(flags)
    m = parse_bp_measurement(wire)
    assert m == BPMeasurement(**values, flags=flags)
    assert m.has_pulse_rate == bool(flags & 4)
    assert m.reserved_flags == 0
    assert parse_intermediate_cuff_pressure(wire) == m


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination_with_no_values_round_trips(flags: int) -> None:
    wire = build_bp_measurement(systolic=None, diastolic=None, mean=None, flags=flags)
    assert len(wire) == _length(flags)
    m = parse_bp_measurement(wire)
    assert m.flags == flags and m.kpa == bool(flags & 1)
    assert (m.systolic, m.diastolic, m.mean, m.pulse_rate) == (None, None, None, None)
    assert m.timestamp == (BPDateTime(0, 0, 0, 0, 0, 0) if flags & 2 else None)
    assert m.user_id == (0 if flags & 8 else None)
    assert m.status == (0 if flags & 16 else None)


@pytest.mark.parametrize("flags", range(32))
def test_every_truncation_and_extension_is_refused(flags: int) -> None:
    wire = build_bp_measurement(**_distinct(flags))
    for cut in range(len(wire)):
        with pytest.raises(ParseError):
            parse_bp_measurement(wire[:cut])
    with pytest.raises(ParseError, match="trailing"):
        parse_bp_measurement(wire + b"\x00")
    # the same with a reserved flag bit: the extra bytes belong to a future field
    for reserved in (0x20, 0x40, 0x80):
        future = bytes([flags | reserved]) + wire[1:] + b"\xab\xcd"
        m = parse_bp_measurement(future)
        assert m.reserved_flags == reserved
        assert m == BPMeasurement(**_distinct(flags), flags=flags | reserved)


def test_explicit_flags_must_announce_the_given_fields() -> None:
    with pytest.raises(ValueError, match="pulse_rate given but flag bit 2"):
        build_bp_measurement(systolic=1, diastolic=1, mean=1, pulse_rate=60, flags=0)
    with pytest.raises(ValueError, match="timestamp given but flag bit 1"):
        build_bp_measurement(
            systolic=1, diastolic=1, mean=1, timestamp=BPDateTime(2026, 1, 1, 0, 0, 0), flags=0x1D
        )
    with pytest.raises(ValueError, match="does not fit"):
        build_bp_measurement(systolic=1, diastolic=1, mean=1, user_id=256)
    with pytest.raises(ValueError, match="does not fit"):
        build_bp_measurement(systolic=1, diastolic=1, mean=1, flags=0x100)


def test_encoder_takes_a_naive_local_datetime() -> None:
    wire = build_bp_measurement(
        systolic=120,
        diastolic=80,
        mean=93,
        timestamp=datetime(2024, 5, 6, 7, 8, 9, 999, tzinfo=UTC).replace(tzinfo=None),
    )
    assert parse_bp_measurement(wire).timestamp == BPDateTime(2024, 5, 6, 7, 8, 9)


# -------------------------------------------------------------------------------------- status bits


@pytest.mark.parametrize(
    ("bit", "expected"),
    [
        (0, B.BODY_MOVEMENT),
        (1, B.CUFF_TOO_LOOSE),
        (2, B.IRREGULAR_PULSE),
        (3, B.PULSE_ABOVE_RANGE),  # range field = 1
        (4, B.PULSE_BELOW_RANGE),  # range field = 2
        (5, B.IMPROPER_POSITION),
        *((bit, B.NONE) for bit in range(6, 16)),  # reserved
    ],
)
def test_every_status_bit(bit: int, expected: BPStatus) -> None:
    wire = build_bp_measurement(systolic=120, diastolic=80, mean=93, status=1 << bit)
    m = parse_bp_measurement(wire)
    assert m.status is not None and int(m.status) == 1 << bit
    bp = to_blood_pressure(m, device="d", mono=0.0, wall=0.0, tz=UTC)
    assert bp.status == expected
    assert (bp.systolic, bp.diastolic, bp.mean) == (120, 80, 93)  # status bits never withhold values


@pytest.mark.parametrize(
    ("field", "expected_range", "expected_status"),
    [
        (0, PulseRateRange.IN_RANGE, B.NONE),
        (1, PulseRateRange.ABOVE_UPPER_LIMIT, B.PULSE_ABOVE_RANGE),
        (2, PulseRateRange.BELOW_LOWER_LIMIT, B.PULSE_BELOW_RANGE),
        (3, PulseRateRange.RESERVED, B.NONE),
    ],
)
def test_pulse_rate_range_is_a_two_bit_field(
    field: int, expected_range: PulseRateRange, expected_status: BPStatus
) -> None:
    others = 0b100101  # body movement, irregular pulse, improper position around the field
    m = parse_bp_measurement(
        build_bp_measurement(systolic=120, diastolic=80, mean=93, status=others | field << 3)
    )
    assert m.pulse_rate_range == expected_range
    status = to_blood_pressure(m, device="d", mono=0.0, wall=0.0, tz=UTC).status
    assert status == B.BODY_MOVEMENT | B.IRREGULAR_PULSE | B.IMPROPER_POSITION | expected_status


def test_no_status_field_means_no_status() -> None:
    m = parse_bp_measurement(bytes.fromhex("00 79 00 4F 00 5E 00"))
    assert m.status is None and m.pulse_rate_range is None


# ------------------------------------------------------------------------------- units and specials


@pytest.mark.parametrize("kpa", [1.0, 10.7, 16.0, 18.7, 24.5, 33.3])
def test_kpa_is_converted_to_mmhg(kpa: float) -> None:
    m = parse_bp_measurement(build_bp_measurement(systolic=kpa, diastolic=kpa, mean=kpa, kpa=True))
    assert m.kpa and m.systolic == kpa
    bp = to_blood_pressure(m, device="d", mono=0.0, wall=0.0, tz=UTC)
    assert bp.systolic == pytest.approx(kpa * 7.50062, abs=0.05)
    assert bp.diastolic == bp.systolic == bp.mean
    assert MMHG_PER_KPA == 7.50062


def test_mmhg_values_are_not_scaled() -> None:
    m = parse_bp_measurement(build_bp_measurement(systolic=16, diastolic=10, mean=12))
    assert to_blood_pressure(m, device="d", mono=0.0, wall=0.0, tz=UTC).systolic == 16


@pytest.mark.parametrize("special", sorted(SFLOAT_SPECIALS))
@pytest.mark.parametrize("slot", ["systolic", "diastolic", "mean", "pulse"])
def test_every_special_code_in_every_slot_is_no_value(special: int, slot: str) -> None:
    raws = {"systolic": 120, "diastolic": 80, "mean": 93, "pulse": 72}
    raws[slot] = special
    wire = bytes([0x04]) + struct.pack(
        "<HHHH", raws["systolic"], raws["diastolic"], raws["mean"], raws["pulse"]
    )
    m = parse_bp_measurement(wire)
    got = {"systolic": m.systolic, "diastolic": m.diastolic, "mean": m.mean, "pulse": m.pulse_rate}
    assert got[slot] is None
    assert all(v is not None for k, v in got.items() if k != slot)
    bp = to_blood_pressure(m, device="d", mono=0.0, wall=0.0, tz=UTC)
    if slot in ("systolic", "diastolic"):
        assert bp.status == B.MEASUREMENT_ERROR
        assert (bp.systolic, bp.diastolic, bp.mean) == (None, None, None)
        assert bp.pulse_rate == 72
    else:
        assert bp.status == B.NONE
        assert bp.systolic == 120 and bp.diastolic == 80


# ----------------------------------------------------------------------------------------- time


def test_measured_wall_reads_the_cuff_clock_as_local_time() -> None:
    ts = BPDateTime(2026, 11, 25, 13, 5, 0)
    assert measured_wall(ts, UTC) == _utc("2026-11-25T13:05:00")
    assert measured_wall(ts, BERLIN) == _utc("2026-11-25T12:05:00")
    assert measured_wall(ts, timezone(timedelta(hours=-5))) == _utc("2026-11-25T18:05:00")
    assert measured_wall(None, UTC) is None


def test_dst_fall_back_takes_the_first_occurrence_and_spring_forward_does_not_crash() -> None:
    # 2026-10-25 02:30 happens twice in Berlin: the CEST one (00:30Z) is taken
    assert measured_wall(BPDateTime(2026, 10, 25, 2, 30, 0), BERLIN) == _utc("2026-10-25T00:30:00")
    # 2026-03-29 02:30 does not exist in Berlin; it is placed, not refused
    assert measured_wall(BPDateTime(2026, 3, 29, 2, 30, 0), BERLIN) is not None


@pytest.mark.parametrize(
    "ts",
    [
        BPDateTime(0, 5, 6, 7, 8, 9),  # year unknown
        BPDateTime(1581, 5, 6, 7, 8, 9),  # before the Date Time range
        BPDateTime(2024, 0, 6, 7, 8, 9),  # month unknown
        BPDateTime(2024, 13, 6, 7, 8, 9),
        BPDateTime(2024, 5, 0, 7, 8, 9),  # day unknown
        BPDateTime(2025, 2, 29, 7, 8, 9),  # not a leap year
        BPDateTime(2024, 4, 31, 7, 8, 9),
        BPDateTime(2024, 5, 6, 24, 0, 0),
        BPDateTime(2024, 5, 6, 7, 60, 0),
        BPDateTime(2024, 5, 6, 7, 8, 60),
        BPDateTime(65535, 255, 255, 255, 255, 255),
    ],
)
def test_impossible_or_unknown_dates_give_no_measured_time(ts: BPDateTime) -> None:
    m = parse_bp_measurement(build_bp_measurement(systolic=120, diastolic=80, mean=93, timestamp=ts))
    assert m.timestamp == ts
    bp = to_blood_pressure(m, device="d", mono=0.0, wall=0.0, tz=BERLIN)
    assert bp.measured_wall is None
    assert bp.systolic == 120  # the reading itself is kept


def test_user_255_is_unknown() -> None:
    for raw, known in ((0, 0), (1, 1), (254, 254), (255, None)):
        m = parse_bp_measurement(build_bp_measurement(systolic=120, diastolic=80, mean=93, user_id=raw))
        assert m.user_id == raw and m.known_user_id == known
        assert to_blood_pressure(m, device="d", mono=0.0, wall=0.0, tz=UTC).user_id == known


# ---------------------------------------------------------------------------------- any bytes at all


@given(st.binary(max_size=40))
@example(b"\xff" * 19)
@example(bytes.fromhex("1E 78 00 50 00 5D 00 E8 07 05 06 07 08 09 48 00 01 04 00"))
def test_any_bytes_give_a_measurement_or_a_parse_error(data: bytes) -> None:
    for parse in (parse_bp_measurement, parse_intermediate_cuff_pressure):
        try:
            m = parse(data)
        except ParseError:
            continue
        assert len(data) >= _length(data[0])
        assert len(data) == _length(data[0]) or data[0] & 0xE0
        bp = to_blood_pressure(m, device="d", mono=1.0, wall=2.0, tz=BERLIN)
        for value in (bp.systolic, bp.diastolic, bp.mean, bp.pulse_rate):
            assert value is None or math.isfinite(value)
        assert bp.measured_wall is None or math.isfinite(bp.measured_wall)
    try:
        parse_bp_feature(data)
    except ParseError:
        assert len(data) < 2 or (len(data) > 2 and not (data[0] | data[1] << 8) & 0xFFC0)


_finite_mmhg = st.integers(min_value=0, max_value=300).map(float)
_date_times = st.builds(
    BPDateTime,
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
)


@given(
    sys=st.none() | _finite_mmhg,
    dia=st.none() | _finite_mmhg,
    mean=st.none() | _finite_mmhg,
    ts=st.none() | _date_times,
    pulse=st.none() | _finite_mmhg,
    user=st.none() | st.integers(0, 255),
    status=st.none() | st.integers(0, 0xFFFF),
)
def test_any_encoded_measurement_parses_back(
    *,
    sys: float | None,
    dia: float | None,
    mean: float | None,
    ts: BPDateTime | None,
    pulse: float | None,
    user: int | None,
    status: int | None,
) -> None:
    wire = build_bp_measurement(
        systolic=sys, diastolic=dia, mean=mean, timestamp=ts, pulse_rate=pulse, user_id=user, status=status
    )
    m = parse_bp_measurement(wire)
    assert (m.systolic, m.diastolic, m.mean, m.timestamp, m.pulse_rate, m.user_id) == (
        sys,
        dia,
        mean,
        ts,
        pulse,
        user,
    )
    assert m.status == status


# ------------------------------------------------------------------------------------------ driver


def test_spec_subscribes_to_the_measurement_and_the_cuff_pressure() -> None:
    spec = bp_spec(BERLIN)
    assert spec.kind == "blood-pressure"
    assert spec.service_uuids == (BP_SERVICE,) == ("00001810-0000-1000-8000-00805f9b34fb",)
    assert [s.characteristic for s in spec.subscriptions] == [BP_MEASUREMENT, INTERMEDIATE_CUFF_PRESSURE]
    assert spec.matches(None, ["00001810-0000-1000-8000-00805F9B34FB"])
    assert not spec.matches("KAP-Emu PLX", ["00001822-0000-1000-8000-00805f9b34fb"])
    with pytest.raises(ValueError):
        bp_spec(BERLIN, stored_after_s=-1.0)


def test_measurement_decoder_gives_one_blood_pressure() -> None:
    decode = bp_spec(BERLIN).subscriptions[0].decode
    wire = bytes.fromhex(EXAMPLES[0].wire)
    measured = _utc("2024-05-06T05:08:09")
    (fresh,) = decode(wire, "AA:BB", 5.0, measured + 30.0)
    assert isinstance(fresh, BloodPressure)
    assert (fresh.systolic, fresh.diastolic, fresh.mean, fresh.pulse_rate) == (120, 80, 93, 72)
    assert fresh.measured_wall == measured and not fresh.stored
    (old,) = decode(wire, "AA:BB", 5.0, measured + 3600.0)
    assert isinstance(old, BloodPressure) and old.stored
    with pytest.raises(ParseError):
        decode(wire[:-1], "AA:BB", 5.0, measured)


def test_stored_threshold_is_a_parameter() -> None:
    assert DEFAULT_STORED_AFTER_S == 120.0
    assert not is_stored(1000.0, 1120.0, 120.0)  # exactly N seconds old: still live
    assert is_stored(1000.0, 1120.5, 120.0)
    assert not is_stored(1000.0, 1050.0, 120.0)
    assert is_stored(1000.0, 1050.0, 30.0)
    assert not is_stored(2000.0, 1000.0, 120.0)  # cuff clock ahead: live
    assert not is_stored(None, 1e12, 120.0)  # no usable timestamp: live
    wire = bytes.fromhex(EXAMPLES[0].wire)
    measured = _utc("2024-05-06T05:08:09")
    (reading,) = bp_spec(BERLIN, stored_after_s=10.0).subscriptions[0].decode(wire, "d", 0.0, measured + 30.0)
    assert isinstance(reading, BloodPressure) and reading.stored


def test_intermediate_decoder_parses_but_yields_nothing() -> None:
    decode = bp_spec(BERLIN).subscriptions[1].decode
    assert decode(bytes.fromhex("00 A0 00 FF 07 FF 07"), "d", 0.0, 0.0) == []
    with pytest.raises(ParseError):
        decode(bytes.fromhex("00 A0 00 FF 07"), "d", 0.0, 0.0)
