"""Deterministic synthetic photoplethysmogram (pleth) for the emulated oximeters: beats, notch, noise."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Beat shape, as fractions of one beat period: a fast systolic upstroke peaking at SYSTOLIC_AT, the
#: dicrotic notch near NOTCH_AT, a smaller diastolic wave at DIASTOLIC_AT, then a slow decay.
SYSTOLIC_AT = 0.18
SYSTOLIC_WIDTH = 0.07
NOTCH_AT = 0.36
DIASTOLIC_AT = 0.45
DIASTOLIC_WIDTH = 0.07
DIASTOLIC_RATIO = 0.45
#: PI (%) that gives the full amplitude; weaker perfusion scales the wave down, never below the floor.
FULL_SCALE_PI = 5.0
MIN_AMPLITUDE = 0.08


def beat_shape(phase: float) -> float:
    """The normalised pulse wave (0 at rest, 1 at the systolic peak) at `phase` in [0, 1) of a beat."""
    p = phase % 1.0
    systolic = math.exp(-0.5 * ((p - SYSTOLIC_AT) / SYSTOLIC_WIDTH) ** 2)
    diastolic = DIASTOLIC_RATIO * math.exp(-0.5 * ((p - DIASTOLIC_AT) / DIASTOLIC_WIDTH) ** 2)
    # the wave of the previous beat has not quite decayed at phase 0: keep the trace continuous
    tail = DIASTOLIC_RATIO * math.exp(-0.5 * ((p + 1.0 - DIASTOLIC_AT) / DIASTOLIC_WIDTH) ** 2)
    return min(1.0, systolic + diastolic + tail)


@dataclass(frozen=True, slots=True)
class PlethSample:
    """One sample: `value` in 0..full_scale, `beat` True on the first sample of a new beat."""

    value: int
    beat: bool


class PlethSynth:
    """Generates consecutive pleth samples at `rate_hz`, beat by beat at the pulse rate it is given.

    Deterministic: the same seed and the same sequence of `next()` calls give the same samples. The
    beat phase advances by pulse/60/rate per sample, so a pulse change bends the rhythm smoothly.
    `full_scale` is the top of the device's range (100 for BerryMed, 127 for Viatom). Amplitude
    follows the perfusion index (FULL_SCALE_PI % → about 80 % of the range). Without a pulse
    (sensor off) the output is a flat 0 with no beats.
    """

    def __init__(self, rate_hz: float, *, seed: int = 0, full_scale: int = 100, noise: float = 0.015) -> None:
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        self.rate_hz = rate_hz
        self.full_scale = full_scale
        self.noise = noise
        self._rng = np.random.default_rng([seed, 0x9E7])
        self._phase = 0.0
        self._new_beat = True
        self.samples_made = 0

    def next(self, count: int, pulse_bpm: float | None, pi: float | None) -> list[PlethSample]:
        """The next `count` samples for a patient with this pulse (/min) and PI (%)."""
        out: list[PlethSample] = []
        if pulse_bpm is None or pulse_bpm <= 0:
            self.samples_made += count
            self._new_beat = True  # the first sample after the finger returns starts a beat
            return [PlethSample(0, False) for _ in range(count)]
        amplitude = max(MIN_AMPLITUDE, min(1.0, (pi if pi is not None else 1.0) / FULL_SCALE_PI)) * 0.8
        base = 0.1
        step = pulse_bpm / 60.0 / self.rate_hz
        noise = self._rng.normal(0.0, self.noise, count)
        for k in range(count):
            beat, self._new_beat = self._new_beat, False
            level = base + amplitude * beat_shape(self._phase) + float(noise[k])
            value = round(min(1.0, max(0.0, level)) * self.full_scale)
            self._phase += step
            if self._phase >= 1.0:
                self._phase -= math.floor(self._phase)
                self._new_beat = True
            out.append(PlethSample(int(value), beat))
            self.samples_made += 1
        return out


__all__ = ["PlethSample", "PlethSynth", "beat_shape"]
