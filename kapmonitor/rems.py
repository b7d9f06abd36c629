"""The esketamine REMS patient monitoring form, filled from a session's recorded data (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from kapmonitor.measurements import BloodPressure
from kapmonitor.observations import Observation, Scale, ScaleScore
from kapmonitor.workflow import (
    BP_GATE_DIASTOLIC,
    BP_GATE_SYSTOLIC,
    ESKETAMINE_MINIMUM_S,
    FIRST_BP_AFTER_DOSE_S,
    SessionDetails,
)

#: The reading that counts as "at 40 minutes" lies this far either side of the 40-minute mark.
FORTY_MIN_WINDOW_S = 10 * 60.0
#: "Before completion": a reading within this time before the end of monitoring.
COMPLETION_WINDOW_S = 30 * 60.0


class BpFlag(StrEnum):
    """Why a BP field of the form needs the clinician's attention."""

    MISSING = "missing"  # no reading that could fill it
    LATE = "late"  # the "40 minutes" reading was taken after the window (the first one after it)
    STALE = "stale"  # the "before completion" reading is older than the final 30 minutes


class ConcomitantCategory(StrEnum):
    """The REMS form's concomitant-medicine categories (kap-session.md, "REMS")."""

    BENZODIAZEPINES = "benzodiazepines"
    SEDATIVE_HYPNOTICS = "other sedative hypnotics"
    PSYCHOSTIMULANTS = "psychostimulants"
    MAOIS = "MAOIs"


# Common names that fall in each category (generic names; an entry may also name the category).
_CATEGORY_WORDS: dict[ConcomitantCategory, tuple[str, ...]] = {
    ConcomitantCategory.BENZODIAZEPINES: (
        "benzodiazepine",
        "alprazolam",
        "chlordiazepoxide",
        "clobazam",
        "clonazepam",
        "diazepam",
        "lorazepam",
        "midazolam",
        "oxazepam",
        "temazepam",
    ),
    ConcomitantCategory.SEDATIVE_HYPNOTICS: (
        "sedative",
        "hypnotic",
        "zolpidem",
        "zopiclone",
        "eszopiclone",
        "zaleplon",
    ),
    ConcomitantCategory.PSYCHOSTIMULANTS: (
        "psychostimulant",
        "stimulant",
        "amphetamine",
        "dexamfetamine",
        "dextroamphetamine",
        "lisdexamfetamine",
        "methylphenidate",
        "dexmethylphenidate",
    ),
    ConcomitantCategory.MAOIS: (
        "maoi",
        "monoamine oxidase",
        "phenelzine",
        "tranylcypromine",
        "isocarboxazid",
        "selegiline",
        "moclobemide",
    ),
}


def concomitant_categories(medicines: Iterable[str]) -> tuple[set[ConcomitantCategory], list[str]]:
    """(REMS categories the medicines fall in, medicines matching no category) — case-insensitive."""
    found: set[ConcomitantCategory] = set()
    other: list[str] = []
    for med in medicines:
        low = med.lower()
        hits = {c for c, words in _CATEGORY_WORDS.items() if any(w in low for w in words)}
        if hits:
            found |= hits
        else:
            other.append(med)
    return found, other


@dataclass(frozen=True, slots=True)
class BpField:
    """One BP field of the form: the reading used (None if missing) and its flag."""

    reading: BloodPressure | None
    minutes_after_first_device: float | None
    flag: BpFlag | None

    @property
    def text(self) -> str:
        r = self.reading
        if r is None or r.systolic is None or r.diastolic is None:
            return "—"
        return f"{r.systolic:.0f}/{r.diastolic:.0f}"


@dataclass(frozen=True, slots=True)
class RemsForm:
    """The form's fields as far as the recorded data fill them; `flags` lists what needs review."""

    patient: str
    clinicians: tuple[str, ...]
    session_date: str  # YYYY-MM-DD (UTC) of the first device
    dose_mg: float
    dose_category: str  # "56", "84" or "other"
    lot: str
    concomitant: tuple[ConcomitantCategory, ...]
    concomitant_unclassified: tuple[str, ...]
    bp_before_dosing: BpField
    bp_at_40_min: BpField
    bp_before_completion: BpField
    total_minutes: float
    ready_to_leave_minutes: float | None
    vitals_in_range_before_dosing: bool | None  # None: no reading
    vitals_in_range_before_completion: bool | None
    sedation_occurred: bool | None  # None: not scored
    dissociation_occurred: bool | None
    flags: tuple[str, ...]


def _valid_live(
    readings: Iterable[BloodPressure], at: Callable[[BloodPressure], float]
) -> list[BloodPressure]:
    # Stored (cuff-memory) readings are left out: their time is the cuff's own clock. The sort is
    # stable: readings at the same time stay in the order given (the log's seq order).
    return sorted(
        (r for r in readings if not r.stored and r.systolic is not None and r.diastolic is not None),
        key=at,
    )


def _wall_of(r: BloodPressure) -> float:
    return r.wall


def _mono_of(r: BloodPressure) -> float:
    return r.mono


def _in_range(f: BpField) -> bool | None:
    r = f.reading
    if r is None or r.systolic is None or r.diastolic is None:
        return None
    return r.systolic <= BP_GATE_SYSTOLIC and r.diastolic <= BP_GATE_DIASTOLIC


def _sedated(sc: ScaleScore) -> bool:
    # MOAA/S 5 = responds readily to name; RASS 0 = alert and calm, below 0 = drowsy to unarousable
    return sc.total < 5 if sc.scale == Scale.MOAAS else sc.total < 0


