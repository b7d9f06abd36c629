"""Tests of the PLX (0x1822) parser and encoder against docs/devices/plx.md and gatt.md."""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from devices.ieee11073 import SFLOAT_SPECIALS, decode_sfloat
from devices.plx.parser import (
    DeviceSensorStatus,
    MeasurementStatus,
    ParseError,
    PlxContinuous,
    PlxFeatures,
    PlxSupportedFeatures,
    build_plx_continuous,
    build_plx_features,
    parse_plx_continuous,
    parse_plx_features,
    plx_quality,
    sfloat_nearest,
    to_numerics,
)
from kapmonitor.measurements import Numeric, Param, Quality

PAGE = Path(__file__).resolve().parents[2] / "docs" / "devices" / "plx.md"

MS = MeasurementStatus
DSS = DeviceSensorStatus
Q = Quality


def _length(flags: int) -> int:
    """Expected length, written out independently of the parser."""
    return (
        5
        + 4 * (flags & 1)
        + 4 * (flags >> 1 & 1)
        + 2 * (flags >> 2 & 1)
        + 3 * (flags >> 3 & 1)
        + 2 * (flags >> 4 & 1)
    )


def _plx(
    spo2: float | None,
    pulse_rate: float | None,
    flags: int,
    *,
    spo2_fast: float | None = None,
    pr_fast: float | None = None,
    spo2_slow: float | None = None,
    pr_slow: float | None = None,
    ms: int | None = None,
    dss: int | None = None,
    pai: float | None = None,
) -> PlxContinuous:
    return PlxContinuous(
        spo2=spo2,
        pulse_rate=pulse_rate,
        spo2_fast=spo2_fast,
        pr_fast=pr_fast,
        spo2_slow=spo2_slow,
        pr_slow=pr_slow,
        measurement_status=None if ms is None else MeasurementStatus(ms),
        device_sensor_status=None if dss is None else DeviceSensorStatus(dss),
        pulse_amplitude_index=pai,
        flags=flags,
    )


def _build_kwargs(m: PlxContinuous) -> dict[str, Any]:
    return asdict(m)


# ------------------------------------------------------------------------ examples of the wire page


@dataclass(frozen=True)
class Example:
    wire: str
    parsed: PlxContinuous
    values: tuple[float | None, ...]  # SpO2, PR[, PI] out of to_numerics
    quality: Quality
    canonical: bool = True  # build_plx_continuous(**parsed) gives exactly these bytes


EXAMPLES = [
    Example("00 61 00 48 00", _plx(97, 72, 0x00), (97, 72), Q.NONE),
    Example(
        "1F D9 F3 48 00 61 00 49 00 62 00 47 00 A0 00 20 00 00 19 F0",
        _plx(
            98.5,
            72,
            0x1F,
            spo2_fast=97,
            pr_fast=73,
            spo2_slow=98,
            pr_slow=71,
            ms=MS.MEASUREMENT_ONGOING | MS.VALIDATED_DATA,
            dss=DSS.LOW_PERFUSION_DETECTED,
            pai=2.5,
        ),
        (98.5, 72, 2.5),
        Q.LOW_PERFUSION,
    ),
    Example(
        "0C FF 07 4E 00 20 00 00 02 00",
        _plx(None, 78, 0x0C, ms=MS.MEASUREMENT_ONGOING, dss=DSS.SIGNAL_ANALYSIS_ONGOING),
        (None, 78),
        Q.SEARCHING,
    ),
    Example(
        "0C 60 00 3C 00 00 00 00 08 00",
        _plx(96, 60, 0x0C, ms=0, dss=DSS.SENSOR_UNCONNECTED_TO_USER),
        (None, None),
        Q.SENSOR_OFF,
    ),
    Example(
        "08 5F 00 48 00 00 A0 00",
        _plx(95, 72, 0x08, dss=DSS.SENSOR_DISPLACED | DSS.SENSOR_DISCONNECTED),
        (None, None),
        Q.SENSOR_OFF,
    ),
    Example(
        "04 62 00 48 00 00 80",
        _plx(98, 72, 0x04, ms=MS.INVALID_MEASUREMENT_DETECTED),
        (None, None),
        Q.INVALID,
    ),
    Example(
        "18 5E 00 55 00 50 00 00 0B F0",
        _plx(94, 85, 0x18, dss=DSS.POOR_SIGNAL_DETECTED | DSS.ERRATIC_SIGNAL_DETECTED, pai=1.1),
        (94, 85, 1.1),
        Q.POOR_SIGNAL,
    ),
    Example("00 62 00 00 08", _plx(98, None, 0x00), (98, None), Q.NONE, canonical=False),  # NRes
    Example(
        "04 61 00 46 00 00 06",
        _plx(97, 70, 0x04, ms=MS.DATA_FROM_MEASUREMENT_STORAGE | MS.DATA_FOR_DEMONSTRATION),
        (97, 70),
        Q.FROM_STORAGE | Q.DEMO,
    ),
    Example(
        "03 D9 F3 48 00 C4 F3 4A 00 DE F3 47 00",
        _plx(98.5, 72, 0x03, spo2_fast=96.4, pr_fast=74, spo2_slow=99, pr_slow=71),
        (98.5, 72),
        Q.NONE,
        canonical=False,  # slow SpO2 99.0 sent as m 990, e −1
    ),
    Example("20 61 00 48 00 AB CD", _plx(97, 72, 0x20), (97, 72), Q.NONE, canonical=False),
]

