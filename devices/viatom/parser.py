"""Pure framer, parser and encoder of the Viatom/Lepu PC-60FW/NW `AA 55` frame stream (Nordic UART)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from devices.plx.parser import ParseError
from kapmonitor.measurements import Measurement, Numeric, Param, Quality, Waveform

# Wire format: ../../docs/devices/viatom.md, after ../../../shared/reference/gatt.md
# ("Proprietary oximeters", Viatom/Lepu PC-60FW, PC-60NW).

type ByteData = bytes | bytearray | memoryview

#: Every frame starts with these two bytes (gatt.md).
HEADER = b"\xaa\x55"
#: AA 55, token, len: the bytes before the ones `len` counts.
HEADER_SIZE = 4
#: `len` counts type + payload + crc, so it is at least 2 (a type and a CRC, no payload).
MIN_LEN = 2
#: Our bound on `len`. The frames we know are 7–10 bytes long (len 3–8); a larger value is taken for
#: corruption, so that a damaged length byte delays the frames behind it by at most this many bytes.
MAX_LEN = 32

#: Token of the real-time stream; its frame types (gatt.md).
TOKEN_REALTIME = 0x0F
TYPE_PARAMS = 0x01
TYPE_PLETH = 0x02
TYPE_ENABLE_PARAMS = 0x84
TYPE_ENABLE_WAVE = 0x85

#: Payload sizes: SpO2 u8, PR u16, PI u8, status u8, battery u8; five pleth samples (gatt.md).
PARAMS_PAYLOAD = 6
PLETH_SAMPLES_PER_FRAME = 5

#: Status byte bits (gatt.md): bit 1 probe off / no finger, bit 2 searching.
STATUS_PROBE_OFF = 1 << 1
STATUS_SEARCHING = 1 << 2

#: The pleth sample rate we assume: 50 Hz, i.e. one 5-sample wave frame every 100 ms. gatt.md gives
#: no rate; this is what open-source PC-60FW readers report, and it is NOT verified on hardware
#: (docs/devices/viatom.md, decision 5). Change it here when a capture says otherwise.
PLETH_RATE_HZ = 50.0

#: Battery level 0–3 (bits 7–6 of the battery byte) → percent: level × 100 / 3, so an
#: empty gauge (0) reads 0 % and trips any low-battery threshold (docs/devices/viatom.md, decision 4).
BATTERY_PERCENT = (0.0, 33.0, 67.0, 100.0)

#: SpO2/PR raw values that mean "no reading" (docs/devices/viatom.md, decision 2): gatt.md names no
#: marker for this family; it sends 0 while it has no reading, and 127/255 (the BCI markers, all
#: ones in 7/8 bits) are never readings either.
SPO2_INVALID = frozenset({0, 127})
PR_INVALID = frozenset({0, 255, 0xFFFF})
SPO2_MAX = 100
PR_MAX = 300


def crc8_maxim(data: ByteData) -> int:
    """CRC-8 Dallas/Maxim: reflected polynomial 0x8C, init 0, no final xor (gatt.md)."""
    crc = 0
    for byte in bytes(data):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


def build_frame(token: int, frame_type: int, payload: ByteData = b"") -> bytes:
    """Encode one frame `AA 55 | token | len | type | payload | crc8` (len = 1 + payload + 1)."""
    body = bytes(payload)
    if not 0 <= token <= 0xFF or not 0 <= frame_type <= 0xFF:
        raise ValueError(f"token {token:#x} and type {frame_type:#x} must be bytes")
    length = len(body) + 2
    if length > 0xFF:
        raise ValueError(f"payload of {len(body)} bytes does not fit the length byte")
    head = HEADER + bytes([token, length, frame_type]) + body
    return head + bytes([crc8_maxim(head)])


#: The two commands that start the stream (gatt.md: `AA 55 0F 03 84 01 E0`, `AA 55 0F 03 85 01 24`).
ENABLE_PARAMS = build_frame(TOKEN_REALTIME, TYPE_ENABLE_PARAMS, b"\x01")
ENABLE_WAVE = build_frame(TOKEN_REALTIME, TYPE_ENABLE_WAVE, b"\x01")
ENABLE_COMMANDS = (ENABLE_PARAMS, ENABLE_WAVE)


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete frame whose CRC checked out."""

    token: int
    type: int
    payload: bytes
    raw: bytes