def rems_form(
    details: SessionDetails,
    bp_readings: Sequence[BloodPressure],
    first_device_utc: float,
    end_utc: float,
    ready_to_leave_utc: float | None,
    *,
    dose_mg: float | None = None,
    observations: Iterable[Observation] = (),
    first_device_mono: float | None = None,
    end_mono: float | None = None,
    ready_to_leave_mono: float | None = None,
) -> RemsForm:
    """Fill the REMS form from a session's data.

    BP before dosing: the last live reading before the first device. At 40 min: the reading nearest
    40 min after the first device within ±10 min; if none, the first one after the window (LATE).
    Before completion: the last reading in the final 30 min of monitoring; if none, the last one
    after the first device (STALE). `dose_mg` defaults to the planned dose. Sedation occurred if any
    MOAA/S < 5 or RASS < 0 was scored; dissociation if any CADSS-6 total > 0 (`observations` as
    last corrected).

    Time line: with `first_device_mono` (and `end_mono`, and `ready_to_leave_mono` when there is a
    ready time) every duration and every choice of reading is on the monotonic clock, the readings
    placed by their own `mono` (all on one timeline, e.g. a stored session's, see
    storage.session_log.MonoTimelines), so a wall-clock step during the session changes none of
    them; the printed session date stays the UTC wall time of the first device. Without them the
    wall times are the time line (a caller whose clock did not step).
    """
    at: Callable[[BloodPressure], float]
    if first_device_mono is None:
        first, end, ready_at = first_device_utc, end_utc, ready_to_leave_utc
        at = _wall_of
    else:
        if end_mono is None or (ready_to_leave_utc is not None and ready_to_leave_mono is None):
            raise ValueError("with the first device's monotonic time, the end's (and ready's) are needed too")
        first, end = first_device_mono, end_mono
        ready_at = None if ready_to_leave_utc is None else ready_to_leave_mono
        at = _mono_of
    if end < first:
        raise ValueError("the end of monitoring is before the first device")
    live = _valid_live(bp_readings, at)

    def minutes(r: BloodPressure) -> float:
        return (at(r) - first) / 60.0

    def fld(r: BloodPressure | None, flag: BpFlag | None) -> BpField:
        return BpField(r, None if r is None else minutes(r), flag)

    before = [r for r in live if at(r) < first]
    bp_before = fld(before[-1], None) if before else fld(None, BpFlag.MISSING)

    target = first + FIRST_BP_AFTER_DOSE_S
    window = [r for r in live if abs(at(r) - target) <= FORTY_MIN_WINDOW_S]
    after_window = [r for r in live if target + FORTY_MIN_WINDOW_S < at(r) <= end]
    if window:
        bp_40 = fld(min(window, key=lambda r: (abs(at(r) - target), at(r))), None)
    elif after_window:
        bp_40 = fld(after_window[0], BpFlag.LATE)
    else:
        bp_40 = fld(None, BpFlag.MISSING)

    during = [r for r in live if first <= at(r) <= end]
    final = [r for r in during if at(r) >= end - COMPLETION_WINDOW_S]
    if final:
        bp_end = fld(final[-1], None)
    elif during:
        bp_end = fld(during[-1], BpFlag.STALE)
    else:
        bp_end = fld(None, BpFlag.MISSING)

    total = (end - first) / 60.0
    ready = None if ready_at is None else (ready_at - first) / 60.0
    dose = dose_mg if dose_mg is not None else (details.planned_dose_mg or 0.0)
    category = f"{dose:g}" if dose in (56.0, 84.0) else "other"
    cats, unclassified = concomitant_categories(details.concomitant)

    scored = [o.scale for o in observations if o.scale is not None]
    sedation_scores = [sc for sc in scored if sc.scale in (Scale.MOAAS, Scale.RASS)]
    cadss = [sc for sc in scored if sc.scale == Scale.CADSS6]
    sedation = any(_sedated(sc) for sc in sedation_scores) if sedation_scores else None
    dissociation = any(sc.total > 0 for sc in cadss) if cadss else None

    flags: list[str] = []
    for name, f in (
        ("BP before dosing", bp_before),
        ("BP at 40 minutes", bp_40),
        ("BP before completion", bp_end),
    ):
        if f.flag is not None:
            flags.append(f"{name}: {f.flag.value}")
    if total < ESKETAMINE_MINIMUM_S / 60.0:
        flags.append(f"total monitoring {total:.0f} min is under the 120-minute minimum")
    if ready is None:
        flags.append("ready-to-leave time not recorded")
    if not details.lot.strip():
        flags.append("lot number missing")
    if unclassified:
        flags.append(f"concomitant medicines to classify: {', '.join(unclassified)}")

    return RemsForm(
        patient=details.patient,
        clinicians=details.clinicians,
        session_date=datetime.fromtimestamp(first_device_utc, tz=UTC).date().isoformat(),
        dose_mg=dose,
        dose_category=category,
        lot=details.lot,
        concomitant=tuple(c for c in ConcomitantCategory if c in cats),
        concomitant_unclassified=tuple(unclassified),
        bp_before_dosing=bp_before,
        bp_at_40_min=bp_40,
        bp_before_completion=bp_end,
        total_minutes=total,
        ready_to_leave_minutes=ready,
        vitals_in_range_before_dosing=_in_range(bp_before),
        vitals_in_range_before_completion=_in_range(bp_end),
        sedation_occurred=sedation,
        dissociation_occurred=dissociation,
        flags=tuple(flags),
    )
