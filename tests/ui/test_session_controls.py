"""The session controls in the console: next step through the phases, the dose key, observations."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from kapmonitor.alarms import AlarmEngine, Priority, kap_defaults
from kapmonitor.clock import FakeClock
from kapmonitor.measurements import BloodPressure, DeviceInfo, DeviceState, Numeric, Param, Waveform
from kapmonitor.session import Session
from kapmonitor.storage import Recorder, alarm_events, blood_pressure, open_database
from kapmonitor.storage.session_log import SessionLog
from kapmonitor.workflow import Phase, SessionDetails, SessionWorkflow, TreatmentProtocol
from ui.main_window import MainWindow
from ui.session_controls import SessionControls
from ui.session_log_panel import EntryKind

REPO = Path(__file__).resolve().parents[2]


def phase_of(workflow: SessionWorkflow) -> Phase:
    return workflow.phase  # read afresh: each step changes it


def test_a_clinician_steps_through_an_esketamine_session(qtbot: QtBot, tmp_path: Path) -> None:
    clock = FakeClock()
    db = open_database(tmp_path / "s.sqlite")
    recorder = Recorder(db, clock)
    sid = recorder.begin_session(kind="demo")
    session = Session(clock, recorder)
    details = SessionDetails(
        patient="P-042",
        clinicians=("Dr Lee",),
        protocol=TreatmentProtocol.ESKETAMINE_IN,
        planned_dose_mg=56.0,
        route="intranasal",
    )
    session_log = SessionLog(db, clock, sid, seq=recorder.next_seq)
    session_log.save_details(details)
    workflow = SessionWorkflow(details, clock)
    controls = SessionControls(session, workflow, session_log, clock, lambda: "Dr Lee")
    window = MainWindow(session, operator=lambda: "Dr Lee")
    window.add_session_controls(controls)
    qtbot.addWidget(window)

    assert controls.next_button.text() == "[F4] Start pre-dose baseline"  # the key on the button
    controls.next_step()
    assert phase_of(workflow) is Phase.BASELINE
    controls.next_step()  # no BP yet: refused, and it says why
    assert phase_of(workflow) is Phase.BASELINE
    assert "baseline blood pressure" in controls.message.text()
    session.ingest([BloodPressure(128.0, 82.0, 97.0, 70.0, clock.monotonic(), clock.wall(), "CUFF")])
    controls.next_step()  # 128/82 is under the 140/90 gate: no decision needed
    assert phase_of(workflow) is Phase.DOSING
    controls.panel.trigger("dose_given")  # the dose key: device 1 of 2
    clock.advance(60)
    controls.panel.trigger("dose_given")  # within the 5-minute rest: refused with the reason
    assert "Not done" in controls.message.text()
    clock.advance(240)
    controls.panel.trigger("dose_given")  # device 2 after the rest
    assert len(workflow.doses) == 2
    controls.next_step()
    assert phase_of(workflow) is Phase.MONITORING
    clock.advance(30)
    controls.panel.trigger("nausea")  # a one-key observation, committed at once
    saved = [o.code for o in session_log.observations()]
    assert saved.count("dose_given") == 2 and "nausea" in saved
    phases = [p.to_phase for p in session_log.phase_changes()]
    assert [str(p) for p in phases] == ["baseline", "dosing", "monitoring"]
    window.render_png(tmp_path / "console.png")
    assert (tmp_path / "console.png").stat().st_size > 10_000
    controls.shutdown()
    window.shutdown()
    recorder.end_session()
    db.close()


def console(
    qtbot: QtBot, tmp_path: Path, *, alarms: bool = False
) -> tuple[MainWindow, SessionControls, Recorder, FakeClock]:
    clock = FakeClock()
    db = open_database(tmp_path / "c.sqlite")
    recorder = Recorder(db, clock)
    sid = recorder.begin_session(kind="demo")
    session = Session(clock, recorder, alarms=AlarmEngine(clock, kap_defaults()) if alarms else None)
    details = SessionDetails("P-042", ("Dr Lee",), TreatmentProtocol.ESKETAMINE_IN, 56.0, "intranasal")
    session_log = SessionLog(db, clock, sid, seq=recorder.next_seq)
    session_log.save_details(details)
    controls = SessionControls(
        session, SessionWorkflow(details, clock), session_log, clock, lambda: "Dr Lee", recorder=recorder
    )
    window = MainWindow(session, operator=lambda: "Dr Lee")
    window.add_session_controls(controls)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    return window, controls, recorder, clock


def test_the_log_panel_follows_the_session_from_its_events_not_the_database(
    qtbot: QtBot, tmp_path: Path
) -> None:
    window, controls, recorder, clock = console(qtbot, tmp_path)
    session = controls.session
    session.ingest([BloodPressure(131.0, 84.0, 99.0, 66.0, clock.monotonic(), clock.wall(), "CUFF")])
    assert recorder.pending > 0  # the reading is still in the recorder's buffer, not in the database
    assert blood_pressure(recorder.db, controls.log.session_id) == []
    assert "BP 131/84 mmHg, pulse 66" not in controls.log_panel.row_texts()  # drawn at most once a second
    controls.refresh_log()  # the panel's 1 s timer
    assert "BP 131/84 mmHg, pulse 66" in controls.log_panel.row_texts()
    clock.advance(30)
    QTest.keyClick(window, Qt.Key.Key_N)  # an observation: in the log and on the trends at once
    assert controls.log_panel.row_texts()[-1] == "Nausea"
    assert window.trend.marker_labels() == ["Nausea"]
    assert window.trend.marker_x_minutes() == [0.5]  # minutes since the session start
    controls.log_panel.set_filter(EntryKind.BP)
    assert controls.log_panel.row_texts() == ["BP 131/84 mmHg, pulse 66"]
    window.shutdown()
    recorder.end_session()
    recorder.db.close()


def test_f1_shows_the_help_over_the_console_and_a_key_only_closes_it(qtbot: QtBot, tmp_path: Path) -> None:
    window, controls, recorder, _clock = console(qtbot, tmp_path)
    assert window.help is not None and window.help.isHidden()
    QTest.keyClick(window, Qt.Key.Key_F1)
    assert window.help.isVisible() and window.help.geometry() == window.rect()
    keys = dict(window.help.lines())
    assert (
        keys["F4"].startswith("Next step") and keys["Space"] == "Acknowledge alarms" and keys["n"] == "Nausea"
    )
    QTest.keyClick(window.help, Qt.Key.Key_N)  # closes the help; records nothing behind it
    assert window.help.isHidden()
    assert controls.log.observations() == []
    QTest.keyClick(window, Qt.Key.Key_Question)
    assert window.help.isVisible()
    QTest.keyClick(window.help, Qt.Key.Key_Escape)
    assert window.help.isHidden()
    QTest.keyClick(window, Qt.Key.Key_F4)  # the next-step key, as the button says
    assert controls.workflow.phase is Phase.BASELINE
    window.shutdown()
    recorder.end_session()
    recorder.db.close()


def _pleth(t0: float) -> tuple[int, ...]:
    t = t0 + np.arange(100) / 100.0
    beat = (t * 72 / 60.0) % 1.0  # 72 /min: a fast upstroke, a slow fall with a notch
    wave = np.where(beat < 0.15, beat / 0.15, np.exp(-(beat - 0.15) * 3.0) + 0.1 * np.sin(beat * 12))
    return tuple(int(v) for v in 40 + 120 * wave)


def test_render_the_console_during_a_session(qtbot: QtBot, tmp_path: Path) -> None:
    """The console 40 minutes into an esketamine session, with data, observations and the log;
    KAPMONITOR_SCREENSHOTS=1 writes the pictures in docs/screenshots."""
    window, controls, recorder, clock = console(qtbot, tmp_path, alarms=True)
    session = controls.session
    window.resize(1600, 900)
    for device, name, kind, streaming in (
        ("OXI", "O2Ring 2041", "pulse-oximeter", True),
        ("CUFF", "BP7000 0318", "blood-pressure", False),
    ):
        session.register_device(DeviceInfo(device, name, kind, streaming))
        session.device_state(device, DeviceState.CONNECTED)
    rng = np.random.default_rng(7)

    def feed(seconds: int) -> None:
        for _ in range(seconds):
            now, wall = clock.monotonic(), clock.wall()
            pulse = 71 + 6 * np.tanh(controls.workflow.dose_elapsed() or 0.0) + rng.normal(0, 1.2)
            spo2 = 97.4 + rng.normal(0, 0.5)
            session.ingest(
                [
                    Numeric(Param.SPO2, round(spo2), now, wall, "OXI"),
                    Numeric(Param.PULSE_RATE, round(pulse), now, wall, "OXI"),
                    Waveform("pleth", 100.0, _pleth(now), now, wall, "OXI"),
                ]
            )
            session.tick()
            clock.advance(1)

    def cuff(systolic: float, diastolic: float) -> None:
        bp = BloodPressure(
            systolic, diastolic, (systolic + 2 * diastolic) / 3, 74.0, clock.monotonic(), clock.wall(), "CUFF"
        )
        session.ingest([bp])

    def press(key: Qt.Key) -> None:
        QTest.keyClick(window, key)

    feed(120)
    press(Qt.Key.Key_F4)  # baseline
    cuff(128, 82)
    feed(60)
    press(Qt.Key.Key_F4)  # dosing
    press(Qt.Key.Key_D)
    feed(300)
    press(Qt.Key.Key_D)
    press(Qt.Key.Key_E)  # eye shades on
    feed(60)
    press(Qt.Key.Key_F4)  # monitoring
    feed(12 * 60)
    press(Qt.Key.Key_M)  # music changed
    feed(9 * 60)
    press(Qt.Key.Key_N)  # nausea
    feed(8 * 60)
    cuff(146, 91)
    feed(4 * 60)
    press(Qt.Key.Key_S)  # speaking
    feed(150)
    controls.refresh_log()
    assert controls.log_panel.table.rowCount() >= 10
    assert window.trend.marker_labels() == [
        "Dose 1",
        "Dose 2",
        "Eye shades on",
        "Music changed",
        "Nausea",
        "Speaking",
    ]
    out = tmp_path / "console-session.png"
    QApplication.processEvents()  # the device rows' layout, as the running console's loop would
    window.render_png(out)
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1600, 900)  # nothing pushed the window past its size
    if os.environ.get("KAPMONITOR_SCREENSHOTS"):
        window.render_png(REPO / "docs/screenshots/console-session.png")
    window.shutdown()
    recorder.end_session()
    recorder.db.close()


def test_a_due_bp_reading_is_a_low_priority_alarm_until_the_cuff_reads(qtbot: QtBot, tmp_path: Path) -> None:
    """Issue 5: 40 min after the dose the BP schedule raises "BP reading due" (low, in the alarm bar)
    from the controls' once-a-second tick; a live reading clears it, a stored one does not."""
    window, controls, recorder, clock = console(qtbot, tmp_path, alarms=True)
    session = controls.session
    engine = session.alarms
    assert engine is not None and window.alarm_bar is not None

    def due() -> list[str]:
        return [a.label for a in engine.active_alarms() if a.key.startswith("bp_due@")]

    def tick(seconds: float) -> None:
        clock.advance(seconds)
        session.tick()
        controls._timer.timeout.emit()  # the controls' 1 s timer, on the fake clock

    def reading(sys: float, *, stored: bool = False) -> BloodPressure:
        measured = clock.wall() - 600 if stored else None
        return BloodPressure(
            sys,
            80.0,
            95.0,
            70.0,
            clock.monotonic(),
            clock.wall(),
            "CUFF",
            stored=stored,
            measured_wall=measured,
        )

    controls.next_step()
    session.ingest([reading(128)])
    controls.next_step()
    assert controls.workflow.phase is Phase.DOSING
    tick(30 * 60)  # nothing is due before the dose
    assert due() == []
    controls.panel.trigger("dose_given")
    tick(40 * 60 - 1)
    assert due() == [] and controls.phase_bar.bp_due.text() == "BP in 00:01"
    tick(1)
    assert due() == ["* BP reading due"]
    assert controls.phase_bar.bp_due.text() == "BP DUE"
    assert window.alarm_bar.main_text().startswith("* BP reading due")
    assert window.alarm_bar.shown_priority() is Priority.LOW
    session.ingest([reading(150, stored=True)])  # from the cuff's memory: not the due reading
    tick(1)
    assert due() == ["* BP reading due"]
    session.ingest([reading(134)])  # the cuff reads: cleared at once, without waiting for the tick
    assert due() == []
    assert controls.phase_bar.bp_due.text() == "BP in 15:00"
    tick(15 * 60)
    assert due() == ["* BP reading due"]  # due again after the interval
    recorder.flush()
    events = [
        (e.event, e.priority)
        for e in alarm_events(recorder.db, controls.log.session_id)
        if e.alarm_key.startswith("bp_due")
    ]
    assert events == [("raised", "low"), ("cleared", "low"), ("raised", "low")]
    controls.shutdown()
    window.shutdown()
    recorder.end_session()
    recorder.db.close()