@dataclass(frozen=True, slots=True)
class BadBytes:
    """Bytes the framer threw away (bad CRC, impossible length, or bytes outside any frame)."""

    data: bytes
    reason: str


class StreamFramer:
    """Cuts the byte stream of successive notifications into frames; resynchronises on `AA 55`.

    `feed(chunk)` returns the frames completed by that chunk; a frame may span chunks and a chunk
    may hold several frames. Every byte fed ends up in exactly one of three places: a returned
    frame (`framed_bytes`), a discarded run reported in `bad` (`discarded_bytes`; `bad` holds only
    the latest feed's runs, each run counts once in `malformed`), or held back (`pending`) until
    its fate is known. A frame with a bad CRC discards only its `AA 55`, and the search goes on
    right after it, so a valid frame inside a damaged frame's claimed span is still found.

    `trusted(token, type)` says which frames the caller knows; known frames are waited for. An
    unknown frame is not trusted for framing: an 8-bit CRC passes by chance once in 256, so the
    search goes on right after its `AA 55` and a known frame that starts inside its span is
    returned at once; nor is it waited for, so garbage that looks like the start of a long frame
    holds back no known frame. Its verdict waits for its last byte (at most MAX_LEN + 4 bytes of
    stream later): a good CRC returns it (its bytes are a frame's), a bad one discards its bytes
    that no other frame took, and reports them with that later feed. None trusts every frame.
    """

    def __init__(self, trusted: Callable[[int, int], bool] | None = None) -> None:
        self._trusted = trusted
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]; the bytes before it have their fate
        self._scan = 0  # stream offset where the search for the next `AA 55` goes on
        self._open: list[tuple[int, int]] = []  # (start, end) of unknown frames not complete yet
        self._spans: list[tuple[int, int]] = []  # (start, end) of returned frames not settled yet
        self._marks: dict[int, str] = {}  # why the bytes from this stream offset on are discarded
        self.bad: list[BadBytes] = []
        #: cumulative: good frames, discarded runs; bytes fed, in frames, discarded
        self.frames = 0
        self.malformed = 0
        self.fed_bytes = 0
        self.framed_bytes = 0
        self.discarded_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held back: a frame not complete yet, or bytes awaiting an unknown frame's verdict."""
        return len(self._buf)

    def _frame(self, raw: bytes, start: int, frames: list[Frame]) -> None:
        frames.append(Frame(raw[2], raw[4], raw[5:-1], raw))
        self._spans.append((start, start + len(raw)))
        self.frames += 1

    def _verdicts(self, frames: list[Frame]) -> None:
        """Check the CRC of the unknown frames the latest bytes completed."""
        still_open: list[tuple[int, int]] = []
        for start, end in self._open:
            if end > self._base + len(self._buf):
                still_open.append((start, end))
                continue
            raw = bytes(self._buf[start - self._base : end - self._base])
            if crc8_maxim(raw[:-1]) == raw[-1]:
                self._frame(raw, start, frames)
            else:
                self._marks[start] = (
                    f"unknown frame (token {raw[2]:02X}, type {raw[4]:02X}, len {raw[3]}): "
                    f"CRC {raw[-1]:02X}, computed {crc8_maxim(raw[:-1]):02X}"
                )
        self._open = still_open

    def _search(self, frames: list[Frame]) -> None:
        """Look for frames from where the last search stopped; mark why skipped headers were skipped."""
        buf, base = self._buf, self._base
        i = self._scan - base
        while True:
            start = buf.find(HEADER, i)
            if start < 0:
                # keep a trailing AA: it may be the first half of the next header
                i = len(buf) - 1 if len(buf) > i and buf[-1] == HEADER[0] else len(buf)
                break
            i = start
            if len(buf) - i < HEADER_SIZE:
                break  # the header itself is not complete yet
            length = buf[i + 3]
            if not MIN_LEN <= length <= MAX_LEN:
                self._marks[base + i] = f"impossible length {length} (allowed {MIN_LEN}–{MAX_LEN})"
                i += 2
                continue
            if len(buf) - i <= HEADER_SIZE:
                break  # the type byte tells whether the frame is trusted
            trusted = self._trusted is None or self._trusted(buf[i + 2], buf[i + 4])
            end = i + HEADER_SIZE + length
            if len(buf) < end:
                if trusted:
                    break  # wait for the rest of the frame
                # not worth waiting for (it may be garbage in front of a real frame): its verdict
                # comes with its last byte, and the search goes on inside its span
                self._open.append((base + i, base + end))
                i += 2
                continue
            raw = bytes(buf[i:end])
            if crc8_maxim(raw[:-1]) != raw[-1]:
                self._marks[base + i] = f"CRC {raw[-1]:02X}, computed {crc8_maxim(raw[:-1]):02X}"
                i += 2
                continue
            self._frame(raw, base + i, frames)
            i = end if trusted else i + 2
        self._scan = base + i

    def _settle(self, horizon: int) -> None:
        """Give every byte before `horizon` its fate: inside a returned frame, or a reported run."""
        pos = self._base
        for start, end in sorted(self._spans):
            if end <= pos:
                continue
            if start >= horizon:
                break
            if start > pos:
                self._report(pos, start)
                pos = start
            covered = min(end, horizon)
            self.framed_bytes += covered - pos
            pos = covered
        if pos < horizon:
            self._report(pos, horizon)
        self._spans = [s for s in self._spans if s[1] > horizon]
        self._marks = {at: why for at, why in self._marks.items() if at >= horizon}
        del self._buf[: horizon - self._base]
        self._base = horizon

    def _report(self, lo: int, hi: int) -> None:
        data = bytes(self._buf[lo - self._base : hi - self._base])
        self.bad.append(BadBytes(data, self._marks.get(lo, "bytes outside any frame")))
        self.malformed += 1
        self.discarded_bytes += len(data)

    def feed(self, chunk: ByteData) -> list[Frame]:
        """Add the bytes of one notification; return the frames it completes."""
        self.bad = []
        data = bytes(chunk)
        self._buf += data
        self.fed_bytes += len(data)
        frames: list[Frame] = []
        self._verdicts(frames)
        self._search(frames)
        self._settle(min([self._scan, *(start for start, _ in self._open)]))
        return frames


