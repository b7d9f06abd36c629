"""The live console driven as a clinician would, on emulated devices: a full esketamine session to the
REMS PDF, and the crash-recovery prompt resuming a session whose process was killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import unicodedata
from collections.abc import Callable, Coroutine
from pathlib import Path

import pypdf
import pytest
import qasync
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog, QWidget
from pytestqt.qtbot import QtBot

from kapmonitor.clock import FakeClock
from kapmonitor.measurements import BloodPressure, Param
from kapmonitor.observations import DOSE_GIVEN
from kapmonitor.storage import Recorder, blood_pressure, device_events, get_session, open_database
from kapmonitor.storage.session_log import CONSOLE_DEVICE, SessionLog
from kapmonitor.workflow import GateChoice, Phase, SessionDetails, SessionWorkflow, TreatmentProtocol
from ui.app import Monitor, Options, build_console, recover_unfinished
from ui.demo import Demo
from ui.main_window import MainWindow
from ui.recovery_dialog import RecoveryChoice, RecoveryDialog
from ui.session_controls import SessionControls
from ui.session_dialogs import BpGateDialog, DischargeDialog, FreeTextDialog, NewSessionDialog, ScaleDialog
from ui.session_summary import SessionSummaryDialog

REPO = Path(__file__).resolve().parents[2]
MIN = 60.0
#: Scenario seconds per wall second of the emulated devices: one cuff cycle (4 x 5 s) takes 1 s.
SPEED = 20.0
#: Wall seconds to wait for something the devices do (a condition, polled; never a fixed sleep).
WAIT_S = 20.0


def options(db: Path, *, demo: bool = True) -> Options:
    return Options(
        command="monitor",
        demo=demo,
        db=db,
        scenario="normal",
        seed=3,
        speed=SPEED,
        minutes=0.0,
        after=0.0,
        out=None,
        headless=False,
        verbose=False,
        operator="Dr Lee",
    )


def run_on_qt_loop(app: QApplication, main: Callable[[], Coroutine[object, object, None]]) -> None:
    """Run `main` on one asyncio loop integrated with Qt, as the console does (ui/app.py): the
    loop, not the last closed window, ends the program."""
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    try:
        with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
            runner.run(main())
    finally:
        app.setQuitOnLastWindowClosed(quit_on_close)


async def until(condition: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    """Wait (polling) until `condition()` holds; fail with `what` after `timeout` wall seconds."""
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def answer_modal(act: Callable[[QWidget], None]) -> None:
    """When the next modal dialog is open and active (exec() blocks the caller; its shortcuts need
    it active), let `act` work it. A dialog still open after WAIT_S is rejected, so a test fails
    instead of hanging."""
    deadline = time.perf_counter() + WAIT_S

    def poll() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is not None and QApplication.activeWindow() is dialog:
            act(dialog)
            if dialog.isVisible() and isinstance(dialog, QDialog):
                dialog.reject()  # `act` did not close it: fail below, do not hang
                raise AssertionError(f"{type(dialog).__name__} stayed open")
            return
        if time.perf_counter() > deadline:
            for w in QApplication.topLevelWidgets():
                if isinstance(w, QDialog) and w.isVisible():
                    w.reject()  # whatever blocks the test: fail, do not hang
            raise AssertionError("no modal dialog became active")
        QTimer.singleShot(20, poll)

    QTimer.singleShot(0, poll)


def phase(wf: SessionWorkflow) -> Phase:
    return wf.phase  # read afresh: each step changes it


def live(readings: list[BloodPressure]) -> list[BloodPressure]:
    return [b for b in readings if not b.stored and b.systolic is not None]


def pdf_text(path: Path) -> str:
    raw = " ".join(page.extract_text() for page in pypdf.PdfReader(path).pages)
    return " ".join(unicodedata.normalize("NFKC", raw).split())


def past_session(db_path: Path) -> None:
    """An earlier, finished session: its patient and clinician are offered again."""
    clock = FakeClock(start_wall=1_767_000_000.0)
    db = open_database(db_path)
    rec = Recorder(db, clock)
    sid = rec.begin_session(kind="demo")
    SessionLog(db, clock, sid, seq=rec.next_seq).save_details(
        SessionDetails("P-017", ("RN Cho",), TreatmentProtocol.ESKETAMINE_IN, 56.0, "intranasal")
    )
    rec.end_session()
    db.close()


def fill_new_session(dialog: QWidget) -> None:
    """The clinician's new-session entries: a recent patient and clinician picked, the rest typed."""
    assert isinstance(dialog, NewSessionDialog)
    assert dialog.offered_patients() == ["P-017"]
    assert dialog.offered_clinicians() == ["RN Cho"]
    QTest.keyClicks(dialog.patient, "P-017")
    dialog.tick_clinician("RN Cho")
    QTest.keyClicks(dialog.clinicians, "Dr Lee")
    QTest.keyClicks(dialog.lot, "LOT-4711")
    QTest.keyClicks(dialog.concomitant, "lorazepam, sertraline")
    QTest.keyClick(dialog.lot, Qt.Key.Key_Return)  # Enter: the default button, OK


