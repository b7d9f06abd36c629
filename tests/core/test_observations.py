"""Tests of the observation catalogue, its shortcuts, the scales and amendment resolution."""

from __future__ import annotations

import pytest

from kapmonitor.clock import FakeClock
from kapmonitor.observations import (
    DEFAULT_TYPES,
    NOTE,
    Observation,
    ObservationCatalogue,
    ObservationError,
    ObservationType,
    Scale,
    ScaleScore,
    current,
    press,
    scale_from_row,
    scale_json,
)

REQUIRED = {
    "dose_given",
    "nausea",
    "vomiting",
    "anxiety",
    "crying",
    "speaking",
    "eye_shades_on",
    "eye_shades_off",
    "music_changed",
    "therapist_intervention",
    "repositioned",
    "cuff_resited",
    "oximeter_resited",
    "asleep",
    "responsive",
    "ready_for_discharge",
    NOTE,
    "moaas",
    "rass",
    "cadss6",
}


def test_default_catalogue_has_every_issue_observation_each_with_a_unique_key() -> None:
    cat = ObservationCatalogue.default()
    assert {t.code for t in cat} == REQUIRED
    keys = [t.key for t in cat]
    assert None not in keys
    assert len(set(keys)) == len(keys) == len(REQUIRED)
    assert cat.by_key("N") is cat.get("nausea")  # case-insensitive
    assert cat.by_key("1") is cat.get("moaas")
    assert cat.by_key("q") is None


def test_catalogue_refuses_duplicate_key_duplicate_code_and_missing_note() -> None:
    with pytest.raises(ObservationError, match="key 'n'"):
        ObservationCatalogue([*DEFAULT_TYPES, ObservationType("nap", "Nap", "n")])
    with pytest.raises(ObservationError, match="twice"):
        ObservationCatalogue([*DEFAULT_TYPES, ObservationType("nausea", "Again")])
    with pytest.raises(ObservationError, match="free-text"):
        ObservationCatalogue([t for t in DEFAULT_TYPES if t.code != NOTE])
    with pytest.raises(ObservationError, match="one lower-case letter"):
        ObservationType("x_y", "X", "F1")
    with pytest.raises(ObservationError, match="must match"):
        ObservationType("Bad Code", "X")
    with pytest.raises(ObservationError, match="names its scale"):
        ObservationType("s", "S", kind="scale")


def test_catalogue_round_trips_through_json_including_a_custom_entry() -> None:
    types = [*DEFAULT_TYPES, ObservationType("hiccups", "Hiccups", "h")]
    cat = ObservationCatalogue(types)
    again = ObservationCatalogue.from_json(cat.to_json())
    assert list(again) == list(cat)
    with pytest.raises(ObservationError):
        ObservationCatalogue.from_json('[{"label": "no code"}]')
    with pytest.raises(ObservationError):
        ObservationCatalogue.from_json("not json")


@pytest.mark.parametrize(("score", "ok"), [(-1, False), (0, True), (5, True), (6, False)])
def test_moaas_range(score: int, ok: bool) -> None:
    if ok:
        assert ScaleScore.moaas(score).total == score
    else:
        with pytest.raises(ObservationError):
            ScaleScore.moaas(score)


@pytest.mark.parametrize(("score", "ok"), [(-6, False), (-5, True), (4, True), (5, False)])
def test_rass_range(score: int, ok: bool) -> None:
    if ok:
        assert ScaleScore.rass(score).total == score
    else:
        with pytest.raises(ObservationError):
            ScaleScore.rass(score)


def test_cadss6_six_items_0_to_4_and_total() -> None:
    s = ScaleScore.cadss6([0, 1, 2, 3, 4, 4])
    assert s.total == 14
    with pytest.raises(ObservationError, match="6 item"):
        ScaleScore.cadss6([1, 2, 3])
    with pytest.raises(ObservationError, match="item 6"):
        ScaleScore.cadss6([0, 0, 0, 0, 0, 5])
    with pytest.raises(ObservationError):
        ScaleScore.cadss6([0, 0, 0, 0, 0, True])  # a bool is not a score
    assert scale_from_row(s.scale.value, scale_json(s)) == s


def test_validate_requires_text_for_a_note_and_the_right_scale() -> None:
    cat = ObservationCatalogue.default()
    cat.validate("nausea", "", None)
    with pytest.raises(ObservationError, match="text is required"):
        cat.validate(NOTE, "  ", None)
    with pytest.raises(ObservationError, match="rass score is required"):
        cat.validate("rass", "", ScaleScore.moaas(3))
    with pytest.raises(ObservationError, match="carries no scale"):
        cat.validate("nausea", "", ScaleScore.moaas(3))
    with pytest.raises(ObservationError, match="no observation"):
        cat.validate("unknown", "", None)
    cat.validate("cadss6", "", ScaleScore(Scale.CADSS6, (0,) * 6))


def test_press_stamps_the_key_press_not_the_save() -> None:
    clock = FakeClock()
    p = press("nausea", clock)
    clock.advance(30)
    assert (p.mono, p.wall) == (1000.0, 1_767_225_600.0)


def _obs(i: int, seq: int, code: str, text: str = "", amends: int | None = None) -> Observation:
    return Observation(
        i, "s", seq, code, text, None, None, 100.0 + seq, 5000.0 + seq, 6000.0 + seq, "dr", amends
    )


def test_current_applies_the_newest_amendment_and_keeps_the_original_time() -> None:
    rows = [
        _obs(1, 1, "nausea"),
        _obs(2, 2, "crying"),
        _obs(3, 5, "vomiting", amends=1),
        _obs(4, 7, "vomiting", "small amount", amends=3),
    ]
    out = current(rows)
    assert [(o.id, o.code, o.text) for o in out] == [(1, "vomiting", "small amount"), (2, "crying", "")]
    assert out[0].t_pressed_utc == 5001.0  # the original's key press
    assert out[0].amends == 3
    with pytest.raises(ObservationError, match="not in the list"):
        current([_obs(5, 1, "nausea", amends=99)])
