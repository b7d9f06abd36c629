"""The replay screens: session browser, timeline, review panel and exports, on real SQLite files."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect, Qt, QTimer
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from kapmonitor.clock import FakeClock
from kapmonitor.observations import Pressed
from kapmonitor.replay import MarkerKind, ReplayClock, ReplaySession
from kapmonitor.storage import Database, open_database
from kapmonitor.storage.review import Verdict, load_adjudications, load_annotations
from kapmonitor.storage.session_log import SessionLog
from kapmonitor.workflow import Phase, PhaseChange, SessionDetails, TreatmentProtocol
from tests.recorded_session import START_WALL, RecordedSession, SessionSpec, build_recorded_session
from ui.export_dialog import ExportDialog, ExportJob, parse_progress
from ui.replay_timeline import ALARM_LANE, EVENT_LANE, LINK_GAP_COLOUR, column_ranges
from ui.replay_window import ReplayWindow
from ui.review_panel import Reviewer
from ui.session_browser import ReplayLauncher, SessionBrowser

DURATION_S = 1800.0
#: (at s, alarm id, event, state, priority, message, value)
ALARM_ROWS = (
    (690.0, 1, "raised", "active", "medium", "SpO2 < 90 %", 89.0),
    (700.0, 1, "acknowledged", "acknowledged", "medium", "SpO2 < 90 %", None),
    (712.0, 2, "raised", "active", "high", "SpO2 < 85 %", 84.0),
    (740.0, 2, "latched", "latched", "high", "SpO2 < 85 %", None),
    (760.0, 1, "cleared", "cleared", "medium", "SpO2 < 90 %", None),
    (790.0, 2, "acknowledged", "latched", "high", "SpO2 < 85 %", None),  # as the engine: then cleared
    (790.0, 2, "cleared", "cleared", "high", "SpO2 < 85 %", None),
    (1300.0, 3, "raised", "active", "low", "Battery low (oximeter)", 18.0),
)
#: (at s, code, text)
OBSERVATIONS = ((180.0, "anxiety", ""), (640.0, "note", "pale, responsive"), (1000.0, "asleep", ""))
#: (at s, from, to)
PHASES = (
    (60.0, Phase.PREPARATION, Phase.BASELINE),
    (320.0, Phase.BASELINE, Phase.DOSING),
    (480.0, Phase.DOSING, Phase.MONITORING),
    (1500.0, Phase.MONITORING, Phase.RECOVERY),
)


def build_review_session(
    path: Path,
    *,
    note: str = "replay UI fixture",
    patient: str = "P-017",
    start_wall: float = START_WALL,
    duration_s: float = DURATION_S,
) -> RecordedSession:
    """A recorded session (pleth, numerics, BP, a drop-out) with its session log and alarms."""
    spec = SessionSpec(duration_s=duration_s, checkpoints=(), note=note, start_wall=start_wall)
    rec = build_recorded_session(path, spec)
    clock = FakeClock(start_wall=rec.start_wall + duration_s, start_mono=rec.start_mono + duration_s)
    db = open_database(path)
    try:
        log = SessionLog(db, clock, rec.session_id)
        log.save_details(
            SessionDetails(
                patient=patient,
                clinicians=("Dr Ada Okafor",),
                protocol=TreatmentProtocol.ESKETAMINE_IN,
                planned_dose_mg=56.0,
                route="intranasal",
                lot="LOT-1",
            )
        )
        for at, code, text in (o for o in OBSERVATIONS if o[0] < duration_s):
            log.add_observation(Pressed(code, rec.start_mono + at, rec.start_wall + at), "RN Ben", text=text)
        for at, before, after in (p for p in PHASES if p[0] < duration_s):
            log.write([PhaseChange(before, after, "Dr Ada Okafor", rec.start_mono + at, rec.start_wall + at)])
    finally:
        db.close()
    with sqlite3.connect(path) as conn:
        for k, (at, aid, event, state, prio, msg, value) in enumerate(
            r for r in ALARM_ROWS if r[0] < duration_s
        ):
            conn.execute(
                "INSERT INTO alarm_events (session_id, seq, mono, t_utc, event, alarm_id, alarm_key, state, "
                "priority, param, message, value) VALUES (?, ?, ?, ?, ?, ?, 'k', ?, ?, 'spo2', ?, ?)",
                (
                    rec.session_id,
                    10**7 + k,
                    rec.start_mono + at,
                    rec.start_wall + at,
                    event,
                    aid,
                    state,
                    prio,
                    msg,
                    value,
                ),
            )
    conn.close()
    return rec


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> RecordedSession:
    return build_review_session(tmp_path_factory.mktemp("replay-ui") / "kap.sqlite")


@pytest.fixture
def db(built: RecordedSession, tmp_path: Path) -> Iterator[Database]:
    """A copy of the fixture's database per test (review entries are permanent)."""
    from kapmonitor.export import export_session_file

    source = open_database(built.path)
    try:
        export_session_file(source, built.session_id, tmp_path / "one.sqlite")
    finally:
        source.close()
    database = open_database(tmp_path / "one.sqlite")
    yield database
    database.close()


