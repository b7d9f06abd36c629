"""Bad-packet suite: seeded random and mutated packets into every parser through the link's counting path.

Each packet goes through `DeviceLink`'s own notification handler (or, for the Battery Level and
Device Information reads, its `_read_static`; for RACP responses, the RecordAccessClient the link
builds) into a real `Session`, exactly as a notification from a wearable does. The decoders are the
drivers' own (`plx_spec`, `measurement_decoder`, ...). The decoder is wrapped only to see what it
raised: any exception other than the parser's declared error type is a crash. Every refused packet
must be counted once by the link (`DeviceLink.malformed`) and once by the session
(`DeviceCounters.malformed`, and a `malformed_packets` row when a Recorder is attached). For the
stream framers (Viatom, BerryMed) every byte fed must be in a frame, in a reported run, or held
(bounded) for the rest of a frame: a byte dropped without a report is a failure.

Run: `.venv/bin/python stress/fuzz_parsers.py --count 1000000 [--seed N] [--only NAME ...]`
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable (stress/ is not installed)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices._ble.link import DeviceLink
from devices.battery import ParseError as BatteryParseError
from devices.battery import build_battery_level
from devices.berrymed.parser import PACKET_SIZE as BCI_PACKET_SIZE
from devices.berrymed.parser import PACKETS_PER_NOTIFICATION, BerryMedDecoder, PacketFramer
from devices.bp.driver import _decode_intermediate, measurement_decoder
from devices.bp.parser import ParseError as BPParseError
from devices.bp.parser import parse_bp_feature
from devices.driver import BATTERY_LEVEL, DEVICE_INFO_STRINGS, Decoder, DriverSpec, Subscription, uuid16
from devices.emulated.berrymed_oximeter import packet_for
from devices.emulated.bp_cuff import encode_feature, encode_intermediate, encode_reading
from devices.emulated.hr_strap import encode_measurement
from devices.emulated.pleth import PlethSynth
from devices.emulated.plx_oximeter import encode_continuous, encode_features
from devices.emulated.scenario import Scenario, VitalsPoint, artefact, desaturation, normal, sensor_off
from devices.emulated.viatom_oximeter import DEFAULT_CHUNK, params_frame
from devices.hr.driver import decode_heart_rate
from devices.hr.parser import ParseError as HRParseError
from devices.plx.driver import PLX_CONTINUOUS, PLX_RACP, PLX_SPOT_CHECK, plx_spec
from devices.plx.parser import ParseError as PlxParseError
from devices.plx.parser import (
    RacpOpCode,
    RacpResponseCode,
    build_plx_spot_check,
    build_racp,
    parse_plx_features,
    parse_racp_response,
)
from devices.viatom.parser import HEADER_SIZE as VIATOM_HEADER_SIZE
from devices.viatom.parser import MAX_LEN as VIATOM_MAX_LEN
from devices.viatom.parser import PLETH_RATE_HZ as VIATOM_RATE_HZ
from devices.viatom.parser import PLETH_SAMPLES_PER_FRAME, StreamFramer, ViatomDecoder, build_pleth
from kapmonitor.alarms import AlarmEngine, kap_defaults
from kapmonitor.clock import FakeClock, SystemClock
from kapmonitor.measurements import DeviceInfo, Measurement
from kapmonitor.session import Session, Sink

DEFAULT_SEED = 20261203
#: Longest random packet: a few notifications' worth (a default-MTU notification carries 20 bytes).
MAX_RANDOM = 64
#: Share of packets that are pure random bytes; the rest are mutations of valid packets.
RANDOM_SHARE = 0.25
#: Every this many packets, a known-bad packet (bad by the wire format, see `Target.known_bad`).
KNOWN_BAD_EVERY = 50
DEVICE = "FU:ZZ:00:00:00:01"

# ------------------------------------------------------------------------------ valid packets


def _points(count: int) -> list[VitalsPoint]:
    """Scenario points covering normal values, desaturation, sensor off and artefact."""
    scenarios: list[Scenario] = [normal(1), desaturation(2), sensor_off(3), artefact(4)]
    return [s.at(float(t)) for s in scenarios for t in range(0, 400, max(1, 400 * len(scenarios) // count))]


def _plx_continuous(points: list[VitalsPoint]) -> list[bytes]:
    return [encode_continuous(p, demonstration=i % 7 == 0) for i, p in enumerate(points)]


#: Measurement Status bit 9: a record from the device's storage (an RACP upload, gatt.md "RACP")
FROM_STORAGE = 1 << 9


def _plx_spot_check(points: list[VitalsPoint]) -> list[bytes]:
    """Live spot-checks (with or without a time) and stored ones (always with their time)."""
    # the parser module's encoder (the one the emulator uses)
    start = datetime(2026, 12, 3, 6, 0, 0, tzinfo=UTC)
    out: list[bytes] = []
    for i, p in enumerate(points):
        stored = i % 5 == 0
        out.append(
            build_plx_spot_check(
                spo2=p.spo2,
                pulse_rate=p.pulse,
                timestamp=start + timedelta(seconds=i) if i % 3 or stored else None,
                measurement_status=(0x0020 if i % 2 else 0) | (FROM_STORAGE if stored else 0) or None,
                device_sensor_status=0x000800 if p.sensor_off else None,
                pulse_amplitude_index=p.pi if i % 4 else None,
            )
        )
    return out


def _racp(points: list[VitalsPoint]) -> list[bytes]:
    counts = [(i * 37).to_bytes(2, "little") for i in range(64)]
    out = [build_racp(RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, 0, c) for c in counts]
    codes = [bytes([op, code]) for op in RacpOpCode for code in RacpResponseCode]
    return out + [build_racp(RacpOpCode.RESPONSE_CODE, 0, c) for c in codes]


def _bp_reading(points: list[VitalsPoint]) -> list[bytes]:
    start = datetime(2026, 12, 3, 6, 0, 0, tzinfo=UTC)
    return [
        encode_reading(p, start + timedelta(minutes=i), user_id=None if i % 5 == 0 else 1, kpa=i % 4 == 0)
        for i, p in enumerate(points)
    ]


def _bp_intermediate(points: list[VitalsPoint]) -> list[bytes]:
    return [encode_intermediate(float(40 + i % 200), kpa=i % 3 == 0) for i in range(len(points))]


def _bp_feature(points: list[VitalsPoint]) -> list[bytes]:
    return [encode_feature(), b"\x3f\x00", b"\x00\x00"]  # every defined feature bit (0-5), none


def _heart_rate(points: list[VitalsPoint]) -> list[bytes]:
    out: list[bytes] = []
    for i, p in enumerate(points):
        beats = [60.0 / p.pulse] * (i % 3) if p.pulse else []
        out.append(encode_measurement(p, beats, energy_kj=i if i % 10 == 0 else None))
    return out


def _battery(points: list[VitalsPoint]) -> list[bytes]:
    return [build_battery_level(level) for level in range(101)]


def _device_information(points: list[VitalsPoint]) -> list[bytes]:
    names = ["KAP Emulation", "KAP-Emu PLX", "SN 000123", "1.0.3", "rev B", "Ünïcødé 血氧", ""]
    return [n.encode() for n in names]


def _viatom(points: list[VitalsPoint]) -> list[bytes]:
    """Notifications as the emulated PC-60FW cuts its byte stream (frames split across chunks)."""
    synth = PlethSynth(VIATOM_RATE_HZ, seed=5, full_scale=127)
    stream = bytearray()
    ticks_per_s = round(VIATOM_RATE_HZ / PLETH_SAMPLES_PER_FRAME)
    for i, p in enumerate(points):
        for tick in range(ticks_per_s):
            samples = synth.next(PLETH_SAMPLES_PER_FRAME, p.pulse, p.pi)
            if tick == 0:
                stream += params_frame(p)
            stream += build_pleth([s.value for s in samples], [s.beat for s in samples])
        if i > 40:
            break
    cuts = range(0, len(stream) - DEFAULT_CHUNK, DEFAULT_CHUNK)
    return [bytes(stream[k : k + DEFAULT_CHUNK]) for k in cuts]


def _berrymed(points: list[VitalsPoint]) -> list[bytes]:
    synth = PlethSynth(100.0, seed=6)
    notifications = [(p, synth.next(PACKETS_PER_NOTIFICATION, p.pulse, p.pi)) for p in points]
    return [b"".join(packet_for(p, s) for s in samples) for p, samples in notifications]


# ------------------------------------------------------------------------------ known-bad packets


def _fixed_format_bad(rng: random.Random, valid: bytes) -> bytes:
    """Bad by the length rule of every fixed-layout SIG format: the valid packets have no reserved
    flag bit set, so one byte more (trailing, or an odd RR byte) or one byte less (a field cut
    short) is refused (docs/devices/plx.md, bp.md, hr.md; RACP responses are exactly 4 bytes)."""
    if rng.random() < 0.5:
        return valid + bytes([rng.randrange(256)])
    return valid[:-1]


def _spot_check_bad(rng: random.Random, valid: bytes) -> bytes:
    """Bad by the length rule, or a stored record without a usable time: no timestamp, or a device
    clock that was never set (it cannot be placed on the timeline and must not pass for live)."""
    if rng.random() < 0.5:
        return _fixed_format_bad(rng, valid)
    clock_not_set = rng.random() < 0.5
    return build_plx_spot_check(
        spo2=rng.randrange(101),
        pulse_rate=rng.randrange(40, 200),
        timestamp=datetime(2000, 1, 1, 0, rng.randrange(60), tzinfo=UTC) if clock_not_set else None,
        measurement_status=FROM_STORAGE,
        device_clock_not_set=clock_not_set,
    )


def _battery_bad(rng: random.Random, valid: bytes) -> bytes:
    """Not exactly one byte, or a reserved level 101–255 (gatt.md, Battery 0x180F)."""
    choice = rng.randrange(3)
    if choice == 0:
        return bytes([rng.randrange(101, 256)])
    if choice == 1:
        return b""
    return valid + bytes([rng.randrange(256)])


def _utf8_bad(rng: random.Random, valid: bytes) -> bytes:
    """Not UTF-8: a lone continuation byte or an invalid lead byte inside a name."""
    at = rng.randint(0, len(valid))
    return valid[:at] + bytes([rng.choice((0x80, 0xBF, 0xC0, 0xF8, 0xFF))]) + valid[at:]


def _viatom_bad(rng: random.Random, valid: bytes) -> bytes:
    """A complete frame whose CRC byte is wrong (frames of one chunk are whole: see _viatom_frames)."""
    frame = _VIATOM_FRAMES[rng.randrange(len(_VIATOM_FRAMES))]
    return frame[:-1] + bytes([frame[-1] ^ rng.randrange(1, 256)])


def _berrymed_bad(rng: random.Random, valid: bytes) -> bytes:
    """A packet with the sync bit (bit 7) set in one of bytes 1–4, or cleared in byte 0."""
    packet = bytearray(valid[:5])
    k = rng.randrange(5)
    packet[k] ^= 0x80
    return bytes(packet)


def _viatom_frames() -> list[bytes]:
    synth = PlethSynth(VIATOM_RATE_HZ, seed=7, full_scale=127)
    out: list[bytes] = []
    for p in _points(40):
        samples = synth.next(PLETH_SAMPLES_PER_FRAME, p.pulse, p.pi)
        out += [params_frame(p), build_pleth([s.value for s in samples], [s.beat for s in samples])]
    return out


_VIATOM_FRAMES = _viatom_frames()

# ------------------------------------------------------------------------------ targets


@dataclass(frozen=True)
class Target:
    """One parser under test: how packets reach it, what it may raise, how to make good and bad ones."""

    name: str
    label: str
    #: the parser's declared error type; anything else it raises is a crash
    declared: type[Exception]
    make_decoder: Callable[[], Decoder]
    make_valid: Callable[[list[VitalsPoint]], list[bytes]]
    #: a packet the wire format says is malformed, derived from a valid one
    known_bad: Callable[[random.Random, bytes], bytes]
    #: "notify": the link's notification handler; "battery"/"device-information": its static reads
    path: str = "notify"
    #: the decoder keeps state across notifications (a stream framer): known-bad packets go to a
    #: fresh decoder, since bytes held back from earlier garbage may legitimately swallow them
    stateful: bool = False
    #: a stream framer holds back fewer bytes than this (the rest of a frame, a pending verdict)
    max_pending: int = 0


def _parse_only(parse: Callable[[bytes], object]) -> Decoder:
    """A decoder for a characteristic no driver subscribes to yet: parse, yield nothing."""

    def decode(data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
        parse(data)
        return []

    return decode


def _fixed(decoder: Decoder) -> Callable[[], Decoder]:
    return lambda: decoder


def _plx(characteristic: str) -> Callable[[], Decoder]:
    """The PLX driver's own decoder of `characteristic` (an oximeter whose clock shows UTC)."""
    (decode,) = [s.decode for s in plx_spec(UTC).subscriptions if s.characteristic == characteristic]
    return _fixed(decode)


