"""The recording process the crash trials kill: Session + Recorder + SessionLog on the system clock.

It records an emulated oximeter (SpO2 and pulse at 10 Hz, pleth at 100 Hz, from the seeded demo
scenario) through the real Session into the real Recorder, ticks like the app (ui/app.py
TICK_PERIOD_S), and saves observations through SessionLog at random moments. It prints, flushing
each line:

    ready <session id>          recording has started
    obs <id>                    an observation was committed (printed after the commit returned)
    tick <monotonic seconds>    one tick of the session (staleness watchdog, recorder flush)
    flushed <mono> <n>          that tick committed every numeric up to receive time <mono> and
                                the first <n> pleth samples

Run: `.venv/bin/python stress/crash_child.py --db PATH [--seed N]` (it records until killed).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable (stress/ is not installed)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices.emulated.pleth import PlethSynth
from devices.emulated.scenario import normal
from kapmonitor.alarms import AlarmEngine, kap_defaults
from kapmonitor.clock import SystemClock
from kapmonitor.measurements import DeviceInfo, DeviceState, Numeric, Param, Waveform
from kapmonitor.observations import press
from kapmonitor.session import Session
from kapmonitor.storage import Recorder, open_database
from kapmonitor.storage.session_log import SessionLog
from kapmonitor.workflow import SessionDetails, TreatmentProtocol

#: The app's tick period (ui/app.py TICK_PERIOD_S; tests/reliability/test_crash.py checks they agree).
TICK_S = 0.25
#: Numerics per second (a PLX oximeter sends 1; more gives the loss a finer resolution).
NUMERIC_HZ = 10
PLETH_HZ = 100
#: Chance per sample step that the clinician saves an observation.
OBSERVATION_CHANCE = 0.2
DEVICE = "EM:00:00:00:00:01"
CODES = ("nausea", "anxiety", "note")
DETAILS = SessionDetails(
    patient="P-CRASH",
    clinicians=("Dr Stress",),
    protocol=TreatmentProtocol.KETAMINE_IM,
    planned_dose_mg=35.0,
    route="intramuscular",
)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def record(db_path: Path, seed: int) -> None:
    """Record until killed."""
    clock = SystemClock()
    rng = random.Random(seed)
    scenario = normal(seed)
    synth = PlethSynth(PLETH_HZ, seed=seed)
    db = open_database(db_path)
    rec = Recorder(db, clock)
    sid = rec.begin_session(kind="demo", note="crash trial")
    session = Session(clock, rec, alarms=AlarmEngine(clock, kap_defaults()))
    log = SessionLog(db, clock, sid, seq=rec.next_seq)
    log.save_details(DETAILS)
    session.register_device(DeviceInfo(DEVICE, "KAP-Emu PLX", "pulse-oximeter"))
    session.device_state(DEVICE, DeviceState.CONNECTED, "crash trial")
    say(f"ready {sid}")
    start = clock.monotonic()
    step = 1.0 / NUMERIC_HZ
    next_sample = start
    next_tick = start + TICK_S
    last_sample = start
    pleth_samples = 0
    while True:
        now = clock.monotonic()
        if now >= next_sample:
            point = scenario.at(next_sample - start)
            wall = clock.wall()
            samples = synth.next(PLETH_HZ // NUMERIC_HZ, point.pulse, point.pi)
            session.ingest(
                [
                    Numeric(Param.SPO2, point.spo2, now, wall, DEVICE),
                    Numeric(Param.PULSE_RATE, point.pulse, now, wall, DEVICE),
                    Waveform(
                        "pleth", PLETH_HZ, tuple(s.value for s in samples),
                        now - (len(samples) - 1) / PLETH_HZ, wall, DEVICE,
                    ),
                ]
            )  # fmt: skip
            if rng.random() < OBSERVATION_CHANCE:
                code = rng.choice(CODES)
                obs_id = log.add_observation(press(code, clock), "RN Stress", text=f"seed {seed}")
                say(f"obs {obs_id}")
            last_sample = now
            pleth_samples += len(samples)
            next_sample += step
        if now >= next_tick:
            pending = rec.pending
            session.tick()
            say(f"tick {now:.6f}")
            if pending and not rec.pending:
                say(f"flushed {last_sample!r} {pleth_samples}")
            next_tick += TICK_S
        time.sleep(max(0.0, min(next_sample, next_tick) - clock.monotonic()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="record an emulated session until killed")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    record(args.db, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
