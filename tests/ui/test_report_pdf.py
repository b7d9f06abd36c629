"""The PDF session report, read back with pypdf and compared with the database row by row."""

from __future__ import annotations

import json
import stat
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pypdf
import pytest
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtPdf import QPdfDocument
from pytestqt.qtbot import QtBot

from kapmonitor.clock import FakeClock
from kapmonitor.export.report_data import NOT_A_MEDICAL_DEVICE, report_data
from kapmonitor.observations import ObservationCatalogue
from kapmonitor.storage import Database, Recorder, open_database
from kapmonitor.storage.session_log import SessionLog
from kapmonitor.workflow import SessionDetails, TreatmentProtocol
from tests.core.test_report_data import START_MONO, START_WALL, Built, build_session
from ui.rems_pdf import NOT_A_SUBMISSION
from ui.report_pdf import TITLE, VERDICT_TEXT, _segments, write_report_pdf

#: kapmonitor/storage/review.py Verdict values as the report prints them (an independent table)
PRINTED_VERDICT = {"true": "True", "false": "False", "non_actionable": "Non-actionable"}


def norm(s: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", s).split())


def text_of(path: Path) -> str:
    reader = pypdf.PdfReader(path)
    return norm(" ".join(page.extract_text() for page in reader.pages))


def hms(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=UTC).strftime("%H:%M:%S")


def g(v: float | None) -> str:
    return "—" if v is None else f"{v:g}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_session(tmp_path_factory.mktemp("pdf") / "kap.sqlite")


@pytest.fixture
def db(built: Built) -> Iterator[Database]:
    d = open_database(built.path)
    yield d
    d.close()


@pytest.fixture
def pdf(qtbot: QtBot, built: Built, db: Database, tmp_path: Path) -> Path:
    return write_report_pdf(report_data(db, built.session_id, built.clock), tmp_path / "report.pdf")


def test_header_from_the_database(pdf: Path, db: Database, built: Built) -> None:
    text = text_of(pdf)
    patient, clinicians, protocol, lot, planned = db.execute(
        "SELECT patient, clinicians, protocol, lot, planned_dose_mg FROM session_details "
        "WHERE session_id = ?",
        (built.session_id,),
    ).fetchone()
    assert text.startswith(TITLE)
    assert NOT_A_MEDICAL_DEVICE in text
    assert f"Patient id {patient}" in text
    assert f"Protocol {protocol.replace('_', ' ')}" in text
    assert f"Clinicians {', '.join(json.loads(clinicians))}" in text
    assert f"Lot {lot}" in text
    assert f"Planned dose {planned:g} mg" in text
    given = db.execute(
        "SELECT SUM(dose_mg), COUNT(*) FROM observations WHERE session_id = ? AND code = 'dose_given'",
        (built.session_id,),
    ).fetchone()
    assert f"Dose given {given[0]:g} mg in {given[1]} dose(s)" in text
    assert f"Session {built.session_id}" in text


def test_every_bp_reading(pdf: Path, db: Database, built: Built) -> None:
    text = text_of(pdf)
    section = text[text.index("Blood pressure") : text.index("Alarms and adjudications")]
    rows = db.execute(
        "SELECT t_utc, systolic, diastolic, mean, pulse FROM blood_pressure WHERE session_id = ? "
        "ORDER BY t_utc",
        (built.session_id,),
    ).fetchall()
    assert len(rows) == 4
    at = 0
    for t, sys, dia, mean, pulse in rows:
        row = f"{hms(t)} +{(t - START_WALL) / 60:.1f} {g(sys)}/{g(dia)} ({g(mean)}) {g(pulse)} live"
        found = section.find(row, at)
        assert found >= 0, f"{row!r} not in {section!r}"
        at = found + len(row)  # in time order


def test_every_alarm_with_its_current_adjudication(pdf: Path, db: Database, built: Built) -> None:
    text = text_of(pdf)
    section = text[text.index("Alarms and adjudications") : text.index("Observation log")]
    alarms = db.execute(
        "SELECT alarm_id, t_utc, message, priority, value FROM alarm_events "
        "WHERE session_id = ? AND event = 'raised' ORDER BY t_utc",
        (built.session_id,),
    ).fetchall()
    assert len(alarms) == 3
    latest: dict[int, tuple[str, str, str]] = {}
    for aid, verdict, comment, reviewer in db.execute(
        "SELECT alarm_id, verdict, comment, reviewer FROM alarm_adjudications WHERE session_id = ? "
        "ORDER BY seq",
        (built.session_id,),
    ).fetchall():
        latest[aid] = (verdict, comment, reviewer)
    starts = [
        section.index(f"{hms(t)} +{(t - START_WALL) / 60:.1f} {prio}") for _a, t, _m, prio, _v in alarms
    ]
    assert starts == sorted(starts)
    for i, (aid, _t, message, _prio, value) in enumerate(alarms):
        row = section[starts[i] : starts[i + 1] if i + 1 < len(starts) else len(section)]
        assert f"{norm(message)} {g(value)}" in row
        if aid in latest:
            verdict, comment, reviewer = latest[aid]
            assert f"{PRINTED_VERDICT[verdict]} {comment} ({reviewer})" in row
        else:
            assert "not reviewed" in row
    assert "probe slipped" not in text  # the superseded verdict is not shown
    assert "3 alarm(s); 2 adjudicated: 1 true, 0 false, 1 non-actionable" in section


def test_every_observation_and_annotation(pdf: Path, db: Database, built: Built) -> None:
    text = text_of(pdf)
    section = text[text.index("Observation log") : text.index("Reviewer annotations")]
    amended = {
        r[0] for r in db.execute("SELECT amends FROM observations WHERE amends IS NOT NULL").fetchall()
    }
    rows = db.execute(
        "SELECT id, code, pressed_utc, author, text FROM observations WHERE session_id = ? ORDER BY seq",
        (built.session_id,),
    ).fetchall()
    cat = ObservationCatalogue.default()
    shown = 0
    for oid, code, pressed, author, note in rows:
        label = cat.get(code).label
        if oid in amended:  # corrected: the correction is shown at the original's time instead
            assert f"{hms(pressed)} +{(pressed - START_WALL) / 60:.1f} {label}" not in section
            continue
        shown += 1
        at = pressed
        if code == "vomiting":  # the correction keeps the time of the key press it corrects
            at = next(r for r in rows if r[0] in amended)[2]
        assert f"{hms(at)} +{(at - START_WALL) / 60:.1f} {label}" in section
        assert note in section and author in section
    assert shown == 7
    notes = text[text.index("Reviewer annotations") :]
    for t, body, reviewer in db.execute(
        "SELECT t_utc, text, reviewer FROM annotations WHERE session_id = ?", (built.session_id,)
    ).fetchall():
        assert f"{hms(t)} +{(t - START_WALL) / 60:.1f} {body} {reviewer}" in notes


def test_rems_fields_only_for_esketamine(qtbot: QtBot, pdf: Path, tmp_path: Path) -> None:
    text = text_of(pdf)
    assert NOT_A_SUBMISSION in text
    assert "Lot number LOT-7781" in text and "Dose 84 mg (category: 84)" in text
    clock = FakeClock(start_wall=START_WALL, start_mono=START_MONO)
    other = open_database(tmp_path / "im.sqlite")
    try:
        rec = Recorder(other, clock)
        sid = rec.begin_session()
        SessionLog(other, clock, sid, seq=rec.next_seq).save_details(
            SessionDetails("P-9", ("Dr A",), TreatmentProtocol.KETAMINE_IM, 50.0, "intramuscular")
        )
        rec.end_session()
        out = write_report_pdf(report_data(other, sid, clock), tmp_path / "im.pdf")
    finally:
        other.close()
    text = text_of(out)
    assert NOT_A_SUBMISSION not in text and "REMS" not in text
    assert "No blood-pressure reading was recorded." in text and "No alarm was raised." in text
    assert NOT_A_MEDICAL_DEVICE in text


def test_owner_only_and_never_overwritten(qtbot: QtBot, pdf: Path, db: Database, built: Built) -> None:
    assert stat.S_IMODE(pdf.stat().st_mode) == 0o600
    before = pdf.read_bytes()
    with pytest.raises(FileExistsError):
        write_report_pdf(report_data(db, built.session_id, built.clock), pdf)
    assert pdf.read_bytes() == before


def test_page_one_shows_the_trend_chart(qtbot: QtBot, pdf: Path, tmp_path: Path) -> None:
    doc = QPdfDocument()
    doc.load(str(pdf))
    assert doc.pageCount() >= 2
    rendered: QImage = doc.render(0, QSize(1240, 1754))
    doc.close()
    image = QImage(rendered.size(), QImage.Format.Format_RGB32)  # the page on white paper
    image.fill(QColor(255, 255, 255))
    painter = QPainter(image)
    painter.drawImage(0, 0, rendered)
    painter.end()
    image.save(str(tmp_path / "page1.png"))
    # the SpO2 line (blue) and the pulse line (green) are drawn on mostly white paper
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    row_bytes = rgb.bytesPerLine()
    raw = np.frombuffer(bytes(rgb.constBits()), dtype=np.uint8).reshape(rgb.height(), row_bytes)
    px = raw[:, : rgb.width() * 3].reshape(rgb.height(), rgb.width(), 3).astype(np.int32)
    r, gr, b = px[..., 0], px[..., 1], px[..., 2]
    spo2 = int(np.count_nonzero((r < 80) & (gr > 70) & (gr < 150) & (b > 150)))
    pulse = int(np.count_nonzero((r < 80) & (gr > 100) & (b < 110)))
    white = int(np.count_nonzero((r > 240) & (gr > 240) & (b > 240)))
    assert spo2 > 500 and pulse > 500, (spo2, pulse)
    assert white > 0.6 * r.size


def test_gaps_are_not_bridged() -> None:
    x = np.arange(8, dtype=np.float64)
    y = np.array([1, 2, np.nan, np.nan, 5, 6, 7, np.nan])
    segs = _segments(x, y)
    assert [s[0].tolist() for s in segs] == [[0.0, 1.0], [4.0, 5.0, 6.0]]
    assert _segments(x, np.full(8, np.nan)) == []


def test_verdict_texts_cover_every_verdict() -> None:
    assert {v.value: t for v, t in VERDICT_TEXT.items()} == PRINTED_VERDICT