@pytest.fixture
def window(qtbot: QtBot, db: Database, built: RecordedSession) -> Iterator[ReplayWindow]:
    base = FakeClock()
    clock = ReplayClock(base)
    asked: list[str] = []

    def ask(_parent: object) -> str:
        asked.append("asked")
        return "Dr Cyd Moss"

    w = ReplayWindow(
        ReplaySession(db, built.session_id, clock),
        clock,
        db=db,
        review_clock=FakeClock(start_wall=2_000_000_000.0),
        reviewer=Reviewer(ask=ask),
    )
    w.asked = asked  # type: ignore[attr-defined]
    qtbot.addWidget(w)
    w.resize(1920, 1080)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def _cell(browser: SessionBrowser, row: int, col: int) -> str:
    item = browser.table.item(row, col)
    assert item is not None
    return item.text()


def _header(browser: SessionBrowser, col: int) -> str:
    item = browser.table.horizontalHeaderItem(col)
    assert item is not None
    return item.text()


def _rows(db: Database, table: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()]


# ------------------------------------------------------------------------------ browser
def test_browser_lists_every_session_with_its_figures(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "many.sqlite"
    a = build_review_session(path, patient="P-017", duration_s=900.0)
    b = build_review_session(path, patient="P-022", start_wall=START_WALL + 86_400.0, duration_s=300.0)
    browser = SessionBrowser(path, ReplayLauncher(Reviewer("r")), tz=UTC)
    qtbot.addWidget(browser)
    cells = [
        [_cell(browser, r, c) for c in range(browser.table.columnCount())]
        for r in range(browser.table.rowCount())
    ]
    # newest first; alarms raised before the end (690, 712 s: two in the 900-s one), observations
    # (180 and 640 s), BP readings (at 300 s, then every 600 s: none in 300 s, one in 900 s)
    assert cells == [
        [
            "2026-01-02 09:00",
            "P-022",
            "Esketamine, intranasal",
            "0:05:00",
            "0",
            "1",
            "0",
            "completed",
            "demo",
            b.session_id,
        ],
        [
            "2026-01-01 09:00",
            "P-017",
            "Esketamine, intranasal",
            "0:15:00",
            "2",
            "2",
            "1",
            "completed",
            "demo",
            a.session_id,
        ],
    ]
    headers = [_header(browser, c) for c in range(browser.table.columnCount())]
    assert headers[0] == "Date (local) ▼" and headers[3] == "Duration"


def test_browser_searches_as_you_type_and_sorts_by_a_header(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "many.sqlite"
    ids = [
        build_review_session(path, patient=p, start_wall=START_WALL + k * 86_400.0, duration_s=d).session_id
        for k, (p, d) in enumerate((("P-017", 300.0), ("P-022", 900.0), ("P-017", 600.0)))
    ]
    browser = SessionBrowser(path, ReplayLauncher(Reviewer("r")), tz=UTC)
    qtbot.addWidget(browser)
    assert [s.session_id for s in browser.shown] == ids[::-1]
    QTest.keyClicks(browser.search, "p-017")
    assert [s.session_id for s in browser.shown] == [ids[2], ids[0]]
    assert browser.count_label.text() == "2 of 3 sessions"
    browser.search.clear()
    QTest.keyClicks(browser.search, "p-017 2026-01-03")  # every word must match
    assert [s.session_id for s in browser.shown] == [ids[2]]
    browser.search.clear()
    header = browser.table.horizontalHeader()
    duration_col = 3
    x = header.sectionViewportPosition(duration_col) + 5
    QTest.mouseClick(
        header.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(x, 5)
    )
    assert [s.duration_s for s in browser.shown] == [900.0, 600.0, 300.0]  # longest first
    QTest.mouseClick(
        header.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(x, 5)
    )
    assert [s.duration_s for s in browser.shown] == [300.0, 600.0, 900.0]
    assert _header(browser, duration_col) == "Duration ▲"


def test_enter_in_the_browser_opens_the_selected_replay(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "many.sqlite"
    first = build_review_session(path, duration_s=300.0)
    build_review_session(path, start_wall=START_WALL + 86_400.0, duration_s=300.0)
    launcher = ReplayLauncher(Reviewer("r"), FakeClock())
    browser = SessionBrowser(path, launcher, tz=UTC)
    qtbot.addWidget(browser)
    browser.show()
    qtbot.waitExposed(browser)
    browser.table.selectRow(1)
    browser.table.setFocus()
    with qtbot.waitSignal(browser.opened) as opened:
        QTest.keyClick(browser.table, Qt.Key.Key_Return)
    assert opened.args == [first.session_id]
    assert [w.replay.session_id for w in launcher.windows] == [first.session_id]
    window = launcher.windows[0]
    assert window.review is not None and window.review.reviewer is launcher.reviewer
    window.close()  # closing the window closes its database
    assert launcher.windows == []


def test_replay_without_a_target_means_the_browser() -> None:
    from ui.app import parse_args, replay

    opts = parse_args(["replay", "--db", "x.sqlite"])
    assert (opts.command, opts.target, opts.reviewer) == ("replay", "", "")
    opts = parse_args(["replay", "S1", "--reviewer", "Dr Moss"])
    assert (opts.target, opts.reviewer) == ("S1", "Dr Moss")
    with pytest.raises(SystemExit, match="name it"):  # a picture is of one session
        replay(parse_args(["replay", "--out", "x.png"]))


# ------------------------------------------------------------------------------ timeline
def test_column_ranges_peak_downsample_and_break_at_gaps() -> None:
    t = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 20.0, 21.0, 22.0, 23.0])
    v = np.array([90.0, 95.0, 93.0, np.nan, 97.0, 80.0, 99.0, 98.0, 96.0])
    runs = column_ranges(t, v, duration=24.0, width=25)
    assert runs == [
        [(0, 90.0, 90.0), (1, 95.0, 95.0), (2, 93.0, 93.0)],  # the NaN ends it
        [(4, 97.0, 97.0)],  # 16 s to the next sample: a gap
        [(20, 80.0, 80.0), (21, 99.0, 99.0), (22, 98.0, 98.0), (23, 96.0, 96.0)],
    ]
    assert column_ranges(t, v, duration=24.0, width=3) == [[(0, 90.0, 97.0)], [(1, 80.0, 99.0)]]


def test_timeline_is_drawn_once_and_only_the_cursor_moves(window: ReplayWindow, qtbot: QtBot) -> None:
    timeline = window.timeline
    timeline.repaint()
    assert timeline.renders == 1
    for k in range(60):
        window.seek(30.0 * k)
        timeline.repaint()
    assert timeline.renders == 1
    image = timeline.grab().toImage()
    x = round(timeline.x_of(window.replay.position))
    assert image.pixelColor(x, 5).name() == "#ff9f1c"  # the cursor is where the replay is


def test_timeline_markers_alarms_by_priority_and_text(window: ReplayWindow) -> None:
    timeline = window.timeline
    hits = timeline.hits
    kinds = sorted({h.marker.kind for h in hits})
    assert kinds == sorted({MarkerKind.ALARM, MarkerKind.OBSERVATION, MarkerKind.PHASE, MarkerKind.DEVICE})
    (link,) = [h for h in hits if h.marker.kind == MarkerKind.DEVICE]  # the one link gap
    assert round(link.marker.position) == 416 and link.marker.text.startswith("lost")
    alarms = [h for h in hits if h.marker.kind == MarkerKind.ALARM]
    assert [round(h.marker.position) for h in alarms] == [690, 712, 1300]
    assert len([h for h in hits if h.marker.kind == MarkerKind.PHASE]) == 4
    image = timeline.grab().toImage()
    lane_bar_y = ALARM_LANE - 5
    x_high = round(timeline.x_of(730.0))
    assert image.pixelColor(x_high, lane_bar_y).name() == "#e0162b"  # high: red, drawn over medium
    x_medium = round(timeline.x_of(700.0))
    assert image.pixelColor(x_medium, lane_bar_y).name() == "#ffd21f"  # medium (before the high one)
    x_low = round(timeline.x_of(1600.0))
    assert image.pixelColor(x_low, lane_bar_y).name() == "#35e0f0"  # low, never cleared: to the end
    assert image.pixelColor(round(timeline.x_of(1000.0)), lane_bar_y).name() != "#ffd21f"


def test_a_spell_without_a_link_is_hatched_across_both_plots(window: ReplayWindow) -> None:
    timeline = window.timeline
    image = timeline.grab().toImage()
    spo2, low = timeline._plots()

    def hatch_pixels(position: float, rect: QRect) -> int:
        x = round(timeline.x_of(position))
        return sum(image.pixelColor(x, y).name() == LINK_GAP_COLOUR for y in range(rect.top(), rect.bottom()))

    for rect in (spo2, low):
        assert hatch_pixels(438.0, rect) > rect.height() // 10  # inside the gap (416-460 s)
        assert hatch_pixels(300.0, rect) == 0 and hatch_pixels(500.0, rect) == 0  # not outside it


def test_clicking_a_marker_jumps_there_and_dragging_seeks(window: ReplayWindow, qtbot: QtBot) -> None:
    timeline = window.timeline
    alarm = next(h for h in timeline.hits if round(h.marker.position) == 712)
    QTest.mouseClick(
        timeline,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
        QPoint(round(alarm.x) + 2, ALARM_LANE // 2),
    )
    assert window.replay.position == pytest.approx(712.0)
    assert window.alarm_banner.text().startswith("ALARMS AT THIS INSTANT:  *** SpO2 < 85 % (active)")
    assert "** SpO2 < 90 % (acknowledged)" in window.alarm_banner.text()
    assert "raised high SpO2 < 85 %" in window.marker_label.text()
    # the plot area is not a marker: a click there seeks, a drag keeps seeking
    y = ALARM_LANE + EVENT_LANE + 60
    x0, x1 = round(timeline.x_of(300.0)), round(timeline.x_of(1200.0))
    seeks: list[float] = []
    timeline.seek_requested.connect(seeks.append)
    QTest.mousePress(timeline, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(x0, y))
    assert window.replay.position == pytest.approx(300.0, abs=2.0)
    for x in range(x0, x1 + 1, 40):
        QTest.mouseMove(timeline, QPoint(x, y))
    QTest.mouseRelease(timeline, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(x1, y))
    assert len(seeks) > 5 and seeks == sorted(seeks)
    assert window.replay.position == pytest.approx(seeks[-1])
    assert window.alarm_banner.text() == "No alarm at this instant"


def test_bracket_keys_jump_between_the_chosen_kind(window: ReplayWindow, qtbot: QtBot) -> None:
    window.jump_box.setCurrentText("alarms")
    window.seek(0.0)
    QTest.keyClick(window, Qt.Key.Key_BracketRight)
    assert window.replay.position == pytest.approx(690.0)
    QTest.keyClick(window, Qt.Key.Key_BracketRight)
    assert window.replay.position == pytest.approx(712.0)
    QTest.keyClick(window, Qt.Key.Key_BracketLeft)
    assert window.replay.position == pytest.approx(690.0)
    window.jump_box.setCurrentText("phase changes")
    QTest.keyClick(window, Qt.Key.Key_BracketLeft)
    assert window.replay.position == pytest.approx(480.0)
    assert "dosing → monitoring" in window.marker_label.text()
    window.seek(900.0)
    # a seek forward far past a BP reading still shows that reading on the BP tile
    shown = window.monitor.bp_tile.reading()
    assert shown is not None
    assert shown.mono == pytest.approx(window.replay.row.started_mono + 900.0)


# ------------------------------------------------------------------------------ review
def test_a_key_annotates_the_instant_with_the_reviewer_asked_once(
    window: ReplayWindow, db: Database, qtbot: QtBot
) -> None:
    review = window.review
    assert review is not None
    recorded = {t: _rows(db, t) for t in ("numerics", "alarm_events", "observations", "phase_changes")}
    window.seek(200.0)
    QTest.keyClick(window, Qt.Key.Key_A)
    assert review.editor.isVisible() and review.editor.hasFocus()
    window.seek(250.0)  # moving on while typing: the note stays at the key press
    QTest.keyClicks(review.editor, "anxious; a coached breath")  # 'a' in the text is no shortcut
    QTest.keyClick(review.editor, Qt.Key.Key_Return)
    QTest.keyClick(window, Qt.Key.Key_A)
    QTest.keyClicks(review.editor, "second look")
    QTest.keyClick(review.editor, Qt.Key.Key_Return)
    notes = load_annotations(db, window.replay.session_id)
    assert [(round(n.position_s, 6), n.text, n.reviewer) for n in notes] == [
        (200.0, "anxious; a coached breath", "Dr Cyd Moss"),
        (250.0, "second look", "Dr Cyd Moss"),
    ]
    assert notes[0].created_utc == 2_000_000_000.0  # when it was written, not a replayed time
    assert window.asked == ["asked"]  # type: ignore[attr-defined]  # once, at the first entry
    assert review.reviewer_label.text() == "Reviewer: Dr Cyd Moss"
    assert [review.annotation_list.item(i).text() for i in range(2)] == [
        "0:03:20  anxious; a coached breath  (Dr Cyd Moss)",
        "0:04:10  second look  (Dr Cyd Moss)",
    ]
    flags = [
        round(h.marker.position, 6) for h in window.timeline.hits if h.marker.kind == MarkerKind.ANNOTATION
    ]
    assert flags == [200.0, 250.0]
    QTest.keyClick(window, Qt.Key.Key_A)
    QTest.keyClicks(review.editor, "never mind")
    QTest.keyClick(review.editor, Qt.Key.Key_Escape)
    assert len(load_annotations(db, window.replay.session_id)) == 2 and not review.editor.isVisible()
    assert {t: _rows(db, t) for t in recorded} == recorded  # the recording is never changed


def test_keys_judge_the_alarm_on_screen_and_a_later_verdict_supersedes(
    window: ReplayWindow, db: Database, qtbot: QtBot
) -> None:
    review = window.review
    assert review is not None
    window.seek(720.0)  # the high alarm is on top of the list there
    current = review.current_alarm()
    assert current is not None and current.alarm_id == 2
    QTest.keyClick(window, Qt.Key.Key_F)
    QTest.keyClicks(review.editor, "probe slipped")
    QTest.keyClick(review.editor, Qt.Key.Key_Return)
    QTest.keyClick(window, Qt.Key.Key_T)
    QTest.keyClick(review.editor, Qt.Key.Key_Return)  # a verdict needs no comment
    window.seek(1310.0)
    QTest.keyClick(window, Qt.Key.Key_N)
    QTest.keyClicks(review.editor, "battery swapped at once")
    QTest.keyClick(review.editor, Qt.Key.Key_Return)
    verdicts = [
        (j.alarm_id, j.verdict, j.comment, j.reviewer)
        for j in load_adjudications(db, window.replay.session_id)
    ]
    assert verdicts == [
        (2, Verdict.FALSE, "probe slipped", "Dr Cyd Moss"),
        (2, Verdict.TRUE, "", "Dr Cyd Moss"),  # both kept: append-only
        (3, Verdict.NON_ACTIONABLE, "battery swapped at once", "Dr Cyd Moss"),
    ]
    texts = [review.alarm_list.item(i).text() for i in range(review.alarm_list.count())]
    assert texts == [
        "0:11:30  ** SpO2 < 90 %  — not judged",
        "0:11:52  *** SpO2 < 85 %  — true alarm (Dr Cyd Moss)",  # the later verdict is shown
        "0:21:40  * Battery low (oximeter)  — non-actionable (Dr Cyd Moss): battery swapped at once",
    ]
    image = window.timeline.grab().toImage()
    assert image.width() > 0
    assert {a.alarm_id: a.adjudication.verdict for a in review.alarms if a.adjudication} == {
        2: Verdict.TRUE,
        3: Verdict.NON_ACTIONABLE,
    }
    # clicking an alarm in the list jumps to its onset
    item = review.alarm_list.item(0)
    rect = review.alarm_list.visualItemRect(item)
    QTest.mouseClick(
        review.alarm_list.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center()
    )
    assert window.replay.position == pytest.approx(690.0)


def test_a_review_of_a_session_still_recording_is_refused_on_screen(
    qtbot: QtBot, db: Database, built: RecordedSession
) -> None:
    db.execute("UPDATE sessions SET status = 'recording' WHERE id = ?", (built.session_id,))
    db.conn.commit()
    clock = ReplayClock(FakeClock())
    w = ReplayWindow(ReplaySession(db, built.session_id, clock), clock, db=db, reviewer=Reviewer("r"))
    qtbot.addWidget(w)
    review = w.review
    assert review is not None
    review.start_annotation()
    QTest.keyClicks(review.editor, "too early")
    assert review.commit() is False
    assert "still recording" in review.status.text()
    assert load_annotations(db, built.session_id) == []
    w.shutdown()


# ------------------------------------------------------------------------------ exports
def test_parse_progress_lines() -> None:
    assert parse_progress("progress 0.425 numerics\n") == (0.425, "numerics")
    assert parse_progress("progress 1.000 done") == (1.0, "done")
    assert parse_progress("/tmp/x.csv") is None
    assert parse_progress("progress soon") is None


def test_export_from_the_replay_window_runs_in_a_subprocess_with_progress(
    window: ReplayWindow, db: Database, qtbot: QtBot, tmp_path: Path
) -> None:
    dialog = window.open_export()
    assert dialog is not None
    qtbot.addWidget(dialog)
    dialog.select_format("csv-zip")
    out = tmp_path / "export.zip"
    dialog.path_edit.setText(str(out))
    ticks: list[int] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    QTest.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    job = dialog.job
    assert job is not None and job.running
    qtbot.waitUntil(lambda: job.finished_ok is not None, timeout=60_000)
    timer.stop()
    assert job.finished_ok, job.message
    assert ticks, "the event loop kept running during the export"
    assert job.fractions[-1] == 1.0 and len(job.fractions) >= 4
    assert job.fractions == sorted(job.fractions)
    assert dialog.result_label.text() == f"Exported to {out}"
    import zipfile

    with zipfile.ZipFile(out) as z:
        rows = list(csv.DictReader(z.read("numerics.csv").decode().splitlines()))
    expected = db.execute(
        "SELECT COUNT(*) FROM numerics WHERE session_id = ?", (window.replay.session_id,)
    ).fetchone()[0]
    assert len(rows) == expected


def test_a_cancelled_export_leaves_nothing(qtbot: QtBot, built: RecordedSession, tmp_path: Path) -> None:
    out = tmp_path / "cancelled.edf"
    job = ExportJob(built.path, built.session_id, "edf", out)
    job.start()
    job.cancel()
    qtbot.waitUntil(lambda: job.finished_ok is not None, timeout=30_000)
    assert job.finished_ok is False and job.message == "Export cancelled: nothing kept."
    assert not out.exists()


def test_the_export_dialog_suggests_a_new_name_and_refuses_an_existing_file(
    qtbot: QtBot, built: RecordedSession, tmp_path: Path
) -> None:
    dialog = ExportDialog(built.path, built.session_id, folder=tmp_path)
    qtbot.addWidget(dialog)
    assert dialog.path_edit.text() == str(tmp_path / f"kapmonitor-{built.session_id}.pdf")
    (tmp_path / f"kapmonitor-{built.session_id}.edf").write_bytes(b"")
    dialog.select_format("edf")
    assert dialog.path_edit.text() == str(tmp_path / f"kapmonitor-{built.session_id}-2.edf")
    dialog.path_edit.setText(str(tmp_path / f"kapmonitor-{built.session_id}.edf"))
    dialog.start()
    assert dialog.job is None and "never overwrites" in dialog.result_label.text()


def test_seeking_back_shows_that_instant_as_live_not_what_came_after(window: ReplayWindow) -> None:
    from kapmonitor.measurements import Param

    tile = window.monitor.tiles[Param.SPO2]
    window.seek(900.0)  # after the oximeter's drop-out (silent 400-460 s, lost at 416 s)
    window.monitor.on_frame()
    assert not tile.is_stale()
    sweep_before = window.monitor.sweep
    window.seek(300.0)  # back, before the drop-out: a current value, a drawing sweep
    window.monitor.on_frame()
    assert window.monitor.sweep is not sweep_before  # a sweep only draws forward: a fresh one
    assert not tile.is_stale(), tile.quality_text()
    assert tile.value_text() == f"{window.replay.latest[Param.SPO2].value:.0f}"
    assert not window.monitor.sweep.no_signal()
    assert np.isfinite(window.monitor.sweep.trace()[1]).sum() > 100
    window.seek(440.0)  # forward into the drop-out: lost, as live
    window.monitor.on_frame()
    assert tile.is_stale()
    window.seek(420.0)  # back, still after the loss at 416 s
    window.monitor.on_frame()
    assert tile.is_stale()
    window.seek(410.0)  # back before the loss: silent for 10 s, not yet declared
    window.monitor.on_frame()
    assert not tile.is_stale(), tile.quality_text()


def test_export_from_the_browser_is_for_the_selected_session(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "many.sqlite"
    first = build_review_session(path, duration_s=300.0)
    build_review_session(path, start_wall=START_WALL + 86_400.0, duration_s=300.0)
    browser = SessionBrowser(path, ReplayLauncher(Reviewer("r")), tz=UTC)
    qtbot.addWidget(browser)
    browser.table.selectRow(1)
    dialog = browser.export_selected()
    assert dialog is not None
    qtbot.addWidget(dialog)
    assert (dialog.db_path, dialog.session_id) == (path, first.session_id)
    dialog.select_format("session")
    dialog.path_edit.setText(str(tmp_path / "handover.sqlite"))
    dialog.start()
    job = dialog.job
    assert job is not None
    qtbot.waitUntil(lambda: job.finished_ok is not None, timeout=60_000)
    assert job.finished_ok, job.message
    with sqlite3.connect(tmp_path / "handover.sqlite") as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM sessions")] == [first.session_id]
    conn.close()