REFUSED = [
    "",
    "00 61 00",
    "04 61 00 48 00 00",
    "1F D9 F3 48 00 61 00 49 00 62 00 47 00 A0 00 20 00 00 19",
    "00 61 00 48 00 00",
]

FEATURE_EXAMPLES = [
    ("00 00", PlxFeatures(PlxSupportedFeatures(0), None, None)),
    (
        "53 00 20 C0 38 AA 00",
        PlxFeatures(
            PlxSupportedFeatures.MEASUREMENT_STATUS_SUPPORT
            | PlxSupportedFeatures.DEVICE_SENSOR_STATUS_SUPPORT
            | PlxSupportedFeatures.SPO2PR_FAST
            | PlxSupportedFeatures.PULSE_AMPLITUDE_INDEX,
            MS.MEASUREMENT_ONGOING | MS.QUESTIONABLE_MEASUREMENT_DETECTED | MS.INVALID_MEASUREMENT_DETECTED,
            DSS.INADEQUATE_SIGNAL_DETECTED
            | DSS.POOR_SIGNAL_DETECTED
            | DSS.LOW_PERFUSION_DETECTED
            | DSS.SIGNAL_ANALYSIS_ONGOING
            | DSS.SENSOR_UNCONNECTED_TO_USER
            | DSS.SENSOR_DISPLACED
            | DSS.SENSOR_DISCONNECTED,
        ),
    ),
    ("00 01 FF", PlxFeatures(PlxSupportedFeatures(0x0100), None, None)),
]
FEATURES_REFUSED = ["03 00 20 C0", "00 00 00"]


def _page_byte_cells() -> list[str]:
    """Every `XX XX …` cell in the first column of bytes of the page's example tables."""
    cells = re.findall(r"^\| (?:\d+ \| )?`([0-9A-F]{2}(?: [0-9A-F]{2})*)` \|", PAGE.read_text(), re.MULTILINE)
    return cells


def test_page_lists_exactly_the_examples_tested_here() -> None:
    cells = _page_byte_cells()
    tested = (
        [e.wire for e in EXAMPLES]
        + [r for r in REFUSED if r]
        + [w for w, _ in FEATURE_EXAMPLES]
        + FEATURES_REFUSED
    )
    assert sorted(cells) == sorted(tested)


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e.wire for e in EXAMPLES])
def test_page_example_parses(ex: Example) -> None:
    m = parse_plx_continuous(bytes.fromhex(ex.wire))
    assert m == ex.parsed
    numerics = to_numerics(m, device="AA:BB", mono=12.5, wall=1_700_000_000.0)
    assert tuple(n.value for n in numerics) == ex.values
    assert [n.param for n in numerics] == [Param.SPO2, Param.PULSE_RATE, Param.PERFUSION_INDEX][
        : len(ex.values)
    ]
    assert {n.quality for n in numerics} == {ex.quality}