TARGETS: tuple[Target, ...] = (
    Target(
        "plx-continuous", "PLX continuous 0x2A5F", PlxParseError, _plx(PLX_CONTINUOUS),
        _plx_continuous, _fixed_format_bad,
    ),
    Target(
        "plx-spot-check", "PLX spot-check 0x2A5E", PlxParseError, _plx(PLX_SPOT_CHECK),
        _plx_spot_check, _spot_check_bad,
    ),
    Target(
        "plx-features", "PLX features 0x2A60", PlxParseError, _fixed(_parse_only(parse_plx_features)),
        lambda _p: [encode_features()], _fixed_format_bad,
    ),
    # indicated to the RecordAccessClient the link builds (devices/_ble/racp.py): refused ones are
    # the link's and the session's malformed packets
    Target(
        "racp", "RACP 0x2A52", PlxParseError, _fixed(_parse_only(parse_racp_response)), _racp,
        _fixed_format_bad, path="racp",
    ),
    Target(
        "bp-measurement", "BP measurement 0x2A35", BPParseError, _fixed(measurement_decoder(UTC)),
        _bp_reading, _fixed_format_bad,
    ),
    Target(
        "bp-intermediate", "cuff pressure 0x2A36", BPParseError,
        _fixed(_decode_intermediate), _bp_intermediate, _fixed_format_bad,
    ),
    Target(
        "bp-feature", "BP feature 0x2A49", BPParseError, _fixed(_parse_only(parse_bp_feature)),
        _bp_feature, _fixed_format_bad,
    ),
    Target(
        "heart-rate", "heart rate 0x2A37", HRParseError, _fixed(decode_heart_rate), _heart_rate,
        _fixed_format_bad,
    ),
    # read, not notified: the link parses it in _read_static (the decoder slot is unused)
    Target(
        "battery", "Battery Level 0x2A19", BatteryParseError, _fixed(_parse_only(lambda b: None)),
        _battery, _battery_bad, path="battery",
    ),
    # no parser and no error type: the link decodes the strings as UTF-8 with replacement
    Target(
        "device-information", "Device Information 0x180A", Exception, _fixed(_parse_only(lambda b: None)),
        _device_information, _utf8_bad, path="device-information",
    ),
    Target(
        "viatom-stream", "Viatom NUS notify 6e400003", PlxParseError, ViatomDecoder, _viatom, _viatom_bad,
        stateful=True, max_pending=VIATOM_HEADER_SIZE + VIATOM_MAX_LEN,
    ),
    Target(
        "berrymed-stream", "BerryMed BCI notify 49535343-1e4d", PlxParseError, BerryMedDecoder, _berrymed,
        _berrymed_bad, stateful=True, max_pending=BCI_PACKET_SIZE,
    ),
)  # fmt: skip
TARGET_NAMES = tuple(t.name for t in TARGETS)

