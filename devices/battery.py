"""Pure parser of the standard Battery Level characteristic (0x2A19, Battery service 0x180F)."""

from __future__ import annotations

# Wire format: gatt.md ("Heart Rate 0x180D, Battery 0x180F, Device Information 0x180A"):
# 0x2A19 is one u8, the charge in percent (read, optional notify).

type ByteData = bytes | bytearray | memoryview

#: The highest Battery Level there is (percent); 101–255 are reserved values.
MAX_BATTERY_LEVEL = 100


class ParseError(ValueError):
    """The bytes are not a valid Battery Level; the message says why (the caller logs the bytes)."""


def parse_battery_level(data: ByteData) -> int:
    """The battery charge in percent (0–100) from a 0x2A19 value; raise ParseError (only) otherwise.

    Exactly one byte: an empty value, extra bytes, or a level above 100 (reserved) are refused, so
    a garbled read never shows as a plausible charge.
    """
    buf = bytes(data)
    if len(buf) != 1:
        raise ParseError(f"battery level 0x2A19: {len(buf)} bytes, expected exactly 1")
    level = buf[0]
    if level > MAX_BATTERY_LEVEL:
        raise ParseError(f"battery level 0x2A19: {level} % is above {MAX_BATTERY_LEVEL} (reserved value)")
    return level


def build_battery_level(level: int) -> bytes:
    """Encode a Battery Level (0–100 %): the inverse of parse_battery_level."""
    if not 0 <= level <= MAX_BATTERY_LEVEL:
        raise ValueError(f"battery level {level} is not within 0–{MAX_BATTERY_LEVEL} %")
    return bytes([level])
