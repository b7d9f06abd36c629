"""Tests of the Heart Rate (0x2A37) and Battery Level (0x2A19) parsers against docs/devices/hr.md."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from devices import battery
from devices.battery import build_battery_level, parse_battery_level
from devices.driver import uuid16
from devices.hr.driver import HR_MEASUREMENT, HR_SERVICE, decode_heart_rate, hr_spec
from devices.hr.parser import (
    HeartRateFlags,
    HeartRateMeasurement,
    ParseError,
    SensorContact,
    build_heart_rate,
    parse_heart_rate,
    rr_units,
    to_numerics,
)
from kapmonitor.measurements import Numeric, Param, Quality

PAGE = Path(__file__).resolve().parents[2] / "docs" / "devices" / "hr.md"

C = SensorContact
Q = Quality


def _hr(
    value: int,
    flags: int,
    *,
    energy: int | None = None,
    rr: tuple[int, ...] = (),
) -> HeartRateMeasurement:
    return HeartRateMeasurement(
        heart_rate=value,
        contact=_contact_of(flags),
        energy_expended=energy,
        rr_intervals=rr,
        flags=flags,
    )


def _contact_of(flags: int) -> SensorContact:
    """gatt.md: bits 1–2 = 2 supported, no contact; 3 contact; 0 and 1 not supported (written out)."""
    return {0: C.NOT_SUPPORTED, 1: C.NOT_SUPPORTED, 2: C.NO_CONTACT, 3: C.CONTACT}[(flags >> 1) & 3]


def _length(flags: int, rr_count: int) -> int:
    """Expected length, written out independently of the parser."""
    return 1 + (2 if flags & 1 else 1) + 2 * (flags >> 3 & 1) + 2 * rr_count


# ------------------------------------------------------------------------ examples of the wire page


@dataclass(frozen=True)
class Example:
    wire: str
    parsed: HeartRateMeasurement
    value: float | None
    quality: Quality
    canonical: bool = True  # build_heart_rate(..., flags=parsed.flags) gives exactly these bytes


EXAMPLES = [
    Example("16 4C 28 03", _hr(76, 0x16, rr=(808,)), 76, Q.NONE),
    Example("00 48", _hr(72, 0x00), 72, Q.NONE),
    Example("02 4B", _hr(75, 0x02), 75, Q.NONE),
    Example("04 00", _hr(0, 0x04), None, Q.SENSOR_OFF),
    Example("04 4E", _hr(78, 0x04), None, Q.SENSOR_OFF),
    Example("06 00", _hr(0, 0x06), 0, Q.NONE),
    Example("01 2C 01", _hr(300, 0x01), 300, Q.NONE),
    Example("1E 50 10 27 00 03 00 03", _hr(80, 0x1E, energy=10000, rr=(768, 768)), 80, Q.NONE),
    Example("1F 3C 00 D2 04 00 04 0A 04", _hr(60, 0x1F, energy=1234, rr=(1024, 1034)), 60, Q.NONE),
    Example(
        "10 8C B7 01 B7 01 B7 01 B7 01 B7 01 B7 01 B7 01 B7 01 B7 01",
        _hr(140, 0x10, rr=(439,) * 9),
        140,
        Q.NONE,
    ),
    Example("0C 00 FF FF", _hr(0, 0x0C, energy=0xFFFF), None, Q.SENSOR_OFF),
    Example("20 48 AB", _hr(72, 0x20), 72, Q.NONE, canonical=False),
    Example("36 4C 28 03 FF", _hr(76, 0x36, rr=(808,)), 76, Q.NONE, canonical=False),
]

REFUSED = ["", "00", "01 48", "08 48 10", "10 48", "16 4C 28", "10 48 28 03 00", "00 48 00"]

BATTERY_EXAMPLES = [("64", 100), ("4B", 75), ("00", 0)]
BATTERY_REFUSED = ["65", "FF", "64 00"]


def _page_byte_cells() -> list[str]:
    """Every `XX XX …` cell in the first column of bytes of the page's example tables."""
    return re.findall(r"^\| (?:\d+ \| )?`([0-9A-F]{2}(?: [0-9A-F]{2})*)` \|", PAGE.read_text(), re.MULTILINE)