# ------------------------------------------------------------------------------ mutations


def _mutate(rng: random.Random, packet: bytes, pool: Sequence[bytes]) -> bytes:
    """One to three random edits of a packet: bit flips, byte changes, inserts, deletes, cuts, splices."""
    buf = bytearray(packet)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(9)
        n = len(buf)
        if op == 0 and n:  # flip one bit
            buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # replace one byte (often the flags / header byte)
            buf[0 if rng.random() < 0.3 else rng.randrange(n)] = rng.randrange(256)
        elif op == 2:  # insert random bytes
            at = rng.randint(0, n)
            buf[at:at] = rng.randbytes(rng.randint(1, 4))
        elif op == 3 and n:  # delete a run
            at = rng.randrange(n)
            del buf[at : at + rng.randint(1, 4)]
        elif op == 4 and n:  # truncate
            del buf[rng.randrange(n) :]
        elif op == 5:  # append random bytes
            buf += rng.randbytes(rng.randint(1, 8))
        elif op == 6:  # splice with another valid packet
            other = pool[rng.randrange(len(pool))]
            buf = buf[: rng.randint(0, n)] + bytearray(other[rng.randint(0, len(other)) :])
        elif op == 7 and n:  # extreme values in one byte
            buf[rng.randrange(n)] = rng.choice((0x00, 0x7F, 0x80, 0xFF))
        elif op == 8 and n >= 2:  # duplicate a slice
            a = rng.randrange(n)
            buf[a:a] = buf[a : a + rng.randint(1, 6)]
    return bytes(buf)


