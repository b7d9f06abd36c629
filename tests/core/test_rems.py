"""Tests of the REMS form against hand-computed sessions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kapmonitor.measurements import BloodPressure
from kapmonitor.observations import Observation, ScaleScore
from kapmonitor.rems import BpFlag, ConcomitantCategory, concomitant_categories, rems_form
from kapmonitor.workflow import SessionDetails, TreatmentProtocol

T0 = 1_767_258_000.0  # 2026-01-01T09:00:00Z, the first device
MIN = 60.0


def details(**kw: object) -> SessionDetails:
    base: dict[str, object] = {
        "patient": "P-017",
        "clinicians": ("Dr A",),
        "protocol": TreatmentProtocol.ESKETAMINE_IN,
        "planned_dose_mg": 84.0,
        "route": "intranasal",
        "lot": "L123",
        "concomitant": ("lorazepam 1 mg", "sertraline"),
    }
    base.update(kw)
    return SessionDetails(**base)  # type: ignore[arg-type]


def reading(minute: float, sys: float = 130, dia: float = 80, *, stored: bool = False) -> BloodPressure:
    wall = T0 + minute * MIN
    return BloodPressure(sys, dia, None, 70, 1000 + minute * MIN, wall, "cuff", stored=stored)


def obs(scale: ScaleScore) -> Observation:
    return Observation(1, "s", 1, scale.scale.value, "", scale, None, 0, T0, T0, "dr", None)


def test_complete_session_fills_every_field() -> None:
    readings = [
        reading(-20, 150, 92),
        reading(-6, 138, 88),  # the last before dosing
        reading(37, 160, 95),
        reading(42, 158, 94),  # nearest 40 min
        reading(100, 135, 85),
        reading(125, 128, 82),  # the last in the final 30 min
        reading(126, 200, 120, stored=True),  # cuff memory: ignored
    ]
    form = rems_form(
        details(),
        readings,
        T0,
        T0 + 130 * MIN,
        T0 + 95 * MIN,
        dose_mg=84.0,
        observations=[obs(ScaleScore.moaas(4)), obs(ScaleScore.cadss6([0] * 6))],
    )
    assert form.bp_before_dosing.text == "138/88"
    assert form.bp_before_dosing.minutes_after_first_device == -6
    assert form.bp_at_40_min.text == "158/94"
    assert form.bp_at_40_min.flag is None
    assert form.bp_before_completion.text == "128/82"
    assert form.total_minutes == 130
    assert form.ready_to_leave_minutes == 95
    assert form.vitals_in_range_before_dosing is True
    assert form.vitals_in_range_before_completion is True
    assert form.dose_category == "84"
    assert form.lot == "L123"
    assert form.session_date == "2026-01-01"
    assert form.concomitant == (ConcomitantCategory.BENZODIAZEPINES,)
    assert form.concomitant_unclassified == ("sertraline",)
    assert form.sedation_occurred is True  # MOAA/S 4
    assert form.dissociation_occurred is False  # CADSS-6 total 0
    assert form.flags == ("concomitant medicines to classify: sertraline",)


def test_missing_and_late_readings_and_a_short_session_are_flagged() -> None:
    readings = [reading(55, 150, 95), reading(70, 145, 88)]
    form = rems_form(details(lot="", concomitant=()), readings, T0, T0 + 110 * MIN, None)
    assert form.bp_before_dosing.reading is None
    assert form.bp_before_dosing.flag == BpFlag.MISSING
    assert form.bp_at_40_min.flag == BpFlag.LATE
    assert form.bp_at_40_min.text == "150/95"
    assert form.bp_at_40_min.minutes_after_first_device == 55
    assert form.bp_before_completion.flag == BpFlag.STALE  # 70 min < 110 - 30
    assert form.bp_before_completion.text == "145/88"
    assert form.vitals_in_range_before_dosing is None
    assert form.vitals_in_range_before_completion is False
    assert form.sedation_occurred is None and form.dissociation_occurred is None
    assert form.dose_mg == 84.0  # the planned dose
    assert form.flags == (
        "BP before dosing: missing",
        "BP at 40 minutes: late",
        "BP before completion: stale",
        "total monitoring 110 min is under the 120-minute minimum",
        "ready-to-leave time not recorded",
        "lot number missing",
    )


def test_window_edges_for_the_40_minute_reading() -> None:
    at_30 = rems_form(details(), [reading(30)], T0, T0 + 120 * MIN, T0 + 120 * MIN)
    assert at_30.bp_at_40_min.flag is None and at_30.bp_at_40_min.minutes_after_first_device == 30
    too_early = rems_form(details(), [reading(29)], T0, T0 + 120 * MIN, T0 + 120 * MIN)
    assert too_early.bp_at_40_min.flag == BpFlag.MISSING
    at_50 = rems_form(details(), [reading(50)], T0, T0 + 120 * MIN, None)
    assert at_50.bp_at_40_min.flag is None
    past = rems_form(details(), [reading(50.5)], T0, T0 + 120 * MIN, None)
    assert past.bp_at_40_min.flag == BpFlag.LATE and past.bp_at_40_min.minutes_after_first_device == 50.5
    equal = rems_form(details(), [reading(35), reading(45)], T0, T0 + 120 * MIN, None)
    assert equal.bp_at_40_min.minutes_after_first_device == 35  # a tie goes to the earlier
    nothing = rems_form(details(), [], T0, T0 + 120 * MIN, None)
    assert nothing.bp_before_completion.flag == BpFlag.MISSING
    assert nothing.total_minutes == 120
    assert not any("120-minute" in f for f in nothing.flags)


def test_dose_category_and_bad_times() -> None:
    assert rems_form(details(), [], T0, T0 + 120 * MIN, None, dose_mg=56).dose_category == "56"
    assert rems_form(details(), [], T0, T0 + 120 * MIN, None, dose_mg=28).dose_category == "other"
    with pytest.raises(ValueError, match="before the first device"):
        rems_form(details(), [], T0, T0 - 1, None)


def test_rass_sedation_and_cadss_dissociation() -> None:
    calm = rems_form(details(), [], T0, T0 + 120 * MIN, None, observations=[obs(ScaleScore.rass(0))])
    assert calm.sedation_occurred is False
    drowsy = rems_form(details(), [], T0, T0 + 120 * MIN, None, observations=[obs(ScaleScore.rass(-1))])
    assert drowsy.sedation_occurred is True
    dis = rems_form(
        details(), [], T0, T0 + 120 * MIN, None, observations=[obs(ScaleScore.cadss6([0, 0, 1, 0, 0, 0]))]
    )
    assert dis.dissociation_occurred is True


def test_concomitant_categories() -> None:
    cats, other = concomitant_categories(
        ["Zolpidem 10 mg", "MAOI (phenelzine)", "Methylphenidate", "Vitamin D"]
    )
    assert cats == {
        ConcomitantCategory.SEDATIVE_HYPNOTICS,
        ConcomitantCategory.MAOIS,
        ConcomitantCategory.PSYCHOSTIMULANTS,
    }
    assert other == ["Vitamin D"]


def test_minutes_and_the_40_minute_reading_follow_the_monotonic_clock() -> None:
    """A wall step an hour forward 35 min after the first device: by wall time the 38-minute reading
    would be 98 min after it; on the monotonic clock it is the one nearest 40 min."""
    step = 3600.0

    def stepped(minute: float, sys: float = 130, dia: float = 80) -> BloodPressure:
        r = reading(minute, sys, dia)
        return replace(r, wall=r.wall + (step if minute >= 35 else 0.0))

    readings = [stepped(-6, 138, 88), stepped(38, 160, 95), stepped(47, 150, 92), stepped(125, 128, 82)]
    form = rems_form(
        details(),
        readings,
        T0,
        T0 + 130 * MIN + step,
        T0 + 95 * MIN + step,
        first_device_mono=1000.0,
        end_mono=1000 + 130 * MIN,
        ready_to_leave_mono=1000 + 95 * MIN,
    )
    assert form.bp_at_40_min.text == "160/95" and form.bp_at_40_min.flag is None
    assert form.bp_at_40_min.minutes_after_first_device == 38
    assert form.bp_before_dosing.minutes_after_first_device == -6
    assert form.bp_before_completion.text == "128/82"
    assert (form.total_minutes, form.ready_to_leave_minutes) == (130, 95)
    assert form.session_date == "2026-01-01"
    by_wall = rems_form(details(), readings, T0, T0 + 130 * MIN + step, T0 + 95 * MIN + step)
    assert by_wall.total_minutes == 190  # what the wall clock alone would say
    # a wall step back would put the end wall-before the first device: fine on the monotonic clock
    back = rems_form(details(), [], T0, T0 + 10 * MIN - step, None, first_device_mono=0.0, end_mono=130 * MIN)
    assert back.total_minutes == 130
    with pytest.raises(ValueError, match="before the first device"):
        rems_form(details(), [], T0, T0 + 10 * MIN, None, first_device_mono=10.0, end_mono=0.0)
    with pytest.raises(ValueError, match="monotonic"):
        rems_form(details(), [], T0, T0 + 10 * MIN, T0, first_device_mono=0.0, end_mono=600.0)