@pytest.mark.parametrize("ex", [e for e in EXAMPLES if e.canonical], ids=lambda e: e.wire)
def test_page_example_is_what_the_encoder_sends(ex: Example) -> None:
    assert build_plx_continuous(**_build_kwargs(ex.parsed)) == bytes.fromhex(ex.wire)


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e.wire for e in EXAMPLES])
def test_page_example_survives_build_and_parse(ex: Example) -> None:
    assert parse_plx_continuous(build_plx_continuous(**_build_kwargs(ex.parsed))) == ex.parsed


@pytest.mark.parametrize("wire", REFUSED)
def test_page_refused_example(wire: str) -> None:
    with pytest.raises(ParseError):
        parse_plx_continuous(bytes.fromhex(wire))


@pytest.mark.parametrize(("wire", "features"), FEATURE_EXAMPLES)
def test_page_feature_example(wire: str, features: PlxFeatures) -> None:
    assert parse_plx_features(bytes.fromhex(wire)) == features


@pytest.mark.parametrize("wire", FEATURES_REFUSED)
def test_page_refused_feature_example(wire: str) -> None:
    with pytest.raises(ParseError):
        parse_plx_features(bytes.fromhex(wire))


def test_feature_example_is_what_the_encoder_sends() -> None:
    assert build_plx_features(
        0x53, measurement_status_support=0xC020, device_sensor_status_support=0x00AA38
    ) == bytes.fromhex("53 00 20 C0 38 AA 00")


def test_gatt_md_sfloat_examples_in_the_spo2_slot() -> None:
    assert parse_plx_continuous(bytes.fromhex("00 60 00 D9 F3")).spo2 == 96
    assert parse_plx_continuous(bytes.fromhex("00 60 00 D9 F3")).pulse_rate == 98.5


def test_parses_bytearray_and_memoryview() -> None:
    wire = bytes.fromhex(EXAMPLES[1].wire)
    assert parse_plx_continuous(bytearray(wire)) == EXAMPLES[1].parsed
    assert parse_plx_continuous(memoryview(wire)) == EXAMPLES[1].parsed


def test_parse_error_is_a_value_error_with_a_message() -> None:
    with pytest.raises(ValueError, match=r"6 bytes, but flags 0x04 announce 7"):
        parse_plx_continuous(bytes.fromhex("04 61 00 48 00 00"))
    with pytest.raises(ParseError, match=r"1 trailing byte"):
        parse_plx_continuous(bytes.fromhex("00 61 00 48 00 00"))


# ------------------------------------------------------------------------- every flag combination


def _distinct_values(flags: int) -> dict[str, Any]:
    """Different non-default values in every slot the flags announce."""
    return {
        "spo2": 97.5,
        "pulse_rate": 61,
        "spo2_fast": 96.1 if flags & 1 else None,
        "pr_fast": 62 if flags & 1 else None,
        "spo2_slow": 95.2 if flags & 2 else None,
        "pr_slow": 63 if flags & 2 else None,
        "measurement_status": MS.MEASUREMENT_ONGOING | MS.FULLY_QUALIFIED_DATA if flags & 4 else None,
        "device_sensor_status": DSS.LOW_PERFUSION_DETECTED | DSS.QUESTIONABLE_PULSE_DETECTED
        if flags & 8
        else None,
        "pulse_amplitude_index": 4.25 if flags & 16 else None,
    }


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination_round_trips(flags: int) -> None:
    values = _distinct_values(flags)
    wire = build_plx_continuous(**values)
    assert wire[0] == flags
    assert len(wire) == _length(flags)
    m = parse_plx_continuous(wire)
    assert m == PlxContinuous(**values, flags=flags)
    assert m.has_fast == bool(flags & 1)
    assert m.has_slow == bool(flags & 2)
    assert m.has_pulse_amplitude_index == bool(flags & 16)
    assert m.reserved_flags == 0


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination_with_no_values_round_trips(flags: int) -> None:
    wire = build_plx_continuous(spo2=None, pulse_rate=None, flags=flags)
    assert len(wire) == _length(flags)
    m = parse_plx_continuous(wire)
    assert m.flags == flags
    assert (m.spo2, m.pulse_rate, m.spo2_fast, m.pr_fast, m.spo2_slow, m.pr_slow) == (None,) * 6
    assert m.pulse_amplitude_index is None
    assert m.measurement_status == (0 if flags & 4 else None)
    assert m.device_sensor_status == (0 if flags & 8 else None)


