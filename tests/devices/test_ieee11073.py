"""Tests of the IEEE 11073 SFLOAT/FLOAT codec against gatt.md ("IEEE 11073 numbers")."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.ieee11073 import (
    FLOAT_NAN,
    FLOAT_NEG_INF,
    FLOAT_NRES,
    FLOAT_POS_INF,
    FLOAT_RESERVED,
    SFLOAT_NAN,
    SFLOAT_NEG_INF,
    SFLOAT_NRES,
    SFLOAT_POS_INF,
    SFLOAT_RESERVED,
    SFLOAT_SPECIALS,
    decode_float,
    decode_sfloat,
    encode_sfloat,
    sfloat_at,
    sfloat_bytes,
)

# -------------------------------------------------------------------------------- gatt.md examples


@pytest.mark.parametrize(
    ("value", "decimals", "wire"),
    [(96, 0, "60 00"), (98.5, 1, "D9 F3"), (16.0, 1, "A0 F0")],
)
def test_gatt_md_examples_encode_and_decode(value: float, decimals: int, wire: str) -> None:
    assert sfloat_bytes(value, decimals) == bytes.fromhex(wire)
    assert sfloat_at(bytes.fromhex(wire), 0) == value


def test_sfloat_at_reads_little_endian_at_offset() -> None:
    assert sfloat_at(bytes.fromhex("AA BB D9 F3"), 2) == 98.5


def test_sfloat_at_short_buffer_raises_struct_error() -> None:
    with pytest.raises(struct.error):
        sfloat_at(b"\x60", 0)


# ------------------------------------------------------------------------------------ special codes


@pytest.mark.parametrize(
    ("raw", "wire"),
    [
        (SFLOAT_NAN, "FF 07"),
        (SFLOAT_NRES, "00 08"),
        (SFLOAT_POS_INF, "FE 07"),
        (SFLOAT_NEG_INF, "02 08"),
        (SFLOAT_RESERVED, "01 08"),
    ],
)
def test_every_sfloat_special_is_none(raw: int, wire: str) -> None:
    assert (SFLOAT_NAN, SFLOAT_NRES, SFLOAT_POS_INF, SFLOAT_NEG_INF, SFLOAT_RESERVED) == (
        0x07FF,
        0x0800,
        0x07FE,
        0x0802,
        0x0801,
    )
    assert decode_sfloat(raw) is None
    assert sfloat_at(bytes.fromhex(wire), 0) is None


@pytest.mark.parametrize(
    "raw",
    [FLOAT_NAN, FLOAT_NRES, FLOAT_POS_INF, FLOAT_NEG_INF, FLOAT_RESERVED],
)
def test_every_float_special_is_none(raw: int) -> None:
    assert (FLOAT_NAN, FLOAT_NRES, FLOAT_POS_INF, FLOAT_NEG_INF, FLOAT_RESERVED) == (
        0x007FFFFF,
        0x00800000,
        0x007FFFFE,
        0x00800002,
        0x00800001,
    )
    assert decode_float(raw) is None


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (0x17FF, 20470.0),  # mantissa 2047 but exponent 1: a number, not NaN
        (0xF7FE, 204.6),  # mantissa 2046, exponent −1
        (0xF800, -204.8),  # mantissa −2048, exponent −1
        (0x1802, -20460.0),  # mantissa −2046, exponent 1
    ],
)
def test_sfloat_specials_are_recognised_only_on_the_whole_value(raw: int, value: float) -> None:
    assert decode_sfloat(raw) == value


def test_float_specials_are_recognised_only_on_the_whole_value() -> None:
    assert decode_float(0x017FFFFF) == 83886070.0  # mantissa of NaN, exponent 1
    assert decode_float(0xFF800000) == -838860.8  # mantissa of NRes, exponent −1


# ------------------------------------------------------------------------------- signs and exponents


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (0x0000, 0.0),
        (0x0FFF, -1.0),  # m −1, e 0
        (0xFFFF, -0.1),  # m −1, e −1
        (0xF803, -204.5),  # m −2045, e −1
        (0x8001, 1e-8),  # m 1, e −8
        (0x8FFF, -1e-8),  # m −1, e −8
        (0x7001, 1e7),  # m 1, e 7
        (0x77FD, 2045e7),  # largest finite
        (0x7803, -2045e7),  # smallest finite
        (0xE0A0, 1.6),  # m 160, e −2
        (0xDF38, -0.2),  # m −200, e −3
    ],
)
def test_sfloat_negative_exponents_and_mantissas(raw: int, value: float) -> None:
    assert decode_sfloat(raw) == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (0x00000060, 96.0),
        (0xFF0003D9, 98.5),
        (0xFFFFFFFF, -0.1),  # m −1, e −1
        (0x80000001, 1e-128),  # m 1, e −128
        (0x7F000001, 1e127),  # m 1, e 127
        (0x00FFFF9C, -100.0),  # m −100, e 0
        (0xFE7FFFFD, 83886.05),  # m 8388605, e −2
    ],
)
def test_float_negative_exponents_and_mantissas(raw: int, value: float) -> None:
    assert decode_float(raw) == value


@pytest.mark.parametrize(
    ("value", "decimals", "raw"),
    [
        (-0.1, 1, 0xFFFF),
        (-1, 0, 0x0FFF),
        (-204.5, 1, 0xF803),
        (0.05, 2, 0xE005),
        (20450, 0, 0x17FD),  # mantissa too large: moves to exponent 1
        (2045e7, 0, 0x77FD),
    ],
)
def test_encode_negative_values_and_exponents(value: float, decimals: int, raw: int) -> None:
    assert encode_sfloat(value, decimals) == raw


def test_encode_not_a_number() -> None:
    assert encode_sfloat(None) == SFLOAT_NAN
    assert encode_sfloat(math.nan) == SFLOAT_NAN
    assert encode_sfloat(math.inf) == SFLOAT_POS_INF
    assert encode_sfloat(-math.inf) == SFLOAT_NEG_INF


@pytest.mark.parametrize("value", [2046e7, -2046e7, 1e12])
def test_encode_beyond_range_raises(value: float) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_sfloat(value)


# ----------------------------------------------------------------------------------- round trips

non_special_raw = st.integers(0, 0xFFFF).filter(lambda raw: raw not in SFLOAT_SPECIALS)


def _mantissa(raw: int) -> int:
    m = raw & 0x0FFF
    return m - 0x1000 if m >= 0x800 else m


# The encoder never writes mantissas beyond ±2045 (those of the special codes, at any exponent):
# such raws decode fine but re-encode to the nearest value with a safe mantissa.
encodable_raw = non_special_raw.filter(lambda raw: abs(_mantissa(raw)) <= 2045)


@given(encodable_raw)
def test_decode_then_encode_gives_the_same_value(raw: int) -> None:
    value = decode_sfloat(raw)
    assert value is not None
    exponent = (raw >> 12) - 16 if raw >> 12 >= 8 else raw >> 12
    assert decode_sfloat(encode_sfloat(value, max(0, -exponent))) == value


@given(st.integers(-2045, 2045), st.integers(0, 8))
def test_encode_then_decode_gives_the_same_value(mantissa: int, decimals: int) -> None:
    value = mantissa / 10**decimals
    raw = encode_sfloat(value, decimals)
    assert raw not in SFLOAT_SPECIALS
    assert decode_sfloat(raw) == value
    assert sfloat_at(sfloat_bytes(value, decimals), 0) == value


@given(st.integers(0, 0xFFFFFFFF))
def test_decode_float_is_none_only_for_specials(raw: int) -> None:
    specials = {FLOAT_NAN, FLOAT_NRES, FLOAT_POS_INF, FLOAT_NEG_INF, FLOAT_RESERVED}
    value = decode_float(raw)
    assert (value is None) == (raw in specials)
    if value is not None:
        mantissa = raw & 0xFFFFFF
        mantissa -= 0x1000000 if mantissa >= 0x800000 else 0
        assert math.isfinite(value)
        assert (value > 0) == (mantissa > 0)
        assert (value < 0) == (mantissa < 0)


# ------------------------------------------------ encode_sfloat picks the nearest value (once-known defects)


def test_encode_picks_the_nearest_at_the_mantissa_limit() -> None:
    assert decode_sfloat(encode_sfloat(2045.6)) == 2045.0


def test_encode_rounds_once() -> None:
    assert decode_sfloat(encode_sfloat(1234.51, 1)) == 1235.0


def test_encode_zero_with_many_decimals() -> None:
    assert decode_sfloat(encode_sfloat(0.0, 9)) == 0.0
