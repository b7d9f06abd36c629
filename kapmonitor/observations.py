"""Clinician observations: the coded catalogue with one-key shortcuts, the scales, and the record."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from kapmonitor.clock import Clock

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_KEY = re.compile(r"^[a-z0-9]$")

#: The free-text observation's code (its text is required).
NOTE = "note"
#: The code the workflow logs each dose under (each esketamine device; kap-session.md "Dosing").
DOSE_GIVEN = "dose_given"


class Scale(StrEnum):
    """A scale clinicians score during the session (kap-session.md, "Scales")."""

    MOAAS = "moaas"  # sedation, 0-5
    RASS = "rass"  # +4 combative ... -5 unarousable
    CADSS6 = "cadss6"  # dissociation, six items 0-4 (items 1, 2, 6, 7, 15, 22 of CADSS)


#: Inclusive (low, high) of one score or one item of each scale.
SCALE_RANGE: dict[Scale, tuple[int, int]] = {
    Scale.MOAAS: (0, 5),
    Scale.RASS: (-5, 4),
    Scale.CADSS6: (0, 4),
}
#: How many items each scale has (a single score is one item).
SCALE_ITEMS: dict[Scale, int] = {Scale.MOAAS: 1, Scale.RASS: 1, Scale.CADSS6: 6}


class ObservationError(ValueError):
    """An observation, a scale value or a catalogue that is not valid."""


@dataclass(frozen=True, slots=True)
class ScaleScore:
    """A scored scale: MOAA/S and RASS have one item, CADSS-6 six; `total` is their sum."""

    scale: Scale
    items: tuple[int, ...]

    def __post_init__(self) -> None:
        scale = Scale(self.scale)
        want = SCALE_ITEMS[scale]
        if len(self.items) != want:
            raise ObservationError(f"{scale.value} has {want} item(s), got {len(self.items)}")
        low, high = SCALE_RANGE[scale]
        for i, v in enumerate(self.items, 1):
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                raise ObservationError(f"{scale.value} item {i} must be an integer {low}..{high}, got {v!r}")

    @property
    def total(self) -> int:
        return sum(self.items)

    @classmethod
    def moaas(cls, score: int) -> ScaleScore:
        return cls(Scale.MOAAS, (score,))

    @classmethod
    def rass(cls, score: int) -> ScaleScore:
        return cls(Scale.RASS, (score,))

    @classmethod
    def cadss6(cls, items: Iterable[int]) -> ScaleScore:
        return cls(Scale.CADSS6, tuple(items))


Kind = Literal["event", "text", "scale"]


@dataclass(frozen=True, slots=True)
class ObservationType:
    """One entry of the catalogue: a code, its label, its one-key shortcut and what it carries.

    kind "event" is a bare coded observation (optional text), "text" requires text (free note),
    "scale" requires a score of `scale`.
    """

    code: str
    label: str
    key: str | None = None
    kind: Kind = "event"
    scale: Scale | None = None

    def __post_init__(self) -> None:
        if not _CODE.match(self.code):
            raise ObservationError(f"observation code {self.code!r} must match {_CODE.pattern}")
        if not self.label.strip():
            raise ObservationError(f"observation {self.code!r} needs a label")
        if self.key is not None and not _KEY.match(self.key):
            raise ObservationError(f"shortcut of {self.code!r} must be one lower-case letter or digit")
        if self.kind not in ("event", "text", "scale"):
            raise ObservationError(f"observation kind {self.kind!r} is not event, text or scale")
        if (self.kind == "scale") != (self.scale is not None):
            raise ObservationError(f"{self.code!r}: a scale entry, and only it, names its scale")


# Default shortcuts: single unmodified keys, mnemonic where possible, letters for events and digits
# for scales, each used once. The UI takes them only while no text field has focus.
DEFAULT_TYPES: tuple[ObservationType, ...] = (
    ObservationType(DOSE_GIVEN, "Dose given", "d"),
    ObservationType("nausea", "Nausea", "n"),
    ObservationType("vomiting", "Vomiting", "v"),
    ObservationType("anxiety", "Anxiety / agitation", "a"),
    ObservationType("crying", "Crying", "c"),
    ObservationType("speaking", "Speaking", "s"),
    ObservationType("eye_shades_on", "Eye shades on", "e"),
    ObservationType("eye_shades_off", "Eye shades off", "o"),
    ObservationType("music_changed", "Music changed", "m"),
    ObservationType("therapist_intervention", "Therapist intervention", "t"),
    ObservationType("repositioned", "Repositioned", "p"),
    ObservationType("cuff_resited", "BP cuff re-sited", "b"),
    ObservationType("oximeter_resited", "Oximeter re-sited", "x"),
    ObservationType("asleep", "Asleep", "z"),
    ObservationType("responsive", "Responsive", "r"),
    ObservationType("ready_for_discharge", "Ready for discharge", "l"),
    ObservationType(NOTE, "Free text", "f", kind="text"),
    ObservationType("moaas", "MOAA/S (sedation 0-5)", "1", kind="scale", scale=Scale.MOAAS),
    ObservationType("rass", "RASS (+4 to -5)", "2", kind="scale", scale=Scale.RASS),
    ObservationType("cadss6", "CADSS-6 (dissociation)", "3", kind="scale", scale=Scale.CADSS6),
)


class ObservationCatalogue:
    """The configurable list of coded observations; codes and shortcut keys are unique."""

    def __init__(self, types: Iterable[ObservationType]) -> None:
        self._types: dict[str, ObservationType] = {}
        self._keys: dict[str, str] = {}
        for t in types:
            if t.code in self._types:
                raise ObservationError(f"observation code {t.code!r} appears twice")
            if t.key is not None:
                if t.key in self._keys:
                    raise ObservationError(
                        f"key {t.key!r} is given to both {self._keys[t.key]!r} and {t.code!r}"
                    )
                self._keys[t.key] = t.code
            self._types[t.code] = t
        if NOTE not in self._types or self._types[NOTE].kind != "text":
            raise ObservationError(f"the catalogue must keep the free-text entry {NOTE!r}")

    @classmethod
    def default(cls) -> ObservationCatalogue:
        return cls(DEFAULT_TYPES)

    def __iter__(self) -> Iterator[ObservationType]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)

    def __contains__(self, code: object) -> bool:
        return code in self._types

    def get(self, code: str) -> ObservationType:
        try:
            return self._types[code]
        except KeyError:
            raise ObservationError(f"no observation {code!r} in the catalogue") from None

    def by_key(self, key: str) -> ObservationType | None:
        """The entry whose shortcut is `key` (case-insensitive), or None."""
        code = self._keys.get(key.lower())
        return None if code is None else self._types[code]

    def validate(self, code: str, text: str, scale: ScaleScore | None) -> None:
        """Raise ObservationError unless (code, text, scale) is a valid observation."""
        t = self.get(code)
        if t.kind == "text" and not text.strip():
            raise ObservationError(f"{t.label}: the text is required")
        if t.kind == "scale":
            if scale is None or scale.scale != t.scale:
                raise ObservationError(f"{t.label}: a {t.scale} score is required")
        elif scale is not None:
            raise ObservationError(f"{t.label} carries no scale score")

    def to_json(self) -> str:
        return json.dumps(
            [
                {
                    "code": t.code,
                    "label": t.label,
                    "key": t.key,
                    "kind": t.kind,
                    "scale": None if t.scale is None else t.scale.value,
                }
                for t in self
            ]
        )

    @classmethod
    def from_json(cls, text: str) -> ObservationCatalogue:
        try:
            raw = json.loads(text)
            return cls(
                ObservationType(
                    code=str(e["code"]),
                    label=str(e["label"]),
                    key=None if e.get("key") is None else str(e["key"]),
                    kind=e.get("kind", "event"),
                    scale=None if e.get("scale") is None else Scale(e["scale"]),
                )
                for e in raw
            )
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ObservationError):
                raise
            raise ObservationError(f"not a valid observation catalogue: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Pressed:
    """The moment an observation's key was pressed: its recorded time, whatever the note's length."""

    code: str
    mono: float
    wall: float


def press(code: str, clock: Clock) -> Pressed:
    """Stamp an observation at the key press (call it on the key event, before any dialog)."""
    return Pressed(code, clock.monotonic(), clock.wall())


@dataclass(frozen=True, slots=True)
class Observation:
    """One stored observation (append-only); `amends` is the id of the row it corrects."""

    id: int
    session_id: str
    seq: int
    code: str
    text: str
    scale: ScaleScore | None
    dose_mg: float | None
    t_pressed_mono: float
    t_pressed_utc: float
    t_saved_utc: float
    author: str
    amends: int | None


def current(observations: Iterable[Observation]) -> list[Observation]:
    """The observations as last corrected: each original replaced by its newest amendment.

    The result keeps the original's id and key-press time (the amendment corrects what was
    observed, not when), in the originals' order.
    """
    rows = sorted(observations, key=lambda o: o.seq)
    root: dict[int, int] = {}
    latest: dict[int, Observation] = {}
    order: list[int] = []
    for o in rows:
        if o.amends is None:
            root[o.id] = o.id
            latest[o.id] = o
            order.append(o.id)
        else:
            r = root.get(o.amends)
            if r is None:
                raise ObservationError(f"observation {o.id} amends {o.amends}, which is not in the list")
            root[o.id] = r
            latest[r] = o
    out: list[Observation] = []
    for r in order:
        first, last = next(o for o in rows if o.id == r), latest[r]
        out.append(
            Observation(
                id=first.id,
                session_id=first.session_id,
                seq=last.seq,
                code=last.code,
                text=last.text,
                scale=last.scale,
                dose_mg=last.dose_mg,
                t_pressed_mono=first.t_pressed_mono,
                t_pressed_utc=first.t_pressed_utc,
                t_saved_utc=last.t_saved_utc,
                author=last.author,
                amends=None if last is first else last.amends,
            )
        )
    return out


def scale_json(scale: ScaleScore | None) -> str | None:
    """The stored form of a scale's items (a JSON list), or None."""
    return None if scale is None else json.dumps(list(scale.items))


def scale_from_row(scale: str | None, items: str | None) -> ScaleScore | None:
    """Rebuild a ScaleScore from its stored columns."""
    if scale is None or items is None:
        return None
    values = json.loads(items)
    return ScaleScore(Scale(scale), tuple(int(v) for v in values))


__all__ = [
    "DEFAULT_TYPES",
    "DOSE_GIVEN",
    "NOTE",
    "SCALE_ITEMS",
    "SCALE_RANGE",
    "Observation",
    "ObservationCatalogue",
    "ObservationError",
    "ObservationType",
    "Pressed",
    "Scale",
    "ScaleScore",
    "current",
    "press",
    "scale_from_row",
    "scale_json",
]