@pytest.mark.parametrize("flags", range(32))
def test_every_truncation_of_every_flag_combination_is_refused(flags: int) -> None:
    wire = build_plx_continuous(**_distinct_values(flags))
    for size in range(len(wire)):
        with pytest.raises(ParseError):
            parse_plx_continuous(wire[:size])
        with pytest.raises(ParseError):  # the same with a reserved flag bit set
            parse_plx_continuous(bytes([wire[0] | 0x80]) + wire[1:size] if size else b"")


@pytest.mark.parametrize("flags", range(32))
def test_trailing_bytes_are_refused_without_a_reserved_flag(flags: int) -> None:
    wire = build_plx_continuous(**_distinct_values(flags))
    for extra in (b"\x00", b"\xff\xff", bytes(15)):
        with pytest.raises(ParseError, match="trailing"):
            parse_plx_continuous(wire + extra)


@pytest.mark.parametrize("reserved", [0x20, 0x40, 0x80, 0xE0])
@pytest.mark.parametrize("flags", range(32))
def test_reserved_flags_are_ignored_with_their_trailing_bytes(flags: int, reserved: int) -> None:
    values = _distinct_values(flags)
    wire = build_plx_continuous(**values, flags=flags | reserved)
    assert wire == bytes([flags | reserved]) + build_plx_continuous(**values)[1:]
    for extra in (b"", b"\x01", b"\x01\x02\x03\x04"):
        m = parse_plx_continuous(wire + extra)
        assert m == PlxContinuous(**values, flags=flags | reserved)
        assert m.reserved_flags == reserved


# ------------------------------------------------------------------------------- status bits, Quality

MS_EXPECTED: dict[int, tuple[str | None, Quality]] = {
    0: (None, Q.NONE),
    1: (None, Q.NONE),
    2: (None, Q.NONE),
    3: (None, Q.NONE),
    4: (None, Q.NONE),
    5: ("MEASUREMENT_ONGOING", Q.NONE),
    6: ("EARLY_ESTIMATED_DATA", Q.NONE),
    7: ("VALIDATED_DATA", Q.NONE),
    8: ("FULLY_QUALIFIED_DATA", Q.NONE),
    9: ("DATA_FROM_MEASUREMENT_STORAGE", Q.FROM_STORAGE),
    10: ("DATA_FOR_DEMONSTRATION", Q.DEMO),
    11: ("DATA_FOR_TESTING", Q.DEMO),
    12: ("CALIBRATION_ONGOING", Q.NONE),
    13: ("MEASUREMENT_UNAVAILABLE", Q.INVALID),
    14: ("QUESTIONABLE_MEASUREMENT_DETECTED", Q.QUESTIONABLE),
    15: ("INVALID_MEASUREMENT_DETECTED", Q.INVALID),
}
MS_WITHHOLDS = {13, 15}

DSS_EXPECTED: dict[int, tuple[str | None, Quality]] = {
    0: ("EXTENDED_DISPLAY_UPDATE_ONGOING", Q.NONE),
    1: ("EQUIPMENT_MALFUNCTION_DETECTED", Q.QUESTIONABLE),
    2: ("SIGNAL_PROCESSING_IRREGULARITY_DETECTED", Q.QUESTIONABLE),
    3: ("INADEQUATE_SIGNAL_DETECTED", Q.POOR_SIGNAL),
    4: ("POOR_SIGNAL_DETECTED", Q.POOR_SIGNAL),
    5: ("LOW_PERFUSION_DETECTED", Q.LOW_PERFUSION),
    6: ("ERRATIC_SIGNAL_DETECTED", Q.POOR_SIGNAL),
    7: ("NONPULSATILE_SIGNAL_DETECTED", Q.POOR_SIGNAL),
    8: ("QUESTIONABLE_PULSE_DETECTED", Q.QUESTIONABLE),
    9: ("SIGNAL_ANALYSIS_ONGOING", Q.SEARCHING),
    10: ("SENSOR_INTERFERENCE_DETECTED", Q.QUESTIONABLE),
    11: ("SENSOR_UNCONNECTED_TO_USER", Q.SENSOR_OFF),
    12: ("UNKNOWN_SENSOR_CONNECTED", Q.QUESTIONABLE),
    13: ("SENSOR_DISPLACED", Q.SENSOR_OFF),
    14: ("SENSOR_MALFUNCTIONING", Q.QUESTIONABLE),
    15: ("SENSOR_DISCONNECTED", Q.SENSOR_OFF),
    **{bit: (None, Q.NONE) for bit in range(16, 24)},
}
DSS_SENSOR_OFF = {11, 13, 15}


