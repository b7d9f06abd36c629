"""Deterministic malformed-packet injection into an emulated device, for the `malformed` demo and tests."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from devices.bp.parser import ParseError as BPParseError
from devices.bp.parser import parse_bp_measurement
from devices.hr.parser import ParseError as HRParseError
from devices.hr.parser import parse_heart_rate
from devices.plx.parser import ParseError, build_plx_continuous, parse_plx_continuous
from devices.viatom.parser import build_frame

#: Default spacing of injections, in scenario seconds.
DEFAULT_EVERY_S = 5.0
#: Longest random packet (bytes); 20 is the payload of a default-MTU notification.
MAX_RANDOM_LENGTH = 20


class Injectable(Protocol):
    """What the injector needs of an emulator: its speed (scenario s per wall s) and inject()."""

    @property
    def speed(self) -> float: ...

    def inject(self, raw: bytes) -> asyncio.Task[None]: ...


def _bad_crc(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0xFF])


#: Hand-made malformed 0x2A5F packets (docs/devices/plx.md "Refused" and the length rules).
PLX_STRUCTURED: tuple[bytes, ...] = (
    b"\x1f\x60",  # flags announce every optional field, 1 byte follows: truncated
    build_plx_continuous(spo2=97, pulse_rate=72)[:3],  # cut inside PR
    build_plx_continuous(spo2=97, pulse_rate=72, measurement_status=0x20)[:-1],  # status cut short
    build_plx_continuous(spo2=97, pulse_rate=72) + b"\xde\xad",  # trailing garbage, no reserved bit
)
#: Hand-made malformed Viatom stream bytes (gatt.md "Proprietary oximeters"): bad CRC, bad length.
VIATOM_STRUCTURED: tuple[bytes, ...] = (
    _bad_crc(build_frame(0x0F, 0x01, bytes([97, 72, 0, 25, 0, 0xC0]))),  # parameters, CRC flipped
    _bad_crc(build_frame(0x0F, 0x02, bytes([60, 70, 80, 90, 100]))),  # pleth, CRC flipped
    b"\xaa\x55\x0f\x01\x01",  # length 1 < 2 (type + CRC)
    b"\x13\x37\x00\x42",  # garbage between frames
)
#: Hand-made malformed BerryMed BCI bytes: a sync byte inside a packet, packets cut short.
BERRYMED_STRUCTURED: tuple[bytes, ...] = (
    b"\x85\x40\x05\x48\x61"[:3] + b"\x85\x40\x05\x48\x61",  # 3 bytes then a new sync: truncated
    b"\x40\x05\x48",  # bytes without a sync byte
    b"\x85\x40\x85\x48\x61",  # sync bit set in byte 2
)


#: Hand-made malformed 0x2A37 packets (docs/devices/hr.md): every one announces more than it carries.
HR_STRUCTURED: tuple[bytes, ...] = (
    b"",  # empty
    b"\x01\x48",  # a 16-bit value announced, one byte sent
    b"\x10\x48\x00",  # an RR interval cut in half
    b"\x16\x4c\x28",  # gatt.md's example with its last byte lost
)
_BP_EXAMPLE = bytes.fromhex("1E 78 00 50 00 5D 00 E8 07 05 06 07 08 09 48 00 01 04 00")  # gatt.md
#: Hand-made malformed 0x2A35 indications (docs/devices/bp.md): cut short, or trailing garbage.
BP_STRUCTURED: tuple[bytes, ...] = (
    _BP_EXAMPLE[:10],  # cut inside the timestamp
    _BP_EXAMPLE[:-1],  # status cut short
    _BP_EXAMPLE + b"\x00",  # trailing byte, no reserved flag
    b"\x00\x78\x00",  # flags 0 announce 7 bytes
)


def refused_by(parse: Callable[[bytes], object], error: type[Exception]) -> Callable[[bytes], bool]:
    """A `keep` filter: True for bytes that `parse` refuses with its own `error`."""

    def refused(raw: bytes) -> bool:
        try:
            parse(raw)
        except error:
            return True
        return False

    return refused


#: True when parse_plx_continuous refuses `raw` (the filter for random PLX packets).
plx_is_malformed = refused_by(parse_plx_continuous, ParseError)
#: The same for the HR strap and the BP cuff.
hr_is_malformed = refused_by(parse_heart_rate, HRParseError)
bp_is_malformed = refused_by(parse_bp_measurement, BPParseError)


class MalformedInjector:
    """Every `every_s` scenario seconds (every_s / emulator.speed of wall time), inject one bad packet.

    The sequence depends only on `seed` and `structured`: even-numbered packets cycle through the
    structured ones (when given), the others are random bytes of random length 1–20. With a
    `keep` filter, random packets it refuses are redrawn (deterministically), e.g. plx_is_malformed
    so that every packet sent to a PLX oximeter is one its parser refuses. `injected` lists what
    went out, in order.
    """

    def __init__(
        self,
        emulator: Injectable,
        *,
        seed: int,
        every_s: float = DEFAULT_EVERY_S,
        structured: Sequence[bytes] = (),
        keep: Callable[[bytes], bool] | None = None,
    ) -> None:
        if every_s <= 0:
            raise ValueError("every_s must be positive")
        self.emulator = emulator
        self.every_s = every_s
        self.structured = tuple(structured)
        self.keep = keep
        self.injected: list[bytes] = []
        self._rng = random.Random(seed)
        self._count = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """The injection loop is running."""
        return self._task is not None and not self._task.done()

    def next_packet(self) -> bytes:
        """The next malformed packet of the sequence (advances it; does not send)."""
        index = self._count
        self._count += 1
        if self.structured and index % 2 == 0:
            return self.structured[(index // 2) % len(self.structured)]
        while True:
            length = self._rng.randint(1, MAX_RANDOM_LENGTH)
            raw = self._rng.randbytes(length)
            if self.keep is None or self.keep(raw):
                return raw

    def start(self) -> None:
        """Begin injecting (from a running event loop); the first packet goes out after every_s."""
        if self.running:
            raise RuntimeError("the injector is already running")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop injecting; a packet already being sent is not cut off half-way by this call."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s / self.emulator.speed)
            raw = self.next_packet()
            self.injected.append(raw)
            await asyncio.shield(self.emulator.inject(raw))
