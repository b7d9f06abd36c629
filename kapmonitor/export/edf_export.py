"""EDF+ export of a recorded session (via edfio): pleth and numerics as signals, markers as annotations.

- Start date/time: the session's start in **UTC** (EDF has no time zone field; the recording
  field says "UTC").
- ``Pleth``: the recorded waveform at the device rate, each sample placed at its recorded time
  (sample index = round((t - start) × rate)); seconds without signal (device lost) are 0.
- One signal per numeric parameter (``SpO2`` %, ``Pulse`` /min, ...) at 1 Hz: the value at second k
  is the last sample at or before start + k, held for at most NUMERIC_HOLD_S; without a valid value
  there the signal sits at its physical minimum (GAP_VALUE, e.g. 0 %), which no real reading takes.
- Annotations: every marker (BP readings with their values, alarms and their transitions,
  observations, phase changes, decisions, device events, malformed packets, audit), as "kind: text".
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from edfio import Edf, EdfAnnotation, EdfSignal, Patient, Recording

from kapmonitor.export.progress import Progress, Stages
from kapmonitor.measurements import UNITS, Param
from kapmonitor.replay.model import Database, load_markers, load_numeric_series
from kapmonitor.storage import get_session, waveform, waveform_devices

#: Physical ranges of the numeric signals (their gap value is the minimum).
PHYSICAL_RANGES: dict[Param, tuple[float, float]] = {
    Param.SPO2: (0.0, 100.0),
    Param.PULSE_RATE: (0.0, 300.0),
    Param.PERFUSION_INDEX: (0.0, 20.0),
    Param.HEART_RATE: (0.0, 300.0),
    Param.SYSTOLIC: (0.0, 300.0),
    Param.DIASTOLIC: (0.0, 300.0),
    Param.MAP: (0.0, 300.0),
    Param.BATTERY: (0.0, 100.0),
}
LABELS: dict[Param, str] = {
    Param.SPO2: "SpO2",
    Param.PULSE_RATE: "Pulse",
    Param.PERFUSION_INDEX: "PI",
    Param.HEART_RATE: "HR",
    Param.SYSTOLIC: "BP sys",
    Param.DIASTOLIC: "BP dia",
    Param.MAP: "BP mean",
    Param.BATTERY: "Battery",
}
#: A 1 Hz numeric holds its last value this long; after that (no data) it shows the gap value.
NUMERIC_HOLD_S = 2.0
NUMERIC_RATE_HZ = 1.0


def _record_duration(rate_hz: float) -> float:
    """The shortest whole-second data record in which `rate_hz` gives a whole number of samples."""
    for seconds in range(1, 101):
        if abs(rate_hz * seconds - round(rate_hz * seconds)) < 1e-9:
            return float(seconds)
    raise ValueError(f"waveform rate {rate_hz} Hz fits no data record of up to 100 s")


def _numeric_signal(
    mono: npt.NDArray[np.float64],
    value: npt.NDArray[np.float64],
    origin: float,
    n: int,
    *,
    low: float,
    high: float,
) -> npt.NDArray[np.float64]:
    grid = origin + np.arange(n, dtype=np.float64) / NUMERIC_RATE_HZ
    idx = np.searchsorted(mono, grid, side="right") - 1
    out = np.full(n, low, dtype=np.float64)
    ok = idx >= 0
    held = np.zeros(n, dtype=bool)
    held[ok] = grid[ok] - mono[idx[ok]] <= NUMERIC_HOLD_S
    vals = np.where(held, value[np.maximum(idx, 0)], np.nan)
    good = np.isfinite(vals)
    out[good] = np.clip(vals[good], low, high)
    return out


def export_edf(
    db: Database,
    session_id: str,
    path: str | os.PathLike[str],
    *,
    wave_name: str = "pleth",
    progress: Progress | None = None,
) -> Path:
    """Write the session as an EDF+ file at `path` (must not exist); returns the path."""
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target} exists; an export is never overwritten")
    # measured on a 4-h session: reading the pleth and edfio's encoding and writing take most of it
    stages = Stages(progress, {"waveform": 3.0, "numerics": 1.0, "annotations": 0.5, "writing": 4.0})
    row = get_session(db, session_id)  # type: ignore[arg-type]  # a sqlite_utils Database
    if row is None:
        raise KeyError(f"no session {session_id!r} in the database")
    origin = row.started_mono
    stages.report("waveform")
    series = load_numeric_series(db, session_id)
    devices = waveform_devices(db, session_id, wave_name)  # type: ignore[arg-type]
    t_wave = np.empty(0, dtype=np.float64)
    v_wave = np.empty(0, dtype=np.int16)
    rate = 0.0
    if devices:
        # several devices: the first listed (the replay model picks the one with most signal)
        t_wave, v_wave = waveform(db, session_id, wave_name, devices[0])  # type: ignore[arg-type]
        rate = float(
            db.execute(
                "SELECT rate_hz FROM waveform_chunks WHERE session_id = ? AND name = ? AND device = ? "
                "LIMIT 1",
                (session_id, wave_name, devices[0]),
            ).fetchone()[0]
        )

    if row.ended_mono is not None:
        duration = row.ended_mono - origin
    else:
        ends = [float(s.mono[-1]) - origin for s in series.values() if len(s)]
        ends += [float(t_wave[-1]) - origin] if t_wave.size else []
        duration = max(ends, default=0.0)
    record_s = _record_duration(rate) if rate else 1.0
    n_records = max(1, math.ceil(duration / record_s))
    seconds = n_records * record_s

    stages.report("numerics")
    signals: list[EdfSignal] = []
    if rate:
        n = round(seconds * rate)
        data = np.zeros(n, dtype=np.float64)
        idx = np.rint((t_wave - origin) * rate).astype(np.int64)
        keep = (idx >= 0) & (idx < n)
        data[idx[keep]] = v_wave[keep]
        signals.append(
            EdfSignal(
                data,
                rate,
                label="Pleth",
                transducer_type="pulse oximeter",
                physical_dimension="",
                physical_range=(-32768.0, 32767.0),
            )
        )
    n_numeric = round(seconds * NUMERIC_RATE_HZ)
    for param in Param:
        s = series.get(param)
        if s is None or len(s) == 0:
            continue
        low, high = PHYSICAL_RANGES.get(param, (0.0, 1000.0))
        signals.append(
            EdfSignal(
                _numeric_signal(s.mono, s.value, origin, n_numeric, low=low, high=high),
                NUMERIC_RATE_HZ,
                label=LABELS.get(param, param.value),
                physical_dimension=UNITS.get(param, ""),
                physical_range=(low, high),
            )
        )

    stages.report("annotations")
    annotations = [
        EdfAnnotation(min(max(m.position, 0.0), seconds), None, f"{m.kind}: {m.text}")
        for m in load_markers(db, session_id, origin)
    ]
    start = datetime.fromtimestamp(row.started_utc, tz=UTC)
    edf = Edf(
        signals,
        patient=Patient(),
        recording=Recording(
            startdate=start.date(),
            equipment_code="kapmonitor",
            additional=("session", row.id, "times", "UTC"),
        ),
        starttime=start.time().replace(tzinfo=None),
        data_record_duration=record_s,
        annotations=annotations,
    )
    stages.report("writing")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # patient data: owner-only
    with os.fdopen(fd, "wb") as f:
        edf.write(f)
    stages.finish()
    return target