def test_page_lists_exactly_the_examples_tested_here() -> None:
    tested = (
        [e.wire for e in EXAMPLES]
        + [r for r in REFUSED if r]
        + [w for w, _ in BATTERY_EXAMPLES]
        + BATTERY_REFUSED
    )
    assert sorted(_page_byte_cells()) == sorted(tested)


def _build(m: HeartRateMeasurement) -> bytes:
    return build_heart_rate(
        m.heart_rate,
        energy_expended=m.energy_expended,
        rr_intervals=m.rr_intervals,
        flags=m.flags,
    )


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e.wire for e in EXAMPLES])
def test_page_example_parses(ex: Example) -> None:
    m = parse_heart_rate(bytes.fromhex(ex.wire))
    assert m == ex.parsed
    numerics = to_numerics(m, device="AA:BB", mono=12.5, wall=1_700_000_000.0)
    assert numerics == [Numeric(Param.HEART_RATE, ex.value, 12.5, 1_700_000_000.0, "AA:BB", ex.quality)]


@pytest.mark.parametrize("ex", [e for e in EXAMPLES if e.canonical], ids=lambda e: e.wire)
def test_page_example_is_what_the_encoder_sends(ex: Example) -> None:
    assert _build(ex.parsed) == bytes.fromhex(ex.wire)


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e.wire for e in EXAMPLES])
def test_page_example_survives_build_and_parse(ex: Example) -> None:
    assert parse_heart_rate(_build(ex.parsed)) == ex.parsed


@pytest.mark.parametrize("wire", REFUSED)
def test_page_refused_example(wire: str) -> None:
    with pytest.raises(ParseError):
        parse_heart_rate(bytes.fromhex(wire))


def test_gatt_md_example_in_detail() -> None:
    m = parse_heart_rate(bytes.fromhex("16 4C 28 03"))
    assert m.contact is C.CONTACT
    assert m.heart_rate == 76
    assert m.rr_seconds == (808 / 1024,)
    assert round(m.rr_seconds[0], 3) == 0.789  # gatt.md: "RR 0.789 s"
    assert m.has_rr_intervals and not m.uint16 and m.reserved_flags == 0
    assert m.energy_expended is None


def test_encoder_picks_the_smallest_form_by_itself() -> None:
    assert build_heart_rate(76, contact=C.CONTACT, rr_intervals=[808]) == bytes.fromhex("16 4C 28 03")
    assert build_heart_rate(255) == bytes.fromhex("00 FF")
    assert build_heart_rate(256) == bytes.fromhex("01 00 01")
    assert build_heart_rate(72, contact=C.NO_CONTACT) == bytes.fromhex("04 48")
    assert build_heart_rate(72, rr_intervals=[]) == bytes.fromhex("00 48")  # no interval: no bit 4
    assert build_heart_rate(72, energy_expended=0) == bytes.fromhex("08 48 00 00")


def test_parses_bytearray_and_memoryview() -> None:
    wire = bytes.fromhex(EXAMPLES[8].wire)
    assert parse_heart_rate(bytearray(wire)) == EXAMPLES[8].parsed
    assert parse_heart_rate(memoryview(wire)) == EXAMPLES[8].parsed


def test_parse_error_is_a_value_error_with_a_message() -> None:
    with pytest.raises(ValueError, match=r"2 bytes, but flags 0x01 announce 3"):
        parse_heart_rate(bytes.fromhex("01 48"))
    with pytest.raises(ParseError, match=r"1 trailing byte"):
        parse_heart_rate(bytes.fromhex("00 48 00"))
    with pytest.raises(ParseError, match=r"odd count"):
        parse_heart_rate(bytes.fromhex("10 48 28 03 00"))
    with pytest.raises(ParseError, match=r"empty"):
        parse_heart_rate(b"")


# ------------------------------------------------------------------------- every flag combination


