"""Seeded, scripted physiological scenarios that feed the emulated wearables (deterministic in seed and t)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from functools import lru_cache
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class VitalsPoint:
    """What a wearable measures at one scenario time, at device resolution.

    SpO2 (%) and pulse (/min) are whole numbers, PI (%) has one decimal, as a fingertip oximeter
    reports them. None means "no valid value" (sensor off). `artefact` marks motion artefact (the
    values are unreliable); `in_range` False means the wearable is out of radio range.
    `systolic`/`diastolic`/`mean` (whole mmHg) are what a cuff would read if it measured now; the
    oximeter's sensor-off and artefact episodes do not touch them (the cuff is a separate device).
    """

    spo2: float | None
    pulse: float | None
    pi: float | None
    sensor_off: bool
    battery: int
    artefact: bool = False
    in_range: bool = True
    systolic: float | None = None
    diastolic: float | None = None
    mean: float | None = None


class Channel(IntEnum):
    """Independent noise streams; a new one gets a new number, old numbers never change meaning."""

    SPO2_SLOW = 1
    SPO2_FAST = 2
    PULSE_SLOW = 3
    PULSE_FAST = 4
    PI_SLOW = 5
    PI_FAST = 6
    DESAT_JITTER = 7
    EXCURSION = 8
    ARTEFACT_PULSE = 9
    ARTEFACT_SPO2 = 10
    SYSTOLIC_SLOW = 11
    SYSTOLIC_FAST = 12
    DIASTOLIC_SLOW = 13
    DIASTOLIC_FAST = 14


@lru_cache(maxsize=4096)
def _knot(seed: int, channel: int, k: int) -> float:
    # one uniform value per (seed, channel, knot): independent of the order of calls
    return float(np.random.default_rng([seed, channel, k]).uniform(-1.0, 1.0))


def smooth_noise(seed: int, channel: int, t: float, period_s: float) -> float:
    """Smooth value noise in [-1, 1]: seeded knots every `period_s`, eased in between."""
    x = t / period_s
    k = math.floor(x)
    frac = x - k
    ease = frac * frac * (3.0 - 2.0 * frac)
    a = _knot(seed, channel, k)
    b = _knot(seed, channel, k + 1)
    return a + (b - a) * ease


@dataclass
class Draft:
    """The mutable, unrounded values that episodes adjust before a VitalsPoint is made."""

    spo2: float
    pulse: float
    pi: float
    battery: float
    sensor_off: bool = False
    artefact: bool = False
    in_range: bool = True
    systolic: float = 120.0
    diastolic: float = 78.0


class Noise:
    """Seeded noise bound to one scenario's seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, channel: Channel, t: float, period_s: float) -> float:
        return smooth_noise(self.seed, int(channel), t, period_s)


@dataclass(frozen=True)
class Baseline:
    """A calm patient: SpO2 96–99, pulse in the 70s drifting up after the dose, PI 2–5, a slow battery."""

    spo2: float = 97.5
    spo2_slow: float = 1.0
    spo2_fast: float = 0.4
    pulse: float = 74.0
    pulse_slow: float = 3.0
    pulse_fast: float = 1.0
    dose_at_s: float = 30.0
    dose_pulse_rise: float = 8.0
    dose_tau_s: float = 240.0
    pi: float = 3.5
    pi_slow: float = 1.2
    pi_fast: float = 0.2
    battery_start: float = 95.0
    battery_drain_per_s: float = 1.0 / 360.0  # 1 % every 6 minutes
    systolic: float = 120.0
    systolic_slow: float = 4.0
    systolic_fast: float = 2.0
    diastolic: float = 78.0
    diastolic_slow: float = 3.0
    diastolic_fast: float = 1.5
    #: Ketamine's pressor response peaks ~40 min after the dose and lasts ~4 h (kap-session.md,
    #: "Monitoring"): a gamma-shaped rise, rise(x) = peak · x · e^(1 − x) with x = (t − dose) / 40 min.
    bp_peak_after_s: float = 40 * 60.0
    systolic_peak_rise: float = 14.0
    diastolic_peak_rise: float = 8.0

    def pressor_rise(self, t: float) -> float:
        """0 before the dose, 1 at the peak (`bp_peak_after_s` after it), ~0.04 four hours later."""
        if t <= self.dose_at_s:
            return 0.0
        x = (t - self.dose_at_s) / self.bp_peak_after_s
        return x * math.exp(1.0 - x)

    def spo2_at(self, t: float, noise: Noise) -> float:
        return (
            self.spo2
            + self.spo2_slow * noise(Channel.SPO2_SLOW, t, 20.0)
            + self.spo2_fast * noise(Channel.SPO2_FAST, t, 3.0)
        )

    def draft(self, t: float, noise: Noise) -> Draft:
        rise = 0.0
        if t > self.dose_at_s:
            rise = self.dose_pulse_rise * (1.0 - math.exp(-(t - self.dose_at_s) / self.dose_tau_s))
        pulse = (
            self.pulse
            + self.pulse_slow * noise(Channel.PULSE_SLOW, t, 15.0)
            + self.pulse_fast * noise(Channel.PULSE_FAST, t, 2.0)
            + rise
        )
        pi = (
            self.pi
            + self.pi_slow * noise(Channel.PI_SLOW, t, 10.0)
            + self.pi_fast * noise(Channel.PI_FAST, t, 2.0)
        )
        battery = self.battery_start - self.battery_drain_per_s * t
        pressor = self.pressor_rise(t)
        systolic = (
            self.systolic
            + self.systolic_slow * noise(Channel.SYSTOLIC_SLOW, t, 300.0)
            + self.systolic_fast * noise(Channel.SYSTOLIC_FAST, t, 20.0)
            + self.systolic_peak_rise * pressor
        )
        diastolic = (
            self.diastolic
            + self.diastolic_slow * noise(Channel.DIASTOLIC_SLOW, t, 300.0)
            + self.diastolic_fast * noise(Channel.DIASTOLIC_FAST, t, 20.0)
            + self.diastolic_peak_rise * pressor
        )
        return Draft(
            spo2=self.spo2_at(t, noise),
            pulse=pulse,
            pi=pi,
            battery=battery,
            systolic=systolic,
            diastolic=diastolic,
        )


