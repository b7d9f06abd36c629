"""Tests of the PLX Spot-check (0x2A5E) and RACP (0x2A52) parsers and encoders (docs/devices/plx.md)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from devices.plx.parser import (
    DeviceSensorStatus,
    MeasurementStatus,
    ParseError,
    PlxSpotCheck,
    PlxSpotCheckFlags,
    RacpNumberOfRecords,
    RacpOpCode,
    RacpOperator,
    RacpResponse,
    RacpResponseCode,
    build_plx_spot_check,
    build_racp,
    parse_plx_continuous,
    parse_plx_spot_check,
    parse_racp_response,
    spot_check_to_numerics,
)
from kapmonitor.measurements import Param, Quality

PAGE = Path(__file__).resolve().parents[2] / "docs" / "devices" / "plx.md"
MS = MeasurementStatus
DSS = DeviceSensorStatus
F = PlxSpotCheckFlags


def naive(iso: str) -> datetime:
    """A zone-less datetime, as the spot-check timestamp is (the profile carries no zone)."""
    value = datetime.fromisoformat(iso)
    assert value.tzinfo is None
    return value


S2 = PlxSpotCheck(
    spo2=98.5,
    pulse_rate=72.0,
    timestamp=naive("2024-05-06T07:08:09"),
    measurement_status=MS.VALIDATED_DATA | MS.DATA_FROM_MEASUREMENT_STORAGE,
    device_sensor_status=DSS.LOW_PERFUSION_DETECTED,
    pulse_amplitude_index=2.5,
    flags=0x0F,
)
#: id → (wire, parsed, values out, quality): the page's spot-check table, row for row.
SPOT_EXAMPLES: dict[str, tuple[str, PlxSpotCheck, tuple[float | None, ...], Quality]] = {
    "S1": (
        "00 61 00 48 00",
        PlxSpotCheck(97.0, 72.0, None, None, None, None, 0x00),
        (97.0, 72.0),
        Quality.NONE,
    ),
    "S2": (
        "0F D9 F3 48 00 E8 07 05 06 07 08 09 80 02 20 00 00 19 F0",
        S2,
        (98.5, 72.0, 2.5),
        Quality.FROM_STORAGE | Quality.LOW_PERFUSION,
    ),
    "S3": (
        "11 60 00 40 00 00 00 00 00 00 00 00",
        PlxSpotCheck(96.0, 64.0, None, None, None, None, 0x11),
        (96.0, 64.0),
        Quality.NONE,
    ),
    "S4": (
        "03 61 00 46 00 EA 07 0B 19 09 1E 00 00 02",
        PlxSpotCheck(
            97.0, 70.0, naive("2026-11-25T09:30:00"), MS.DATA_FROM_MEASUREMENT_STORAGE, None, None, 0x03
        ),
        (97.0, 70.0),
        Quality.FROM_STORAGE,
    ),
    "S5": (
        "01 61 00 46 00 EA 07 0D 19 09 1E 00",
        PlxSpotCheck(97.0, 70.0, None, None, None, None, 0x01),
        (97.0, 70.0),
        Quality.NONE,
    ),
    "S6": (
        "04 5F 00 50 00 00 08 00",
        PlxSpotCheck(95.0, 80.0, None, None, DSS.SENSOR_UNCONNECTED_TO_USER, None, 0x04),
        (None, None),
        Quality.SENSOR_OFF,
    ),
}
SPOT_REFUSED = {
    "X1": "01 61 00 46 00 EA 07 0B 19 09 1E",
    "X2": "02 61 00 46 00 00",
    "X3": "00 61 00 48 00 00",
}
RACP_EXAMPLES: dict[str, tuple[str, object]] = {
    "R1": ("04 01", (RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS)),
    "R2": ("01 01", (RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)),
    "R3": ("05 00 03 00", RacpNumberOfRecords(3)),
    "R4": ("06 00 01 01", RacpResponse(RacpOpCode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS)),
    "R5": ("06 00 01 06", RacpResponse(RacpOpCode.REPORT_STORED_RECORDS, RacpResponseCode.NO_RECORDS_FOUND)),
    "R6": (
        "06 00 04 02",
        RacpResponse(RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS, RacpResponseCode.OP_CODE_NOT_SUPPORTED),
    ),
}
RACP_REFUSED = {"Y1": "05 00 03", "Y2": "01 01", "Y3": "05 01 03 00", "Y4": "06 00 09 01"}


def _page_rows() -> dict[str, str]:
    """id → bytes of every `| S1 | `XX …` |`-style row of the page's spot-check and RACP tables."""
    rows = re.findall(
        r"^\| ([SXRY]\d+) \| `([0-9A-F]{2}(?: [0-9A-F]{2})*)` \|", PAGE.read_text(), re.MULTILINE
    )
    return dict(rows)


