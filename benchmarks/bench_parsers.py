"""Benchmark: parser throughput per protocol (notifications/s and samples/s on one core, emulator packets)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from devices.berrymed.driver import berrymed_spec
from devices.bp.driver import bp_spec
from devices.driver import Decoder, DriverSpec
from devices.emulated.berrymed_oximeter import notification_for
from devices.emulated.bp_cuff import DEFAULT_EPOCH, encode_reading
from devices.emulated.hr_strap import BeatClock, encode_measurement
from devices.emulated.pleth import PlethSynth
from devices.emulated.plx_oximeter import encode_continuous, encode_spot_check
from devices.emulated.scenario import SCENARIOS, Scenario
from devices.emulated.viatom_oximeter import DEFAULT_CHUNK, take_chunks, tick_frames
from devices.hr.driver import hr_spec
from devices.plx.driver import PLX_CONTINUOUS, PLX_SPOT_CHECK, plx_spec
from devices.viatom.driver import viatom_spec
from devices.viatom.parser import PLETH_RATE_HZ as VIATOM_RATE_HZ
from devices.viatom.parser import PLETH_SAMPLES_PER_FRAME
from kapmonitor.measurements import Measurement, Numeric, Waveform

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: benchmarks.*
from benchmarks.common import write_json

#: The scenario the packets come from: artefact episodes and sensor-off spells exercise the
#: status bits and the "no value" paths, not only the happy path.
MIXED = ("normal", "artefact", "sensor_off", "desaturation")


@dataclass(frozen=True)
class Protocol:
    """One wire protocol: how to make `n` realistic notifications and which decoder the link runs."""

    name: str
    make: Callable[[Scenario, int], list[bytes]]
    decoder: Callable[[], Decoder]


def _decoder(spec: Callable[[], DriverSpec], characteristic: str | None = None) -> Callable[[], Decoder]:
    """A fresh decoder (fresh framer state) of the subscription the link uses for `characteristic`."""

    def make() -> Decoder:
        subs = spec().subscriptions
        return next(s.decode for s in subs if characteristic is None or s.characteristic == characteristic)

    return make


def _times(n: int, step_s: float) -> list[float]:
    return [i * step_s for i in range(n)]


def plx_continuous(scenario: Scenario, n: int) -> list[bytes]:
    """One 0x2A5F notification per scenario second, as the PLX emulator sends them."""
    return [encode_continuous(scenario.at(t)) for t in _times(n, 1.0)]


def plx_spot_check(scenario: Scenario, n: int) -> list[bytes]:
    """0x2A5E spot-checks (timestamped; every other one from storage, as RACP uploads them)."""
    return [
        encode_spot_check(scenario.at(t), datetime.fromtimestamp(DEFAULT_EPOCH + t, UTC), stored=i % 2 == 1)
        for i, t in enumerate(_times(n, 60.0))
    ]


def bp_measurement(scenario: Scenario, n: int) -> list[bytes]:
    """0x2A35 readings with the cuff's timestamp, pulse, user id and status, one per 5 minutes."""
    return [
        encode_reading(scenario.at(t), datetime.fromtimestamp(DEFAULT_EPOCH + t, UTC).replace(tzinfo=None))
        for t in _times(n, 300.0)
    ]


def hr_measurement(scenario: Scenario, n: int) -> list[bytes]:
    """0x2A37 once per second with the RR intervals of that second's beats (energy every 10th)."""
    beats = BeatClock(0.0)
    out = []
    for i, t in enumerate(_times(n, 1.0)):
        point = scenario.at(t)
        rr = beats.beats_until(t, lambda s: scenario.at(max(0.0, s)).pulse)
        out.append(encode_measurement(point, rr, energy_kj=i if i % 10 == 0 else None))
    return out