def _distinct(flags: int, rr_count: int = 3) -> tuple[int, int | None, tuple[int, ...]]:
    """A value, an energy and RR intervals that differ from each other in every slot."""
    value = 0x1A2 if flags & 1 else 0x5B
    energy = 0x3C4D if flags & 8 else None
    rr = tuple(700 + 17 * i for i in range(rr_count)) if flags & 16 else ()
    return value, energy, rr


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination_round_trips(flags: int) -> None:
    value, energy, rr = _distinct(flags)
    wire = build_heart_rate(value, energy_expended=energy, rr_intervals=rr, flags=flags)
    assert wire[0] == flags
    assert len(wire) == _length(flags, len(rr))
    m = parse_heart_rate(wire)
    assert m == HeartRateMeasurement(value, _contact_of(flags), energy, rr, flags)
    assert m.uint16 == bool(flags & 1)
    assert m.has_rr_intervals == bool(flags & 16)
    assert m.reserved_flags == 0


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination_is_laid_out_as_gatt_md_says(flags: int) -> None:
    value, energy, rr = _distinct(flags)
    wire = build_heart_rate(value, energy_expended=energy, rr_intervals=rr, flags=flags)
    offset = 1
    if flags & 1:
        assert struct.unpack_from("<H", wire, offset)[0] == value
        offset += 2
    else:
        assert wire[offset] == value
        offset += 1
    if flags & 8:
        assert struct.unpack_from("<H", wire, offset)[0] == energy
        offset += 2
    assert struct.unpack_from(f"<{len(rr)}H", wire, offset) == rr
    assert offset + 2 * len(rr) == len(wire)


@pytest.mark.parametrize("flags", range(32))
def test_every_truncation_of_every_flag_combination_is_refused(flags: int) -> None:
    value, energy, rr = _distinct(flags, rr_count=1)
    wire = build_heart_rate(value, energy_expended=energy, rr_intervals=rr, flags=flags)
    for size in range(len(wire)):
        with pytest.raises(ParseError):
            parse_heart_rate(wire[:size])
        with pytest.raises(ParseError):  # the same with a reserved flag bit set
            parse_heart_rate(bytes([wire[0] | 0x80]) + wire[1:size] if size else b"")


@pytest.mark.parametrize("flags", range(32))
def test_trailing_bytes_are_refused_without_a_reserved_flag(flags: int) -> None:
    value, energy, rr = _distinct(flags)
    wire = build_heart_rate(value, energy_expended=energy, rr_intervals=rr, flags=flags)
    # with RR intervals an even number of extra bytes is more intervals; odd ones are refused
    extras = (b"\x00", b"\xff\xff\xff", bytes(15)) if flags & 16 else (b"\x00", b"\xff\xff", bytes(15))
    for extra in extras:
        with pytest.raises(ParseError, match="odd count" if flags & 16 else "trailing"):
            parse_heart_rate(wire + extra)


@pytest.mark.parametrize("reserved", [0x20, 0x40, 0x80, 0xE0])
@pytest.mark.parametrize("flags", range(32))
def test_reserved_flags_are_ignored_with_their_trailing_bytes(flags: int, reserved: int) -> None:
    value, energy, rr = _distinct(flags)
    wire = build_heart_rate(value, energy_expended=energy, rr_intervals=rr, flags=flags | reserved)
    plain = build_heart_rate(value, energy_expended=energy, rr_intervals=rr, flags=flags)
    assert wire == bytes([flags | reserved]) + plain[1:]
    extras = (b"", b"\x01", b"\x01\x02\x03") if flags & 16 else (b"", b"\x01", b"\x01\x02\x03\x04")
    for extra in extras:
        m = parse_heart_rate(wire + extra)
        # RR intervals take the rest of the packet: whole extra pairs are intervals, an odd byte is not
        more = struct.unpack_from(f"<{len(extra) // 2}H", extra) if flags & 16 else ()
        assert m == HeartRateMeasurement(value, _contact_of(flags), energy, rr + more, flags | reserved)
        assert m.reserved_flags == reserved


# ------------------------------------------------------------------------------- contact and values