class Episode(Protocol):
    """Something that happens to the patient or the device during a time window."""

    def apply(self, t: float, draft: Draft, noise: Noise, baseline: Baseline) -> None:
        """Adjust `draft` in place for scenario time `t` (seconds)."""
        ...


@dataclass(frozen=True)
class Desaturation:
    """SpO2 falls at `fall_per_s` from `start_s` to about `floor`, stays there `hold_s`, then recovers."""

    start_s: float = 120.0
    fall_per_s: float = 0.25  # ~1 % every 4 s
    floor: float = 82.0
    hold_s: float = 60.0
    recover_per_s: float = 0.5
    pulse_per_percent: float = 0.4  # mild compensatory tachycardia

    def ceiling(self, t: float, noise: Noise, baseline: Baseline) -> float:
        if t < self.start_s:
            return math.inf
        top = baseline.spo2_at(self.start_s, noise)
        reached_floor = self.start_s + max(0.0, top - self.floor) / self.fall_per_s
        if t < reached_floor:
            return top - self.fall_per_s * (t - self.start_s)
        if t < reached_floor + self.hold_s:
            return self.floor
        return self.floor + self.recover_per_s * (t - reached_floor - self.hold_s)

    def apply(self, t: float, draft: Draft, noise: Noise, baseline: Baseline) -> None:
        ceiling = self.ceiling(t, noise, baseline)
        if math.isinf(ceiling):
            return
        lowered = min(draft.spo2, ceiling + 0.6 * noise(Channel.DESAT_JITTER, t, 4.0))
        draft.pulse += self.pulse_per_percent * max(0.0, draft.spo2 - lowered)
        draft.spo2 = lowered


def _trapezoid(t: float, start_s: float, end_s: float, ramp_s: float) -> float:
    """0 outside [start, end], 1 inside, with linear ramps of `ramp_s` at both ends."""
    if t <= start_s or t >= end_s:
        return 0.0
    ramp = max(ramp_s, 1e-9)
    return min(1.0, (t - start_s) / ramp, (end_s - t) / ramp)


@dataclass(frozen=True)
class PulseExcursion:
    """Pulse moves to `target` (bradycardia or tachycardia) between `start_s` and `end_s`."""

    start_s: float
    end_s: float
    target: float
    ramp_s: float = 30.0

    def apply(self, t: float, draft: Draft, noise: Noise, baseline: Baseline) -> None:
        weight = _trapezoid(t, self.start_s, self.end_s, self.ramp_s)
        if weight > 0.0:
            target = self.target + 2.0 * noise(Channel.EXCURSION, t, 6.0)
            draft.pulse += weight * (target - draft.pulse)


@dataclass(frozen=True)
class SensorOff:
    """The finger is out of the probe: no values, the device reports the sensor unconnected."""

    start_s: float = 60.0
    end_s: float = 90.0

    def apply(self, t: float, draft: Draft, noise: Noise, baseline: Baseline) -> None:
        if self.start_s <= t < self.end_s:
            draft.sensor_off = True


@dataclass(frozen=True)
class Artefact:
    """Motion artefact: erratic pulse, spuriously low SpO2, weak perfusion, flagged as such."""

    start_s: float = 60.0
    end_s: float = 90.0

    def apply(self, t: float, draft: Draft, noise: Noise, baseline: Baseline) -> None:
        if self.start_s <= t < self.end_s:
            draft.artefact = True
            draft.pulse += 25.0 * noise(Channel.ARTEFACT_PULSE, t, 0.7)
            draft.spo2 -= 5.0 * abs(noise(Channel.ARTEFACT_SPO2, t, 1.3))
            draft.pi *= 0.3


@dataclass(frozen=True)
class OutOfRange:
    """The wearable leaves radio range (the emulator stops advertising and drops the link), then returns."""

    start_s: float = 60.0
    end_s: float = 90.0

    def apply(self, t: float, draft: Draft, noise: Noise, baseline: Baseline) -> None:
        if self.start_s <= t < self.end_s:
            draft.in_range = False


