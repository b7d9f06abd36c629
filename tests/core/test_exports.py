"""Tests of the exports, each read back by an independent reader (csv, edfio, sqlite3) against the DB."""

from __future__ import annotations

import csv
import io
import sqlite3
import stat
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import edfio
import numpy as np
import pytest
from sqlite_utils import Database

from kapmonitor.export import export_csv, export_csv_zip, export_edf, export_session_file
from kapmonitor.export.csv_export import BP_HEADER, FILES, MARKERS_HEADER, NUMERICS_HEADER
from kapmonitor.measurements import UNITS, Param
from kapmonitor.storage import (
    blood_pressure,
    device_events,
    numerics,
    open_database,
    schema_version,
    waveform,
)
from tests.recorded_session import OXIMETER, RecordedSession, build_recorded_session


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> RecordedSession:
    path = tmp_path_factory.mktemp("exports") / "kap.sqlite"
    build_recorded_session(path)  # a second session in the same file must stay out
    rec = build_recorded_session(path)
    with sqlite3.connect(path) as conn:  # the session log (migration 0003): an observation, amended
        for oid, amends, text in ((1, None, "feels cold"), (2, 1, "feels cold, asks for a blanket")):
            conn.execute(
                "INSERT INTO observations (id, session_id, seq, code, text, pressed_mono, pressed_utc, "
                "saved_mono, saved_utc, author, amends) "
                "VALUES (?, ?, ?, 'comfort', ?, ?, ?, ?, ?, 'dr a', ?)",
                (
                    oid,
                    rec.session_id,
                    10**6 + oid,
                    text,
                    rec.start_mono + 600.0,
                    rec.start_wall + 600.0,
                    rec.start_mono + 610.0 + oid,
                    rec.start_wall + 610.0 + oid,
                    amends,
                ),
            )
        conn.execute(
            "INSERT INTO alarm_events (session_id, seq, mono, t_utc, event, alarm_id, alarm_key, priority, "
            "param, message, value) VALUES (?, ?, ?, ?, 'raised', 1, 'spo2.low', 'high', 'spo2', "
            "'SpO2 < 90 %', 88.5)",
            (rec.session_id, 10**6 + 3, rec.start_mono + 722.0, rec.start_wall + 722.0),
        )
    conn.close()
    return rec


@pytest.fixture
def db(recorded: RecordedSession) -> Iterator[Database]:
    database = open_database(recorded.path)
    yield database
    database.close()


