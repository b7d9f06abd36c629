"""Property tests over every parser the link runs: any bytes give values or the parser's own error."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import battery
from devices.berrymed.parser import BciPacket, parse_packet
from devices.bp import parser as bp_parser
from devices.hr import parser as hr_parser
from devices.plx import parser as plx_parser
from devices.registry import REGISTRY
from devices.viatom.parser import (
    MalformedFramesError,
    ViatomDecoder,
    ViatomParams,
    ViatomPleth,
    build_frame,
    parse_params,
    parse_pleth,
)
from kapmonitor.measurements import BloodPressure, Measurement, Numeric, Waveform

#: Each registered family's own error (the proprietary stream parsers share the PLX ParseError).
#: A family added to the registry without a row here fails test_every_family_is_covered.
OWN_ERROR: dict[str, type[ValueError]] = {
    "plx": plx_parser.ParseError,
    "bp-sig": bp_parser.ParseError,
    "hr-sig": hr_parser.ParseError,
    "viatom-pc60": plx_parser.ParseError,
    "berrymed-bci": plx_parser.ParseError,
}

DECODERS = [
    pytest.param(entry.family, index, id=f"{entry.family}:{sub.label}")
    for entry in REGISTRY
    for index, sub in enumerate(entry.make_spec().subscriptions)
]


def test_every_family_is_covered() -> None:
    assert set(OWN_ERROR) == {entry.family for entry in REGISTRY}
    assert len(DECODERS) >= len(REGISTRY)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


def _plausible(m: Measurement) -> bool:
    """A measurement a decoder may hand to the session: finite numbers or "no value", sane types."""
    if isinstance(m, Numeric):
        return m.value is None or math.isfinite(m.value)
    if isinstance(m, Waveform):
        return m.rate_hz > 0 and all(isinstance(s, int) and -32768 <= s <= 32767 for s in m.samples)
    assert isinstance(m, BloodPressure), m
    values = (m.systolic, m.diastolic, m.mean, m.pulse_rate, m.measured_wall)
    return all(v is None or math.isfinite(v) for v in values)


@pytest.mark.parametrize(("family", "index"), DECODERS)
@given(data=st.binary(max_size=120), cuts=st.lists(st.integers(0, 120), max_size=8))
def test_any_bytes_give_measurements_or_the_parsers_own_error(
    family: str, index: int, data: bytes, cuts: list[int]
) -> None:
    entry = next(e for e in REGISTRY if e.family == family)
    decode = entry.make_spec().subscriptions[index].decode  # fresh decoder state per example
    for chunk in _chunks(data, cuts):
        try:
            out = decode(chunk, "dev", 1.0, 2.0)
        except OWN_ERROR[family] as exc:
            out = getattr(exc, "measurements", ())
        # anything else (IndexError, struct.error, OverflowError ...) fails the test
        assert all(_plausible(m) for m in out), out
        assert all(m.device == "dev" for m in out)


@given(st.binary(max_size=12))
def test_battery_level_any_bytes(data: bytes) -> None:
    try:
        level = battery.parse_battery_level(data)
    except battery.ParseError:
        return
    assert 0 <= level <= battery.MAX_BATTERY_LEVEL and len(data) == 1


@given(st.binary(max_size=12))
def test_berrymed_single_packet_any_bytes(data: bytes) -> None:
    try:
        packet = parse_packet(data)
    except plx_parser.ParseError:
        return
    assert isinstance(packet, BciPacket) and len(data) == 5
    assert packet.spo2 is None or 0 < packet.spo2 <= 127
    assert packet.pulse_rate is None or 0 < packet.pulse_rate <= 255


PAYLOAD_PARSERS: list[Callable[[bytes], ViatomParams | ViatomPleth]] = [parse_params, parse_pleth]


@pytest.mark.parametrize("parse", PAYLOAD_PARSERS)
@given(st.binary(max_size=40))
def test_viatom_payload_parsers_any_bytes(
    parse: Callable[[bytes], ViatomParams | ViatomPleth], data: bytes
) -> None:
    try:
        parsed = parse(data)
    except plx_parser.ParseError:
        return
    assert isinstance(parsed, ViatomParams | ViatomPleth)


@given(st.sampled_from([0x01, 0x02]), st.binary(max_size=40))
def test_viatom_frames_with_a_good_crc_and_any_payload(frame_type: int, payload: bytes) -> None:
    """Random bytes almost never carry a valid CRC-8: build the frame, so the payload parsers are reached."""
    try:
        out = ViatomDecoder()(build_frame(0x0F, frame_type, payload), "dev", 1.0, 2.0)
    except MalformedFramesError as exc:
        out = exc.measurements
    assert all(_plausible(m) for m in out)