class Scenario:
    """A seeded script: a baseline patient plus episodes; `at(t)` depends only on (seed, t)."""

    def __init__(
        self,
        name: str,
        seed: int,
        episodes: Sequence[Episode] = (),
        *,
        baseline: Baseline | None = None,
        description: str = "",
    ) -> None:
        if seed < 0:
            raise ValueError("seed must be non-negative")
        self.name = name
        self.seed = seed
        self.episodes = tuple(episodes)
        self.baseline = baseline or Baseline()
        self.description = description
        self._noise = Noise(seed)

    def __repr__(self) -> str:
        return f"Scenario({self.name!r}, seed={self.seed})"

    def at(self, t_seconds: float) -> VitalsPoint:
        """The vitals at scenario time `t_seconds` (>= 0) at device resolution."""
        if not t_seconds >= 0.0:
            raise ValueError(f"scenario time must be >= 0, got {t_seconds}")
        draft = self.baseline.draft(t_seconds, self._noise)
        for episode in self.episodes:
            episode.apply(t_seconds, draft, self._noise, self.baseline)
        # a level is shown until it is fully used up: 95 % for the whole first drain step
        battery = int(min(100.0, max(0.0, math.ceil(draft.battery - 1e-9))))
        systolic = float(min(260, max(60, round(draft.systolic))))
        diastolic = float(min(systolic - 10, max(30, round(draft.diastolic))))
        # MAP ≈ diastolic + a third of the pulse pressure, as oscillometric cuffs report it
        mean = float(round(diastolic + (systolic - diastolic) / 3.0))
        if draft.sensor_off:
            return VitalsPoint(
                None,
                None,
                None,
                True,
                battery,
                draft.artefact,
                draft.in_range,
                systolic=systolic,
                diastolic=diastolic,
                mean=mean,
            )
        return VitalsPoint(
            spo2=float(min(100, max(0, round(draft.spo2)))),
            pulse=float(min(300, max(0, round(draft.pulse)))),
            pi=round(min(20.0, max(0.0, draft.pi)), 1),
            sensor_off=False,
            battery=battery,
            artefact=draft.artefact,
            in_range=draft.in_range,
            systolic=systolic,
            diastolic=diastolic,
            mean=mean,
        )


# -- the catalogue ------------------------------------------------------------------------------
def normal(seed: int) -> Scenario:
    return Scenario("normal", seed, description="calm baseline; pulse drifts up after the dose at 30 s")


def desaturation(seed: int) -> Scenario:
    return Scenario(
        "desaturation",
        seed,
        [Desaturation()],
        description="from 120 s SpO2 falls ~1 %/4 s to ~82 %, holds 60 s, recovers",
    )


def sensor_off(seed: int) -> Scenario:
    return Scenario("sensor_off", seed, [SensorOff(60.0, 90.0)], description="finger out from 60 s to 90 s")


def bradycardia(seed: int) -> Scenario:
    return Scenario(
        "bradycardia", seed, [PulseExcursion(120.0, 240.0, 42.0)], description="pulse ~42 from 120 s to 240 s"
    )


def tachycardia(seed: int) -> Scenario:
    return Scenario(
        "tachycardia",
        seed,
        [PulseExcursion(120.0, 240.0, 135.0)],
        description="pulse ~135 from 120 s to 240 s",
    )


def low_battery(seed: int) -> Scenario:
    return Scenario(
        "low_battery",
        seed,
        baseline=replace(Baseline(), battery_start=12.0, battery_drain_per_s=1.0 / 40.0),
        description="battery 12 % draining 1 % every 40 s",
    )


def artefact(seed: int) -> Scenario:
    return Scenario("artefact", seed, [Artefact(60.0, 90.0)], description="motion artefact from 60 s to 90 s")


def disconnect_return(seed: int) -> Scenario:
    return Scenario(
        "disconnect_return", seed, [OutOfRange(60.0, 90.0)], description="out of range from 60 s to 90 s"
    )


def hypertensive_peak(seed: int) -> Scenario:
    return Scenario(
        "hypertensive_peak",
        seed,
        baseline=replace(Baseline(), systolic_peak_rise=55.0, diastolic_peak_rise=27.0),
        description="BP rises after the dose to ~175/105 mmHg at ~40 min, then settles over hours",
    )


def malformed(seed: int) -> Scenario:
    """Calm physiology; the demo adds a seeded stream of malformed packets (emulated/malformed.py)."""
    return Scenario(
        "malformed", seed, description="normal vitals with malformed packets every 5 s (transport fault)"
    )


#: Scenarios whose fault is in the transport, not the physiology: ui/demo.py adds the injector.
TRANSPORT_FAULTS = frozenset({"malformed"})

SCENARIOS: dict[str, Callable[[int], Scenario]] = {
    "normal": normal,
    "desaturation": desaturation,
    "sensor_off": sensor_off,
    "bradycardia": bradycardia,
    "tachycardia": tachycardia,
    "low_battery": low_battery,
    "artefact": artefact,
    "disconnect_return": disconnect_return,
    "hypertensive_peak": hypertensive_peak,
    "malformed": malformed,
}
