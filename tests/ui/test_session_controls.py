"""The session controls in the console: next step through the phases, the dose key, observations."""

from __future__ import annotations

import os
from pathlib import Path

from pytestqt.qtbot import QtBot

from kapmonitor.clock import FakeClock
from kapmonitor.measurements import BloodPressure
from kapmonitor.session import Session
from kapmonitor.storage import Recorder, open_database
from kapmonitor.storage.session_log import SessionLog
from kapmonitor.workflow import Phase, SessionDetails, SessionWorkflow, TreatmentProtocol
from ui.main_window import MainWindow
from ui.session_controls import SessionControls


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

    assert controls.next_button.text() == "Start pre-dose baseline"
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
    if os.environ.get("KAPMONITOR_SCREENSHOTS"):
        window.render_png(Path("docs/screenshots/console-session.png"))
    window.render_png(tmp_path / "console.png")
    assert (tmp_path / "console.png").stat().st_size > 10_000
    controls.shutdown()
    window.shutdown()
    recorder.end_session()
    db.close()
