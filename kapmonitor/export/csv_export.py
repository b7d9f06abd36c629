"""CSV export of a recorded session: numerics, BP readings, markers, with ISO-8601 UTC times and units.

Layout (one file each, or all of them in one zip):

- ``session.csv``: one row: id, start/end (ISO-8601 UTC), duration_s, status, kind, app_version, note.
- ``numerics.csv``: long format, one row per recorded sample, lossless (parameters arrive at their
  own times, so a wide table would have to align or resample them):
  ``t_utc_iso,t_session_s,param,value,unit,quality,device``; ``value`` is empty for "no valid value";
  ``unit`` is the parameter's unit (kapmonitor.measurements.UNITS); ``quality`` the Quality flags.
- ``blood_pressure.csv``: ``t_utc_iso,t_session_s,measured_utc_iso,systolic_mmHg,diastolic_mmHg,
  mean_mmHg,pulse_per_min,status,stored,device``.
- ``markers.csv``: every point event, ``t_utc_iso,t_session_s,kind,device,text``; kind is one of
  kapmonitor.replay.MarkerKind: bp, device, malformed, audit, alarm (raised/returned),
  alarm_event (acknowledged, cleared, pause...), observation (at its key press; a correction says
  which observation it amends), phase, decision, annotation (a reviewer's note, with the name) and
  adjudication (a reviewer's verdict, at the alarm's onset).

Times: ``t_utc_iso`` is ISO-8601 UTC with milliseconds and ``Z``; ``t_session_s`` is seconds since the
session start on the monotonic timeline (never jumps).
"""

from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from kapmonitor.clock import utc_iso
from kapmonitor.export.progress import Progress, Stages
from kapmonitor.measurements import UNITS, Param
from kapmonitor.replay.model import Database, load_markers, load_numeric_series
from kapmonitor.storage import blood_pressure, get_session

NUMERICS_HEADER = ("t_utc_iso", "t_session_s", "param", "value", "unit", "quality", "device")
BP_HEADER = (
    "t_utc_iso",
    "t_session_s",
    "measured_utc_iso",
    "systolic_mmHg",
    "diastolic_mmHg",
    "mean_mmHg",
    "pulse_per_min",
    "status",
    "stored",
    "device",
)
MARKERS_HEADER = ("t_utc_iso", "t_session_s", "kind", "device", "text")
SESSION_HEADER = (
    "session_id",
    "started_utc_iso",
    "ended_utc_iso",
    "duration_s",
    "status",
    "kind",
    "app_version",
    "note",
)
FILES = ("session.csv", "numerics.csv", "blood_pressure.csv", "markers.csv")


def _num(v: float | None) -> str:
    """A number as text that reads back to the same float ('' for none)."""
    return "" if v is None else repr(float(v))


def _seconds(v: float) -> str:
    return f"{v:.3f}"


def csv_tables(
    db: Database, session_id: str, progress: Progress | None = None
) -> dict[str, list[Sequence[str]]]:
    """The export's tables: file name → rows (the header first); `progress` hears how far it got."""
    stages = Stages(progress, {"numerics": 6.0, "blood pressure": 1.0, "markers": 1.0})
    stages.report("numerics")
    row = get_session(db, session_id)  # type: ignore[arg-type]  # a sqlite_utils Database
    if row is None:
        raise KeyError(f"no session {session_id!r} in the database")
    origin = row.started_mono
    duration = "" if row.ended_mono is None else _seconds(row.ended_mono - origin)
    session: list[Sequence[str]] = [
        SESSION_HEADER,
        (
            row.id,
            utc_iso(row.started_utc),
            "" if row.ended_utc is None else utc_iso(row.ended_utc),
            duration,
            row.status,
            row.kind,
            row.app_version,
            row.note,
        ),
    ]

    samples: list[tuple[float, int, Sequence[str]]] = []
    order = {p: i for i, p in enumerate(Param)}
    all_series = load_numeric_series(db, session_id)
    for done, (param, s) in enumerate(all_series.items()):
        stages.report("numerics", (done + 0.5) / len(all_series))
        unit = UNITS.get(param, "")
        for i in range(len(s)):
            v = float(s.value[i])
            mono = float(s.mono[i])
            samples.append(
                (
                    mono,
                    order[param],
                    (
                        utc_iso(float(s.wall[i])),
                        _seconds(mono - origin),
                        param.value,
                        "" if math.isnan(v) else repr(v),  # NaN: no valid value
                        unit,
                        str(int(s.quality[i])),
                        s.devices[int(s.device[i])],
                    ),
                )
            )
    samples.sort(key=lambda x: (x[0], x[1]))
    numerics: list[Sequence[str]] = [NUMERICS_HEADER, *(r for _, _, r in samples)]

    stages.report("blood pressure")
    bp: list[Sequence[str]] = [BP_HEADER]
    for b in sorted(blood_pressure(db, session_id), key=lambda b: b.mono):  # type: ignore[arg-type]
        bp.append(
            (
                utc_iso(b.wall),
                _seconds(b.mono - origin),
                "" if b.measured_wall is None else utc_iso(b.measured_wall),
                _num(b.systolic),
                _num(b.diastolic),
                _num(b.mean),
                _num(b.pulse_rate),
                str(int(b.status)),
                "1" if b.stored else "0",
                b.device,
            )
        )

    stages.report("markers")
    markers: list[Sequence[str]] = [MARKERS_HEADER]
    for m in load_markers(db, session_id, origin):
        markers.append((utc_iso(m.wall), _seconds(m.position), m.kind, m.device, m.text))
    return {
        "session.csv": session,
        "numerics.csv": numerics,
        "blood_pressure.csv": bp,
        "markers.csv": markers,
    }


def _text(rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue()


def _owner_only(path: Path) -> int:
    """Open a new file for writing, readable by its owner only (exports hold patient data)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def _reading_then_writing(progress: Progress | None) -> tuple[Progress, Stages]:
    """Reading the tables is 80 % of an export, writing them the rest."""
    stages = Stages(progress, {"reading": 4.0, "writing": 1.0})
    return (lambda fraction, _stage: stages.report("reading", fraction)), stages


def export_csv(
    db: Database, session_id: str, folder: str | os.PathLike[str], *, progress: Progress | None = None
) -> list[Path]:
    """Write the session's CSV files (FILES) into `folder` (created if need be; files must not exist)."""
    target = Path(folder)
    existing = [name for name in FILES if (target / name).exists()]
    if existing:
        raise FileExistsError(f"{target / existing[0]} exists; an export is never overwritten")
    reading, stages = _reading_then_writing(progress)
    tables = csv_tables(db, session_id, reading)
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    written: list[Path] = []
    for done, (name, rows) in enumerate(tables.items()):
        stages.report("writing", done / len(tables))
        path = target / name
        with os.fdopen(_owner_only(path), "w", encoding="utf-8", newline="") as f:
            f.write(_text(rows))
        written.append(path)
    stages.finish()
    return written


def export_csv_zip(
    db: Database, session_id: str, path: str | os.PathLike[str], *, progress: Progress | None = None
) -> Path:
    """Write the session's CSV files into one zip at `path` (which must not exist)."""
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target} exists; an export is never overwritten")
    reading, stages = _reading_then_writing(progress)
    tables = csv_tables(db, session_id, reading)
    with (
        os.fdopen(_owner_only(target), "wb") as f,
        zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z,
    ):
        for done, (name, rows) in enumerate(tables.items()):
            stages.report("writing", done / len(tables))
            z.writestr(name, _text(rows))
    stages.finish()
    return target
