"""Builds a realistic recorded session in an SQLite file through the real Session and Recorder."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kapmonitor.clock import FakeClock
from kapmonitor.measurements import (
    BloodPressure,
    DeviceInfo,
    DeviceState,
    MalformedPacket,
    Measurement,
    Numeric,
    Param,
    Quality,
    Waveform,
)
from kapmonitor.session import Session
from kapmonitor.storage import Recorder, open_database

OXIMETER = "AA:BB:CC:00:00:01"
CUFF = "AA:BB:CC:00:00:02"
START_WALL = 1_767_258_000.0  # 2026-01-01T09:00:00Z
START_MONO = 5000.0
#: The builder's step: numerics once a second, pleth in 4 packets a second.
STEP_S = 0.25


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What the recorded session contains (times are seconds since the session start)."""

    duration_s: float = 1800.0
    pleth_hz: float = 100.0
    bp_every_s: float = 600.0
    bp_first_s: float = 300.0
    drop_at_s: float = 400.0  # the oximeter goes silent here ...
    drop_for_s: float = 60.0  # ... the link is declared lost at +16 s and returns after this long
    drop_every_s: float | None = None  # repeat the drop-out this often (None: once)
    sensor_off_at_s: float = 200.0  # a spell of "no valid value" with SENSOR_OFF
    sensor_off_for_s: float = 10.0
    malformed_at_s: float = 100.0
    flush_interval_s: float = 1.0
    start_wall: float = START_WALL
    note: str = "recorded-session fixture"
    #: positions at which the live session's state is captured for comparison with a replay
    checkpoints: tuple[float, ...] = (0.0, 150.0, 205.0, 430.0, 470.0, 900.0, 1799.0)


@dataclass(slots=True)
class Snapshot:
    """What the live session showed at one instant."""

    position: float
    latest: dict[Param, tuple[float | None, float, Quality, str]]  # value, mono, quality, device
    trends: dict[Param, tuple[np.ndarray, np.ndarray]]
    bp_count: int
    devices: dict[str, tuple[DeviceState, str, bool, int]]  # state, detail, stale, malformed


@dataclass(slots=True)
class RecordedSession:
    """A recorded session on disk and what went into it."""

    path: Path
    session_id: str
    spec: SessionSpec
    start_mono: float
    start_wall: float
    snapshots: dict[float, Snapshot] = field(default_factory=dict)
    bp: list[BloodPressure] = field(default_factory=list)


def spo2_at(t: float) -> float:
    """A gently varying SpO2 with a desaturation to 88 % around minute 12."""
    dip = 9.0 * math.exp(-(((t - 720.0) / 60.0) ** 2))
    return round(97.0 + math.sin(t / 97.0) - dip, 1)


def pulse_at(t: float) -> float:
    return round(72.0 + 6.0 * math.sin(t / 53.0), 1)


def pleth_samples(first_index: int, n: int, rate_hz: float) -> tuple[int, ...]:
    i = np.arange(first_index, first_index + n, dtype=np.float64)
    wave = (
        2000.0
        + 1500.0 * np.sin(2.0 * np.pi * 1.2 * i / rate_hz)
        + 300.0 * np.sin(2.0 * np.pi * 0.2 * i / rate_hz)
    )
    return tuple(int(x) for x in np.round(wave))


def _snapshot(session: Session, position: float) -> Snapshot:
    return Snapshot(
        position=position,
        latest={p: (n.value, n.mono, n.quality, n.device) for p, n in session.latest.items()},
        trends={p: buf.arrays() for p, buf in session.trends.items()},
        bp_count=len(session.bp_readings),
        devices={d: (s.state, s.detail, s.stale, s.counters.malformed) for d, s in session.devices.items()},
    )


