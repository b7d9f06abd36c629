"""The clinician's session controls driven as a clinician would: keys, clicks and dialogs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLineEdit, QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot
from sqlite_utils import Database

from kapmonitor.clock import FakeClock
from kapmonitor.measurements import BloodPressure, DeviceState
from kapmonitor.observations import NOTE, Scale, ScaleScore
from kapmonitor.storage import Recorder, open_database
from kapmonitor.storage.queries import AlarmEventRow, DeviceEventRow
from kapmonitor.storage.session_log import SessionLog, recent_clinicians, recent_patients
from kapmonitor.workflow import GateChoice, Phase, SessionDetails, SessionWorkflow, TreatmentProtocol
from ui.observation_panel import ObservationPanel, PhaseBar
from ui.session_dialogs import BpGateDialog, FreeTextDialog, NewSessionDialog, ScaleDialog
from ui.session_log_panel import EntryKind, HelpOverlay, SessionLogPanel

REPO = Path(__file__).resolve().parents[2]
MIN = 60.0


def details(patient: str = "P-017", clinicians: tuple[str, ...] = ("Dr A", "RN B")) -> SessionDetails:
    return SessionDetails(
        patient=patient,
        clinicians=clinicians,
        protocol=TreatmentProtocol.ESKETAMINE_IN,
        planned_dose_mg=56.0,
        route="intranasal",
        lot="L123",
        concomitant=("lorazepam",),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "kap.sqlite")
    yield database
    database.close()


@pytest.fixture
def log(db: Database, clock: FakeClock) -> SessionLog:
    rec = Recorder(db, clock)
    sid = rec.begin_session()
    session_log = SessionLog(db, clock, sid, seq=rec.next_seq)
    session_log.save_details(details())
    return session_log


@pytest.fixture
def window(qtbot: QtBot, log: SessionLog, clock: FakeClock) -> QWidget:
    """A window holding the panel and a text field, shown and active (shortcuts need that)."""
    w = QWidget()
    layout = QVBoxLayout(w)
    w.panel = ObservationPanel(log, clock, "Dr A")  # type: ignore[attr-defined]
    w.field = QLineEdit()  # type: ignore[attr-defined]
    layout.addWidget(w.panel)  # type: ignore[attr-defined]
    layout.addWidget(w.field)  # type: ignore[attr-defined]
    qtbot.addWidget(w)
    w.show()
    w.activateWindow()
    qtbot.waitExposed(w)
    w.panel.setFocus()  # type: ignore[attr-defined]
    return w


def panel_of(w: QWidget) -> ObservationPanel:
    p = w.panel  # type: ignore[attr-defined]
    assert isinstance(p, ObservationPanel)
    return p


# -- observation panel -----------------------------------------------------------------------------------
def test_every_entry_has_a_button_labelled_with_its_key(window: QWidget) -> None:
    panel = panel_of(window)
    assert len(panel.buttons) == len(panel.catalogue)
    assert panel.buttons["nausea"].text() == "[n] Nausea"
    assert panel.buttons["moaas"].text().startswith("[1] MOAA/S")
    for t in panel.catalogue:
        assert t.key is not None and panel.buttons[t.code].text().startswith(f"[{t.key}] ")


def test_a_key_the_window_already_uses_is_refused(qtbot: QtBot, log: SessionLog, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match=r"'a' \(Anxiety / agitation\)"):
        ObservationPanel(log, clock, "Dr A", reserved_keys=["A", "F1"])
    panel = ObservationPanel(log, clock, "Dr A", reserved_keys=["F1", "Space"])
    qtbot.addWidget(panel)
    assert len(panel.shortcuts) == len(panel.catalogue)


def test_event_key_commits_at_once_with_the_press_time(
    qtbot: QtBot, window: QWidget, log: SessionLog, clock: FakeClock
) -> None:
    panel = panel_of(window)
    t_press = clock.wall()
    with qtbot.waitSignal(panel.saved):
        QTest.keyClick(panel, Qt.Key.Key_N)
    [obs] = log.observations()
    assert (obs.code, obs.author, obs.t_pressed_utc) == ("nausea", "Dr A", t_press)
    assert "Saved: Nausea" in panel.status.text()


def test_a_click_records_an_observation(qtbot: QtBot, window: QWidget, log: SessionLog) -> None:
    panel = panel_of(window)
    QTest.mouseClick(panel.buttons["eye_shades_on"], Qt.MouseButton.LeftButton)
    assert [o.code for o in log.observations()] == ["eye_shades_on"]


def test_typing_in_a_text_field_never_fires_an_observation(
    qtbot: QtBot, window: QWidget, log: SessionLog
) -> None:
    field = window.field  # type: ignore[attr-defined]
    field.setFocus()
    QTest.keyClicks(field, "nausea")
    assert field.text() == "nausea"
    assert log.observations() == []


def test_free_text_keeps_the_key_press_time_not_the_ok_time(
    qtbot: QtBot, window: QWidget, log: SessionLog, clock: FakeClock
) -> None:
    panel = panel_of(window)
    t_press = clock.wall()
    QTest.keyClick(panel, Qt.Key.Key_F)
    dialog = panel.active_dialog
    assert isinstance(dialog, FreeTextDialog)
    QTest.keyClicks(dialog.text_edit, "patient describes floating")
    clock.advance(95)  # the note took 95 s to write
    assert log.observations() == []  # nothing until OK
    QTest.keyClick(dialog.text_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    [obs] = log.observations()
    assert (obs.code, obs.text) == (NOTE, "patient describes floating")
    assert obs.t_pressed_utc == t_press
    assert obs.t_saved_utc == t_press + 95
    assert panel.active_dialog is None


def test_empty_note_is_refused_and_the_dialog_stays_open(
    qtbot: QtBot, window: QWidget, log: SessionLog
) -> None:
    panel = panel_of(window)
    QTest.keyClick(panel, Qt.Key.Key_F)
    dialog = panel.active_dialog
    assert isinstance(dialog, FreeTextDialog)
    dialog.accept()
    assert dialog.isVisible() and dialog.error.text() == "The note is empty."
    assert log.observations() == []


def test_moaas_by_digit_then_enter_stores_the_press_time(
    qtbot: QtBot, window: QWidget, log: SessionLog, clock: FakeClock
) -> None:
    panel = panel_of(window)
    t_press = clock.wall()
    QTest.keyClick(panel, Qt.Key.Key_1)
    dialog = panel.active_dialog
    assert isinstance(dialog, ScaleDialog) and dialog.levels is not None
    clock.advance(20)
    QTest.keyClick(dialog.levels, Qt.Key.Key_3)
    QTest.keyClick(dialog.levels, Qt.Key.Key_Return)
    [obs] = log.observations()
    assert obs.scale == ScaleScore.moaas(3)
    assert (obs.t_pressed_utc, obs.t_saved_utc) == (t_press, t_press + 20)


def test_rass_with_arrow_keys(qtbot: QtBot, window: QWidget, log: SessionLog) -> None:
    panel = panel_of(window)
    QTest.keyClick(panel, Qt.Key.Key_2)
    dialog = panel.active_dialog
    assert isinstance(dialog, ScaleDialog) and dialog.levels is not None
    assert dialog.score() == ScaleScore.rass(0)  # starts at alert and calm
    QTest.keyClick(dialog.levels, Qt.Key.Key_Down)
    QTest.keyClick(dialog.levels, Qt.Key.Key_Down)
    QTest.keyClick(dialog.levels, Qt.Key.Key_Return)
    assert [o.scale for o in log.observations()] == [ScaleScore.rass(-2)]


def test_cadss6_items(qtbot: QtBot, window: QWidget, log: SessionLog) -> None:
    panel = panel_of(window)
    QTest.mouseClick(panel.buttons["cadss6"], Qt.MouseButton.LeftButton)
    dialog = panel.active_dialog
    assert isinstance(dialog, ScaleDialog) and dialog.scale == Scale.CADSS6
    dialog.set_items([0, 1, 2, 3, 4, 1])
    dialog.accept()
    [obs] = log.observations()
    assert obs.scale == ScaleScore.cadss6([0, 1, 2, 3, 4, 1])
    assert "CADSS-6 11" in panel.status.text()


def test_a_cancelled_dialog_saves_nothing_and_says_so(
    qtbot: QtBot, window: QWidget, log: SessionLog, clock: FakeClock
) -> None:
    panel = panel_of(window)
    QTest.keyClick(panel, Qt.Key.Key_F)
    dialog = panel.active_dialog
    assert isinstance(dialog, FreeTextDialog)
    dialog.text_edit.setPlainText("half a note")
    with qtbot.waitSignal(panel.cancelled) as sig:
        QTest.keyClick(dialog.text_edit, Qt.Key.Key_Escape)
    assert sig.args == [NOTE]
    assert log.observations() == []
    assert "cancelled — nothing saved" in panel.status.text()
    assert panel.active_dialog is None


def test_dose_key_goes_to_the_workflow_not_the_log(
    qtbot: QtBot, window: QWidget, log: SessionLog, clock: FakeClock
) -> None:
    panel = panel_of(window)
    with qtbot.waitSignal(panel.dose_requested) as sig:
        QTest.keyClick(panel, Qt.Key.Key_D)
    [pressed] = sig.args
    assert (pressed.code, pressed.wall) == ("dose_given", clock.wall())
    assert log.observations() == []


# -- new session -------------------------------------------------------------------------------------------
def test_new_session_offers_recent_patients_and_clinicians(
    qtbot: QtBot, db: Database, clock: FakeClock
) -> None:
    for patient, clinicians in [("P-1", ("Dr A",)), ("P-2", ("Dr B", "RN C"))]:
        rec = Recorder(db, clock)
        SessionLog(db, clock, rec.begin_session()).save_details(details(patient, clinicians))
        clock.advance(3600)
    dialog = NewSessionDialog(recent_patients(db), recent_clinicians(db))
    qtbot.addWidget(dialog)
    assert dialog.offered_patients() == ["P-2", "P-1"]
    assert dialog.offered_clinicians() == ["Dr B", "RN C", "Dr A"]
    dialog.patient.setCurrentIndex(1)  # P-1 again
    dialog.tick_clinician("Dr A")
    dialog.clinicians.setText("RN New, Dr A")
    dialog.set_protocol(TreatmentProtocol.ESKETAMINE_IN)
    dialog.dose.setValue(84)
    dialog.lot.setText("LOT-9")
    dialog.concomitant.setText("lorazepam; methylphenidate")
    dialog.accept()
    assert dialog.result() == NewSessionDialog.DialogCode.Accepted
    assert dialog.details() == SessionDetails(
        patient="P-1",
        clinicians=("Dr A", "RN New"),
        protocol=TreatmentProtocol.ESKETAMINE_IN,
        planned_dose_mg=84.0,
        route="intranasal",
        lot="LOT-9",
        concomitant=("lorazepam", "methylphenidate"),
    )


def test_new_session_refuses_missing_data_and_a_partial_device(qtbot: QtBot) -> None:
    dialog = NewSessionDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.accept()
    assert dialog.isVisible() and "patient" in dialog.error.text()
    dialog.patient.setEditText("P-3")
    dialog.accept()
    assert dialog.isVisible() and "clinician" in dialog.error.text()
    dialog.clinicians.setText("Dr A")
    dialog.dose.setValue(60)  # not a whole number of 28 mg devices
    dialog.accept()
    assert dialog.isVisible() and "28 mg devices" in dialog.error.text()
    dialog.set_protocol(TreatmentProtocol.KETAMINE_IV)
    assert dialog.route.text() == "intravenous"
    dialog.accept()
    assert not dialog.isVisible()
    assert dialog.details() is not None and dialog.details().planned_dose_mg == 60  # type: ignore[union-attr]


# -- BP gate -----------------------------------------------------------------------------------------------
def test_bp_gate_refuses_proceed_without_a_reason(qtbot: QtBot) -> None:
    dialog = BpGateDialog(152, 94)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.choose(GateChoice.PROCEED)
    dialog.accept()
    assert dialog.isVisible()
    assert "needs a reason" in dialog.error.text()
    dialog.reason.setText("usual BP for this patient, reviewed by Dr A")
    dialog.accept()
    assert not dialog.isVisible() and dialog.result() == BpGateDialog.DialogCode.Accepted
    assert dialog.choice() == GateChoice.PROCEED


def test_bp_gate_delay_needs_no_reason(qtbot: QtBot) -> None:
    dialog = BpGateDialog(145, 85)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.choice() == GateChoice.DELAY  # the safe default
    dialog.accept()
    assert not dialog.isVisible() and dialog.choice() == GateChoice.DELAY


# -- phase bar ---------------------------------------------------------------------------------------------
def test_phase_bar_clock_rest_countdown_and_bp_due(qtbot: QtBot, clock: FakeClock) -> None:
    wf = SessionWorkflow(details(), clock)
    bar = PhaseBar(wf, clock)
    qtbot.addWidget(bar)
    bar.timer.stop()  # driven by hand
    assert bar.current_phase_text() == "Preparation"
    assert bar.clock_label.text() == "T+--:--"
    assert bar.rest.isHidden() and bar.bp_due.isHidden()
    wf.start_baseline("dr")
    wf.record_baseline(BloodPressure(128, 80, None, 70, clock.monotonic(), clock.wall(), "cuff"), "dr")
    wf.start_dosing("dr")
    wf.log_device("dr")
    clock.advance(60)
    bar.refresh()
    assert bar.current_phase_text() == "Dosing"
    assert bar.steps[Phase.BASELINE].property("state") == "done"
    assert bar.steps[Phase.MONITORING].property("state") == "todo"
    assert bar.rest.text() == "Rest 04:00 before device 2"
    assert bar.rest.property("active") == "true"
    assert bar.clock_label.text() == "T+00:01"
    clock.advance(239.5)
    bar.refresh()
    assert bar.rest.text() == "Rest 00:01 before device 2"
    clock.advance(0.5)
    bar.refresh()
    assert bar.rest.text() == "Device 2 may be given"
    assert bar.rest.property("active") == "false"
    wf.log_device("dr")
    bar.refresh()
    assert bar.rest.text() == "All 2 devices given"  # no countdown: no device follows
    assert bar.rest.property("active") == "false"
    wf.start_monitoring("dr")
    bar.refresh()
    assert bar.rest.isHidden()
    assert bar.bp_due.text() == "BP in 35:00"  # 40 min after the FIRST device
    clock.advance(35 * MIN)
    bar.refresh()
    assert bar.bp_due.text() == "BP DUE" and bar.bp_due.property("active") == "true"
    assert bar.clock_label.text() == "T+00:40"


def test_phase_bar_shows_a_cancelled_session(qtbot: QtBot, clock: FakeClock) -> None:
    wf = SessionWorkflow(details(), clock)
    bar = PhaseBar(wf, clock)
    qtbot.addWidget(bar)
    bar.timer.stop()
    wf.start_baseline("dr")
    wf.record_baseline(BloodPressure(170, 100, None, 70, clock.monotonic(), clock.wall(), "cuff"), "dr")
    wf.decide(GateChoice.CANCEL, "hypertensive", "dr")
    bar.refresh()
    assert not bar.steps[Phase.CANCELLED].isHidden()
    assert bar.steps[Phase.CANCELLED].property("state") == "cancelled"
    assert bar.steps[Phase.DOSING].property("state") == "todo"


# -- session log panel ---------------------------------------------------------------------------------------
def test_log_panel_lists_everything_in_order_and_filters(
    qtbot: QtBot, log: SessionLog, clock: FakeClock
) -> None:
    from kapmonitor.observations import press

    t0 = clock.wall()
    wf = SessionWorkflow(details(), clock)
    log.write(wf.start_baseline("Dr A"))
    clock.advance(10)
    bp = BloodPressure(150, 95, None, 70, clock.monotonic(), clock.wall(), "cuff")
    log.write(wf.record_baseline(bp, "Dr A"))
    log.write(wf.decide(GateChoice.PROCEED, "usual for her", "Dr A"))
    clock.advance(10)
    log.write(wf.start_dosing("Dr A"))
    log.write(wf.log_device("Dr A"))
    clock.advance(10)
    pressed = press("nausea", clock)
    clock.advance(10)
    log.add_observation(pressed, "RN B", text="mild")
    alarm = AlarmEventRow(
        99, 0.0, t0 + 35, "raised", 1, "spo2_low", "active", "high", "spo2", "SpO2 low 89", "", 89
    )
    dev = DeviceEventRow(98, 0.0, t0 + 5, "oximeter", DeviceState.CONNECTED, "")
    panel = SessionLogPanel()
    qtbot.addWidget(panel)
    panel.load(log, bp_readings=[bp], alarms=[alarm], device_events=[dev], first_dose_wall=t0 + 20)
    kinds = [e.kind for e in panel.visible_entries()]
    assert kinds == [
        EntryKind.PHASE,  # preparation → baseline, t0
        EntryKind.DEVICE,  # t0+5
        EntryKind.DECISION,  # baseline taken, t0+10
        EntryKind.DECISION,  # proceed
        EntryKind.BP,
        EntryKind.PHASE,  # → dosing, t0+20
        EntryKind.DOSE,
        EntryKind.OBSERVATION,  # at its key press, t0+30, not when saved
        EntryKind.ALARM,  # t0+35
    ]
    assert "Nausea — mild" in panel.row_texts()
    assert any("proceed" in t and "usual for her" in t for t in panel.row_texts())
    item = panel.table.item(7, 1)
    assert item is not None and item.text() == "T+00:00"  # 10 s after the first dose
    panel.set_filter(EntryKind.ALARM)
    assert panel.row_texts() == ["raised [high] SpO2 low 89"]
    panel.set_filter(EntryKind.BP)
    assert panel.row_texts() == ["BP 150/95 mmHg, pulse 70"]
    panel.set_filter(None)
    assert panel.table.rowCount() == 9


def test_help_overlay_lists_every_shortcut(qtbot: QtBot, log: SessionLog) -> None:
    host = QWidget()
    qtbot.addWidget(host)
    host.resize(900, 600)
    overlay = HelpOverlay(log.catalogue, [("F1", "This help")], host)
    host.show()
    qtbot.waitExposed(host)
    keys = dict(overlay.lines())
    assert {t.key for t in log.catalogue} | {"F1"} == set(keys)
    assert keys["n"] == "Nausea" and keys["F1"] == "This help"
    assert overlay.isHidden()
    overlay.toggle()
    assert overlay.isVisible() and overlay.geometry() == host.rect()
    QTest.keyClick(overlay, Qt.Key.Key_Escape)
    assert overlay.isHidden()


# -- screenshots -------------------------------------------------------------------------------------------
def test_render_screenshots(qtbot: QtBot, window: QWidget, tmp_path: Path) -> None:
    panel = panel_of(window)
    QTest.keyClick(panel, Qt.Key.Key_N)
    dialog = NewSessionDialog(["P-017", "P-022"], ["Dr A", "RN B", "Dr C"])
    qtbot.addWidget(dialog)
    dialog.patient.setEditText("P-017")
    dialog.tick_clinician("Dr A")
    dialog.lot.setText("L123")
    dialog.resize(620, 560)
    dialog.show()
    qtbot.waitExposed(dialog)
    panel.resize(1100, panel.sizeHint().height())
    targets = [tmp_path]
    if os.environ.get("KAPMONITOR_SCREENSHOTS") == "1":
        targets.append(REPO / "docs" / "screenshots")
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        for name, widget in (("observation_panel.png", panel), ("new_session_dialog.png", dialog)):
            path = folder / name
            assert widget.grab().save(str(path))
            assert path.stat().st_size > 5000  # a real picture, not an empty image