@pytest.mark.parametrize(
    ("bits", "contact", "value", "quality"),
    [
        (0b00, C.NOT_SUPPORTED, 72.0, Q.NONE),
        (0b01, C.NOT_SUPPORTED, 72.0, Q.NONE),
        (0b10, C.NO_CONTACT, None, Q.SENSOR_OFF),
        (0b11, C.CONTACT, 72.0, Q.NONE),
    ],
)
@pytest.mark.parametrize("other", [0x00, 0x01, 0x08, 0x10, 0x19])
def test_contact_states(
    bits: int, contact: SensorContact, value: float | None, quality: Quality, other: int
) -> None:
    flags = other | bits << 1
    rr = (843,) if flags & 16 else ()
    m = parse_heart_rate(
        build_heart_rate(72, energy_expended=5 if flags & 8 else None, rr_intervals=rr, flags=flags)
    )
    assert m.contact is contact
    assert SensorContact.from_flags(flags) is contact
    [n] = to_numerics(m, device="d", mono=1.0, wall=2.0)
    assert (n.param, n.value, n.quality) == (Param.HEART_RATE, value, quality)


def test_contact_flag_bits_are_canonical() -> None:
    assert C.NOT_SUPPORTED.flag_bits == 0
    assert C.NO_CONTACT.flag_bits == 0x04 == int(HeartRateFlags.SENSOR_CONTACT_SUPPORTED)
    assert C.CONTACT.flag_bits == 0x06
    for contact in C:
        assert SensorContact.from_flags(contact.flag_bits) is contact


def test_no_contact_withholds_even_a_plausible_value_with_rr() -> None:
    wire = build_heart_rate(300, contact=C.NO_CONTACT, energy_expended=12, rr_intervals=[800])
    [n] = to_numerics(parse_heart_rate(wire), device="d", mono=0.0, wall=0.0)
    assert n.value is None and n.quality == Q.SENSOR_OFF


def test_driver_spec_and_decoder() -> None:
    spec = hr_spec()
    assert HR_SERVICE == uuid16(0x180D) == "0000180d-0000-1000-8000-00805f9b34fb"
    assert spec.service_uuids == (HR_SERVICE,)
    assert [s.characteristic for s in spec.subscriptions] == [HR_MEASUREMENT] == [uuid16(0x2A37)]
    assert spec.matches("any strap", [HR_SERVICE.upper()])
    assert not spec.matches("KAP-Emu HRM", [uuid16(0x1822)])
    decode = spec.subscriptions[0].decode
    assert decode is decode_heart_rate
    assert list(decode(bytes.fromhex("16 4C 28 03"), "C0:FF:EE", 3.0, 4.0)) == [
        Numeric(Param.HEART_RATE, 76.0, 3.0, 4.0, "C0:FF:EE", Q.NONE)
    ]
    with pytest.raises(ParseError):
        decode(bytes.fromhex("16 4C 28"), "C0:FF:EE", 3.0, 4.0)


# ------------------------------------------------------------------------------------ RR intervals


def test_rr_intervals_oldest_first_in_seconds() -> None:
    m = parse_heart_rate(build_heart_rate(70, rr_intervals=[rr_units(0.85), rr_units(0.86), rr_units(0.87)]))
    assert m.rr_intervals == (870, 881, 891)  # round(s × 1024)
    assert m.rr_seconds == (870 / 1024, 881 / 1024, 891 / 1024)
    assert [round(s, 2) for s in m.rr_seconds] == [0.85, 0.86, 0.87]


@pytest.mark.parametrize(
    ("seconds", "units"), [(0.0, 0), (1.0, 1024), (0.789, 808), (0.7890625, 808), (63.999, 65535)]
)
def test_rr_units(seconds: float, units: int) -> None:
    assert rr_units(seconds) == units


@pytest.mark.parametrize("seconds", [-0.001, 64.0, 100.0])
def test_rr_units_refuses_what_does_not_fit(seconds: float) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        rr_units(seconds)


def test_more_rr_intervals_than_a_default_notification_holds_are_accepted() -> None:
    rr = tuple(range(500, 530))  # a larger MTU carries more than nine
    assert parse_heart_rate(build_heart_rate(90, rr_intervals=rr)).rr_intervals == rr


