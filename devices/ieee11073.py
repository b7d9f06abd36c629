"""IEEE 11073-20601 SFLOAT/FLOAT numbers as used by Bluetooth health profiles (pure, stdlib only).

Special codes follow ../shared/reference/gatt.md ("IEEE 11073 numbers"): NaN, NRes, ±INF and the
reserved code are *not numbers*; they decode to None ("no valid value").
"""

from __future__ import annotations

import math
import struct

SFLOAT_NAN = 0x07FF
SFLOAT_NRES = 0x0800
SFLOAT_POS_INF = 0x07FE
SFLOAT_NEG_INF = 0x0802
SFLOAT_RESERVED = 0x0801
SFLOAT_SPECIALS = frozenset({SFLOAT_NAN, SFLOAT_NRES, SFLOAT_POS_INF, SFLOAT_NEG_INF, SFLOAT_RESERVED})

FLOAT_NAN = 0x007FFFFF
FLOAT_NRES = 0x00800000
FLOAT_POS_INF = 0x007FFFFE
FLOAT_NEG_INF = 0x00800002
FLOAT_RESERVED = 0x00800001
FLOAT_SPECIALS = frozenset({FLOAT_NAN, FLOAT_NRES, FLOAT_POS_INF, FLOAT_NEG_INF, FLOAT_RESERVED})


def decode_sfloat(raw: int) -> float | None:
    """Decode a 16-bit SFLOAT; special codes (checked before sign extension) give None."""
    raw &= 0xFFFF
    if raw in SFLOAT_SPECIALS:
        return None
    mantissa = raw & 0x0FFF
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    exponent = raw >> 12
    if exponent >= 0x8:
        exponent -= 0x10
    # round away binary noise: an SFLOAT carries at most 4 significant decimal digits
    return round(mantissa * 10.0**exponent, max(0, -exponent))


def decode_float(raw: int) -> float | None:
    """Decode a 32-bit FLOAT; special codes give None."""
    raw &= 0xFFFFFFFF
    if raw in FLOAT_SPECIALS:
        return None
    mantissa = raw & 0xFFFFFF
    if mantissa >= 0x800000:
        mantissa -= 0x1000000
    exponent = raw >> 24
    if exponent >= 0x80:
        exponent -= 0x100
    return round(mantissa * 10.0**exponent, max(0, -exponent))


def sfloat_at(data: bytes, offset: int) -> float | None:
    """Decode the little-endian SFLOAT at `offset` (raises struct.error when short)."""
    (raw,) = struct.unpack_from("<H", data, offset)
    return decode_sfloat(raw)


#: Largest mantissa the encoder writes: ±2046, 2047 and −2048 are legal numbers when the exponent is
#: not 0, but a decoder that tests the special codes on the mantissa alone would misread them.
SFLOAT_MAX_MANTISSA = 2045


def encode_sfloat(value: float | None, decimals: int = 0) -> int:
    """Encode `value` as the nearest 16-bit SFLOAT, preferring `decimals` digits after the point.

    Exact values keep the preferred exponent (96 → `60 00`; 16.0 with decimals=1 → `A0 F0`); otherwise
    the nearest representable value wins, ties going to the preferred exponent, then to plainer ones.
    None and NaN give the NaN code, ±inf the ±INF codes. Used by the emulated devices and the tests.
    Raises ValueError beyond the SFLOAT range.
    """
    if value is None or math.isnan(value):
        return SFLOAT_NAN
    if math.isinf(value):
        return SFLOAT_POS_INF if value > 0 else SFLOAT_NEG_INF
    if abs(value) >= (SFLOAT_MAX_MANTISSA + 0.5) * 10**7:
        raise ValueError(f"{value} is beyond the SFLOAT range (does not fit)")
    preferred = max(-8, min(7, -decimals))
    order = [preferred] + [
        e for e in (0, -1, -2, -3, -4, -5, -6, -7, -8, 1, 2, 3, 4, 5, 6, 7) if e != preferred
    ]
    best: tuple[float, int, int] | None = None  # (error, preference rank, raw)
    for rank, exponent in enumerate(order):
        scaled = value * 10**-exponent if exponent <= 0 else value / 10**exponent
        for candidate in {math.floor(scaled), math.ceil(scaled)}:
            mantissa = max(-SFLOAT_MAX_MANTISSA, min(SFLOAT_MAX_MANTISSA, candidate))
            raw = ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)
            decoded = decode_sfloat(raw)
            assert decoded is not None  # the mantissa range excludes every special code
            key = (abs(decoded - value), rank, raw)
            if best is None or key < best:
                best = key
    assert best is not None
    return best[2]


def sfloat_bytes(value: float | None, decimals: int = 0) -> bytes:
    """Little-endian bytes of encode_sfloat()."""
    return struct.pack("<H", encode_sfloat(value, decimals))