def build_recorded_session(path: Path, spec: SessionSpec | None = None) -> RecordedSession:
    """Record `spec` into a new database at `path` through Session + Recorder on a FakeClock."""
    spec = spec or SessionSpec()
    clock = FakeClock(start_wall=spec.start_wall, start_mono=START_MONO)
    db = open_database(path)
    try:
        recorder = Recorder(db, clock, flush_interval_s=spec.flush_interval_s)
        session_id = recorder.begin_session(kind="demo", note=spec.note)
        recorder.add_audit("clinician", "session.start", "fixture")
        session = Session(clock, recorder)
        result = RecordedSession(path, session_id, spec, START_MONO, spec.start_wall)
        session.register_device(DeviceInfo(OXIMETER, "Oxi 1", "pulse-oximeter"))
        session.register_device(DeviceInfo(CUFF, "Cuff 1", "blood-pressure"))
        session.device_state(OXIMETER, DeviceState.CONNECTING)
        session.device_state(OXIMETER, DeviceState.CONNECTED, "Oxi 1")
        session.device_state(CUFF, DeviceState.CONNECTED, "Cuff 1")

        steps = round(spec.duration_s / STEP_S)
        per_packet = round(spec.pleth_hz * STEP_S)
        checkpoints = sorted(spec.checkpoints)
        next_bp = spec.bp_first_s
        pleth_index = 0
        lost = False
        for step in range(steps):
            t = step * STEP_S
            mono, wall = clock.monotonic(), clock.wall()
            drop_at = spec.drop_at_s
            if spec.drop_every_s is not None and t >= drop_at:
                drop_at += (t - drop_at) // spec.drop_every_s * spec.drop_every_s
            drop_end = drop_at + spec.drop_for_s
            silent = drop_at <= t < drop_end
            if silent and not lost and t >= drop_at + 16.0:
                session.device_state(OXIMETER, DeviceState.LOST, "link dropped")
                lost = True
            if lost and t >= drop_end:
                session.device_state(OXIMETER, DeviceState.CONNECTING)
                session.device_state(OXIMETER, DeviceState.CONNECTED, "Oxi 1")
                lost = False
            batch: list[Measurement] = []
            if not silent:
                batch.append(
                    Waveform(
                        "pleth",
                        spec.pleth_hz,
                        pleth_samples(pleth_index, per_packet, spec.pleth_hz),
                        mono,
                        wall,
                        OXIMETER,
                    )
                )
                pleth_index += per_packet
                if step % 4 == 0:
                    off = spec.sensor_off_at_s <= t < spec.sensor_off_at_s + spec.sensor_off_for_s
                    quality = Quality.SENSOR_OFF if off else Quality.NONE
                    batch.append(
                        Numeric(Param.SPO2, None if off else spo2_at(t), mono, wall, OXIMETER, quality)
                    )
                    batch.append(
                        Numeric(Param.PULSE_RATE, None if off else pulse_at(t), mono, wall, OXIMETER, quality)
                    )
            if t >= next_bp:
                k = len(result.bp)
                bp = BloodPressure(
                    systolic=118.0 + 3 * k,
                    diastolic=76.0 + k,
                    mean=90.0 + 2 * k,
                    pulse_rate=70.0 + k,
                    mono=mono,
                    wall=wall,
                    device=CUFF,
                    measured_wall=math.floor(wall),
                )
                batch.append(bp)
                result.bp.append(bp)
                next_bp += spec.bp_every_s
            if batch:
                session.ingest(batch)
            if abs(t - spec.malformed_at_s) < 1e-9:
                session.malformed(MalformedPacket(OXIMETER, "2a5f", b"\x1f\x60", "too short", mono, wall))
            session.tick()
            while checkpoints and checkpoints[0] <= t:  # the state once this instant is processed
                result.snapshots[checkpoints[0]] = _snapshot(session, t)
                checkpoints.pop(0)
            clock.advance(STEP_S)
        while checkpoints:
            result.snapshots[checkpoints[0]] = _snapshot(
                session, clock.monotonic() - START_MONO
            )  # at the end
            checkpoints.pop(0)
        recorder.end_session("completed")
    finally:
        db.close()
    return result