def packets(target: Target, count: int, seed: int) -> Iterator[tuple[bytes, bool]]:
    """`count` fuzz packets for `target`, reproducible from `seed`: (bytes, known bad)."""
    rng = random.Random(f"{seed}:{target.name}")
    pool = target.make_valid(_points(200))
    for i in range(count):
        if i % KNOWN_BAD_EVERY == KNOWN_BAD_EVERY - 1:
            yield target.known_bad(rng, pool[rng.randrange(len(pool))]), True
        elif rng.random() < RANDOM_SHARE:
            yield rng.randbytes(rng.randint(0, MAX_RANDOM)), False
        else:
            yield _mutate(rng, pool[rng.randrange(len(pool))], pool), False


# ------------------------------------------------------------------------------ the run


@dataclass
class Crash:
    """An exception that is not the parser's declared error type."""

    data: bytes
    error: str


@dataclass
class Result:
    """What one target's run found."""

    name: str
    seed: int
    packets: int = 0
    #: packets the decoder refused (raised its declared error)
    refused: int = 0
    #: counted by the link (DeviceLink.malformed) and by the session (DeviceCounters.malformed)
    counted_link: int = 0
    counted_session: int = 0
    known_bad: int = 0
    #: known-bad packets that went through without being counted
    known_bad_missed: list[bytes] = field(default_factory=list)
    #: valid packets (the emulator's own) that were refused: the harness would be counting everything
    valid_refused: list[bytes] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    #: stream framers: notifications whose bytes were not all framed, reported or (boundedly) held
    unaccounted: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def countable(self) -> bool:
        """Whether this target has a malformed-packet count at all (Device Information has none)."""
        return self.name != "device-information"

    @property
    def ok(self) -> bool:
        counted = self.counted_link == self.refused == self.counted_session
        clean = not self.known_bad_missed and not self.valid_refused and not self.unaccounted
        return not self.crashes and counted and clean

    def problems(self) -> list[str]:
        out = [f"crash on {c.data.hex(' ') or '<empty>'}: {c.error}" for c in self.crashes[:5]]
        if not self.counted_link == self.refused == self.counted_session:
            out.append(
                f"{self.refused} refused, but the link counted {self.counted_link} "
                f"and the session {self.counted_session}"
            )
        out += [f"known-bad packet not counted: {b.hex(' ') or '<empty>'}" for b in self.known_bad_missed[:5]]
        out += [f"valid packet refused: {b.hex(' ')}" for b in self.valid_refused[:5]]
        out += [f"bytes not accounted for: {u}" for u in self.unaccounted[:5]]
        return out