async def active(dialog: QWidget) -> None:
    """Wait until a dialog the console opened is the active window (it takes the keys then)."""
    await until(lambda: QApplication.activeWindow() is dialog, f"{type(dialog).__name__} to be active")


async def key(window: MainWindow, k: Qt.Key | str) -> None:
    """A key press in the console (shortcuts need the console to be the active window)."""
    if QApplication.activeWindow() is not window:
        window.activateWindow()
        await until(lambda: QApplication.activeWindow() is window, "the console to be active")
    if isinstance(k, str):
        QTest.keyClicks(window, k)
    else:
        QTest.keyClick(window, k)


def test_a_full_esketamine_session_on_emulated_devices_ends_with_a_checked_rems_pdf(
    qtbot: QtBot, qapp: QApplication, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "kap.sqlite"
    past_session(db_path)
    # the cuff measures when the clinician starts it (and once at power-on), not on its own timer
    monkeypatch.setattr("ui.demo.DEMO_BP_INTERVAL_MIN", 24 * 60.0)
    clock = FakeClock(start_wall=1_767_225_600.0)  # the session's time moves only when the test says
    opts = options(db_path)
    result: dict[str, object] = {}

    async def session() -> None:
        demo = Demo(clock, scenario=opts.scenario, seed=opts.seed, speed=SPEED)
        monitor = Monitor(clock, db_path, demo, operator=opts.operator)
        answer_modal(fill_new_session)
        window = build_console(opts, monitor, ask_details=True)  # the new-session dialog, answered above
        controls = window.session_controls
        assert isinstance(controls, SessionControls)
        window.resize(1600, 900)
        window.show()
        window.activateWindow()
        qtbot.waitExposed(window)
        await monitor.start()
        try:
            await drive(window, controls, monitor, demo)
        finally:
            window.close()
            await monitor.stop()
        result["sid"] = monitor.session_id

    async def measure_bp(demo: Demo, monitor: Monitor) -> BloodPressure:
        """The clinician starts the cuff; the reading arrives through bleak."""
        before = len(live(monitor.session.bp_readings))
        assert demo.cuff is not None
        await demo.cuff.measure()
        await until(lambda: len(live(monitor.session.bp_readings)) > before, "the cuff reading")
        return live(monitor.session.bp_readings)[-1]

    async def drive(window: MainWindow, controls: SessionControls, monitor: Monitor, demo: Demo) -> None:
        wf = controls.workflow
        await until(lambda: Param.SPO2 in monitor.session.latest, "SpO2 from the emulated oximeter")
        await until(lambda: monitor.session.trends.get(Param.SPO2) is not None, "the SpO2 trend")
        assert demo.cuff is not None
        cuff = demo.cuff
        await until(lambda: cuff.subscribed, "the console subscribed to the cuff's readings")

        def advance(seconds: float) -> None:
            """Time passes: the session's clock and the cuff's own clock move together (a cuff
            reading more than 2 min older than its arrival counts as one from its memory)."""
            clock.advance(seconds)
            cuff.skip(seconds)

        advance(2 * MIN)
        await key(window, Qt.Key.Key_F4)  # preparation -> baseline
        assert phase(wf) is Phase.BASELINE
        advance(MIN)
        baseline = await measure_bp(demo, monitor)
        await key(window, Qt.Key.Key_F4)  # the live reading as baseline, start dosing
        if isinstance(controls.active_dialog, BpGateDialog):  # above 140/90: proceed, with a reason
            gate = controls.active_dialog
            QTest.keyClicks(gate.reason, "usual for her, discussed")
            gate.choose(GateChoice.PROCEED)
            QTest.keyClick(gate.reason, Qt.Key.Key_Return)
        assert phase(wf) is Phase.DOSING
        advance(MIN)
        await key(window, "d")  # device 1, at the key press
        first_device = clock.wall()
        advance(MIN)
        await key(window, "d")  # within the 5-minute rest: refused, and the console says why
        assert "rest between devices" in controls.message.text()
        advance(4 * MIN)
        await key(window, "d")  # device 2
        assert len(wf.doses) == 2
        await key(window, "e")  # eye shades on
        advance(MIN)
        await key(window, Qt.Key.Key_F4)  # -> monitoring
        assert phase(wf) is Phase.MONITORING

        advance(15 * MIN)
        await key(window, "1")  # MOAA/S: the dialog opens, stamped at the press
        scale = controls.panel.active_dialog
        assert isinstance(scale, ScaleDialog)
        await active(scale)
        assert scale.levels is not None
        QTest.keyClick(scale.levels, Qt.Key.Key_4)  # the digit picks the level
        QTest.keyClick(scale.levels, Qt.Key.Key_Return)
        advance(2 * MIN)
        await key(window, "n")  # nausea
        await key(window, "f")  # a note
        note = controls.panel.active_dialog
        assert isinstance(note, FreeTextDialog)
        await active(note)
        QTest.keyClicks(note.text_edit, "asked for water")
        QTest.keyClick(note.text_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        await key(window, "3")  # CADSS-6, six items typed, Tab between them
        cadss = controls.panel.active_dialog
        assert isinstance(cadss, ScaleDialog)
        await active(cadss)
        for digit in "210100":
            focus = QApplication.focusWidget()
            assert focus is not None
            QTest.keyClick(focus, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)  # select the 0
            QTest.keyClicks(focus, digit)
            QTest.keyClick(focus, Qt.Key.Key_Tab)
        QTest.keyClick(cadss.items[0], Qt.Key.Key_Return)
        saved = controls.log.observations()
        assert [o.code for o in saved][-3:] == ["nausea", "note", "cadss6"]
        assert saved[-1].scale is not None and saved[-1].scale.items == (2, 1, 0, 1, 0, 0)
        assert saved[-2].text == "asked for water"

        advance(first_device + 40 * MIN - clock.wall())  # 40 min after the first device
        controls.phase_bar.refresh()  # its 1 s timer, without waiting for it
        assert controls.phase_bar.bp_due.text() == "BP DUE"
        at_40 = await measure_bp(demo, monitor)
        controls.phase_bar.refresh()
        assert controls.phase_bar.bp_due.text().startswith("BP in ")

        advance(first_device + 95 * MIN - clock.wall())
        await key(window, Qt.Key.Key_F4)  # -> recovery
        await key(window, "2")  # RASS: alert and calm (0) is preselected
        rass = controls.panel.active_dialog
        assert isinstance(rass, ScaleDialog)
        await active(rass)
        assert rass.levels is not None
        QTest.keyClick(rass.levels, Qt.Key.Key_Return)
        await key(window, Qt.Key.Key_F4)  # -> discharge
        assert phase(wf) is Phase.DISCHARGE
        advance(10 * MIN)  # 105 min after the first device
        await key(window, Qt.Key.Key_F4)  # the discharge checklist
        checklist = controls.active_dialog
        assert isinstance(checklist, DischargeDialog)
        await active(checklist)
        if os.environ.get("KAPMONITOR_SCREENSHOTS"):
            checklist.grab().save(str(REPO / "docs/screenshots/discharge-checklist.png"))
        for _ in range(5):  # four items and "ready to leave": Space ticks, Tab moves on
            focus = QApplication.focusWidget()
            assert focus is not None
            QTest.keyClick(focus, Qt.Key.Key_Space)
            QTest.keyClick(focus, Qt.Key.Key_Tab)
        QTest.keyClick(checklist, Qt.Key.Key_Return)
        ready = clock.wall()
        assert wf.ready_wall == ready and all(wf.checklist.values())

        advance(first_device + 118 * MIN - clock.wall())
        before_end = await measure_bp(demo, monitor)
        advance(first_device + 121 * MIN - clock.wall())
        await key(window, Qt.Key.Key_F4)  # end session: 2 h passed, ready recorded
        assert phase(wf) is Phase.ENDED
        summary = controls.summary
        assert isinstance(summary, SessionSummaryDialog)
        rows = dict(summary.rows)
        assert rows["Patient"] == "P-017" and rows["Monitoring"] == "121 min from the first device"
        await active(summary)
        QTest.keyClick(summary, Qt.Key.Key_E)  # export the REMS worksheet
        path = summary.written.get("rems")
        assert path is not None and path.exists(), summary.status.text()
        result["pdf"] = path
        result["first_device"] = first_device
        result["ready"] = ready
        result["chosen"] = (baseline, at_40, before_end)
        # the session log panel lists what happened, in order, from the live events
        texts = controls.log_panel.row_texts()
        assert any(t.startswith("BP ") for t in texts) and any("Nausea" in t for t in texts)
        assert any("→ ended" in t for t in texts)
        assert window.trend.marker_labels()[:2] == ["Dose 1", "Dose 2"]
        assert "MOAA/S 4" in window.trend.marker_labels()
        if os.environ.get("KAPMONITOR_SCREENSHOTS"):
            summary.grab().save(str(REPO / "docs/screenshots/session-summary.png"))
        QTest.keyClick(summary, Qt.Key.Key_Q)  # close the console: the recording ends

    run_on_qt_loop(qapp, session)

    # -- the PDF against the recorded readings in the database ------------------------------------------
    sid = str(result["sid"])
    path = result["pdf"]
    assert isinstance(path, Path) and path.parent == tmp_path / "reports"
    first_device = float(result["first_device"])  # type: ignore[arg-type]
    db = open_database(db_path)
    try:
        stored = get_session(db, sid)
        assert stored is not None and stored.status == "completed"
        recorded = live(blood_pressure(db, sid))
        before = [b for b in recorded if b.wall < first_device][-1]
        nearest_40 = min(recorded, key=lambda b: abs(b.wall - (first_device + 40 * MIN)))
        last = recorded[-1]
        assert (before, nearest_40, last) == result["chosen"]  # the readings the clinician took
        doses = [o for o in SessionLog(db, clock, sid).observations() if o.code == DOSE_GIVEN]
        assert [o.dose_mg for o in doses] == [28.0, 28.0]
    finally:
        db.close()
    text = pdf_text(path)

    def mmhg(b: BloodPressure) -> str:
        assert b.systolic is not None and b.diastolic is not None
        minutes = (b.wall - first_device) / MIN
        return f"{b.systolic:.0f}/{b.diastolic:.0f} mmHg ({minutes:+.0f} min from first device)"

    assert f"BP before dosing {mmhg(before)}" in text
    assert f"BP at 40 minutes {mmhg(nearest_40)}" in text
    assert f"BP before completion {mmhg(last)}" in text
    assert "Patient (pseudonymous id) P-017" in text
    assert "Monitoring clinician(s) RN Cho, Dr Lee" in text
    assert "Dose 56 mg (category: 56)" in text
    assert "Lot number LOT-4711" in text
    assert "Concomitant: benzodiazepines Yes" in text
    assert "Concomitant medicines as entered lorazepam, sertraline" in text
    assert "Total minutes, first device to end of monitoring 121 min" in text
    assert "(from first device) 105 min" in text
    assert "Sedation occurred Yes" in text  # MOAA/S 4
    assert "Dissociation occurred Yes" in text  # CADSS-6 total 4
    assert "concomitant medicines to classify: sertraline" in text
    assert "BP at 40 minutes: missing" not in text


# -- crash recovery -----------------------------------------------------------------------------------------
_CHILD = textwrap.dedent(
    """
    import sys
    from kapmonitor.clock import FakeClock
    from kapmonitor.observations import press
    from kapmonitor.storage import Recorder, open_database
    from kapmonitor.storage.session_log import SessionLog
    from kapmonitor.workflow import SessionDetails, SessionWorkflow, TreatmentProtocol

    db = open_database(sys.argv[1])
    clock = FakeClock(start_wall=float(sys.argv[2]))
    rec = Recorder(db, clock)
    sid = rec.begin_session(kind="live")
    log = SessionLog(db, clock, sid, seq=rec.next_seq)
    details = SessionDetails("P-022", ("Dr Lee",), TreatmentProtocol.KETAMINE_IM, 50.0, "intramuscular")
    log.save_details(details)
    wf = SessionWorkflow(details, clock)
    log.write(wf.start_baseline("Dr Lee"))
    clock.advance(60)
    oid = log.add_observation(press("note", clock), "Dr Lee", text="saved just before the kill")
    print(sid, oid, flush=True)
    sys.stdin.readline()  # wait to be killed
    """
)


def killed_session(db_path: Path, start_wall: float) -> tuple[str, int]:
    """A console process that saved an observation and was then killed (SIGKILL)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db_path), str(start_wall)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL
    sid, oid = line.split()
    return sid, int(oid)


def test_after_a_kill_the_console_offers_the_session_and_resumes_it(
    qtbot: QtBot, qapp: QApplication, tmp_path: Path
) -> None:
    db_path = tmp_path / "kap.sqlite"
    start = 1_767_225_600.0
    sid, oid = killed_session(db_path, start)
    clock = FakeClock(start_wall=start + 60 + 7 * MIN, start_mono=5.0)  # after a reboot
    shown: list[list[tuple[str, str]]] = []

    def ask(unfinished: object, can_resume: bool) -> RecoveryChoice:
        dialog = RecoveryDialog(unfinished, clock.wall(), can_resume=can_resume)  # type: ignore[arg-type]
        qtbot.addWidget(dialog)
        shown.append(dialog.lines)

        def resume(d: QWidget) -> None:
            if os.environ.get("KAPMONITOR_SCREENSHOTS"):
                d.grab().save(str(REPO / "docs/screenshots/recovery-prompt.png"))
            QTest.keyClick(d, Qt.Key.Key_R)  # R: resume

        answer_modal(resume)
        dialog.exec()
        return dialog.choice()

    db = open_database(db_path)
    try:
        resume = recover_unfinished(db, clock, "Dr Lee", "live", ask)
    finally:
        db.close()
    assert resume == sid
    [lines] = shown
    info = dict(lines)
    assert info["Patient"] == "P-022" and info["Phase"] == "baseline"
    assert info["Last record"].endswith("(7 min ago)")

    monitor = Monitor(clock, db_path, None, tmp_path / "settings.json", resume=resume, operator="Dr Lee")
    window = build_console(options(db_path, demo=False), monitor)
    qtbot.addWidget(window)
    controls = window.session_controls
    assert isinstance(controls, SessionControls)
    assert "RESUMED" in window.windowTitle()
    assert controls.workflow.phase is Phase.BASELINE  # the same session continues where it was
    texts = controls.log_panel.row_texts()
    assert "Free text — saved just before the kill" in texts
    assert any("resumed after interruption" in t for t in texts)  # the gap is marked
    controls.panel.trigger("nausea")
    window.close()
    asyncio.run(monitor.stop())
    db = open_database(db_path)
    try:
        log = SessionLog(db, clock, sid)
        obs = log.observations()
        assert obs[0].id == oid and obs[-1].code == "nausea"
        assert obs[-1].seq > obs[0].seq
        assert any(e.device == CONSOLE_DEVICE for e in device_events(db, sid))
        stored = get_session(db, sid)
        assert stored is not None and stored.status == "completed"
    finally:
        db.close()


def test_the_recovery_prompt_closes_a_session_as_interrupted(qtbot: QtBot, tmp_path: Path) -> None:
    db_path = tmp_path / "kap.sqlite"
    clock = FakeClock()
    db = open_database(db_path)
    rec = Recorder(db, clock)
    older = rec.begin_session(kind="live")
    rec2 = Recorder(db, clock)
    clock.advance(10)
    newer = rec2.begin_session(kind="live")
    asked: list[tuple[str, bool]] = []

    def ask(unfinished: object, can_resume: bool) -> RecoveryChoice:
        dialog = RecoveryDialog(unfinished, clock.wall(), can_resume=can_resume)  # type: ignore[arg-type]
        qtbot.addWidget(dialog)
        asked.append((dialog.lines[0][1], dialog.resume_button.isEnabled()))
        answer_modal(lambda d: QTest.keyClick(d, Qt.Key.Key_R if can_resume else Qt.Key.Key_C))
        dialog.exec()
        return dialog.choice()

    try:
        assert recover_unfinished(db, clock, "Dr Lee", "live", ask) == newer
        assert asked == [(newer, True), (older, False)]  # newest first; one session resumes at most
        stored = get_session(db, older)
        assert stored is not None and stored.status == "interrupted"
        assert recover_unfinished(db, clock, "Dr Lee", "demo", ask) is None  # other kinds not offered
    finally:
        db.close()
