"""The command line: `record --headless` leaves a complete session; `snapshot` renders the window."""

from __future__ import annotations

import contextlib
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
