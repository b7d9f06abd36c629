"""The PLX driver spec: continuous measurements and spot-checks, each when the oximeter has them."""

from __future__ import annotations

from datetime import datetime

import pytest

from devices.plx.driver import PLX_CONTINUOUS, PLX_SPOT_CHECK, plx_spec
from devices.plx.parser import ParseError, build_plx_continuous, build_plx_spot_check
from kapmonitor.measurements import Numeric, Param, Quality


def test_both_subscriptions_are_optional_and_only_the_continuous_one_streams() -> None:
    # the profile requires one of the two (a spot-check-only oximeter exists); the link refuses a
    # device with neither, and only a continuous stream makes silence a fault
    subs = {s.characteristic: s for s in plx_spec().subscriptions}
    assert subs[PLX_CONTINUOUS].optional and subs[PLX_CONTINUOUS].streams
    assert subs[PLX_SPOT_CHECK].optional and not subs[PLX_SPOT_CHECK].streams


def test_a_stored_spot_check_decodes_to_values_flagged_from_storage() -> None:
    decode = {s.characteristic: s for s in plx_spec().subscriptions}[PLX_SPOT_CHECK].decode
    raw = build_plx_spot_check(
        spo2=95,
        pulse_rate=64,
        timestamp=datetime(2026, 11, 25, 9, 30),  # noqa: DTZ001 (a device clock has no zone)
        measurement_status=1 << 9,
    )
    got = [m for m in decode(raw, "OXI", 10.0, 1000.0) if isinstance(m, Numeric)]
    values = {n.param: n.value for n in got}
    assert values[Param.SPO2] == 95 and values[Param.PULSE_RATE] == 64
    assert all(n.quality & Quality.FROM_STORAGE for n in got)
    with pytest.raises(ParseError):
        decode(raw[:3], "OXI", 10.0, 1000.0)


def test_the_continuous_decoder_tags_the_device() -> None:
    decode = {s.characteristic: s for s in plx_spec().subscriptions}[PLX_CONTINUOUS].decode
    got = decode(build_plx_continuous(spo2=97, pulse_rate=71), "OXI", 1.0, 2.0)
    assert {(m.device, m.param) for m in got if isinstance(m, Numeric)} == {
        ("OXI", Param.SPO2),
        ("OXI", Param.PULSE_RATE),
    }