#: Chunks whose arrival-based start differs from the running sample clock by more than this are
#: re-anchored to their arrival (a gap, a drifting device clock); smaller differences are jitter.
REANCHOR_S = 0.25


class SampleClock:
    """Stamps consecutive waveform chunks back to back at the nominal rate.

    Notifications arrive with radio jitter; stamping each chunk by its arrival would make the sweep
    stutter. The first chunk ends at its arrival time; each next chunk starts where the previous
    one ended, unless that is more than REANCHOR_S away from its arrival-based start (then the
    chunk is re-anchored to its arrival).
    """

    def __init__(self, rate_hz: float, reanchor_s: float = REANCHOR_S) -> None:
        self.rate_hz = rate_hz
        self.reanchor_s = reanchor_s
        self._next: float | None = None
        self.reanchors = 0

    def start_of(self, arrival_mono: float, count: int) -> float:
        """Monotonic time of the first of `count` samples that arrived (all of them) at `arrival_mono`."""
        by_arrival = arrival_mono - (count - 1) / self.rate_hz
        if self._next is None or abs(by_arrival - self._next) > self.reanchor_s:
            if self._next is not None:
                self.reanchors += 1
            start = by_arrival
        else:
            start = self._next
        self._next = start + count / self.rate_hz
        return start


# ------------------------------------------------------------------------------------------ frames


@dataclass(frozen=True, slots=True)
class ViatomParams:
    """A parameter frame (token 0x0F, type 0x01) as the device sent it (raw numbers)."""

    spo2: int
    pulse_rate: int
    pi_raw: int
    status: int
    battery_raw: int

    @property
    def perfusion_index(self) -> float:
        """PI in % (the wire carries tenths)."""
        return self.pi_raw / 10.0

    @property
    def probe_off(self) -> bool:
        """Status bit 1: probe off or no finger."""
        return bool(self.status & STATUS_PROBE_OFF)

    @property
    def searching(self) -> bool:
        """Status bit 2: searching for a pulse."""
        return bool(self.status & STATUS_SEARCHING)

    @property
    def battery_level(self) -> int:
        """Battery gauge 0–3 (battery byte bits 7–6)."""
        return self.battery_raw >> 6 & 0x03