def test_page_lists_exactly_the_examples_tested_here() -> None:
    tested = (
        {k: w for k, (w, *_rest) in SPOT_EXAMPLES.items()}
        | SPOT_REFUSED
        | {k: w for k, (w, _v) in RACP_EXAMPLES.items()}
        | RACP_REFUSED
    )
    assert _page_rows() == tested


@pytest.mark.parametrize("key", SPOT_EXAMPLES)
def test_page_spot_check_example(key: str) -> None:
    wire, parsed, values, quality = SPOT_EXAMPLES[key]
    m = parse_plx_spot_check(bytes.fromhex(wire))
    assert m == parsed
    numerics = spot_check_to_numerics(m, device="AA:BB", mono=3.0, wall=1_700_000_000.0)
    assert tuple(n.value for n in numerics) == values
    assert [n.param for n in numerics] == [Param.SPO2, Param.PULSE_RATE, Param.PERFUSION_INDEX][: len(values)]
    assert {n.quality for n in numerics} == {quality}
    assert {(n.device, n.mono, n.wall) for n in numerics} == {("AA:BB", 3.0, 1_700_000_000.0)}


def test_encoder_writes_the_page_examples() -> None:
    assert build_plx_spot_check(
        spo2=98.5,
        pulse_rate=72,
        timestamp=naive("2024-05-06T07:08:09"),
        measurement_status=0x0280,
        device_sensor_status=0x20,
        pulse_amplitude_index=2.5,
    ) == bytes.fromhex(SPOT_EXAMPLES["S2"][0])
    assert build_plx_spot_check(spo2=96, pulse_rate=64, flags=0x11) == bytes.fromhex(SPOT_EXAMPLES["S3"][0])
    assert build_plx_spot_check(
        spo2=97, pulse_rate=70, timestamp=naive("2026-11-25T09:30:00"), measurement_status=0x0200
    ) == bytes.fromhex(SPOT_EXAMPLES["S4"][0])


def test_spot_check_flags_are_not_the_continuous_ones() -> None:
    # S2 read as 0x2A5F: bit 0 would be "fast" and bit 3 device/sensor status; the lengths disagree
    with pytest.raises(ParseError):
        parse_plx_continuous(bytes.fromhex(SPOT_EXAMPLES["S2"][0]))


def test_from_storage_and_clock_not_set() -> None:
    s2 = parse_plx_spot_check(bytes.fromhex(SPOT_EXAMPLES["S2"][0]))
    assert s2.from_storage and s2.has_timestamp and not s2.device_clock_not_set
    s3 = parse_plx_spot_check(bytes.fromhex(SPOT_EXAMPLES["S3"][0]))
    assert s3.has_timestamp and s3.timestamp is None and s3.device_clock_not_set and not s3.from_storage


def test_invalid_and_unavailable_values_are_withheld() -> None:
    for status, quality in ((0x8000, Quality.INVALID), (0x2000, Quality.INVALID)):
        m = parse_plx_spot_check(build_plx_spot_check(spo2=97, pulse_rate=70, measurement_status=status))
        numerics = spot_check_to_numerics(m, device="d", mono=0.0, wall=0.0)
        assert [n.value for n in numerics] == [None, None]
        assert {n.quality for n in numerics} == {quality}


@pytest.mark.parametrize("key", SPOT_REFUSED)
def test_page_spot_check_refused(key: str) -> None:
    with pytest.raises(ParseError):
        parse_plx_spot_check(bytes.fromhex(SPOT_REFUSED[key]))


def test_empty_and_reserved_bits() -> None:
    with pytest.raises(ParseError, match="empty"):
        parse_plx_spot_check(b"")
    # a reserved bit (5–7) allows bytes of a future field after the known ones
    m = parse_plx_spot_check(bytes.fromhex("20 61 00 48 00 AB CD"))
    assert (m.spo2, m.pulse_rate, m.reserved_flags) == (97.0, 72.0, 0x20)


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination_round_trips_and_truncation_is_refused(flags: int) -> None:
    ts = naive("2025-12-31T23:59:58")
    kwargs: dict[str, object] = {"flags": flags, "device_clock_not_set": bool(flags & F.DEVICE_CLOCK_NOT_SET)}
    if flags & F.TIMESTAMP:
        kwargs["timestamp"] = ts
    if flags & F.MEASUREMENT_STATUS:
        kwargs["measurement_status"] = 0x0220
    if flags & F.DEVICE_SENSOR_STATUS:
        kwargs["device_sensor_status"] = 0x00A020
    if flags & F.PULSE_AMPLITUDE_INDEX:
        kwargs["pulse_amplitude_index"] = 1.25
    wire = build_plx_spot_check(spo2=93.5, pulse_rate=101, **kwargs)  # type: ignore[arg-type]
    expected_len = 5 + 7 * bool(flags & 1) + 2 * bool(flags & 2) + 3 * bool(flags & 4) + 2 * bool(flags & 8)
    assert len(wire) == expected_len
    m = parse_plx_spot_check(wire)
    assert m == PlxSpotCheck(
        spo2=93.5,
        pulse_rate=101.0,
        timestamp=ts if flags & F.TIMESTAMP else None,
        measurement_status=MS(0x0220) if flags & F.MEASUREMENT_STATUS else None,
        device_sensor_status=DSS(0x00A020) if flags & F.DEVICE_SENSOR_STATUS else None,
        pulse_amplitude_index=1.25 if flags & F.PULSE_AMPLITUDE_INDEX else None,
        flags=flags,
    )
    # and the encoder chooses the same flags by itself from the same values
    auto = {k: v for k, v in kwargs.items() if k != "flags"}
    assert build_plx_spot_check(spo2=93.5, pulse_rate=101, **auto) == wire  # type: ignore[arg-type]
    for cut in range(len(wire)):
        with pytest.raises(ParseError):
            parse_plx_spot_check(wire[:cut])
    with pytest.raises(ParseError, match="trailing"):
        parse_plx_spot_check(wire + b"\x00")