def test_status_flags_name_exactly_the_documented_bits() -> None:
    assert {m.name: m.value for m in MeasurementStatus} == {
        name: 1 << bit for bit, (name, _) in MS_EXPECTED.items() if name
    }
    assert {m.name: m.value for m in DeviceSensorStatus} == {
        name: 1 << bit for bit, (name, _) in DSS_EXPECTED.items() if name
    }


@pytest.mark.parametrize("bit", range(16))
def test_measurement_status_bit(bit: int) -> None:
    name, quality = MS_EXPECTED[bit]
    wire = bytes([0x04]) + bytes.fromhex("61 00 48 00") + (1 << bit).to_bytes(2, "little")
    m = parse_plx_continuous(wire)
    assert m.measurement_status == 1 << bit
    assert m.measurement_status is not None
    assert m.measurement_status.name == name
    assert plx_quality(m) == quality
    assert m.invalid == (bit == 15)
    assert m.questionable == (bit == 14)
    assert m.unavailable == (bit == 13)
    assert m.from_storage == (bit == 9)
    assert m.demo == (bit in {10, 11})
    assert not m.sensor_off
    assert not m.signal_quality_issue
    numerics = to_numerics(m, device="d", mono=0.0, wall=0.0)
    expected_values = (None, None) if bit in MS_WITHHOLDS else (97.0, 72.0)
    assert tuple(n.value for n in numerics) == expected_values
    assert all(n.quality == quality for n in numerics)


@pytest.mark.parametrize("bit", range(24))
def test_device_sensor_status_bit(bit: int) -> None:
    name, quality = DSS_EXPECTED[bit]
    wire = bytes([0x18]) + bytes.fromhex("61 00 48 00") + (1 << bit).to_bytes(3, "little") + b"\x19\xf0"
    m = parse_plx_continuous(wire)
    assert m.device_sensor_status == 1 << bit
    assert m.device_sensor_status is not None
    assert m.device_sensor_status.name == name
    assert plx_quality(m) == quality
    assert m.sensor_off == (bit in DSS_SENSOR_OFF)
    assert m.signal_quality_issue == (3 <= bit <= 7)
    assert not (m.invalid or m.questionable or m.unavailable or m.from_storage or m.demo)
    numerics = to_numerics(m, device="d", mono=0.0, wall=0.0)
    expected = (None, None, None) if bit in DSS_SENSOR_OFF else (97.0, 72.0, 2.5)
    assert tuple(n.value for n in numerics) == expected
    assert all(n.quality == quality for n in numerics)


def test_absent_statuses_mean_no_flags() -> None:
    m = parse_plx_continuous(bytes.fromhex("00 61 00 48 00"))
    assert not (m.sensor_off or m.signal_quality_issue or m.invalid or m.questionable)
    assert not (m.unavailable or m.from_storage or m.demo)
    assert plx_quality(m) == Q.NONE


def test_qualities_of_several_bits_combine() -> None:
    wire = build_plx_continuous(
        spo2=91,
        pulse_rate=88,
        measurement_status=MS.QUESTIONABLE_MEASUREMENT_DETECTED | MS.DATA_FOR_TESTING,
        device_sensor_status=DSS.INADEQUATE_SIGNAL_DETECTED
        | DSS.LOW_PERFUSION_DETECTED
        | DSS.SIGNAL_ANALYSIS_ONGOING,
    )
    numerics = to_numerics(parse_plx_continuous(wire), device="d", mono=0.0, wall=0.0)
    expected = Q.QUESTIONABLE | Q.DEMO | Q.POOR_SIGNAL | Q.LOW_PERFUSION | Q.SEARCHING
    assert [(n.value, n.quality) for n in numerics] == [(91, expected), (88, expected)]


