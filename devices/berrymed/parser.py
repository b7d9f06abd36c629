"""Pure framer, parser and encoder of the BerryMed BCI 5-byte packet stream (BM1000 family)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from devices.plx.parser import ParseError
from devices.viatom.parser import SampleClock  # shared waveform time stamping
from kapmonitor.measurements import Measurement, Numeric, Param, Quality, Waveform

# Wire format: ../../docs/devices/berrymed.md, after ../../../shared/reference/gatt.md
# ("Proprietary oximeters", BerryMed BM1000 family).

type ByteData = bytes | bytearray | memoryview

PACKET_SIZE = 5
SYNC = 0x80  # bit 7: set in byte 0 only

# byte 0
SIGNAL_STRENGTH_MASK = 0x0F
B0_NO_SIGNAL = 1 << 4
B0_PROBE_UNPLUGGED = 1 << 5
B0_BEAT = 1 << 6
# byte 2
BAR_GRAPH_MASK = 0x0F
B2_NO_FINGER = 1 << 4
B2_SEARCHING = 1 << 5
B2_PR_BIT7 = 1 << 6

#: Invalid markers (gatt.md): PR 255, SpO2 127. 0 is treated as "no reading" too (decision 2).
PR_INVALID = frozenset({0, 255})
SPO2_INVALID = frozenset({0, 127})
SPO2_MAX = 100

#: About 100 packets per second, four per notification (gatt.md); one pleth sample per packet.
PLETH_RATE_HZ = 100.0
PACKETS_PER_NOTIFICATION = 4
#: Numerics are emitted every this many packets (≈ 1 Hz at 100 packets/s) and at once on a change of
#: state (sensor off, searching, a value becoming valid or invalid): docs/devices/berrymed.md.
NUMERIC_EVERY_PACKETS = 100


@dataclass(frozen=True, slots=True)
class BciPacket:
    """One 5-byte BCI packet, every field of gatt.md, raw."""

    signal_strength: int
    no_signal: bool
    probe_unplugged: bool
    beat: bool
    pleth: int
    bar_graph: int
    no_finger: bool
    searching: bool
    pulse_rate_raw: int
    spo2_raw: int

    @property
    def sensor_off(self) -> bool:
        """Probe unplugged (byte 0 bit 5) or no finger (byte 2 bit 4)."""
        return self.probe_unplugged or self.no_finger

    @property
    def spo2(self) -> float | None:
        """SpO2 %, None for the invalid marker 127, for 0 and for anything above 100."""
        raw = self.spo2_raw
        return None if raw in SPO2_INVALID or raw > SPO2_MAX else float(raw)

    @property
    def pulse_rate(self) -> float | None:
        """PR /min, None for the invalid marker 255 and for 0."""
        return None if self.pulse_rate_raw in PR_INVALID else float(self.pulse_rate_raw)

    @property
    def quality(self) -> Quality:
        q = Quality.NONE
        if self.sensor_off:
            q |= Quality.SENSOR_OFF
        if self.searching:
            q |= Quality.SEARCHING
        if self.no_signal:
            q |= Quality.POOR_SIGNAL
        return q


def parse_packet(data: ByteData) -> BciPacket:
    """Parse exactly one packet; ParseError unless 5 bytes with bit 7 set in byte 0 only."""
    b = bytes(data)
    if len(b) != PACKET_SIZE:
        raise ParseError(f"BCI packet: {len(b)} bytes, need {PACKET_SIZE}")
    if not b[0] & SYNC or any(x & SYNC for x in b[1:]):
        raise ParseError(f"BCI packet: sync bit must be set in byte 0 only: {b.hex(' ')}")
    return BciPacket(
        signal_strength=b[0] & SIGNAL_STRENGTH_MASK,
        no_signal=bool(b[0] & B0_NO_SIGNAL),
        probe_unplugged=bool(b[0] & B0_PROBE_UNPLUGGED),
        beat=bool(b[0] & B0_BEAT),
        pleth=b[1],
        bar_graph=b[2] & BAR_GRAPH_MASK,
        no_finger=bool(b[2] & B2_NO_FINGER),
        searching=bool(b[2] & B2_SEARCHING),
        pulse_rate_raw=b[3] | (0x80 if b[2] & B2_PR_BIT7 else 0),
        spo2_raw=b[4],
    )


def build_packet(
    *,
    spo2: int | None,
    pulse_rate: int | None,
    pleth: int = 0,
    signal_strength: int = 0,
    bar_graph: int = 0,
    beat: bool = False,
    no_signal: bool = False,
    probe_unplugged: bool = False,
    no_finger: bool = False,
    searching: bool = False,
) -> bytes:
    """Encode one packet (inverse of parse_packet); None → the invalid markers SpO2 127, PR 255."""
    pr = 255 if pulse_rate is None else pulse_rate
    sp = 127 if spo2 is None else spo2
    checks = (
        ("pulse_rate", pr, 0xFF),
        ("spo2", sp, 0x7F),
        ("pleth", pleth, 0x7F),
        ("signal_strength", signal_strength, 0x0F),
        ("bar_graph", bar_graph, 0x0F),
    )
    for name, value, top in checks:
        if not 0 <= value <= top:
            raise ValueError(f"{name} {value} is not 0–{top}")
    b0 = SYNC | signal_strength
    b0 |= (B0_NO_SIGNAL if no_signal else 0) | (B0_PROBE_UNPLUGGED if probe_unplugged else 0)
    b0 |= B0_BEAT if beat else 0
    b2 = bar_graph | (B2_NO_FINGER if no_finger else 0) | (B2_SEARCHING if searching else 0)
    b2 |= B2_PR_BIT7 if pr & 0x80 else 0
    return bytes([b0, pleth, b2, pr & 0x7F, sp])


@dataclass(frozen=True, slots=True)
class BadBytes:
    """Bytes the framer threw away: a packet cut short by the next sync byte, or bytes outside any packet."""

    data: bytes
    reason: str


class PacketFramer:
    """Cuts the byte stream of successive notifications into 5-byte packets; resynchronises on bit 7.

    `feed(chunk)` returns the packets that chunk completes, in order (a packet may span chunks).
    Discarded bytes are reported in `bad` (latest feed only); consecutive discarded bytes form one
    BadBytes item and count once in `malformed`. A packet is cut short when one of its bytes 1–4 has
    bit 7 set: that byte starts the next packet. Every byte fed is in a packet (`framed_bytes`),
    reported (`discarded_bytes`) or held for the rest of its packet (`pending`, at most 4 bytes).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._junk = bytearray()
        self._junk_reason = ""
        self.bad: list[BadBytes] = []
        self.packets = 0
        self.malformed = 0
        self.fed_bytes = 0
        self.framed_bytes = 0
        self.discarded_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held back for a packet that is not complete yet."""
        return len(self._buf)

    def _discard(self, data: ByteData, reason: str) -> None:
        if not data:
            return
        if not self._junk:
            self._junk_reason = reason
        self._junk += data
        self.discarded_bytes += len(data)

    def _close_junk(self) -> None:
        if self._junk:
            self.bad.append(BadBytes(bytes(self._junk), self._junk_reason))
            self.malformed += 1
            self._junk.clear()
            self._junk_reason = ""

    def feed(self, chunk: ByteData) -> list[BciPacket]:
        """Add the bytes of one notification; return the packets it completes."""
        self.bad = []
        buf = self._buf
        data = bytes(chunk)
        buf += data
        self.fed_bytes += len(data)
        out: list[BciPacket] = []
        i = 0
        while i < len(buf):
            if not buf[i] & SYNC:
                j = i
                while j < len(buf) and not buf[j] & SYNC:
                    j += 1
                self._discard(buf[i:j], "bytes outside any packet (no sync bit)")
                i = j
                continue
            window = buf[i + 1 : i + PACKET_SIZE]
            cut = next((k for k, x in enumerate(window, 1) if x & SYNC), None)
            if cut is not None:
                self._discard(buf[i : i + cut], f"packet cut short after {cut} byte(s) by a sync byte")
                i += cut
                continue
            if len(buf) - i < PACKET_SIZE:
                break  # wait for the rest
            self._close_junk()
            out.append(parse_packet(buf[i : i + PACKET_SIZE]))
            self.packets += 1
            self.framed_bytes += PACKET_SIZE
            i += PACKET_SIZE
        del buf[:i]
        self._close_junk()
        return out


class MalformedPacketsError(ParseError):
    """Some bytes of a notification were no good packet; `measurements` holds what the good ones gave.

    The link counts one malformed packet per raise; a link that knows this class also ingests
    `measurements` (docs/devices/berrymed.md, "Malformed packets").
    """

    def __init__(self, message: str, measurements: Sequence[Measurement], bad: Sequence[BadBytes]) -> None:
        super().__init__(message)
        self.measurements: tuple[Measurement, ...] = tuple(measurements)
        self.bad: tuple[BadBytes, ...] = tuple(bad)


def to_numerics(p: BciPacket, *, device: str, mono: float, wall: float) -> list[Numeric]:
    """SpO2 and PR from one packet: sensor off → both None with SENSOR_OFF; a marker → None with INVALID."""
    q = p.quality

    def numeric(param: Param, value: float | None) -> Numeric:
        if p.sensor_off:
            return Numeric(param, None, mono, wall, device, q)
        return Numeric(
            param, value, mono, wall, device, q | (Quality.INVALID if value is None else Quality.NONE)
        )

    return [numeric(Param.SPO2, p.spo2), numeric(Param.PULSE_RATE, p.pulse_rate)]


def _state(p: BciPacket) -> tuple[Quality, bool, bool]:
    return p.quality, p.spo2 is None, p.pulse_rate is None


@dataclass
class BerryMedDecoder:
    """The driver's Decoder: notifications → pleth Waveforms (100 Hz) and Numerics (≈ 1 Hz).

    Stateful (it owns a PacketFramer and the decimation counter): make one per connection. The
    Numerics of the first packet go out at once, then those of every NUMERIC_EVERY_PACKETS-th
    packet, and also those of any packet whose state (Quality, SpO2 or PR validity) differs from
    the last emitted one, so that "sensor off" is not held back for up to a second. Pleth chunks
    are stamped by a SampleClock (back to back at 100 Hz, anchored to arrival).
    """

    pleth_rate_hz: float = PLETH_RATE_HZ
    every: int = NUMERIC_EVERY_PACKETS
    framer: PacketFramer = field(default_factory=PacketFramer)
    clock: SampleClock = field(init=False)
    _since: int = 0
    _last_state: tuple[Quality, bool, bool] | None = None

    def __post_init__(self) -> None:
        self.clock = SampleClock(self.pleth_rate_hz)

    def reset(self) -> None:
        """Forget the stream (partial packet, decimation, sample clock): called at each new connection."""
        self.framer = PacketFramer()
        self.clock = SampleClock(self.pleth_rate_hz)
        self._since = 0
        self._last_state = None

    def __call__(self, data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
        packets = self.framer.feed(data)
        out: list[Measurement] = []
        for p in packets:
            state = _state(p)
            if self._last_state is None or state != self._last_state or self._since >= self.every - 1:
                out.extend(to_numerics(p, device=device, mono=mono, wall=wall))
                self._last_state = state
                self._since = 0
            else:
                self._since += 1
        if packets:
            first = self.clock.start_of(mono, len(packets))
            samples = tuple(p.pleth for p in packets)
            out.append(Waveform("pleth", self.pleth_rate_hz, samples, first, wall - (mono - first), device))
        bad = self.framer.bad
        if bad:
            what = "; ".join(f"{b.reason}: {b.data.hex(' ')}" for b in bad)
            raise MalformedPacketsError(f"{len(bad)} malformed run(s): {what}", out, bad)
        return out


__all__ = [
    "NUMERIC_EVERY_PACKETS",
    "PLETH_RATE_HZ",
    "BadBytes",
    "BciPacket",
    "BerryMedDecoder",
    "MalformedPacketsError",
    "PacketFramer",
    "ParseError",
    "build_packet",
    "parse_packet",
    "to_numerics",
]