@dataclass(frozen=True, slots=True)
class ViatomPleth:
    """A pleth frame (token 0x0F, type 0x02): samples 0–127 and beat markers (bit 7)."""

    samples: tuple[int, ...]
    beats: tuple[bool, ...]


def parse_params(payload: ByteData) -> ViatomParams:
    """Parse a type 0x01 payload; ParseError when it is shorter than 6 bytes (extra bytes are ignored)."""
    p = bytes(payload)
    if len(p) < PARAMS_PAYLOAD:
        raise ParseError(f"Viatom params: {len(p)} payload bytes, need {PARAMS_PAYLOAD}")
    return ViatomParams(p[0], p[1] | p[2] << 8, p[3], p[4], p[5])


def parse_pleth(payload: ByteData) -> ViatomPleth:
    """Parse a type 0x02 payload: each byte is a sample (value & 0x7F, bit 7 = beat); ParseError if empty."""
    p = bytes(payload)
    if not p:
        raise ParseError("Viatom pleth: no samples")
    return ViatomPleth(tuple(b & 0x7F for b in p), tuple(bool(b & 0x80) for b in p))


def build_params(
    *,
    spo2: int,
    pulse_rate: int,
    pi_raw: int,
    probe_off: bool = False,
    searching: bool = False,
    battery_level: int = 3,
    status_extra: int = 0,
) -> bytes:
    """Encode a whole type 0x01 frame (inverse of parse_params after the framer)."""
    status = status_extra | (STATUS_PROBE_OFF if probe_off else 0) | (STATUS_SEARCHING if searching else 0)
    if not 0 <= battery_level <= 3:
        raise ValueError(f"battery level {battery_level} is not 0–3")
    for name, value, bits in (("spo2", spo2, 8), ("pulse_rate", pulse_rate, 16), ("pi_raw", pi_raw, 8)):
        if not 0 <= value < 1 << bits:
            raise ValueError(f"{name} {value} does not fit {bits} bits")
    payload = bytes([spo2, pulse_rate & 0xFF, pulse_rate >> 8, pi_raw, status & 0xFF, battery_level << 6])
    return build_frame(TOKEN_REALTIME, TYPE_PARAMS, payload)


def build_pleth(samples: Sequence[int], beats: Sequence[bool] = ()) -> bytes:
    """Encode a whole type 0x02 frame from samples 0–127 (and optional beat markers)."""
    if len(beats) > len(samples):
        raise ValueError("more beat markers than samples")
    marks = list(beats) + [False] * (len(samples) - len(beats))
    if any(not 0 <= s <= 0x7F for s in samples):
        raise ValueError("pleth samples must be 0–127")
    payload = bytes(s | (0x80 if b else 0) for s, b in zip(samples, marks, strict=True))
    return build_frame(TOKEN_REALTIME, TYPE_PLETH, payload)


# ------------------------------------------------------------------------------------------ values


def _checked(raw: int, invalid: frozenset[int], top: int) -> float | None:
    return None if raw in invalid or raw > top else float(raw)


def to_numerics(p: ViatomParams, *, device: str, mono: float, wall: float) -> list[Numeric]:
    """SpO2, PR, PI and battery (%) from a parameter frame (docs/devices/viatom.md, decisions 1–4).

    Probe off → SpO2, PR, PI None with SENSOR_OFF. Searching → SEARCHING, values kept when valid.
    A marker or impossible value (SpO2 0/127/>100, PR 0/255/>300) → None with INVALID.
    """
    base = Quality.NONE
    if p.probe_off:
        base |= Quality.SENSOR_OFF
    if p.searching:
        base |= Quality.SEARCHING

    def numeric(param: Param, value: float | None, marker: bool) -> Numeric:
        if p.probe_off:
            return Numeric(param, None, mono, wall, device, base)
        return Numeric(param, value, mono, wall, device, base | (Quality.INVALID if marker else Quality.NONE))

    spo2 = _checked(p.spo2, SPO2_INVALID, SPO2_MAX)
    pr = _checked(p.pulse_rate, PR_INVALID, PR_MAX)
    return [
        numeric(Param.SPO2, spo2, spo2 is None),
        numeric(Param.PULSE_RATE, pr, pr is None),
        numeric(Param.PERFUSION_INDEX, p.perfusion_index, False),
        Numeric(Param.BATTERY, BATTERY_PERCENT[p.battery_level], mono, wall, device),
    ]


