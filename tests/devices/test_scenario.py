"""Tests of the seeded physiological scenarios that drive the emulated wearables."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.emulated.scenario import (
    SCENARIOS,
    Baseline,
    Scenario,
    VitalsPoint,
    desaturation,
    hypertensive_peak,
    normal,
    sensor_off,
)


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
            # the oximeter's values are gone; the cuff (a separate device) still reads a pressure
            assert replace(point, systolic=None, diastolic=None, mean=None) == VitalsPoint(
                None, None, None, True, point.battery
            )
            assert point.systolic is not None and point.diastolic is not None
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
    assert point.systolic is not None and point.diastolic is not None and point.mean is not None
    assert 60 <= point.systolic <= 260 and 30 <= point.diastolic <= point.systolic - 10
    assert point.diastolic < point.mean < point.systolic
    assert point.systolic == int(point.systolic) and point.diastolic == int(point.diastolic)


# -- blood pressure ---------------------------------------------------------------------------------
def bp_mean(scenario: Scenario, start_s: float, end_s: float, step_s: float = 30.0) -> tuple[float, float]:
    """Mean systolic and diastolic over [start, end), sampled every `step_s`."""
    points = [scenario.at(start_s + i * step_s) for i in range(int((end_s - start_s) / step_s))]
    sys_values = [p.systolic for p in points if p.systolic is not None]
    dia_values = [p.diastolic for p in points if p.diastolic is not None]
    assert len(sys_values) == len(dia_values) == len(points)
    return statistics.mean(sys_values), statistics.mean(dia_values)


def test_baseline_bp_is_about_120_over_78_with_noise() -> None:
    for seed in (1, 2, 3):
        scenario = normal(seed)
        points = [scenario.at(float(t)) for t in range(0, 30)]  # before the dose at 30 s
        for p in points:
            assert p.systolic is not None and 108 <= p.systolic <= 132
            assert p.diastolic is not None and 70 <= p.diastolic <= 86
            assert p.mean is not None and p.mean == round(p.diastolic + (p.systolic - p.diastolic) / 3)
    # noise, not a constant: over the first hour the readings vary
    systolics = {normal(4).at(float(t)).systolic for t in range(0, 3600, 60)}
    assert len(systolics) >= 6


def test_pressor_rise_peaks_at_40_minutes_after_the_dose_and_fades() -> None:
    base = Baseline()
    peak = base.dose_at_s + 40 * 60
    assert base.pressor_rise(base.dose_at_s) == 0.0
    assert base.pressor_rise(peak) == pytest.approx(1.0)
    assert base.pressor_rise(peak - 600) < 1.0 and base.pressor_rise(peak + 600) < 1.0
    assert base.pressor_rise(base.dose_at_s + 4 * 3600) < 0.1  # settled after ~4 h (kap-session.md)
    assert math.isclose(max(base.pressor_rise(base.dose_at_s + m * 60) for m in range(0, 240)), 1.0)


def test_normal_bp_rises_modestly_after_the_dose_then_settles() -> None:
    for seed in (1, 5):
        scenario = normal(seed)
        before = bp_mean(scenario, 0, 30, 1)
        peak = bp_mean(scenario, 35 * 60, 45 * 60)
        late = bp_mean(scenario, 4 * 3600, 4.5 * 3600)
        assert peak[0] > before[0] + 5 and peak[1] > before[1] + 2
        assert peak[0] < 145 and peak[1] < 95
        assert late[0] < peak[0] - 5


def test_hypertensive_peak_reaches_about_175_over_105_at_40_minutes() -> None:
    for seed in (1, 2, 3):
        scenario = hypertensive_peak(seed)
        calm = normal(seed)
        assert [scenario.at(t) for t in range(0, 30)] == [calm.at(t) for t in range(0, 30)]
        sys_peak, dia_peak = bp_mean(scenario, 35 * 60, 45 * 60)
        assert 165 <= sys_peak <= 185 and 98 <= dia_peak <= 112
        # the highest readings fall around 40 min, not at the start or end of the session
        readings = [(scenario.at(float(t)).systolic or 0.0, t) for t in range(0, 3 * 3600, 60)]
        assert 25 * 60 <= max(readings)[1] <= 60 * 60
        late = bp_mean(scenario, 4 * 3600, 4.5 * 3600)
        assert late[0] < 140 and late[1] < 90


def test_bp_does_not_change_the_oximeter_values_of_existing_scenarios() -> None:
    """Adding BP must not move SpO2/pulse/PI/battery: values pinned from the scenario before BP existed."""
    pinned = {
        ("normal", 0.0): (98.0, 76.0, 2.3, 95),
        ("normal", 150.0): (97.0, 78.0, 2.5, 95),
        ("normal", 777.5): (98.0, 81.0, 4.4, 93),
        ("normal", 3000.0): (98.0, 79.0, 3.3, 87),
        ("desaturation", 150.0): (90.0, 81.0, 2.5, 95),
        ("desaturation", 200.0): (82.0, 83.0, 4.1, 95),
    }
    for (name, t), expected in pinned.items():
        p = SCENARIOS[name](7).at(t)
        assert (p.spo2, p.pulse, p.pi, p.battery) == expected, (name, t)