def test_encoder_refuses_a_value_whose_flag_is_clear() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        build_plx_spot_check(spo2=97, pulse_rate=70, timestamp=naive("2024-01-01T00:00:00"), flags=0x00)
    with pytest.raises(ValueError, match="bit 4"):
        build_plx_spot_check(spo2=97, pulse_rate=70, device_clock_not_set=True, flags=0x00)
    with pytest.raises(ValueError):
        build_plx_spot_check(spo2=97, pulse_rate=70, measurement_status=1 << 16)


def test_a_timestamp_without_a_value_is_sent_as_unknown() -> None:
    wire = build_plx_spot_check(spo2=97, pulse_rate=70, flags=F.TIMESTAMP)
    assert wire[5:12] == bytes(7)
    assert parse_plx_spot_check(wire) == PlxSpotCheck(97.0, 70.0, None, None, None, None, 0x01)


@given(st.binary(max_size=40))
@example(b"\x01\x61\x00\x46\x00\xea\x07\x02\x1e\x18\x00\x00")  # 30 February, hour 24
@example(b"\x01\x61\x00\x46\x00\x01\x00\x01\x01\x00\x00\x00")  # year 1
def test_any_bytes_give_a_spot_check_or_parse_error(data: bytes) -> None:
    try:
        m = parse_plx_spot_check(data)
    except ParseError:
        return
    assert m.flags == data[0]
    assert m.timestamp is None or m.timestamp.year >= 1582
    spot_check_to_numerics(m, device="d", mono=0.0, wall=0.0)


# --------------------------------------------------------------------------------------------- RACP


@pytest.mark.parametrize("key", RACP_EXAMPLES)
def test_page_racp_example(key: str) -> None:
    wire, expected = RACP_EXAMPLES[key]
    data = bytes.fromhex(wire)
    if isinstance(expected, tuple):
        op, operator = expected
        assert build_racp(op, operator) == data
        with pytest.raises(ParseError, match="not a response"):
            parse_racp_response(data)
    else:
        assert parse_racp_response(data) == expected


def test_racp_operand_and_success() -> None:
    assert build_racp(
        RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.GREATER_THAN_OR_EQUAL, b"\x01\x05\x00"
    ) == (bytes.fromhex("01 03 01 05 00"))
    with pytest.raises(ValueError):
        build_racp(0x100, 1)
    assert parse_racp_response(b"\x05\x00\x34\x12") == RacpNumberOfRecords(0x1234)
    ok = parse_racp_response(bytes.fromhex("06 00 01 01"))
    assert isinstance(ok, RacpResponse) and ok.success
    unknown = parse_racp_response(bytes.fromhex("06 00 01 7F"))
    assert unknown == RacpResponse(RacpOpCode.REPORT_STORED_RECORDS, 0x7F) and not unknown.success


@pytest.mark.parametrize("key", RACP_REFUSED)
def test_page_racp_refused(key: str) -> None:
    with pytest.raises(ParseError):
        parse_racp_response(bytes.fromhex(RACP_REFUSED[key]))


def test_racp_truncated_or_long_is_refused() -> None:
    for good in ("05 00 03 00", "06 00 01 01"):
        data = bytes.fromhex(good)
        for cut in range(len(data)):
            with pytest.raises(ParseError):
                parse_racp_response(data[:cut])
        with pytest.raises(ParseError):
            parse_racp_response(data + b"\x00")


@given(st.binary(max_size=12))
def test_any_bytes_give_a_racp_response_or_parse_error(data: bytes) -> None:
    try:
        r = parse_racp_response(data)
    except ParseError:
        return
    assert len(data) == 4 and data[1] == 0
    assert r == replace(r)
