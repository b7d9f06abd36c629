"""The command line: `record --headless` leaves a complete session; `snapshot` renders the window."""

from __future__ import annotations

import contextlib
import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from kapmonitor.measurements import Param
from ui.style import PARAM_COLOURS


def run_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, "-m", "ui.app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_record_headless_leaves_a_complete_session(tmp_path: Path) -> None:
    db = tmp_path / "rec.sqlite"
    result = run_cli("record", "--demo", "--headless", "--minutes", "0.08", "--db", str(db), "--speed", "2")
    assert result.returncode == 0, result.stderr
    session_id = result.stdout.strip().splitlines()[-1]
    assert len(session_id) == len("20261125-114512-a3f9")
    with contextlib.closing(sqlite3.connect(db)) as con:
        status, ended = con.execute(
            "select status, ended_utc from sessions where id = ?", (session_id,)
        ).fetchone()
        assert status == "completed" and ended is not None
        counts = dict(
            con.execute(
                "select param, count(*) from numerics where session_id = ? group by param", (session_id,)
            )
        )
        states = [
            r[0]
            for r in con.execute(
                "select state from device_events where session_id = ? and state is not null order by seq",
                (session_id,),
            )
        ]
    # 4.8 s of wall time at 2 scenario-seconds per second: several samples of each
    assert counts.get("spo2", 0) >= 3
    assert counts.get("pulse", 0) == counts["spo2"]
    assert "connected" in states and states[-1] == "disconnected"
    assert oct(db.stat().st_mode & 0o777) == "0o600"


def test_record_refuses_a_window(tmp_path: Path) -> None:
    result = run_cli("record", "--demo", "--minutes", "0.01", "--db", str(tmp_path / "x.sqlite"))
    assert result.returncode == 2
    assert "--headless" in result.stderr


def test_snapshot_renders_the_main_window(tmp_path: Path, qtbot: QtBot) -> None:
    del qtbot  # only for the QApplication QImage needs
    out = tmp_path / "snap.png"
    db = tmp_path / "snap.sqlite"
    result = run_cli("snapshot", "--demo", "--after", "4", "--out", str(out), "--db", str(db), "--speed", "2")
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1600, 900)

    # the right-hand third holds the numerics: big SpO2 (cyan) and pulse (green) digits were drawn,
    # which happens only when values arrived through the whole path
    def count(colour: str) -> int:
        rgb = QColor(colour).rgb()
        return sum(image.pixel(x, y) == rgb for x in range(1030, 1600, 3) for y in range(80, 820, 3))

    assert count(PARAM_COLOURS[Param.SPO2]) > 500
    assert count(PARAM_COLOURS[Param.PULSE_RATE]) > 500
    with contextlib.closing(sqlite3.connect(db)) as con:
        assert con.execute("select count(*) from numerics where param = 'spo2'").fetchone()[0] >= 2


def test_review_commands_export_every_format_and_replay_renders(tmp_path: Path) -> None:
    from pypdf import PdfReader

    from tests.recorded_session import SessionSpec, build_recorded_session

    recorded = build_recorded_session(tmp_path / "rec.sqlite", SessionSpec(duration_s=900.0))
    sid = recorded.session_id
    db = str(recorded.path)
    single = tmp_path / "one.sqlite"
    result = run_cli("export", sid, "--db", db, "--format", "session", "--out", str(single))
    assert result.returncode == 0, result.stderr
    # the standalone file is a target of its own: every other export and the replay read it
    csv_dir = tmp_path / "csv"
    assert run_cli("export", str(single), "--format", "csv", "--out", str(csv_dir)).returncode == 0
    with (csv_dir / "blood_pressure.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["systolic_mmHg"]) for r in rows] == [b.systolic for b in recorded.bp]
    edf = tmp_path / "s.edf"
    assert run_cli("export", str(single), "--format", "edf", "--out", str(edf)).returncode == 0
    assert edf.stat().st_size > 0
    pdf = tmp_path / "report.pdf"
    result = run_cli("export", str(single), "--format", "pdf", "--out", str(pdf))
    assert result.returncode == 0, result.stderr
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(str(pdf)).pages).split())
    assert sid in text and "not a medical device" in text.lower()
    png = tmp_path / "replay.png"
    result = run_cli("replay", str(single), "--at", "450", "--out", str(png))
    assert result.returncode == 0, result.stderr
    image = QImage(str(png))
    assert image.width() == 1600 and image.height() > 800  # the monitor screen above the transport bar
    # an unknown target is a clear error, not a traceback
    result = run_cli("export", "no-such-session", "--db", db, "--format", "csv", "--out", str(tmp_path / "x"))
    assert result.returncode != 0 and "no session 'no-such-session'" in result.stderr