def _utc(text: str) -> float:
    assert text.endswith("Z") and len(text) == len("2026-01-01T09:00:00.000Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------ CSV
def test_csv_numerics_match_the_database(db: Database, recorded: RecordedSession, tmp_path: Path) -> None:
    export_csv(db, recorded.session_id, tmp_path / "out")
    with (tmp_path / "out" / "numerics.csv").open(newline="") as f:
        assert next(csv.reader(f)) == list(NUMERICS_HEADER)
    rows = _read(tmp_path / "out" / "numerics.csv")
    for param in (Param.SPO2, Param.PULSE_RATE):
        mono, wall, value = numerics(db, recorded.session_id, param)
        mine = [r for r in rows if r["param"] == param.value]
        assert len(mine) == len(mono) > 1000
        assert {r["unit"] for r in mine} == {UNITS[param]}
        assert {r["device"] for r in mine} == {OXIMETER}
        got_wall = np.array([_utc(r["t_utc_iso"]) for r in mine])
        np.testing.assert_allclose(got_wall, wall, atol=0.0005)  # millisecond text
        got_t = np.array([float(r["t_session_s"]) for r in mine])
        np.testing.assert_allclose(got_t, mono - recorded.start_mono, atol=0.0005)
        got_v = np.array([float(r["value"]) if r["value"] else np.nan for r in mine])
        np.testing.assert_array_equal(got_v, value)  # exact, and empty where there was no value
    sensor_off = [r for r in rows if r["param"] == "spo2" and not r["value"]]
    assert len(sensor_off) == 10 and {r["quality"] for r in sensor_off} == {"16"}
    times = [float(r["t_session_s"]) for r in rows]
    assert times == sorted(times)


def test_csv_blood_pressure_and_markers(db: Database, recorded: RecordedSession, tmp_path: Path) -> None:
    export_csv(db, recorded.session_id, tmp_path)
    bp_rows = _read(tmp_path / "blood_pressure.csv")
    assert list(bp_rows[0]) == list(BP_HEADER)
    stored = blood_pressure(db, recorded.session_id)
    assert len(bp_rows) == len(stored) == 3
    for row, bp in zip(bp_rows, stored, strict=True):
        assert _utc(row["t_utc_iso"]) == pytest.approx(bp.wall, abs=0.0005)
        assert bp.measured_wall is not None
        assert _utc(row["measured_utc_iso"]) == pytest.approx(bp.measured_wall, abs=0.0005)
        assert float(row["systolic_mmHg"]) == bp.systolic
        assert float(row["diastolic_mmHg"]) == bp.diastolic
        assert float(row["mean_mmHg"]) == bp.mean
        assert float(row["pulse_per_min"]) == bp.pulse_rate
        assert (row["stored"], row["device"]) == ("0", bp.device)

    markers = _read(tmp_path / "markers.csv")
    assert list(markers[0]) == list(MARKERS_HEADER)
    device_rows = [m for m in markers if m["kind"] == "device"]
    assert len(device_rows) == len(device_events(db, recorded.session_id))
    lost = [m for m in device_rows if m["text"] == "lost link dropped"]
    assert len(lost) == 1 and float(lost[0]["t_session_s"]) == pytest.approx(416.0)
    assert lost[0]["t_utc_iso"] == "2026-01-01T09:06:56.000Z"
    assert [m["text"] for m in markers if m["kind"] == "malformed"] == ["malformed 2a5f: too short"]
    assert [m["kind"] for m in markers].count("bp") == 3
    assert [m["text"] for m in markers if m["kind"] == "audit"] == ["clinician: session.start fixture"]
    alarms = [(m["t_utc_iso"], m["text"]) for m in markers if m["kind"] == "alarm"]
    assert alarms == [("2026-01-01T09:12:02.000Z", "raised high SpO2 < 90 % (value 88.5)")]
    observations = [m for m in markers if m["kind"] == "observation"]
    assert [m["t_utc_iso"] for m in observations] == ["2026-01-01T09:10:00.000Z"] * 2
    assert "feels cold" in observations[0]["text"]
    assert "asks for a blanket (amends #1)" in observations[1]["text"]

    (session,) = _read(tmp_path / "session.csv")
    assert session["session_id"] == recorded.session_id
    assert session["started_utc_iso"] == "2026-01-01T09:00:00.000Z"
    assert float(session["duration_s"]) == pytest.approx(recorded.spec.duration_s)


def test_csv_zip_holds_the_same_files_and_exports_are_owner_only(
    db: Database, recorded: RecordedSession, tmp_path: Path
) -> None:
    written = export_csv(db, recorded.session_id, tmp_path / "dir")
    assert sorted(p.name for p in written) == sorted(FILES)
    zipped = export_csv_zip(db, recorded.session_id, tmp_path / "s.zip")
    with zipfile.ZipFile(zipped) as z:
        assert sorted(z.namelist()) == sorted(FILES)
        for name in FILES:
            assert z.read(name).decode() == (tmp_path / "dir" / name).read_text()
            rows = list(csv.reader(io.StringIO(z.read(name).decode())))
            assert len(rows) >= 2
    for path in [*written, zipped]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        export_csv(db, recorded.session_id, tmp_path / "dir")
    with pytest.raises(FileExistsError):
        export_csv_zip(db, recorded.session_id, zipped)


# ------------------------------------------------------------------------------ EDF+
def test_edf_signals_and_annotations_read_back(
    db: Database, recorded: RecordedSession, tmp_path: Path
) -> None:
    path = export_edf(db, recorded.session_id, tmp_path / "s.edf")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    edf = edfio.read_edf(path)
    assert edf.labels == ("Pleth", "SpO2", "Pulse")
    assert edf.duration == pytest.approx(recorded.spec.duration_s)
    assert edf.startdatetime == datetime.fromtimestamp(recorded.start_wall, tz=UTC).replace(tzinfo=None)
    pleth, spo2, pulse = (edf.get_signal(label) for label in ("Pleth", "SpO2", "Pulse"))
    assert (pleth.sampling_frequency, spo2.sampling_frequency) == (100.0, 1.0)
    assert (spo2.physical_dimension, pulse.physical_dimension) == ("%", "/min")

    t, samples = waveform(db, recorded.session_id, "pleth")
    index = np.rint((t - recorded.start_mono) * 100.0).astype(np.int64)
    data = pleth.data
    np.testing.assert_array_equal(data[index], samples.astype(np.float64))  # int16 range: exact
    silent = np.ones(data.size, dtype=bool)
    silent[index] = False
    assert np.all(data[silent] == 0.0)
    assert silent[400 * 100 : 460 * 100].all()  # the oximeter's silent minute

    mono, _wall, value = numerics(db, recorded.session_id, Param.SPO2)
    seconds = np.rint(mono - recorded.start_mono).astype(np.int64)
    resolution = 100.0 / 65535
    good = np.isfinite(value)
    np.testing.assert_allclose(spo2.data[seconds[good]], value[good], atol=resolution)
    assert np.all(spo2.data[seconds[~good]] <= resolution)  # no valid value: the gap value 0 %
    assert np.all(spo2.data[405:455] <= resolution)  # device silent: no held value
    p_mono, _w, p_value = numerics(db, recorded.session_id, Param.PULSE_RATE)
    p_good = np.isfinite(p_value)
    p_seconds = np.rint(p_mono - recorded.start_mono).astype(np.int64)
    np.testing.assert_allclose(pulse.data[p_seconds[p_good]], p_value[p_good], atol=300.0 / 65535)

    texts = [(a.onset, a.text) for a in edf.annotations]
    bp = [(onset, text) for onset, text in texts if text.startswith("bp: ")]
    assert [o for o, _ in bp] == pytest.approx([300.0, 900.0, 1500.0])
    assert bp[0][1] == "bp: BP 118/76 (90) mmHg"
    lost = [onset for onset, text in texts if text == "device: lost link dropped"]
    assert lost == pytest.approx([416.0])
    assert any(text == "malformed: malformed 2a5f: too short" for _, text in texts)
    assert (722.0, "alarm: raised high SpO2 < 90 % (value 88.5)") in texts
    observed = [(onset, text) for onset, text in texts if text.startswith("observation: comfort")]
    assert [onset for onset, _ in observed] == pytest.approx([600.0, 600.0])


def test_edf_refuses_to_overwrite(db: Database, recorded: RecordedSession, tmp_path: Path) -> None:
    (tmp_path / "x.edf").write_bytes(b"")
    with pytest.raises(FileExistsError):
        export_edf(db, recorded.session_id, tmp_path / "x.edf")


# ------------------------------------------------------------------------------ session file
def _table_rows(path: Path, table: str, session_id: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        key = "id" if table == "sessions" else "session_id"
        rows = conn.execute(f"SELECT * FROM {table} WHERE {key} = ? ORDER BY rowid", (session_id,)).fetchall()
    conn.close()
    return rows


def test_session_file_holds_exactly_one_session_with_all_its_rows(
    db: Database, recorded: RecordedSession, tmp_path: Path
) -> None:
    path = tmp_path / "review.sqlite"
    copied = export_session_file(db, recorded.session_id, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not Path(f"{path}-wal").exists()  # one self-contained file to hand over
    with sqlite3.connect(path) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM sessions").fetchall()]
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            if "session_id" in [c[1] for c in conn.execute(f"PRAGMA table_info({r[0]})").fetchall()]
        ]
    conn.close()
    assert ids == [recorded.session_id]
    assert {"numerics", "waveform_chunks", "device_events", "blood_pressure", "audit"} <= set(tables)
    for table in ["sessions", *tables]:
        original = _table_rows(recorded.path, table, recorded.session_id)
        assert _table_rows(path, table, recorded.session_id) == original, table
        assert copied.get(table, 0) == len(original), table
    assert copied["numerics"] > 3000 and copied["waveform_chunks"] > 1000
    assert copied["observations"] == 2  # the amendment after what it amends (a trigger checks it)
    assert copied["alarm_events"] == 1
    single = open_database(path)  # opens and migrates like any database
    try:
        assert schema_version(single) == schema_version(db)
    finally:
        single.close()
    with pytest.raises(FileExistsError):
        export_session_file(db, recorded.session_id, path)
    with pytest.raises(KeyError):
        export_session_file(db, "nope", tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()


# ------------------------------------------------------------------------------ progress
@pytest.mark.parametrize("fmt", ["csv", "csv-zip", "edf", "session"])
def test_every_export_reports_rising_progress_ending_at_one(
    db: Database, recorded: RecordedSession, tmp_path: Path, fmt: str
) -> None:
    heard: list[tuple[float, str]] = []

    def progress(fraction: float, stage: str) -> None:
        heard.append((fraction, stage))

    out = tmp_path / f"out-{fmt}"
    if fmt == "csv":
        export_csv(db, recorded.session_id, out, progress=progress)
    elif fmt == "csv-zip":
        export_csv_zip(db, recorded.session_id, out, progress=progress)
    elif fmt == "edf":
        export_edf(db, recorded.session_id, out, progress=progress)
    else:
        export_session_file(db, recorded.session_id, out, progress=progress)
    fractions = [f for f, _ in heard]
    assert len(fractions) >= 3, heard  # a bar that moves, not one jump
    assert fractions == sorted(fractions) and len(set(fractions)) == len(fractions)
    assert fractions[0] < 0.5 and fractions[-1] == 1.0 and fractions[:-1] and max(fractions[:-1]) < 1.0
    assert heard[-1][1] == "done" and all(stage for _, stage in heard)
    assert out.exists()


def test_a_csv_export_into_a_folder_with_its_files_writes_nothing(
    db: Database, recorded: RecordedSession, tmp_path: Path
) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "markers.csv").write_text("mine\n")
    with pytest.raises(FileExistsError):
        export_csv(db, recorded.session_id, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["markers.csv"]  # no partial export next to it
    assert (folder / "markers.csv").read_text() == "mine\n"


def test_review_entries_are_in_the_csv_and_edf_exports(
    db: Database, recorded: RecordedSession, tmp_path: Path
) -> None:
    from kapmonitor.clock import FakeClock
    from kapmonitor.storage.review import ReviewLog, Verdict, load_adjudications, load_annotations

    path = tmp_path / "reviewed.sqlite"
    export_session_file(db, recorded.session_id, path)
    reviewed = open_database(path)
    try:
        log = ReviewLog(reviewed, FakeClock(start_wall=2e9), recorded.session_id)
        log.annotate("desaturation, chin lift", "Dr Moss", position_s=725.5)
        log.adjudicate(1, Verdict.FALSE, "probe slipped", "Dr Moss")
        log.adjudicate(1, Verdict.TRUE, "real, on review", "Dr Lee")
        export_csv(reviewed, recorded.session_id, tmp_path / "csv")
        export_edf(reviewed, recorded.session_id, tmp_path / "s.edf")
        notes = load_annotations(reviewed, recorded.session_id)
        verdicts = load_adjudications(reviewed, recorded.session_id)
    finally:
        reviewed.close()
    rows = _read(tmp_path / "csv" / "markers.csv")
    got = [
        (r["kind"], float(r["t_session_s"]), r["text"])
        for r in rows
        if r["kind"] in ("annotation", "adjudication")
    ]
    assert got == [
        ("adjudication", 722.0, f"alarm #1: {verdicts[0].verdict.value} (Dr Moss) probe slipped"),
        ("adjudication", 722.0, f"alarm #1: {verdicts[1].verdict.value} (Dr Lee) real, on review"),
        ("annotation", notes[0].position_s, "desaturation, chin lift [Dr Moss]"),
    ]
    assert [r["t_utc_iso"] for r in rows if r["kind"] == "annotation"] == [
        datetime.fromtimestamp(recorded.start_wall + 725.5, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    ]
    texts = [(round(a.onset, 6), a.text) for a in edfio.read_edf(tmp_path / "s.edf").annotations]
    assert (725.5, "annotation: desaturation, chin lift [Dr Moss]") in texts
    assert (722.0, "adjudication: alarm #1: true (Dr Lee) real, on review") in texts
