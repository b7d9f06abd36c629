"""The REMS worksheet PDF: read back with pypdf and compared with the RemsForm it was written from."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pypdf
import pytest
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor
from PySide6.QtPdf import QPdfDocument
from pytestqt.qtbot import QtBot

from kapmonitor.measurements import BloodPressure
from kapmonitor.observations import Observation, ScaleScore
from kapmonitor.rems import RemsForm, rems_form
from kapmonitor.workflow import SessionDetails, TreatmentProtocol
from ui.rems_pdf import NOT_A_SUBMISSION, rems_rows, write_rems_pdf

T0 = 1_767_225_600.0  # first device, 2026-01-01T00:00Z
MIN = 60.0
A4_PT = (595.0, 842.0)


def details(lot: str = "L123", concomitant: tuple[str, ...] = ("lorazepam", "sertraline")) -> SessionDetails:
    return SessionDetails(
        patient="P-017",
        clinicians=("Dr A", "RN B"),
        protocol=TreatmentProtocol.ESKETAMINE_IN,
        planned_dose_mg=56.0,
        route="intranasal",
        lot=lot,
        concomitant=concomitant,
    )


def bp(sys: float, dia: float, at_min: float) -> BloodPressure:
    return BloodPressure(sys, dia, None, 70, 0.0, T0 + at_min * MIN, "cuff")


def obs(scale: ScaleScore, at_min: float) -> Observation:
    w = T0 + at_min * MIN
    return Observation(1, "s", 1, scale.scale.value, "", scale, None, 0.0, w, w, "Dr A", None)


def text_of(path: Path) -> str:
    reader = pypdf.PdfReader(path)
    raw = " ".join(page.extract_text() for page in reader.pages)
    return " ".join(unicodedata.normalize("NFKC", raw).split())  # ligatures and line breaks away


def norm(s: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", s).split())


@pytest.fixture
def flagged_form() -> RemsForm:
    # 110 min, no ready-to-leave, no final reading: flags to print
    form = rems_form(
        details(lot=""),
        [bp(132, 84, -2), bp(150, 92, 41)],
        T0,
        T0 + 110 * MIN,
        None,
        observations=[obs(ScaleScore.moaas(4), 30), obs(ScaleScore.cadss6([0, 0, 0, 0, 0, 0]), 30)],
    )
    assert form.flags  # the fixture is meant to carry flags
    return form


def test_every_field_and_flag_is_in_the_pdf(qtbot: QtBot, tmp_path: Path, flagged_form: RemsForm) -> None:
    path = write_rems_pdf(
        flagged_form, details(lot=""), tmp_path / "rems.pdf", generated="2026-01-01 02:00 UTC"
    )
    text = text_of(path)
    assert norm(NOT_A_SUBMISSION) in text
    rows = rems_rows(flagged_form, details(lot=""))
    assert len(rows) >= 20
    for field, value in rows:
        assert norm(field) in text, field
        assert norm(value) in text, (field, value)
    for flag in flagged_form.flags:
        assert norm(flag) in text, flag
    # the values come from the form
    assert "132/84 mmHg" in text and "150/92 mmHg" in text and "[STALE]" in text
    assert "110 min" in text and "2026-01-01" in text and "56 mg (category: 56)" in text
    assert "Concomitant: benzodiazepines Yes" in text
    assert "Concomitant: MAOIs No" in text
    assert "Sedation occurred Yes" in text and "Dissociation occurred No" in text
    assert "lot number missing" in text
    assert "Generated 2026-01-01 02:00 UTC" in text


def test_the_pdf_is_one_printable_a4_page(qtbot: QtBot, tmp_path: Path, flagged_form: RemsForm) -> None:
    path = write_rems_pdf(flagged_form, details(lot=""), tmp_path / "rems.pdf")
    reader = pypdf.PdfReader(path)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == pytest.approx(A4_PT, abs=1.0)
    doc = QPdfDocument()
    assert doc.load(str(path)) == QPdfDocument.Error.None_
    image = doc.render(0, QSize(620, 877))
    image.save(str(tmp_path / "rems_page1.png"))
    # black text on white: the top third (title, warning, first rows) has dark pixels
    dark = sum(
        1 for y in range(0, 290, 2) for x in range(0, 620, 2) if QColor(image.pixel(x, y)).lightness() < 100
    )
    assert dark > 500


def test_a_clean_session_prints_no_flags(qtbot: QtBot, tmp_path: Path) -> None:
    clean = details(concomitant=("lorazepam",))
    form = rems_form(
        clean,
        [bp(132, 84, -2), bp(150, 92, 41), bp(128, 80, 118)],
        T0,
        T0 + 121 * MIN,
        T0 + 101 * MIN,
    )
    assert form.flags == ()
    text = text_of(write_rems_pdf(form, clean, tmp_path / "clean.pdf"))
    assert "No flags." in text
    assert "101 min" in text and "121 min" in text and "L123" in text
    assert "Sedation occurred not scored" in text