def test_invalid_and_sensor_off_withhold_a_plausible_pai_too() -> None:
    wire = build_plx_continuous(
        spo2=99,
        pulse_rate=70,
        measurement_status=MS.INVALID_MEASUREMENT_DETECTED,
        device_sensor_status=DSS.SENSOR_DISCONNECTED,
        pulse_amplitude_index=3.0,
    )
    numerics = to_numerics(parse_plx_continuous(wire), device="d", mono=0.0, wall=0.0)
    assert [n.value for n in numerics] == [None, None, None]
    assert {n.quality for n in numerics} == {Q.INVALID | Q.SENSOR_OFF}


# ------------------------------------------------------------------------------------- to_numerics


def test_to_numerics_stamps_device_and_times() -> None:
    m = parse_plx_continuous(bytes.fromhex(EXAMPLES[1].wire))
    numerics = to_numerics(m, device="C0:FF:EE", mono=3.25, wall=1_700_000_001.5)
    assert numerics == [
        Numeric(Param.SPO2, 98.5, 3.25, 1_700_000_001.5, "C0:FF:EE", Q.LOW_PERFUSION),
        Numeric(Param.PULSE_RATE, 72.0, 3.25, 1_700_000_001.5, "C0:FF:EE", Q.LOW_PERFUSION),
        Numeric(Param.PERFUSION_INDEX, 2.5, 3.25, 1_700_000_001.5, "C0:FF:EE", Q.LOW_PERFUSION),
    ]


def test_pai_numeric_only_when_the_field_is_present() -> None:
    absent = parse_plx_continuous(build_plx_continuous(spo2=97, pulse_rate=70))
    assert [n.param for n in to_numerics(absent, device="d", mono=0, wall=0)] == [
        Param.SPO2,
        Param.PULSE_RATE,
    ]
    nan_pai = parse_plx_continuous(build_plx_continuous(spo2=97, pulse_rate=70, flags=0x10))
    numerics = to_numerics(nan_pai, device="d", mono=0, wall=0)
    assert [(n.param, n.value) for n in numerics] == [
        (Param.SPO2, 97),
        (Param.PULSE_RATE, 70),
        (Param.PERFUSION_INDEX, None),
    ]


# ---------------------------------------------------------------------------------- special codes

SPECIAL_WIRES = ["FF 07", "00 08", "FE 07", "02 08", "01 08"]
SLOTS = ["spo2", "pulse_rate", "spo2_fast", "pr_fast", "spo2_slow", "pr_slow", "pulse_amplitude_index"]


@pytest.mark.parametrize("special", SPECIAL_WIRES)
@pytest.mark.parametrize("slot", SLOTS)
def test_special_code_in_any_slot_gives_none(slot: str, special: str) -> None:
    #                 flags  spo2   pr     fast         slow         pai
    wire = bytearray.fromhex("13 60 00 48 00 5F 00 49 00 5E 00 47 00 0A F0")
    index = SLOTS.index(slot)
    position = 1 + 2 * index
    wire[position : position + 2] = bytes.fromhex(special)
    m = parse_plx_continuous(bytes(wire))
    fields = asdict(m)
    assert fields[slot] is None
    others = {name: fields[name] for name in SLOTS if name != slot}
    assert others == {
        name: value
        for name, value in zip(SLOTS, [96.0, 72.0, 95.0, 73.0, 94.0, 71.0, 1.0], strict=True)
        if name != slot
    }


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
def test_encoder_sends_not_a_number_as_a_special(value: float | None) -> None:
    wire = build_plx_continuous(spo2=value, pulse_rate=60)
    assert int.from_bytes(wire[1:3], "little") in SFLOAT_SPECIALS
    assert parse_plx_continuous(wire).spo2 is None


# --------------------------------------------------------------------------------- encoder details


def test_encoder_refuses_a_value_for_a_group_whose_flag_is_clear() -> None:
    with pytest.raises(ValueError, match="spo2_fast/pr_fast given but flag bit 0"):
        build_plx_continuous(spo2=97, pulse_rate=60, pr_fast=61, flags=0x02)
    with pytest.raises(ValueError, match="pulse_amplitude_index given but flag bit 4"):
        build_plx_continuous(spo2=97, pulse_rate=60, pulse_amplitude_index=1.0, flags=0x0F)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"flags": 0x100},
        {"flags": -1},
        {"measurement_status": 0x10000},
        {"measurement_status": -1},
        {"device_sensor_status": 0x1000000},
    ],
)
def test_encoder_refuses_out_of_range_fields(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="fit"):
        build_plx_continuous(spo2=97, pulse_rate=60, **kwargs)


