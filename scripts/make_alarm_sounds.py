"""Generate the IEC 60601-1-8 style alarm bursts in resources/sounds/ (deterministic 16-bit mono WAVs).

Run from the repository root:  .venv/bin/python scripts/make_alarm_sounds.py [--out DIR]

Each file holds exactly ONE burst, starting with the first pulse at sample 0 (no leading silence, so
start-up latency is not increased) and followed by TAIL_MS of silence: QSoundEffect (PulseAudio, Qt 6.12)
holds back the last ~10 ms of a sound and plays it when the effect next starts, which cut the last pulse
short and put a 10 ms blip before the next burst; with a silent tail, what it holds back is silence.
The player (ui/sound.py) repeats the burst after the inter-burst interval.

Timing (all in milliseconds; reference/alarms.md gives the pulse counts, "3 + 2, 3 + 2" for high,
"≈100–150 ms" high-priority pulses, faster rising than medium/low; the spacings x, 2x + td and the
0.35–1.30 s gap between the two halves of a high burst follow IEC 60601-1-8 Table 4 as summarised in
monitor manuals, treat them as *secondary*):

    high    10 pulses, td = 120, rise/fall 12 (10 % of td)
            gaps (end of one pulse to start of the next): 80 80 280 80 | 500 | 80 80 280 80
            i.e. x = 80, 2x + td = 280 between the 3rd and 4th pulse of each half, 500 between halves
            onsets 0 200 400 800 1000 1620 1820 2020 2420 2620; burst length 2740
    medium   3 pulses, td = 180, rise/fall 36 (20 % of td), gaps 180 180
            onsets 0 360 720; burst length 900
    low      2 pulses, td = 180, rise/fall 36 (20 % of td), gap 180
            onsets 0 360; burst length 540

Tone: fundamental + 4 harmonics (2nd–5th), all inside 300–4000 Hz (alarms.md "fundamental 150–1000 Hz
with several harmonics in 300–4000 Hz"): high 660 Hz (top harmonic 3300 Hz), medium 550 Hz, low
440 Hz; harmonic amplitudes 1, 0.7, 0.5, 0.35, 0.25; peak normalised to 0.7 of full scale.
Raised-cosine rise and fall ramps, so no pulse starts or stops with a click.
"""

from __future__ import annotations

import argparse
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 44_100
HARMONIC_AMPLITUDES = (1.0, 0.7, 0.5, 0.35, 0.25)
PEAK = 0.7  # of int16 full scale: loud, with headroom for resampling in the audio server
TAIL_MS = 100  # silence after the last pulse (see the module docstring)


@dataclass(frozen=True)
class BurstSpec:
    """One priority's burst: pulse onsets (ms from burst start), pulse width, ramp and tone."""

    onsets_ms: tuple[int, ...]
    pulse_ms: int
    ramp_ms: int
    fundamental_hz: float

    @property
    def length_ms(self) -> int:
        return self.onsets_ms[-1] + self.pulse_ms


def _onsets(pulse_ms: int, gaps_ms: tuple[int, ...]) -> tuple[int, ...]:
    onsets = [0]
    for gap in gaps_ms:
        onsets.append(onsets[-1] + pulse_ms + gap)
    return tuple(onsets)


#: The bursts, by priority. See the module docstring for where each number comes from.
BURSTS: dict[str, BurstSpec] = {
    "high": BurstSpec(_onsets(120, (80, 80, 280, 80, 500, 80, 80, 280, 80)), 120, 12, 660.0),
    "medium": BurstSpec(_onsets(180, (180, 180)), 180, 36, 550.0),
    "low": BurstSpec(_onsets(180, (180,)), 180, 36, 440.0),
}


def _samples(ms: int) -> int:
    return ms * SAMPLE_RATE // 1000


def _pulse(spec: BurstSpec) -> np.ndarray:
    n = _samples(spec.pulse_ms)
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    tone = np.zeros(n, dtype=np.float64)
    for k, amp in enumerate(HARMONIC_AMPLITUDES, start=1):
        tone += amp * np.sin(2.0 * np.pi * k * spec.fundamental_hz * t)
    tone /= np.max(np.abs(tone))
    ramp_n = _samples(spec.ramp_ms)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp_n, dtype=np.float64) / ramp_n)
    envelope = np.ones(n, dtype=np.float64)
    envelope[:ramp_n] = ramp
    envelope[n - ramp_n :] = ramp[::-1]
    return tone * envelope


def render(spec: BurstSpec) -> bytes:
    """The burst and its silent tail as little-endian int16 PCM bytes (mono, SAMPLE_RATE)."""
    out = np.zeros(_samples(spec.length_ms + TAIL_MS), dtype=np.float64)
    pulse = _pulse(spec)
    for onset in spec.onsets_ms:
        start = _samples(onset)
        out[start : start + pulse.size] = pulse
    pcm = np.round(out * PEAK * 32767.0).astype("<i2")
    return pcm.tobytes()


def write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "resources" / "sounds"
    parser.add_argument("--out", type=Path, default=default_out, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for priority, spec in BURSTS.items():
        write_wav(out / f"alarm_{priority}.wav", render(spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