# --------------------------------------------------------------------------------- encoder details


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heart_rate": 256, "flags": 0x00}, "fit 8 bits"),
        ({"heart_rate": 0x10000}, "fit 16 bits"),
        ({"heart_rate": -1}, "fit 8 bits"),
        ({"heart_rate": 60, "flags": 0x100}, "fit 8 bits"),
        ({"heart_rate": 60, "energy_expended": 0x10000}, "fit 16 bits"),
        ({"heart_rate": 60, "rr_intervals": [0x10000]}, "fit 16 bits"),
        ({"heart_rate": 60, "energy_expended": 1, "flags": 0x10}, "flag bit 3 is clear"),
        ({"heart_rate": 60, "rr_intervals": [800], "flags": 0x08}, "flag bit 4 is clear"),
        ({"heart_rate": 60, "flags": 0x10}, "none were given"),
        ({"heart_rate": 60, "contact": C.CONTACT, "flags": 0x04}, "disagrees"),
    ],
)
def test_encoder_refuses(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_heart_rate(**kwargs)  # type: ignore[arg-type]


def test_encoder_with_flags_and_an_agreeing_contact() -> None:
    assert build_heart_rate(60, contact=C.NOT_SUPPORTED, flags=0x02) == bytes.fromhex("02 3C")
    assert build_heart_rate(60, flags=0x08) == bytes.fromhex("08 3C 00 00")  # energy None → 0


# ------------------------------------------------------------------------------------ hypothesis


@given(st.binary(max_size=40))
@example(b"")
@example(bytes.fromhex("10"))
@example(bytes.fromhex("FF"))
@example(bytes.fromhex("FF 00 00 00 00 00"))
def test_any_bytes_parse_or_raise_parse_error_only(data: bytes) -> None:
    try:
        m = parse_heart_rate(data)
    except ParseError:
        return
    # what parses is consistent with the flags it came with
    assert m.flags == data[0]
    assert m.contact is _contact_of(m.flags)
    assert (m.energy_expended is not None) == bool(m.flags & 8)
    assert bool(m.rr_intervals) == bool(m.flags & 16)
    assert 0 <= m.heart_rate <= (0xFFFF if m.flags & 1 else 0xFF)
    if not m.reserved_flags:
        assert len(data) == _length(m.flags, len(m.rr_intervals))
        assert _build(m) == data  # without reserved bits, parsing loses nothing
    [n] = to_numerics(m, device="d", mono=0.0, wall=0.0)
    assert (n.value is None) == (m.contact is C.NO_CONTACT)


@given(
    value=st.integers(0, 0xFFFF),
    contact=st.sampled_from(list(C)),
    energy=st.none() | st.integers(0, 0xFFFF),
    rr=st.lists(st.integers(0, 0xFFFF), max_size=12),
)
def test_build_then_parse_is_the_identity(
    value: int, contact: SensorContact, energy: int | None, rr: list[int]
) -> None:
    m = parse_heart_rate(build_heart_rate(value, contact=contact, energy_expended=energy, rr_intervals=rr))
    assert (m.heart_rate, m.contact, m.energy_expended, m.rr_intervals) == (value, contact, energy, tuple(rr))
    assert m.uint16 == (value > 0xFF)


# ---------------------------------------------------------------------------------- battery level


@pytest.mark.parametrize(("wire", "level"), BATTERY_EXAMPLES)
def test_page_battery_example(wire: str, level: int) -> None:
    assert parse_battery_level(bytes.fromhex(wire)) == level
    assert build_battery_level(level) == bytes.fromhex(wire)


@pytest.mark.parametrize("wire", [*BATTERY_REFUSED, ""])
def test_page_refused_battery_example(wire: str) -> None:
    with pytest.raises(battery.ParseError):
        parse_battery_level(bytes.fromhex(wire))


@pytest.mark.parametrize("level", range(101))
def test_every_battery_level_round_trips(level: int) -> None:
    assert parse_battery_level(build_battery_level(level)) == level
    assert parse_battery_level(bytearray([level])) == level


@pytest.mark.parametrize("level", [-1, 101, 255])
def test_battery_encoder_refuses_out_of_range(level: int) -> None:
    with pytest.raises(ValueError, match="0–100"):
        build_battery_level(level)


@given(st.binary(max_size=4))
def test_any_battery_bytes_parse_or_raise_parse_error_only(data: bytes) -> None:
    try:
        level = parse_battery_level(data)
    except battery.ParseError:
        assert len(data) != 1 or data[0] > 100
        return
    assert len(data) == 1 and level == data[0] <= 100