def test_encoder_refuses_values_beyond_sfloat() -> None:
    with pytest.raises(ValueError, match="beyond the SFLOAT range"):
        build_plx_continuous(spo2=97, pulse_rate=2.05e10)
    for huge in (1e300, -1.7e308):  # too big to scale: ValueError, not OverflowError
        with pytest.raises(ValueError, match="beyond the SFLOAT range"):
            sfloat_nearest(huge)


def test_features_encoder_refuses_masks_without_their_bit() -> None:
    with pytest.raises(ValueError, match="supported bit 0"):
        build_plx_features(0x02, measurement_status_support=0x20)
    with pytest.raises(ValueError, match="supported bit 1"):
        build_plx_features(0x01, device_sensor_status_support=0x20)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (96, "60 00"),
        (98.5, "D9 F3"),
        (100, "64 00"),
        (0, "00 00"),
        (-1.5, "F1 FF"),
        (2045.6, "FD 07"),  # 2046 is a special; 2045 is nearer than 2050
        (2047.6, "CD 10"),  # 2050 (m 205, e 1) is nearer than 2045
        (1234.51, "D3 04"),  # 1235: one rounding, not two
        (0.1 + 0.2, "03 F0"),  # 0.30000000000000004 → 0.3
        (1e-12, "00 00"),
    ],
)
def test_sfloat_nearest_examples(value: float, wire: str) -> None:
    assert sfloat_nearest(value).to_bytes(2, "little") == bytes.fromhex(wire)


# What the encoder may send: every mantissa within ±2045. The ones beyond (±2046, 2047, −2048) are
# numbers when the exponent is not 0, but the encoder avoids them on purpose (docs/devices/plx.md).
_ALL_SFLOATS = sorted(
    {
        value
        for raw in range(0x10000)
        if (raw & 0x0FFF) <= 2045 or (raw & 0x0FFF) >= 0x1000 - 2045
        if (value := decode_sfloat(raw)) is not None
    }
)


def test_sfloat_nearest_avoids_the_mantissas_of_the_special_codes() -> None:
    assert decode_sfloat(0x67FE) == 2.046e9  # legal, but looks like +INF to a careless decoder
    assert decode_sfloat(sfloat_nearest(2.046e9)) == 2.045e9
    assert decode_sfloat(sfloat_nearest(-2.047e9)) == -2.045e9
    assert decode_sfloat(sfloat_nearest(2.048e9)) == 2.05e9


@given(st.floats(min_value=-2.045e10, max_value=2.045e10, allow_nan=False))
@example(2045.5)
@example(2045500001.0)
@example(2.046e9)
@example(-2045.5)
@example(0.05)
def test_sfloat_nearest_is_the_nearest(value: float) -> None:
    got = decode_sfloat(sfloat_nearest(value))
    assert got is not None
    i = bisect.bisect_left(_ALL_SFLOATS, value)
    neighbours = _ALL_SFLOATS[max(0, i - 1) : i + 1]
    assert abs(got - value) <= min(abs(n - value) for n in neighbours)


# ------------------------------------------------------------------------------------- hypothesis


def _acceptable(data: bytes) -> bool:
    """The page's length rule, written out independently of the parser."""
    if not data:
        return False
    expected = _length(data[0] & 0x1F)
    return len(data) == expected or (len(data) > expected and bool(data[0] & 0xE0))


@given(st.binary(max_size=40))
@example(b"")
@example(b"\xff")
@example(bytes.fromhex("FF 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"))
def test_any_bytes_give_a_measurement_or_parse_error(data: bytes) -> None:
    try:
        m = parse_plx_continuous(data)
    except ParseError:
        assert not _acceptable(data)
        return
    assert _acceptable(data)
    assert isinstance(m, PlxContinuous)
    assert m.flags == data[0]
    numerics = to_numerics(m, device="d", mono=0.0, wall=0.0)
    assert all(n.value is None or math.isfinite(n.value) for n in numerics)


@st.composite
def near_valid_packets(draw: st.DrawFn) -> bytes:
    """A flags byte and a body whose length is within a few bytes of what the flags announce."""
    flags = draw(st.integers(0, 0xFF))
    size = max(0, _length(flags & 0x1F) - 1 + draw(st.integers(-4, 4)))
    return bytes([flags]) + draw(st.binary(min_size=size, max_size=size))


