"""Tests of the Viatom PC-60FW/NW framer, parser, encoder and decoder against docs/devices/viatom.md."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.viatom.driver import NUS_NOTIFY, NUS_SERVICE, NUS_WRITE, viatom_spec
from devices.viatom.parser import (
    ENABLE_PARAMS,
    ENABLE_WAVE,
    PLETH_RATE_HZ,
    Frame,
    MalformedFramesError,
    ParseError,
    SampleClock,
    StreamFramer,
    ViatomDecoder,
    build_frame,
    build_params,
    build_pleth,
    crc8_maxim,
    is_stream_frame,
    parse_params,
    parse_pleth,
)
from kapmonitor.measurements import Numeric, Param, Quality, Waveform

# Hand-built examples of docs/devices/viatom.md (constructed from gatt.md, not hardware captures).
PARAMS_97_72 = bytes.fromhex("AA 55 0F 08 01 61 48 00 22 00 80 28")  # SpO2 97, PR 72, PI 3.4, battery 2
PLETH_5 = bytes.fromhex("AA 55 0F 07 02 0A 14 9E 28 32 CA")  # 10 20 30(beat) 40 50
OFF = bytes.fromhex("AA 55 0F 08 01 00 00 00 00 02 C0 07")  # probe off, battery 3
SEARCHING_PR_ONLY = bytes.fromhex("AA 55 0F 08 01 00 4E 00 0F 04 40 35")  # SpO2 0, PR 78, searching


def _numerics(out: object) -> dict[Param, Numeric]:
    assert isinstance(out, list | tuple)
    return {m.param: m for m in out if isinstance(m, Numeric)}


def _frames(data: bytes, chunks: list[int] | None = None) -> list[Frame]:
    framer = StreamFramer()
    if chunks is None:
        return framer.feed(data)
    out: list[Frame] = []
    pos = 0
    for size in chunks:
        out += framer.feed(data[pos : pos + size])
        pos += size
    return out + framer.feed(data[pos:])


# -- CRC and encoder ------------------------------------------------------------------------------
def test_crc8_maxim_check_value_and_gatt_md_commands() -> None:
    assert crc8_maxim(b"123456789") == 0xA1  # the catalogued check value of CRC-8/MAXIM-DOW
    assert crc8_maxim(b"") == 0
    assert bytes.fromhex("AA 55 0F 03 84 01 E0") == ENABLE_PARAMS  # gatt.md, byte for byte
    assert bytes.fromhex("AA 55 0F 03 85 01 24") == ENABLE_WAVE


def test_examples_are_what_the_encoder_builds() -> None:
    assert build_params(spo2=97, pulse_rate=72, pi_raw=34, battery_level=2) == PARAMS_97_72
    assert build_pleth([10, 20, 30, 40, 50], [False, False, True]) == PLETH_5
    assert build_params(spo2=0, pulse_rate=0, pi_raw=0, probe_off=True, battery_level=3) == OFF
    assert build_frame(0x0F, 0x01, bytes.fromhex("61 48 00 22 00 80")) == PARAMS_97_72


def test_encoder_rejects_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        build_params(spo2=256, pulse_rate=72, pi_raw=34)
    with pytest.raises(ValueError):
        build_params(spo2=97, pulse_rate=72, pi_raw=34, battery_level=4)
    with pytest.raises(ValueError):
        build_pleth([128])
    with pytest.raises(ValueError):
        build_frame(0x0F, 0x02, bytes(254))


# -- frame parsers --------------------------------------------------------------------------------
def test_params_fields() -> None:
    (frame,) = _frames(PARAMS_97_72)
    p = parse_params(frame.payload)
    assert (p.spo2, p.pulse_rate, p.perfusion_index, p.battery_level) == (97, 72, 3.4, 2)
    assert not p.probe_off and not p.searching
    assert parse_params(bytes([98, 0x2C, 0x01, 5, 0x06, 0x40])).pulse_rate == 300  # PR is u16 LE
    with pytest.raises(ParseError):
        parse_params(bytes(5))


def test_pleth_values_and_beat_markers() -> None:
    (frame,) = _frames(PLETH_5)
    p = parse_pleth(frame.payload)
    assert p.samples == (10, 20, 30, 40, 50)
    assert p.beats == (False, False, True, False, False)
    assert parse_pleth(b"\xff").samples == (127,)
    with pytest.raises(ParseError):
        parse_pleth(b"")


# -- framing ---------------------------------------------------------------------------------------
def test_several_frames_in_one_notification() -> None:
    frames = _frames(PARAMS_97_72 + PLETH_5 + PLETH_5)
    assert [(f.token, f.type) for f in frames] == [(0x0F, 1), (0x0F, 2), (0x0F, 2)]
    assert frames[0].raw == PARAMS_97_72


@pytest.mark.parametrize("cut", range(1, len(PARAMS_97_72)))
def test_a_frame_split_across_two_notifications(cut: int) -> None:
    framer = StreamFramer()
    assert framer.feed(PARAMS_97_72[:cut]) == []
    assert framer.pending == cut
    (frame,) = framer.feed(PARAMS_97_72[cut:] + PLETH_5[:3])
    assert frame.raw == PARAMS_97_72
    assert framer.bad == [] and framer.malformed == 0


def test_resynchronises_after_garbage() -> None:
    framer = StreamFramer()
    frames = framer.feed(b"\x01\x02\xaa\x03" + PARAMS_97_72)
    assert [f.raw for f in frames] == [PARAMS_97_72]
    assert framer.malformed == 1 and framer.bad[0].data == b"\x01\x02\xaa\x03"


def test_bad_crc_is_reported_and_the_next_frame_survives() -> None:
    broken = PARAMS_97_72[:-1] + bytes([PARAMS_97_72[-1] ^ 0x01])
    framer = StreamFramer()
    frames = framer.feed(broken + PLETH_5)
    assert [f.raw for f in frames] == [PLETH_5]
    assert framer.malformed == 1
    assert framer.bad[0].data == broken  # the whole damaged frame, as one run
    assert "CRC" in framer.bad[0].reason


def test_impossible_length_is_reported() -> None:
    framer = StreamFramer()
    for length in (0, 1, 0x21, 0xFF):
        frames = framer.feed(bytes([0xAA, 0x55, 0x0F, length]) + PLETH_5)
        assert [f.raw for f in frames] == [PLETH_5]
        assert "impossible length" in framer.bad[0].reason
    assert framer.malformed == 4


def test_a_damaged_length_byte_does_not_swallow_a_frame_inside_its_span() -> None:
    # length 0x0C claims 12 more bytes: the real frame that follows sits inside that span
    framer = StreamFramer()
    assert framer.feed(bytes.fromhex("AA 55 0F 0C 01 61") + PLETH_5 + PLETH_5) == [
        Frame(0x0F, 0x02, PLETH_5[5:-1], PLETH_5),
        Frame(0x0F, 0x02, PLETH_5[5:-1], PLETH_5),
    ]


# -- decoder ---------------------------------------------------------------------------------------
def test_decoder_params_to_numerics() -> None:
    out = ViatomDecoder()(PARAMS_97_72, "dev", 10.0, 1000.0)
    n = _numerics(out)
    assert n[Param.SPO2].value == 97 and n[Param.PULSE_RATE].value == 72
    assert n[Param.PERFUSION_INDEX].value == pytest.approx(3.4)
    assert n[Param.BATTERY].value == 67.0  # level 2 of 0–3
    assert all(m.quality == Quality.NONE and m.device == "dev" and m.mono == 10.0 for m in n.values())


@pytest.mark.parametrize(("level", "percent"), [(0, 0.0), (1, 33.0), (2, 67.0), (3, 100.0)])
def test_battery_mapping(level: int, percent: float) -> None:
    raw = build_params(spo2=97, pulse_rate=72, pi_raw=34, battery_level=level)
    assert _numerics(ViatomDecoder()(raw, "d", 0.0, 0.0))[Param.BATTERY].value == percent


def test_probe_off_gives_sensor_off_and_no_values() -> None:
    # the wire still carries plausible numbers: probe off must hide them
    raw = build_params(spo2=96, pulse_rate=60, pi_raw=20, probe_off=True)
    n = _numerics(ViatomDecoder()(raw, "d", 0.0, 0.0))
    for param in (Param.SPO2, Param.PULSE_RATE, Param.PERFUSION_INDEX):
        assert n[param].value is None and n[param].quality & Quality.SENSOR_OFF
    n = _numerics(ViatomDecoder()(OFF, "d", 0.0, 0.0))
    assert n[Param.SPO2].value is None and n[Param.BATTERY].value == 100.0


def test_searching_and_invalid_markers() -> None:
    n = _numerics(ViatomDecoder()(SEARCHING_PR_ONLY, "d", 0.0, 0.0))
    assert n[Param.SPO2].value is None and n[Param.SPO2].quality == Quality.SEARCHING | Quality.INVALID
    assert n[Param.PULSE_RATE].value == 78 and n[Param.PULSE_RATE].quality == Quality.SEARCHING
    for spo2, pr in ((127, 255), (101, 0), (0, 0xFFFF), (127, 301)):
        n = _numerics(ViatomDecoder()(build_params(spo2=spo2, pulse_rate=pr, pi_raw=10), "d", 0.0, 0.0))
        assert n[Param.SPO2].value is None and n[Param.PULSE_RATE].value is None
        assert n[Param.SPO2].quality & Quality.INVALID and n[Param.PULSE_RATE].quality & Quality.INVALID


def test_decoder_pleth_waveform_rate_and_timing() -> None:
    out = ViatomDecoder()(PLETH_5 + PLETH_5, "d", 5.0, 1000.0)
    (wave,) = [m for m in out if isinstance(m, Waveform)]
    assert wave.name == "pleth" and wave.rate_hz == PLETH_RATE_HZ == 50.0
    assert wave.samples == (10, 20, 30, 40, 50) * 2
    assert wave.mono == pytest.approx(5.0 - 9 / 50.0)  # the last sample arrived at 5.0


def test_pleth_chunks_are_stamped_back_to_back_despite_jitter() -> None:
    decoder = ViatomDecoder()
    starts = []
    # one frame every 100 ms of device time, arriving 0–40 ms late
    for k, late in enumerate((0.0, 0.04, 0.0, 0.03, 0.01)):
        (wave,) = [m for m in decoder(PLETH_5, "d", 1.0 + k * 0.1 + late, 500.0 + k * 0.1 + late)]
        assert isinstance(wave, Waveform)
        starts.append(wave.mono)
        assert wave.wall - wave.mono == pytest.approx(499.0)  # wall moves with mono
    assert starts == pytest.approx([1.0 - 0.08 + k * 0.1 for k in range(5)])
    assert decoder.clock.reanchors == 0
    # after a pause the clock re-anchors to the arrival time
    (wave,) = decoder(PLETH_5, "d", 3.0, 502.0)
    assert isinstance(wave, Waveform)
    assert wave.mono == pytest.approx(3.0 - 0.08) and decoder.clock.reanchors == 1


def test_sample_clock_reanchors_on_drift_beyond_the_tolerance() -> None:
    clock = SampleClock(50.0, reanchor_s=0.25)
    assert clock.start_of(10.0, 5) == pytest.approx(9.92)
    assert clock.start_of(10.3, 5) == pytest.approx(10.02)  # 0.2 s early by arrival: jitter
    assert clock.start_of(10.6, 5) == pytest.approx(10.52)  # 0.4 s off: re-anchored
    assert clock.reanchors == 1


def test_decoder_keeps_good_frames_of_a_notification_with_a_bad_one() -> None:
    decoder = ViatomDecoder()
    broken = PLETH_5[:-1] + b"\x00"
    with pytest.raises(MalformedFramesError) as caught:
        decoder(PARAMS_97_72 + broken + PLETH_5, "d", 1.0, 1.0)
    err = caught.value
    assert isinstance(err, ParseError)
    assert _numerics(err.measurements)[Param.SPO2].value == 97
    (wave,) = [m for m in err.measurements if isinstance(m, Waveform)]
    assert wave.samples == (10, 20, 30, 40, 50)
    assert [b.data for b in err.bad] == [broken]
    assert broken.hex(" ") in str(err)
    # the framer is back in step: the next notification decodes cleanly
    assert _numerics(decoder(PARAMS_97_72, "d", 2.0, 2.0))[Param.PULSE_RATE].value == 72


def test_decoder_reports_a_short_params_payload_with_a_good_crc() -> None:
    short = build_frame(0x0F, 0x01, bytes([97, 72, 0, 34, 0]))
    with pytest.raises(MalformedFramesError, match="need 6"):
        ViatomDecoder()(short, "d", 0.0, 0.0)


def test_decoder_ignores_other_frame_types() -> None:
    decoder = ViatomDecoder()
    assert decoder(build_frame(0x0F, 0x84, b"\x00"), "d", 0.0, 0.0) == []
    assert decoder.ignored_frames == 1


def test_spec() -> None:
    spec = viatom_spec()
    assert spec.service_uuids == (NUS_SERVICE,)
    assert spec.subscriptions[0].characteristic == NUS_NOTIFY
    assert spec.start_commands == ((NUS_WRITE, ENABLE_PARAMS), (NUS_WRITE, ENABLE_WAVE))
    assert spec.matches("PC-60FW", []) and spec.matches("OXIMETER", [])
    # the Nordic UART service alone is not enough: many gadgets use it; a Viatom name is required
    assert not spec.matches(None, [NUS_SERVICE]) and not spec.matches("Mi Band", [NUS_SERVICE])
    assert spec.matches("PC-60FW", [NUS_SERVICE])
    # a fresh decoder (fresh framer) each time: a half frame of one link never leaks into the next
    first, second = viatom_spec(), viatom_spec()
    assert first.subscriptions[0].decode is not second.subscriptions[0].decode
    assert first.subscriptions[0].decode(PARAMS_97_72[:6], "d", 0.0, 0.0) == []
    with pytest.raises(MalformedFramesError) as caught:  # the tail alone is bytes outside any frame
        second.subscriptions[0].decode(PARAMS_97_72[6:], "d", 0.0, 0.0)
    assert caught.value.measurements == ()
    assert _numerics(first.subscriptions[0].decode(PARAMS_97_72[6:], "d", 0.0, 0.0))[Param.SPO2].value == 97


# -- properties ------------------------------------------------------------------------------------
def _good(kind: bool, a: int, b: int, c: int) -> bytes:
    return build_params(spo2=a, pulse_rate=b, pi_raw=c) if kind else build_pleth([a % 128] * 5)


GOOD = st.builds(_good, st.booleans(), st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 255))
#: garbage that cannot contain a frame start: no AA 55 anywhere in it
GARBAGE = st.binary(max_size=40).filter(lambda b: b"\xaa\x55" not in b)


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=12))
def test_arbitrary_bytes_in_arbitrary_chunks_raise_only_parse_error(data: bytes, cuts: list[int]) -> None:
    decoder = ViatomDecoder()
    for chunk in _chunked(data, cuts):
        try:
            out = decoder(chunk, "d", 0.0, 0.0)
        except ParseError as exc:
            out = exc.measurements if isinstance(exc, MalformedFramesError) else []
        for m in out:
            if isinstance(m, Numeric) and m.value is not None:
                assert 0 <= m.value <= 300


@given(st.lists(st.tuples(GARBAGE, GOOD), min_size=1, max_size=6), st.lists(st.integers(0, 400), max_size=15))
def test_no_valid_frame_after_garbage_is_lost(parts: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    stream = b"".join(g + f for g, f in parts)
    framer = StreamFramer()
    got: list[bytes] = []
    for chunk in _chunked(stream, cuts):
        got += [f.raw for f in framer.feed(chunk)]
    assert got == [f for _, f in parts]
    assert framer.discarded_bytes == sum(len(g) for g, _ in parts)


# -- the documentation's examples -------------------------------------------------------------------
PAGE = Path(__file__).resolve().parents[2] / "docs" / "devices" / "viatom.md"


def _doc_rows(section: str) -> list[bytes]:
    text = PAGE.read_text(encoding="utf-8").split(section, 1)[1]
    rows = []
    for line in text.splitlines():
        cell = re.match(r"\| `([0-9A-F ]+)` \|", line)
        if cell:
            rows.append(bytes.fromhex(cell.group(1)))
        elif rows and not line.startswith("|"):
            break
    return rows


def test_every_example_on_the_page_is_one_valid_frame() -> None:
    rows = _doc_rows("## Examples")
    assert len(rows) == 10
    for raw in rows:
        assert [f.raw for f in StreamFramer().feed(raw)] == [raw]
    for const in (PARAMS_97_72, PLETH_5, OFF, SEARCHING_PR_ONLY, ENABLE_PARAMS, ENABLE_WAVE):
        assert const in rows


def test_the_refused_example_is_refused() -> None:
    (bad,) = _doc_rows("Refused or discarded")
    framer = StreamFramer()
    assert framer.feed(bad) == [] and "CRC 29, computed 28" in framer.bad[0].reason


# -- frames the decoder does not know are not trusted for framing --------------------------------------
def _colliding_garbage(frame: bytes) -> bytes:
    """A 4-byte header `AA 55 tok 05` whose 9-byte pseudo-frame, ending inside `frame`, passes the CRC."""
    for token in range(256):
        head = bytes([0xAA, 0x55, token, 0x05])
        if crc8_maxim(head + frame[:4]) == frame[4]:
            return head
    raise AssertionError("no colliding token")  # pragma: no cover - there is one for these bytes


def test_an_unknown_frame_made_by_chance_does_not_swallow_a_real_one() -> None:
    garbage = _colliding_garbage(PLETH_5)
    # trusting every CRC-valid frame loses the real one: the pseudo-frame ate its first five bytes
    trusting = StreamFramer()
    assert [f.raw for f in trusting.feed(garbage + PLETH_5)] == [garbage + PLETH_5[:5]]
    # the decoder's framer returns the stray frame (ignored) and still finds the real one inside its span
    decoder = ViatomDecoder()
    out = decoder(garbage + PLETH_5, "d", 0.0, 0.0)
    assert [m.samples for m in out if isinstance(m, Waveform)] == [(10, 20, 30, 40, 50)]
    assert decoder.ignored_frames == 1 and decoder.framer.malformed == 0


def test_the_collision_seen_in_the_emulator_test_holds_nothing_back() -> None:
    # a split header `AA 55`, then stray `01 02 03`, then `0F`: by chance a CRC-valid unknown frame
    assert crc8_maxim(bytes.fromhex("AA 55 01 02 03")) == 0x0F
    framer = StreamFramer(trusted=is_stream_frame)
    assert framer.feed(b"\xaa\x55") == []
    assert framer.feed(b"\x01\x02\x03") == []  # unknown and incomplete: its verdict waits
    assert framer.pending == 5
    # the known frame behind it comes out as soon as it is complete; the stray bytes pass the CRC
    # (documented limit of an 8-bit CRC): a frame, returned, not a malformed run
    frames = framer.feed(b"\x0f" + PARAMS_97_72)
    assert [f.raw for f in frames] == [bytes.fromhex("AA 55 01 02 03 0F"), PARAMS_97_72]
    assert framer.malformed == 0 and framer.pending == 0
    assert framer.framed_bytes == framer.fed_bytes == 6 + len(PARAMS_97_72)


def test_a_long_unknown_header_does_not_hold_back_the_frames_behind_it() -> None:
    framer = StreamFramer(trusted=is_stream_frame)
    assert [f.raw for f in framer.feed(b"\xaa\x55\xaa\x0c" + PLETH_5)] == [PLETH_5]
    assert StreamFramer().feed(b"\xaa\x55\xaa\x0c" + PLETH_5) == []  # trusting every frame: it waits


HEADER_BYTES = st.sampled_from([0xAA, 0x55, 0x01, 0x02, 0x05, 0x08, 0x80])
HEADERISH = st.lists(HEADER_BYTES | st.integers(0, 255), max_size=40)
#: garbage with `AA 55` and plausible lengths in it, but no `AA 55 0F` (no known frame can start in it)
NOISY_GARBAGE = HEADERISH.map(bytes).filter(lambda b: b"\xaa\x55\x0f" not in b)


@given(
    st.lists(st.tuples(NOISY_GARBAGE, GOOD), min_size=1, max_size=6),
    st.lists(st.integers(0, 400), max_size=15),
)
def test_no_known_frame_after_header_like_garbage_is_lost(
    parts: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(g + f for g, f in parts)
    framer = StreamFramer(trusted=is_stream_frame)
    got: list[bytes] = []
    for chunk in _chunked(stream, cuts):
        got += [f.raw for f in framer.feed(chunk) if is_stream_frame(f.token, f.type)]
    assert got == [f for _, f in parts]


def test_reset_forgets_the_partial_frame_of_the_last_connection() -> None:
    decoder = ViatomDecoder()
    assert decoder(PLETH_5[:7], "d", 0.0, 0.0) == []  # a link drops mid-frame
    decoder.reset()  # the link's next connection
    out = decoder(PLETH_5, "d", 1.0, 1.0)  # no MalformedFramesError: nothing old glued on
    (wave,) = out
    assert isinstance(wave, Waveform) and wave.samples == (10, 20, 30, 40, 50)
    glued = ViatomDecoder()
    glued(PLETH_5[:7], "d", 0.0, 0.0)
    with pytest.raises(MalformedFramesError):  # what happens without the reset
        glued(PLETH_5 + PLETH_5, "d", 1.0, 1.0)


# -- no silent drop: every byte is in a frame, reported with its bytes, or held for a verdict ----------
#: garbage shaped like the start of an unknown frame of len 30: `AA 55 <token 00> <len 1E> <type 01>`
UNKNOWN_HEADED_GARBAGE = bytes.fromhex("AA 55 00 1E 01") + b"junkjunk"


def test_garbage_shaped_like_an_unknown_frame_is_reported_once_its_span_has_passed() -> None:
    framer = StreamFramer(trusted=is_stream_frame)
    assert framer.feed(UNKNOWN_HEADED_GARBAGE) == []
    assert framer.bad == [] and framer.pending == len(UNKNOWN_HEADED_GARBAGE)  # verdict pending
    # the known frames inside its claimed span are not held back; its last byte brings the verdict
    frames = framer.feed(PARAMS_97_72 + PLETH_5 + PLETH_5)
    assert [f.raw for f in frames] == [PARAMS_97_72, PLETH_5, PLETH_5]
    (bad,) = framer.bad
    assert bad.data == UNKNOWN_HEADED_GARBAGE
    assert bad.reason.startswith("unknown frame (token 00, type 01, len 30): CRC")
    assert framer.malformed == 1 and framer.pending == 0
    assert framer.discarded_bytes + framer.framed_bytes == framer.fed_bytes


def test_the_decoder_raises_for_it_with_the_later_notification_and_keeps_its_frames() -> None:
    decoder = ViatomDecoder()
    assert decoder(UNKNOWN_HEADED_GARBAGE, "d", 0.0, 0.0) == []
    with pytest.raises(MalformedFramesError) as caught:
        decoder(PARAMS_97_72 + PLETH_5 + PLETH_5, "d", 1.0, 1.0)
    assert [b.data for b in caught.value.bad] == [UNKNOWN_HEADED_GARBAGE]
    assert "aa 55 00 1e 01 6a 75 6e 6b" in str(caught.value)  # logged with its bytes
    assert _numerics(caught.value.measurements)[Param.SPO2].value == 97
    waves = [m.samples for m in caught.value.measurements if isinstance(m, Waveform)]
    assert waves == [(10, 20, 30, 40, 50) * 2]


def test_an_unknown_frame_split_across_notifications_is_a_frame_not_a_malformed_run() -> None:
    answer = build_frame(0x0F, 0x84, b"\x00")  # a command answer: CRC-valid, not a stream frame
    stream = PARAMS_97_72 + answer + PLETH_5 + answer + answer + PLETH_5
    for cuts in itertools.combinations(range(1, len(stream)), 2):
        framer = StreamFramer(trusted=is_stream_frame)
        frames = [f.raw for chunk in _chunked(stream, list(cuts)) for f in framer.feed(chunk)]
        assert sorted(frames) == sorted([PARAMS_97_72, answer, PLETH_5, answer, answer, PLETH_5]), cuts
        assert [f for f in frames if f != answer] == [PARAMS_97_72, PLETH_5, PLETH_5]
        assert framer.malformed == 0 and framer.pending == 0
        assert framer.framed_bytes == framer.fed_bytes == len(stream)


def test_reset_drops_a_pending_verdict_without_counting_it() -> None:
    decoder = ViatomDecoder()
    assert decoder(UNKNOWN_HEADED_GARBAGE[:6], "d", 0.0, 0.0) == []  # the link drops mid-verdict
    decoder.reset()  # a stream cut by a disconnect is not the device's bad bytes
    assert len(decoder(PARAMS_97_72 + PLETH_5 + PLETH_5, "d", 1.0, 1.0)) == 5
    assert decoder.framer.malformed == 0


UNKNOWN = st.builds(
    build_frame,
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=12).filter(lambda b: b"\xaa" not in b),
).filter(lambda f: not is_stream_frame(f[2], f[4]))


@given(
    st.lists(GOOD | UNKNOWN, min_size=1, max_size=8),
    st.lists(st.integers(0, 120), max_size=15),
)
def test_a_valid_stream_in_any_chunking_has_no_malformed_count(frames: list[bytes], cuts: list[int]) -> None:
    # ends with a known frame: an unknown frame's last byte AA is (rightly) held as a possible header
    stream = b"".join(frames) + PLETH_5
    decoder = ViatomDecoder()
    for chunk in _chunked(stream, cuts):
        decoder(chunk, "d", 0.0, 0.0)  # a MalformedFramesError here fails the test
    framer = decoder.framer
    assert framer.malformed == 0 and framer.pending == 0
    assert framer.framed_bytes == framer.fed_bytes == len(stream)
    assert framer.frames == len(frames) + 1


#: garbage made of frame headers with plausible lengths (known and unknown tokens) and stray bytes
HEADERS = st.lists(
    st.builds(
        lambda token, length, frame_type: bytes([0xAA, 0x55, token, length, frame_type]),
        st.sampled_from([0x0F, 0x00, 0xF0]) | st.integers(0, 255),
        st.integers(2, 32),
        st.sampled_from([0x01, 0x02]) | st.integers(0, 255),
    )
    | st.binary(max_size=8),
    max_size=12,
).map(b"".join)


@given(st.binary(max_size=200) | HEADERISH.map(bytes) | HEADERS, st.lists(st.integers(0, 200), max_size=12))
def test_every_byte_fed_is_in_a_frame_reported_or_pending(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer(trusted=is_stream_frame)
    reported = 0
    for chunk in _chunked(data, cuts):
        framer.feed(chunk)
        reported += sum(len(b.data) for b in framer.bad)
    assert framer.fed_bytes == len(data) and reported == framer.discarded_bytes
    assert framer.framed_bytes + framer.discarded_bytes + framer.pending == len(data)
    # a verdict waits at most one longest frame: after that much of a valid stream nothing is held
    tail = (PARAMS_97_72 + PLETH_5) * 4
    framer.feed(tail)
    reported += sum(len(b.data) for b in framer.bad)
    assert framer.pending == 0 and reported == framer.discarded_bytes
    assert framer.framed_bytes + framer.discarded_bytes == len(data) + len(tail)


@given(
    st.lists(st.tuples(NOISY_GARBAGE, GOOD), min_size=1, max_size=6),
    st.lists(st.integers(0, 400), max_size=15),
)
def test_header_like_garbage_is_reported_byte_for_byte(
    parts: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(g + f for g, f in parts) + (PARAMS_97_72 + PLETH_5) * 4
    framer = StreamFramer(trusted=is_stream_frame)
    unknown = 0
    for chunk in _chunked(stream, cuts):
        unknown += sum(not is_stream_frame(f.token, f.type) for f in framer.feed(chunk))
    if not unknown:  # no garbage passed the CRC by chance: every garbage byte was reported
        assert framer.discarded_bytes == sum(len(g) for g, _ in parts)
    assert framer.pending == 0
