"""Tests of the BerryMed BCI framer, parser, encoder and decoder against docs/devices/berrymed.md."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.berrymed.driver import BCI_NOTIFY, BCI_SERVICE, berrymed_spec
from devices.berrymed.parser import (
    NUMERIC_EVERY_PACKETS,
    BciPacket,
    BerryMedDecoder,
    MalformedPacketsError,
    PacketFramer,
    ParseError,
    build_packet,
    parse_packet,
)
from kapmonitor.measurements import Measurement, Numeric, Param, Quality, Waveform

# Hand-built examples of docs/devices/berrymed.md (constructed from gatt.md, not hardware captures).
NORMAL = bytes.fromhex("C7 32 07 48 61")  # beat, strength 7, pleth 50, bar 7, PR 72, SpO2 97
PR_150 = bytes.fromhex("85 28 45 16 5F")  # PR 150 needs byte 2 bit 6; SpO2 95
NO_FINGER = bytes.fromhex("80 00 50 7F 7F")  # no finger, PR 255 (bit 7 in byte 2), SpO2 127
UNPLUGGED = bytes.fromhex("A0 00 40 7F 7F")  # probe unplugged
SEARCHING = bytes.fromhex("80 14 60 7F 7F")  # searching, pleth 20, no values yet
NO_SIGNAL = bytes.fromhex("90 05 00 48 61")  # "no signal" bit with values


def _numerics(out: object) -> dict[Param, Numeric]:
    assert isinstance(out, list | tuple)
    return {m.param: m for m in out if isinstance(m, Numeric)}


def test_examples_decode_field_by_field() -> None:
    p = parse_packet(NORMAL)
    assert p == BciPacket(7, False, False, True, 50, 7, False, False, 72, 97)
    assert (p.spo2, p.pulse_rate, p.quality) == (97.0, 72.0, Quality.NONE)
    assert parse_packet(PR_150).pulse_rate == 150.0
    off = parse_packet(NO_FINGER)
    assert off.no_finger and off.sensor_off and off.pulse_rate_raw == 255 and off.spo2_raw == 127
    assert off.spo2 is None and off.pulse_rate is None
    assert parse_packet(UNPLUGGED).probe_unplugged and parse_packet(UNPLUGGED).sensor_off
    assert parse_packet(SEARCHING).searching and parse_packet(SEARCHING).pleth == 20
    assert parse_packet(NO_SIGNAL).no_signal and parse_packet(NO_SIGNAL).quality == Quality.POOR_SIGNAL


def test_examples_are_what_the_encoder_builds() -> None:
    assert build_packet(spo2=97, pulse_rate=72, pleth=50, signal_strength=7, bar_graph=7, beat=True) == NORMAL
    assert build_packet(spo2=95, pulse_rate=150, pleth=40, signal_strength=5, bar_graph=5) == PR_150
    assert build_packet(spo2=None, pulse_rate=None, no_finger=True) == NO_FINGER
    assert build_packet(spo2=None, pulse_rate=None, probe_unplugged=True) == UNPLUGGED
    with pytest.raises(ValueError):
        build_packet(spo2=128, pulse_rate=72)
    with pytest.raises(ValueError):
        build_packet(spo2=97, pulse_rate=256)


@given(st.integers(0, 255), st.integers(0, 127), st.integers(0, 127), st.integers(0, 15), st.integers(0, 15))
def test_round_trip_of_every_field(pr: int, spo2: int, pleth: int, strength: int, bar: int) -> None:
    flags = itertools.product([False, True], repeat=5)
    for beat, no_signal, unplugged, no_finger, searching in flags:
        raw = build_packet(
            spo2=spo2,
            pulse_rate=pr,
            pleth=pleth,
            signal_strength=strength,
            bar_graph=bar,
            beat=beat,
            no_signal=no_signal,
            probe_unplugged=unplugged,
            no_finger=no_finger,
            searching=searching,
        )
        assert parse_packet(raw) == BciPacket(
            strength, no_signal, unplugged, beat, pleth, bar, no_finger, searching, pr, spo2
        )


def test_parse_packet_rejects_bad_sync() -> None:
    for raw in (NORMAL[:4], NORMAL + b"\x00", b"\x47" + NORMAL[1:], NORMAL[:2] + b"\x87" + NORMAL[3:]):
        with pytest.raises(ParseError):
            parse_packet(raw)


# -- framing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cut", range(1, 5))
def test_a_packet_split_across_notifications(cut: int) -> None:
    framer = PacketFramer()
    assert framer.feed(NORMAL + PR_150[:cut]) == [parse_packet(NORMAL)]
    assert framer.feed(PR_150[cut:]) == [parse_packet(PR_150)]
    assert framer.malformed == 0 and framer.pending == 0


def test_resync_after_garbage_and_a_short_packet() -> None:
    framer = PacketFramer()
    out = framer.feed(b"\x01\x02" + NORMAL[:3] + PR_150 + NORMAL)
    assert out == [parse_packet(PR_150), parse_packet(NORMAL)]
    assert framer.malformed == 1  # one contiguous run: 2 stray bytes and a 3-byte stub
    assert framer.bad[0].data == b"\x01\x02" + NORMAL[:3]


def test_invalid_markers_and_zero_become_none() -> None:
    for spo2, pr in ((127, 255), (0, 0), (101, 255)):
        raw = build_packet(spo2=spo2, pulse_rate=pr, pleth=30, signal_strength=4)
        n = _numerics(BerryMedDecoder()(raw, "d", 0.0, 0.0))
        assert n[Param.SPO2].value is None and n[Param.PULSE_RATE].value is None
        assert n[Param.SPO2].quality == Quality.INVALID


def test_sensor_off_hides_values_even_when_the_wire_has_numbers() -> None:
    raw = build_packet(spo2=96, pulse_rate=60, no_finger=True)
    n = _numerics(BerryMedDecoder()(raw, "d", 0.0, 0.0))
    assert n[Param.SPO2].value is None and n[Param.PULSE_RATE].value is None
    assert n[Param.SPO2].quality == Quality.SENSOR_OFF
    n = _numerics(BerryMedDecoder()(SEARCHING, "d", 0.0, 0.0))
    assert n[Param.SPO2].quality == Quality.SEARCHING | Quality.INVALID


# -- decoder ---------------------------------------------------------------------------------------
def _run(decoder: BerryMedDecoder, packets: list[bytes], per: int = 4) -> list[Measurement]:
    out: list[Measurement] = []
    for k in range(0, len(packets), per):
        out += decoder(b"".join(packets[k : k + per]), "d", k / 100.0, 0.0)
    return out


def test_numerics_are_decimated_to_about_1_hz() -> None:
    out = _run(BerryMedDecoder(), [NORMAL] * 1000)  # 10 s of packets at 100 Hz
    spo2 = [m for m in out if isinstance(m, Numeric) and m.param == Param.SPO2]
    assert len(spo2) == 10
    assert [m.mono for m in spo2] == pytest.approx([k * NUMERIC_EVERY_PACKETS / 100.0 for k in range(10)])
    waves = [m for m in out if isinstance(m, Waveform)]
    assert sum(len(w.samples) for w in waves) == 1000
    assert {w.rate_hz for w in waves} == {100.0}


def test_a_change_of_state_is_emitted_at_once() -> None:
    decoder = BerryMedDecoder()
    _run(decoder, [NORMAL] * 8)
    out = decoder(NORMAL + NO_FINGER + NO_FINGER + NO_FINGER, "d", 1.0, 0.0)
    n = _numerics(out)
    assert n[Param.SPO2].quality == Quality.SENSOR_OFF  # not held back until the next second
    assert len([m for m in out if isinstance(m, Numeric)]) == 2  # once, not for each packet
    back = _numerics(decoder(NORMAL, "d", 1.1, 0.0))
    assert back[Param.SPO2].value == 97


def test_pleth_waveform_chunk() -> None:
    packets = [build_packet(spo2=97, pulse_rate=72, pleth=v) for v in (10, 20, 30, 40)]
    out = BerryMedDecoder()(b"".join(packets), "d", 2.0, 100.0)
    (wave,) = [m for m in out if isinstance(m, Waveform)]
    assert wave.name == "pleth" and wave.samples == (10, 20, 30, 40) and wave.rate_hz == 100.0
    assert wave.mono == pytest.approx(2.0 - 0.03)


def test_good_packets_of_a_notification_with_bad_bytes_are_kept() -> None:
    with pytest.raises(MalformedPacketsError) as caught:
        BerryMedDecoder()(NORMAL + b"\x81\x02" + PR_150, "d", 0.0, 0.0)
    err = caught.value
    (wave,) = [m for m in err.measurements if isinstance(m, Waveform)]
    assert wave.samples == (50, 40)
    assert _numerics(err.measurements)[Param.PULSE_RATE].value == 72
    assert [b.data for b in err.bad] == [b"\x81\x02"]


def test_spec() -> None:
    spec = berrymed_spec()
    assert spec.service_uuids == (BCI_SERVICE,)
    assert spec.subscriptions[0].characteristic == BCI_NOTIFY
    assert spec.start_commands == ()
    assert spec.matches("BerryMed", []) and spec.matches("BM1000C", []) and spec.matches(None, [BCI_SERVICE])
    assert not spec.matches("PC-60FW", [])
    assert berrymed_spec().subscriptions[0].decode is not spec.subscriptions[0].decode


# -- properties ------------------------------------------------------------------------------------
def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


GOOD = st.builds(
    lambda spo2, pr, pleth: build_packet(spo2=spo2, pulse_rate=pr, pleth=pleth),
    st.integers(0, 127),
    st.integers(0, 255),
    st.integers(0, 127),
)
#: garbage: any bytes; bytes with bit 7 set start (short) packets and must not eat the next one
GARBAGE = st.binary(max_size=20)


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=12))
def test_arbitrary_bytes_in_arbitrary_chunks_raise_only_parse_error(data: bytes, cuts: list[int]) -> None:
    decoder = BerryMedDecoder()
    for chunk in _chunked(data, cuts):
        try:
            out = decoder(chunk, "d", 0.0, 0.0)
        except ParseError as exc:
            out = exc.measurements if isinstance(exc, MalformedPacketsError) else []
        for m in out:
            if isinstance(m, Numeric) and m.value is not None:
                assert 0 < m.value <= 255


@given(st.lists(st.tuples(GARBAGE, GOOD), min_size=1, max_size=6), st.lists(st.integers(0, 200), max_size=15))
def test_no_valid_packet_after_garbage_is_lost(parts: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    stream = b"".join(g + p for g, p in parts)
    framer = PacketFramer()
    got: list[BciPacket] = []
    for chunk in _chunked(stream, cuts):
        got += framer.feed(chunk)
    expected = [parse_packet(p) for _, p in parts]
    # garbage may itself hold valid packets; the real ones must all come out, in order, at the end
    it = iter(got)
    assert all(any(q == e for q in it) for e in expected)


# -- the documentation's examples -------------------------------------------------------------------
PAGE = Path(__file__).resolve().parents[2] / "docs" / "devices" / "berrymed.md"


def test_every_example_on_the_page_decodes_as_documented() -> None:
    text = PAGE.read_text(encoding="utf-8").split("## Examples", 1)[1]
    rows = re.findall(r"^\| `([0-9A-F ]+)` \| [^|]+ \| ([^,|]+), ([^;|]+)", text, flags=re.MULTILINE)
    assert len(rows) == 8
    for hex_bytes, spo2_text, pr_text in rows:
        n = _numerics(BerryMedDecoder()(bytes.fromhex(hex_bytes), "d", 0.0, 0.0))
        for param, text in ((Param.SPO2, spo2_text), (Param.PULSE_RATE, pr_text)):
            expected = None if text.strip() == "None" else float(text)
            assert n[param].value == expected, (hex_bytes, param)


def test_reset_forgets_the_partial_packet_of_the_last_connection() -> None:
    decoder = BerryMedDecoder()
    assert decoder(NORMAL[:3], "d", 0.0, 0.0) == []  # a link drops mid-packet
    decoder.reset()  # the link's next connection
    out = decoder(NORMAL, "d", 1.0, 1.0)  # no MalformedPacketsError: nothing old glued on
    assert [m.value for m in out if isinstance(m, Numeric)] == [97.0, 72.0]  # numerics at once again
    glued = BerryMedDecoder()
    glued(NORMAL[:3], "d", 0.0, 0.0)
    with pytest.raises(ParseError):  # without the reset the stale bytes are a malformed run
        glued(NORMAL, "d", 1.0, 1.0)


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=12))
def test_every_byte_fed_is_in_a_packet_reported_or_pending(data: bytes, cuts: list[int]) -> None:
    """No silent drop: each byte ends up in a packet, in a reported run (with its bytes), or held."""
    framer = PacketFramer()
    reported = 0
    for chunk in _chunked(data, cuts):
        packets = framer.feed(chunk)
        reported += sum(len(b.data) for b in framer.bad)
        assert len(framer.bad) <= len(chunk)
        assert framer.framed_bytes >= 5 * len(packets)
    assert framer.fed_bytes == len(data)
    assert reported == framer.discarded_bytes
    assert framer.framed_bytes == 5 * framer.packets
    assert framer.framed_bytes + framer.discarded_bytes + framer.pending == len(data)
    assert framer.pending < 5