class _Observed:
    """Wraps the real decoder to see what it raised (re-raised unchanged into the link)."""

    def __init__(self, target: Target, result: Result) -> None:
        self.target = target
        self.result = result
        self.decoder = target.make_decoder()
        self.raised = False

    def __call__(self, data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
        self.raised = False
        try:
            return self.decoder(data, device, mono, wall)
        except Exception as exc:
            self.raised = True
            if not isinstance(exc, self.target.declared):
                self.result.crashes.append(Crash(data, f"{type(exc).__name__}: {exc}"))
            raise


class _ErrorLog(logging.Handler):
    """Keeps the ERROR records (logged exceptions) of the loggers it is added to."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        self.records.append(record)


class _StaticPeripheral:
    """A connected device's readable characteristics, for DeviceLink._read_static (no radio needed)."""

    def __init__(self, uuids: Sequence[str]) -> None:
        self.values: dict[str, bytes] = dict.fromkeys(uuids, b"")
        self.services = self

    def get_characteristic(self, uuid: str) -> str | None:
        return uuid if uuid in self.values else None

    async def read_gatt_char(self, uuid: str) -> bytearray:
        return bytearray(self.values[uuid])


def _link(target: Target, observed: _Observed, session: Session, clock: FakeClock) -> DeviceLink:
    spec = DriverSpec(
        kind=f"fuzz-{target.name}",
        service_uuids=(uuid16(0xFFF0),),
        subscriptions=(Subscription(uuid16(0xFFF1), observed, target.label),),
    )
    link = DeviceLink(spec, session, clock)
    link.device_id = DEVICE
    session.register_device(DeviceInfo(DEVICE, target.name, spec.kind))
    return link


def fuzz_target(target: Target, count: int, seed: int, sink: Sink | None = None) -> Result:
    """Send `count` seeded bad packets to one parser through the link into a real Session."""
    result = Result(target.name, seed)
    clock = FakeClock()
    # the values a parser lets through go on into the alarm engine, as in the app
    session = Session(clock, sink, alarms=AlarmEngine(clock, kap_defaults()))
    observed = _Observed(target, result)
    link = _link(target, observed, session, clock)
    # the link and the session log (and swallow) a failure past the parser: those are crashes too
    errors = _ErrorLog()
    watched = [logging.getLogger(name) for name in ("devices._ble.link", "kapmonitor.session")]
    for logger in watched:
        logger.addHandler(errors)
    started = SystemClock().monotonic()
    try:
        if target.path == "notify":
            _fuzz_notify(target, link, observed, result, clock, count=count, seed=seed)
        elif target.path == "racp":
            _fuzz_racp(target, link, result, clock, count=count, seed=seed)
        else:
            asyncio.run(_fuzz_static(target, link, result, clock, count=count, seed=seed))
    finally:
        for logger in watched:
            logger.removeHandler(errors)
    result.seconds = SystemClock().monotonic() - started
    result.crashes += [Crash(b"", f"logged: {r.getMessage()} {r.exc_text or ''}") for r in errors.records]
    result.counted_link = link.malformed
    result.counted_session = session.devices[DEVICE].counters.malformed
    return result


def _fuzz_racp(
    target: Target, link: DeviceLink, result: Result, clock: FakeClock, *, count: int, seed: int
) -> None:
    """RACP responses go to RecordAccessClient.on_indication, not to a subscription's decoder: it
    queues what parses and keeps what does not in `unparsed`, handing it to the link (counted,
    then logged and recorded by the session). The client is the one the link builds."""
    client = link._record_access(None, PLX_RACP)  # type: ignore[arg-type]  # on_indication never uses it
    queue = client._responses
    valid = [(raw, False) for raw in target.make_valid(_points(200))]
    for i, (raw, known_bad) in enumerate([*valid, *packets(target, count, seed)]):
        clock.advance(0.04)
        before = len(client.unparsed)
        try:
            client.on_indication(None, bytearray(raw))  # type: ignore[arg-type]
        except Exception as exc:  # it must never raise into bleak
            result.crashes.append(Crash(raw, f"{type(exc).__name__}: {exc}"))
            continue
        result.packets += 1
        refused = len(client.unparsed) > before
        parsed = 0
        while not queue.empty():
            queue.get_nowait()
            parsed += 1
        if refused == bool(parsed) or parsed > 1:
            result.crashes.append(Crash(raw, f"neither queued nor kept as unparsed ({parsed} queued)"))
        result.refused += refused
        if i < len(valid) and refused:
            result.valid_refused.append(raw)
        if known_bad:
            result.known_bad += 1
            if not refused:
                result.known_bad_missed.append(raw)


def _fuzz_notify(
    target: Target,
    link: DeviceLink,
    observed: _Observed,
    result: Result,
    clock: FakeClock,
    *,
    count: int,
    seed: int,
) -> None:
    on_notify = link._callback(link.spec.subscriptions[0])
    char = None  # the handler ignores the characteristic object (bleak passes its own)
    observed.decoder = target.make_decoder()
    for raw in target.make_valid(_points(200)):  # the emulator's packets, in order, are all accepted
        framer = _Framer.of(observed.decoder)
        on_notify(char, bytearray(raw))  # type: ignore[arg-type]
        result.packets += 1
        if observed.raised:
            result.refused += 1
            result.valid_refused.append(raw)
        if framer is not None:
            _account(target, framer, raw, observed.raised, result)
    fuzz_decoder = target.make_decoder()
    session = link._sink
    assert isinstance(session, Session)
    for i, (raw, known_bad) in enumerate(packets(target, count, seed)):
        clock.advance(0.04)
        if i % 25 == 0:  # the app ticks a few times a second: alarm delays, staleness, flushes
            session.tick()
        if known_bad and target.stateful:
            observed.decoder = target.make_decoder()
        else:
            observed.decoder = fuzz_decoder
        framer = _Framer.of(observed.decoder)
        on_notify(char, bytearray(raw))  # type: ignore[arg-type]
        result.packets += 1
        if observed.raised:
            result.refused += 1
        if framer is not None:
            _account(target, framer, raw, observed.raised, result)
        if known_bad:
            result.known_bad += 1
            if not observed.raised:
                result.known_bad_missed.append(raw)


@dataclass(frozen=True)
class _Framer:
    """A stream framer's byte accounting before a notification (Viatom, BerryMed)."""

    framer: StreamFramer | PacketFramer
    fed: int
    discarded: int

    @staticmethod
    def of(decoder: object) -> _Framer | None:
        framer = getattr(decoder, "framer", None)
        if not isinstance(framer, StreamFramer | PacketFramer):
            return None
        return _Framer(framer, framer.fed_bytes, framer.discarded_bytes)


def _account(target: Target, before: _Framer, raw: bytes, raised: bool, result: Result) -> None:
    """Every byte of a notification is in a frame, in a reported run (the decoder raised with it),
    or held for the rest of a frame; nothing held longer than the longest frame."""
    f = before.framer
    fed, discarded = f.fed_bytes - before.fed, f.discarded_bytes - before.discarded
    reported = sum(len(b.data) for b in f.bad)
    problem = ""
    if fed != len(raw):
        problem = f"{len(raw)} bytes sent, {fed} fed"
    elif reported != discarded:
        problem = f"{discarded} bytes discarded, {reported} reported"
    elif reported and not raised:
        problem = f"{reported} bytes discarded without a malformed packet"
    elif f.framed_bytes + f.discarded_bytes + f.pending != f.fed_bytes:
        problem = (
            f"{f.fed_bytes} fed, {f.framed_bytes} framed + {f.discarded_bytes} reported + {f.pending} held"
        )
    elif not f.pending < target.max_pending:
        problem = f"{f.pending} bytes held (bound {target.max_pending})"
    if problem:
        result.unaccounted.append(f"{problem} after {raw.hex(' ') or '<empty>'}")


async def _fuzz_static(
    target: Target, link: DeviceLink, result: Result, clock: FakeClock, *, count: int, seed: int
) -> None:
    """Battery Level and Device Information are read, not notified: the link's _read_static path."""
    uuids = [BATTERY_LEVEL] if target.path == "battery" else list(DEVICE_INFO_STRINGS.values())
    peripheral = _StaticPeripheral(uuids)
    valid = [(raw, False) for raw in target.make_valid(_points(200))]
    for i, (raw, known_bad) in enumerate([*valid, *packets(target, count, seed)]):
        clock.advance(0.04)
        for uuid in uuids:
            peripheral.values[uuid] = raw
        before = link.malformed
        try:
            await link._read_static(peripheral)  # type: ignore[arg-type]
        except Exception as exc:  # nothing may escape the static reads
            result.crashes.append(Crash(raw, f"{type(exc).__name__}: {exc}"))
            continue
        result.packets += 1
        refused = link.malformed > before
        if target.path == "device-information":
            # no malformed count here: the link decodes UTF-8 with replacement; a value must be a str
            # and a valid UTF-8 name must come through unchanged
            texts = list(link.device_information.values())
            if len(texts) != len(uuids) or not all(isinstance(t, str) for t in texts):
                result.crashes.append(Crash(raw, f"device information became {link.device_information!r}"))
            if i < len(valid) and texts[0] != raw.decode().strip("\x00 "):
                result.valid_refused.append(raw)
            if known_bad:  # shown marked (U+FFFD), never as a plausible name
                result.known_bad += 1
                if "\ufffd" not in texts[0]:
                    result.known_bad_missed.append(raw)
            continue
        if refused:
            result.refused += 1
        if i < len(valid) and refused:
            result.valid_refused.append(raw)
        if known_bad:
            result.known_bad += 1
            if not refused:
                result.known_bad_missed.append(raw)


def run(count: int, seed: int, names: Sequence[str] = TARGET_NAMES, sink: Sink | None = None) -> list[Result]:
    """Fuzz the named targets (all by default) with `count` packets each."""
    # each refused packet is logged as a warning by the session; a million of them only slow the run.
    # The levels are put back afterwards: the fast variant runs inside the test process.
    quiet = [logging.getLogger(n) for n in ("kapmonitor.session", "devices._ble.racp")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        return [fuzz_target(t, count, seed, sink) for t in TARGETS if t.name in names]
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1_000_000, help="packets per parser (default 10^6)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: a fresh one, printed)")
    parser.add_argument("--only", nargs="*", choices=TARGET_NAMES, default=list(TARGET_NAMES))
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"seed {seed} (rerun with --seed {seed}), {args.count} packets per parser", flush=True)
    failed = 0
    for name in args.only:
        (result,) = run(args.count, seed, [name])
        counted = (
            f"{result.counted_link:>9} link {result.counted_session:>9} session"
            if result.countable
            else f"{'(none)':>9} link {'(none)':>9} session"
        )
        print(
            f"{result.name:20} {result.packets:>9} packets {result.refused:>9} refused, counted {counted} "
            f"{result.known_bad:>7} known-bad {len(result.crashes):>3} crashes {result.seconds:7.1f} s "
            f"{'ok' if result.ok else 'FAIL'}",
            flush=True,
        )
        for problem in result.problems():
            print(f"    {problem}")
        failed += not result.ok
    print("all parsers ok" if not failed else f"{failed} parser(s) FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