def viatom_stream(scenario: Scenario, n: int) -> list[bytes]:
    """20-byte NUS notifications cut from the PC-60FW stream (params 1 Hz + pleth 50 Hz), frames split.

    Made as the emulator makes them (devices.emulated.viatom_oximeter.tick_frames, take_chunks).
    """
    synth = PlethSynth(VIATOM_RATE_HZ, seed=scenario.seed, full_scale=127)
    tick_s = PLETH_SAMPLES_PER_FRAME / VIATOM_RATE_HZ
    buffer = bytearray()
    out: list[bytes] = []
    tick = 0
    while len(out) < n - 1:
        buffer += tick_frames(synth, scenario.at(tick * tick_s), tick, params=True, wave=True)
        out += take_chunks(buffer, DEFAULT_CHUNK)
        tick += 1
    # the tail goes out short, so that the next scenario's stream starts on a frame boundary
    return [*out, bytes(buffer)] if buffer else out


def berrymed_stream(scenario: Scenario, n: int) -> list[bytes]:
    """BCI notifications of four 5-byte packets (100 Hz pleth), one per 0.04 s."""
    synth = PlethSynth(100.0, seed=scenario.seed, full_scale=100)
    return [notification_for(synth, scenario.at(t)) for t in _times(n, 0.04)]


PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("PLX continuous 0x2A5F", plx_continuous, _decoder(plx_spec, PLX_CONTINUOUS)),
    Protocol("PLX spot-check 0x2A5E", plx_spot_check, _decoder(plx_spec, PLX_SPOT_CHECK)),
    Protocol("BP measurement 0x2A35", bp_measurement, _decoder(lambda: bp_spec(UTC))),
    Protocol("HR measurement 0x2A37", hr_measurement, _decoder(hr_spec)),
    Protocol("Viatom PC-60FW stream", viatom_stream, _decoder(viatom_spec)),
    Protocol("BerryMed BCI stream", berrymed_stream, _decoder(berrymed_spec)),
)


def samples_in(measurements: Sequence[Measurement]) -> int:
    """Values a decode delivered: a Numeric is one, a Waveform its samples, a BP reading one."""
    return sum(len(m.samples) if isinstance(m, Waveform) else 1 for m in measurements)


def packets_for(protocol: Protocol, n: int, seed: int) -> list[bytes]:
    """`n` notifications, a quarter from each MIXED scenario (concatenated), all decodable."""
    per = max(1, n // len(MIXED))
    out: list[bytes] = []
    for name in MIXED:
        out += protocol.make(SCENARIOS[name](seed), per)
    return out


def measure(protocol: Protocol, packets: list[bytes], repeats: int) -> dict[str, float | str]:
    """Decode every packet with a fresh decoder, `repeats` times; keep the fastest run."""
    best = float("inf")
    samples = numerics_none = 0
    for _ in range(repeats):
        decode = protocol.decoder()
        samples = numerics_none = 0
        start = time.perf_counter()
        for i, raw in enumerate(packets):
            out = decode(raw, "bench", float(i), float(i))
            samples += samples_in(out)
            numerics_none += sum(1 for m in out if isinstance(m, Numeric) and m.value is None)
        best = min(best, time.perf_counter() - start)
    return {
        "protocol": protocol.name,
        "notifications": len(packets),
        "bytes": sum(len(p) for p in packets),
        "samples": samples,
        "no_value_samples": numerics_none,
        "seconds": best,
        "notifications_per_s": len(packets) / best,
        "samples_per_s": samples / best,
        "us_per_notification": best / len(packets) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=20_000, help="notifications per protocol")
    parser.add_argument("--repeats", type=int, default=3, help="runs per protocol (the fastest counts)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH ('-': stdout)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"{'protocol':<24} {'notif/s':>10} {'samples/s':>11} {'µs/notif':>9}  notifications, samples")
    results = []
    for protocol in PROTOCOLS:
        packets = packets_for(protocol, args.packets, args.seed)
        result = measure(protocol, packets, args.repeats)
        assert result["samples"], f"{protocol.name}: nothing decoded"
        results.append(result)
        print(
            f"{protocol.name:<24} {result['notifications_per_s']:>10,.0f} {result['samples_per_s']:>11,.0f} "
            f"{result['us_per_notification']:>9.1f}  {result['notifications']:,} notifications, "
            f"{result['samples']:,} samples ({result['no_value_samples']:,} 'no value')"
        )
    write_json(
        args.json, {"packets": args.packets, "repeats": args.repeats, "seed": args.seed, "protocols": results}
    )


if __name__ == "__main__":
    main()