def is_stream_frame(token: int, frame_type: int) -> bool:
    """The frames the decoder uses (and trusts for framing): token 0x0F, parameters or pleth."""
    return token == TOKEN_REALTIME and frame_type in (TYPE_PARAMS, TYPE_PLETH)


class MalformedFramesError(ParseError):
    """Some bytes were no good frame; `measurements` holds what the notification's good frames gave.

    The bytes are this notification's, or an earlier one's whose verdict waited for an unknown
    frame's last byte (StreamFramer): each discarded byte is reported once, with its bytes.

    The link counts one malformed packet per raise. A link that knows this class ingests
    `measurements` too (docs/devices/viatom.md, "Malformed frames"); one that does not loses them.
    """

    def __init__(self, message: str, measurements: Sequence[Measurement], bad: Sequence[BadBytes]) -> None:
        super().__init__(message)
        self.measurements: tuple[Measurement, ...] = tuple(measurements)
        self.bad: tuple[BadBytes, ...] = tuple(bad)


@dataclass
class ViatomDecoder:
    """The driver's Decoder: notification bytes → Numerics (1 Hz) and pleth Waveform chunks.

    Stateful (it owns a StreamFramer): make one per connection. The pleth samples of one notification
    become one Waveform, stamped by a SampleClock (back to back at the nominal rate, anchored to
    the arrival time of the notification: the first chunk's last sample is stamped on arrival).
    """

    pleth_rate_hz: float = PLETH_RATE_HZ
    framer: StreamFramer = field(default_factory=lambda: StreamFramer(trusted=is_stream_frame))
    clock: SampleClock = field(init=False)
    #: frames with a good CRC but a type we do not use (e.g. command answers)
    ignored_frames: int = 0

    def __post_init__(self) -> None:
        self.clock = SampleClock(self.pleth_rate_hz)

    def reset(self) -> None:
        """Forget the stream: a new connection must not glue its bytes to the last one's partial frame."""
        self.framer = StreamFramer(trusted=is_stream_frame)
        self.clock = SampleClock(self.pleth_rate_hz)

    def __call__(self, data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
        frames = self.framer.feed(data)
        bad = list(self.framer.bad)
        out: list[Measurement] = []
        samples: list[int] = []
        for frame in frames:
            try:
                if frame.token == TOKEN_REALTIME and frame.type == TYPE_PARAMS:
                    out.extend(to_numerics(parse_params(frame.payload), device=device, mono=mono, wall=wall))
                elif frame.token == TOKEN_REALTIME and frame.type == TYPE_PLETH:
                    samples.extend(parse_pleth(frame.payload).samples)
                else:
                    self.ignored_frames += 1
            except ParseError as exc:
                bad.append(BadBytes(frame.raw, str(exc)))
        if samples:
            first = self.clock.start_of(mono, len(samples))
            out.append(
                Waveform("pleth", self.pleth_rate_hz, tuple(samples), first, wall - (mono - first), device)
            )
        if bad:
            what = "; ".join(f"{b.reason}: {b.data.hex(' ')}" for b in bad)
            raise MalformedFramesError(f"{len(bad)} malformed frame(s): {what}", out, bad)
        return out


__all__ = [
    "BATTERY_PERCENT",
    "ENABLE_COMMANDS",
    "ENABLE_PARAMS",
    "ENABLE_WAVE",
    "PLETH_RATE_HZ",
    "BadBytes",
    "Frame",
    "MalformedFramesError",
    "ParseError",
    "SampleClock",
    "StreamFramer",
    "ViatomDecoder",
    "ViatomParams",
    "ViatomPleth",
    "build_frame",
    "build_params",
    "build_pleth",
    "crc8_maxim",
    "is_stream_frame",
    "parse_params",
    "parse_pleth",
    "to_numerics",
]
