"""Tests of the seeded physiological scenarios that drive the emulated wearables."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.emulated.scenario import SCENARIOS, Scenario, VitalsPoint, desaturation, normal, sensor_off


def test_same_seed_same_series_regardless_of_call_order() -> None:
    times = [t * 0.5 for t in range(0, 1200)]
    forward = [normal(11).at(t) for t in times]
    shuffled = list(times)
    random.Random(3).shuffle(shuffled)
    other = normal(11)  # a fresh instance, queried in another order
    by_time = {t: other.at(t) for t in shuffled}
    assert forward == [by_time[t] for t in times]


def test_different_seeds_differ() -> None:
    a = [normal(1).at(t).spo2 for t in range(0, 300, 3)]
    b = [normal(2).at(t).spo2 for t in range(0, 300, 3)]
    assert a != b


def test_normal_stays_in_its_ranges_at_device_resolution() -> None:
    scenario = normal(5)
    points = [scenario.at(float(t)) for t in range(0, 1800)]
    spo2 = [p.spo2 for p in points]
    pulse = [p.pulse for p in points]
    pi = [p.pi for p in points]
    assert all(v is not None and 96 <= v <= 99 and v == int(v) for v in spo2)
    assert all(v is not None and 65 <= v <= 90 and v == int(v) for v in pulse)
    assert all(v is not None and 2.0 <= v <= 5.0 and round(v, 1) == v for v in pi)
    assert not any(p.sensor_off or p.artefact or not p.in_range for p in points)
    # the spread is physiological noise, not a constant
    assert len(set(spo2)) >= 3 and len(set(pulse)) >= 5


def test_pulse_drifts_up_after_the_dose() -> None:
    scenario = normal(9)
    before = statistics.mean(p for t in range(0, 30) if (p := scenario.at(t).pulse) is not None)
    later = statistics.mean(p for t in range(900, 1200) if (p := scenario.at(t).pulse) is not None)
    assert 70 <= before <= 80
    assert later > before + 4


def test_battery_is_an_integer_that_only_goes_down() -> None:
    scenario = normal(1)
    levels = [scenario.at(t).battery for t in range(0, 3600, 60)]
    assert all(isinstance(b, int) and 0 <= b <= 100 for b in levels)
    assert levels == sorted(levels, reverse=True)
    assert levels[0] > levels[-1]


def spo2_at(scenario: Scenario, t: float) -> float:
    value = scenario.at(t).spo2
    assert value is not None
    return value


def test_desaturation_follows_its_script() -> None:
    for seed in (1, 2, 3):
        desat = desaturation(seed)
        calm = normal(seed)
        # identical to the calm patient before the event
        assert [desat.at(t) for t in range(0, 120)] == [calm.at(t) for t in range(0, 120)]
        # falls about 1 % every 4 s from t=120
        assert spo2_at(desat, 140) <= spo2_at(desat, 120) - 3
        assert spo2_at(desat, 160) <= spo2_at(desat, 140) - 3
        # reaches ~82 % and stays there about 60 s
        low = [t for t in range(120, 400) if spo2_at(desat, t) <= 84]
        assert low, "never got down to ~82 %"
        assert min(spo2_at(desat, t) for t in range(120, 400)) >= 80
        assert 50 <= len(low) <= 80
        # then recovers to baseline
        assert spo2_at(desat, low[-1] + 60) >= 95


def test_sensor_off_window_has_no_values() -> None:
    scenario = sensor_off(4)
    for t in range(0, 150):
        point = scenario.at(t)
        if 60 <= t < 90:
            assert point == VitalsPoint(None, None, None, True, point.battery)
        else:
            assert not point.sensor_off
            assert point.spo2 is not None and point.pulse is not None and point.pi is not None


def test_catalogue_builds_named_seeded_scenarios() -> None:
    assert {"normal", "desaturation", "sensor_off"} <= set(SCENARIOS)
    for name, factory in SCENARIOS.items():
        scenario = factory(42)
        assert scenario.name == name
        assert scenario.seed == 42
        assert isinstance(scenario.at(100.0), VitalsPoint)


def test_other_catalogue_entries_do_what_they_say() -> None:
    brady = SCENARIOS["bradycardia"](1).at(180.0).pulse
    tachy = SCENARIOS["tachycardia"](1).at(180.0).pulse
    assert brady is not None and brady < 50
    assert tachy is not None and tachy > 120
    assert SCENARIOS["low_battery"](1).at(300.0).battery < 10
    assert SCENARIOS["artefact"](1).at(70.0).artefact
    assert not SCENARIOS["disconnect_return"](1).at(70.0).in_range
    assert SCENARIOS["disconnect_return"](1).at(95.0).in_range


def test_negative_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="scenario time"):
        normal(1).at(-1.0)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(SCENARIOS)),
    seed=st.integers(min_value=0, max_value=2**32),
    t=st.floats(min_value=0.0, max_value=6 * 3600.0, allow_nan=False),
)
def test_any_point_is_plausible_and_repeatable(name: str, seed: int, t: float) -> None:
    point = SCENARIOS[name](seed).at(t)
    assert point == SCENARIOS[name](seed).at(t)
    assert 0 <= point.battery <= 100
    if point.sensor_off:
        assert point.spo2 is None and point.pulse is None and point.pi is None
    else:
        assert point.spo2 is not None and 50 <= point.spo2 <= 100
        assert point.pulse is not None and 25 <= point.pulse <= 200
        assert point.pi is not None and 0.0 <= point.pi <= 20.0