@given(near_valid_packets())
def test_near_valid_packets_give_a_measurement_or_parse_error(data: bytes) -> None:
    try:
        m = parse_plx_continuous(data)
    except ParseError:
        assert not _acceptable(data)
        return
    assert _acceptable(data)
    assert m.reserved_flags == data[0] & 0xE0


@given(st.binary(max_size=12))
def test_any_bytes_give_features_or_parse_error(data: bytes) -> None:
    try:
        features = parse_plx_features(data)
    except ParseError:
        return
    assert isinstance(features, PlxFeatures)
    assert (features.measurement_status_support is not None) == bool(data[0] & 1)
    assert (features.device_sensor_status_support is not None) == bool(data[0] & 2)


# includes None for the specials; mantissas beyond ±2045 (those of the special codes) are never
# written by the encoder (devices/ieee11073.py, SFLOAT_MAX_MANTISSA), so they are left out here
sfloat_values = (
    st.integers(0, 0xFFFF)
    .filter(lambda raw: raw in SFLOAT_SPECIALS or abs((raw & 0xFFF) - (0x1000 if raw & 0x800 else 0)) <= 2045)
    .map(decode_sfloat)
)
maybe_status16 = st.none() | st.integers(0, 0xFFFF)
maybe_status24 = st.none() | st.integers(0, 0xFFFFFF)
# None: the group is absent; a tuple: present, its values possibly None (a special code)
maybe_pair = st.none() | st.tuples(sfloat_values, sfloat_values)
maybe_single = st.none() | st.tuples(sfloat_values)


@given(
    spo2=sfloat_values,
    pulse_rate=sfloat_values,
    fast=maybe_pair,
    slow=maybe_pair,
    measurement_status=maybe_status16,
    device_sensor_status=maybe_status24,
    pai=maybe_single,
    reserved=st.sampled_from([0, 0x20, 0x40, 0x80, 0xE0]),
)
def test_build_then_parse_round_trips(
    *,
    spo2: float | None,
    pulse_rate: float | None,
    fast: tuple[float | None, float | None] | None,
    slow: tuple[float | None, float | None] | None,
    measurement_status: int | None,
    device_sensor_status: int | None,
    pai: tuple[float | None] | None,
    reserved: int,
) -> None:
    flags = (
        (1 if fast is not None else 0)
        | (2 if slow is not None else 0)
        | (4 if measurement_status is not None else 0)
        | (8 if device_sensor_status is not None else 0)
        | (16 if pai is not None else 0)
        | reserved
    )
    m = PlxContinuous(
        spo2=spo2,
        pulse_rate=pulse_rate,
        spo2_fast=fast[0] if fast else None,
        pr_fast=fast[1] if fast else None,
        spo2_slow=slow[0] if slow else None,
        pr_slow=slow[1] if slow else None,
        measurement_status=None if measurement_status is None else MS(measurement_status),
        device_sensor_status=None if device_sensor_status is None else DSS(device_sensor_status),
        pulse_amplitude_index=pai[0] if pai else None,
        flags=flags,
    )
    wire = build_plx_continuous(**_build_kwargs(m))
    assert len(wire) == _length(flags)
    assert parse_plx_continuous(wire) == m


@given(
    supported=st.integers(0, 0xFFFF),
    ms_support=st.integers(0, 0xFFFF),
    dss_support=st.integers(0, 0xFFFFFF),
)
def test_features_build_then_parse_round_trips(supported: int, ms_support: int, dss_support: int) -> None:
    wire = build_plx_features(
        supported,
        measurement_status_support=ms_support if supported & 1 else None,
        device_sensor_status_support=dss_support if supported & 2 else None,
    )
    assert len(wire) == 2 + 2 * (supported & 1) + 3 * (supported >> 1 & 1)
    features = parse_plx_features(wire)
    assert features.supported == supported
    assert features.measurement_status_support == (ms_support if supported & 1 else None)
    assert features.device_sensor_status_support == (dss_support if supported & 2 else None)
    for size in range(len(wire)):
        with pytest.raises(ParseError):
            parse_plx_features(wire[:size])
