"""The composition root and command line: wires devices, core and windows; GUI, record, snapshot."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from devices._ble.link import DeviceLink
from devices.registry import roles_available, specs_for_role
from kapmonitor import __version__
from kapmonitor.alarms import AlarmEngine, kap_defaults
from kapmonitor.clock import Clock, ScaledClock, SystemClock
from kapmonitor.session import Session
from kapmonitor.settings import DEFAULT_AUDIO_PAUSE_S, Settings, default_settings_path
from kapmonitor.storage import (
    Database,
    Recorder,
    default_database_path,
    get_session,
    list_sessions,
    open_database,
)

if TYPE_CHECKING:
    from kapmonitor.storage.session_log import UnfinishedSession
    from ui.demo import Demo
    from ui.main_window import MainWindow
    from ui.recovery_dialog import RecoveryChoice
    from ui.session_controls import SessionControls
    from ui.sound import AlarmSound

log = logging.getLogger("kapmonitor")

#: How often Session.tick() runs: staleness watchdog and recorder flush (design.md, data flow).
TICK_PERIOD_S = 0.25


@dataclass
class Options:
    """What the command line asked for."""

    command: str
    demo: bool
    db: Path
    scenario: str
    seed: int
    speed: float
    minutes: float
    after: float
    out: Path | None
    headless: bool
    verbose: bool
    oximeter: str = "viatom"
    operator: str = "operator"
    target: str = ""
    export_format: str = ""
    at: float | None = None
    reviewer: str = ""
    progress: bool = False


class Monitor:
    """A running monitoring pipeline: links → Session → Recorder, with the periodic tick.

    `resume`: the id of an unfinished session to continue (crash recovery) instead of a new one;
    the gap is marked in its log and audited with `operator`, and its recorded trends and BP
    readings are shown again, with a gap up to now.
    """

    def __init__(
        self,
        clock: Clock,
        db_path: Path,
        demo: Demo | None,
        settings_path: Path | None = None,
        *,
        resume: str | None = None,
        operator: str = "operator",
    ) -> None:
        from kapmonitor.storage.session_log import Resumed
        from kapmonitor.storage.session_log import resume as resume_session

        self.clock = clock
        #: remembered devices per role; demo sessions neither use nor change them
        self.settings_path = None if demo is not None else (settings_path or default_settings_path())
        self.settings = Settings.load(self.settings_path) if self.settings_path is not None else None
        self.db_path = db_path
        self.demo = demo
        self.db = open_database(db_path)
        #: the resumed session's recorder, log and workflow (None for a new session)
        self.resumed: Resumed | None = None
        if resume is not None:
            self.resumed = resume_session(self.db, clock, resume, operator)
            self.recorder = self.resumed.recorder
            self.session_id = resume
        else:
            self.recorder = Recorder(self.db, clock)
            self.session_id = self.recorder.begin_session(kind="demo" if demo else "live")
        # the workstation's default alarm limits and pause length, else the KAP defaults of
        # ../shared/reference/alarms.md; a damaged saved preset is never half-applied
        preset, problem = self.settings.alarm_preset() if self.settings is not None else (kap_defaults(), "")
        pause_s = self.settings.audio_pause_s if self.settings is not None else DEFAULT_AUDIO_PAUSE_S
        #: why the saved alarm limits are not in force ("" if they are), for the console to show
        self.alarm_problem = problem
        #: every transition and every operator action on it is recorded
        self.alarms = AlarmEngine(clock, preset, pause_s=pause_s)
        self.session = Session(clock, self.recorder, alarms=self.alarms)
        if problem:
            log.warning("alarm limits: %s", problem)
            self.alarms.audit_setting("system", "alarm_preset_fallback", problem)
        if self.resumed is not None:
            _show_recorded_past(self.session, self.db, self.session_id)
        self.links: list[DeviceLink] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the emulated devices (in demo mode), one device link per role, and the tick."""
        scanner_backend = client_backend = None
        if self.demo is not None:
            scanner_backend, client_backend = await self.demo.start()
        for role in roles_available():
            remembered = self.settings.devices.get(role) if self.settings is not None else None
            self.links.append(
                DeviceLink(
                    specs_for_role(role),
                    self.session,
                    self.clock,
                    scanner_backend=scanner_backend,
                    client_backend=client_backend,
                    address=remembered.address if remembered else None,
                    role=role,
                    on_chosen=self._remember,
                )
            )
        for link in self.links:
            self._tasks.append(asyncio.create_task(link.run(), name=f"link {link.role}"))
        self._tasks.append(asyncio.create_task(self._tick(), name="session tick"))

    def _remember(self, role: str, address: str, name: str) -> None:
        """Keep the device chosen for a role for the next session (not in demo mode)."""
        if (
            self.settings is not None
            and self.settings_path is not None
            and self.settings.remember(role, address, name)
        ):
            self.settings.save(self.settings_path)
            log.info("remembered %s %s (%s) for the next session", role, name, address)

    async def _tick(self) -> None:
        while True:
            try:
                self.session.tick()
            except Exception:  # the tick must keep running: it drives alarms and the recorder
                log.exception("session tick failed")
            await asyncio.sleep(TICK_PERIOD_S)

    async def stop(self, status: Literal["completed", "interrupted"] = "completed") -> None:
        """Stop links and devices, flush everything and close the session record."""
        for link in self.links:
            link.stop()
        tick = self._tasks.pop() if self._tasks else None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10.0)
        for task in self._tasks:
            task.cancel()
        if tick is not None:
            tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick
        self.session.tick()
        self.recorder.end_session(status)
        if self.demo is not None:
            await self.demo.stop()
        self.db.close()


def _show_recorded_past(session: Session, db: Database, session_id: str) -> None:
    """A resumed session: its clock starts at the original start, its recorded SpO2/pulse trends
    and BP readings are shown again, and the trends break (NaN) where the interruption began.

    The monotonic clock may have restarted, so recorded times are placed by wall time (as
    SessionWorkflow.restore does)."""
    import dataclasses

    from kapmonitor.measurements import Param
    from kapmonitor.ringbuffer import RingBuffer
    from kapmonitor.session import TREND_CAPACITY
    from kapmonitor.storage import blood_pressure, numerics

    row = get_session(db, session_id)
    assert row is not None
    now_mono, now_wall = session.clock.monotonic(), session.clock.wall()
    session.started_wall = row.started_utc
    session.started_mono = now_mono - (now_wall - row.started_utc)
    for param in (Param.SPO2, Param.PULSE_RATE, Param.HEART_RATE):
        _mono, wall, value = numerics(db, session_id, param)
        if len(wall):
            buf = session.trends.setdefault(param, RingBuffer(TREND_CAPACITY))
            buf.extend(now_mono - (now_wall - wall), value)
            buf.append(now_mono, None)  # no line across the interruption
    for bp in blood_pressure(db, session_id):
        session.bp_readings.append(dataclasses.replace(bp, mono=now_mono - (now_wall - bp.wall)))


def recover_unfinished(
    db: Database,
    clock: Clock,
    who: str,
    kind: str,
    ask: Callable[[UnfinishedSession, bool], RecoveryChoice],
) -> str | None:
    """Offer each unfinished session of `kind` (newest first): resume one, close others as
    interrupted, or leave them for later. Returns the id to resume, or None for a new session."""
    from kapmonitor.storage.session_log import close_interrupted, unfinished_overview
    from ui.recovery_dialog import RecoveryChoice

    resume: str | None = None
    for unfinished in unfinished_overview(db, kind):
        choice = ask(unfinished, resume is None)
        if choice is RecoveryChoice.RESUME and resume is None:
            resume = unfinished.session.id
        elif choice is RecoveryChoice.CLOSE:
            close_interrupted(db, clock, unfinished.session.id, who)
            log.info("session %s closed as interrupted by %s", unfinished.session.id, who)
    return resume


def _ask_recovery(unfinished: UnfinishedSession, can_resume: bool) -> RecoveryChoice:
    """The start-up recovery prompt (modal: nothing runs yet)."""
    from ui.recovery_dialog import RecoveryDialog

    dialog = RecoveryDialog(unfinished, SystemClock().wall(), can_resume=can_resume)
    dialog.exec()
    return dialog.choice()


def make_clock(opts: Options) -> Clock:
    """The session's clock: the machine's, or in demo mode one that runs at the scenario's speed.

    With --speed the emulated wearables live in scenario time, so the session does too: trends,
    the session clock and the staleness watchdog stay consistent with what the devices send.
    """
    if opts.demo and opts.speed != 1.0:
        return ScaledClock(SystemClock(), opts.speed)
    return SystemClock()


def _make_demo(opts: Options, clock: Clock) -> Demo | None:
    if not opts.demo:
        return None
    from ui.demo import Demo

    return Demo(clock, scenario=opts.scenario, seed=opts.seed, speed=opts.speed, oximeter=opts.oximeter)


# ---------------------------------------------------------------------------- commands
async def record(opts: Options, clock: Clock | None = None) -> str:
    """Run the pipeline without a window for `opts.minutes` of wall time; return the session id."""
    clock = clock or make_clock(opts)
    monitor = Monitor(clock, opts.db, _make_demo(opts, clock))
    print(f"recording session {monitor.session_id} to {opts.db} for {opts.minutes:g} min", flush=True)
    await monitor.start()
    status: Literal["completed", "interrupted"] = "completed"
    try:
        await asyncio.sleep(opts.minutes * 60.0)
    except asyncio.CancelledError:
        status = "interrupted"
        raise
    finally:
        await monitor.stop(status)
    return monitor.session_id


def _run_qt(opts: Options) -> int:
    """GUI and snapshot: one asyncio loop integrated with Qt (qasync), as design.md asks."""
    if opts.command == "snapshot" or opts.headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif (
        sys.platform.startswith("linux")
        and not os.environ.get("QT_QPA_PLATFORM")
        and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    ):
        print(
            "kapmonitor: no display found (DISPLAY and WAYLAND_DISPLAY are unset).\n"
            "  Run it on the workstation's desktop, or without a screen use\n"
            "  `kapmonitor record --demo --headless --minutes M`\n"
            "  or `kapmonitor snapshot --demo --out FILE.png`.",
            file=sys.stderr,
        )
        return 1
    import qasync
    from PySide6.QtWidgets import QApplication

    from ui.sound_process import ProcessAlarmSound

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("kapmonitor")
    # the asyncio loop ends the program, after the session record is closed properly
    app.setQuitOnLastWindowClosed(False)

    async def main() -> int:
        clock = make_clock(opts)
        operator = opts.operator
        resume = None
        if opts.command == "monitor":  # crash recovery: an unfinished session is offered first
            db = open_database(opts.db)
            try:
                kind = "demo" if opts.demo else "live"
                resume = recover_unfinished(db, clock, operator, kind, _ask_recovery)
            finally:
                db.close()
        monitor = Monitor(clock, opts.db, _make_demo(opts, clock), resume=resume, operator=operator)
        sound: ProcessAlarmSound | None = None
        if opts.command != "snapshot":  # a picture needs no sound; the console always does
            sound = ProcessAlarmSound()  # in a child process: a crashing audio stack cannot stop the console
        window = build_console(opts, monitor, sound=sound)
        window.resize(1600, 900)
        closed = asyncio.Event()
        window.closed.connect(closed.set)
        if opts.command == "snapshot":
            window.show()
        else:
            window.showMaximized()  # a bedside console fills its screen
        await monitor.start()
        try:
            if opts.command == "snapshot":
                await asyncio.sleep(opts.after)
                assert opts.out is not None
                window.render_png(opts.out)
                print(f"wrote {opts.out}", flush=True)
            else:
                await closed.wait()
        finally:
            window.close()
            if sound is not None:
                sound.close()
            await monitor.stop()
        print(monitor.session_id, flush=True)
        return 0

    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        return runner.run(main())


def build_console(
    opts: Options, monitor: Monitor, *, sound: AlarmSound | None = None, ask_details: bool | None = None
) -> MainWindow:
    """The console window for a monitor; for `monitor` (not `snapshot`) with the session controls
    and log docked (the new-session dialog asked first unless `ask_details` is False; a demo fills
    it in unless `ask_details` is True)."""
    from ui.main_window import MainWindow

    operator = opts.operator
    window = MainWindow(
        monitor.session,
        sound=sound,
        operator=lambda: operator,
        settings=monitor.settings,
        settings_path=monitor.settings_path,
    )
    window.show_alarm_limits_problem(monitor.alarm_problem)
    if sound is not None:
        sound.check_device()  # no audio output: the audio-failure alarm, shown at once
    if opts.command == "monitor":
        controls = _session_controls(opts, monitor, monitor.clock, operator, ask=ask_details)
        if controls is not None:
            window.add_session_controls(controls)
            controls.close_requested.connect(window.close)
    resumed = " — RESUMED" if monitor.resumed is not None else ""
    window.setWindowTitle(
        f"kapmonitor — session {monitor.session_id}{resumed}" + (" — DEMO" if opts.demo else "")
    )
    return window


def _session_controls(
    opts: Options, monitor: Monitor, clock: Clock, operator: str, *, ask: bool | None = None
) -> SessionControls | None:
    """Ask for the new-session data (a demo fills it in) and build the session controls; a resumed
    session continues its stored data and workflow.

    Without session data (the dialog cancelled) the console still monitors and records; only the
    workflow and the observation keys are left out.
    """
    from kapmonitor.storage.session_log import SessionLog, recent_clinicians, recent_patients
    from kapmonitor.workflow import SessionDetails, SessionWorkflow, TreatmentProtocol
    from ui.session_controls import SessionControls
    from ui.session_dialogs import NewSessionDialog

    folder = opts.db.parent / "reports"
    resumed = monitor.resumed
    if resumed is not None and resumed.workflow is not None:
        return SessionControls(
            monitor.session,
            resumed.workflow,
            resumed.log,
            clock,
            lambda: operator,
            recorder=monitor.recorder,
            report_folder=folder,
        )
    if opts.demo and not ask:
        details: SessionDetails | None = SessionDetails(
            patient="DEMO-001",
            clinicians=(operator,),
            protocol=TreatmentProtocol.ESKETAMINE_IN,
            planned_dose_mg=56.0,
            route="intranasal",
            lot="DEMO-LOT",
        )
    else:  # the clinician enters it; recent patients and clinicians are offered again
        dialog = NewSessionDialog(recent_patients(monitor.db), recent_clinicians(monitor.db))
        details = dialog.details() if dialog.exec() else None
    if details is None:
        log.warning("no session data entered: monitoring without the session workflow")
        return None
    session_log = SessionLog(monitor.db, clock, monitor.session_id, seq=monitor.recorder.next_seq)
    session_log.save_details(details)
    workflow = SessionWorkflow(details, clock)
    return SessionControls(
        monitor.session,
        workflow,
        session_log,
        clock,
        lambda: operator,
        recorder=monitor.recorder,
        report_folder=folder,
    )


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="kapmonitor",
        description="Vital-signs console for KAP sessions. A monitoring aid, not a medical device.",
    )
    parser.add_argument("--version", action="version", version=f"kapmonitor {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--demo", action="store_true", help="use emulated devices on a virtual radio")
    common.add_argument("--db", type=Path, default=None, help="session database (default: user data folder)")
    common.add_argument("--scenario", default="normal", help="emulated scenario (with --demo)")
    common.add_argument("--seed", type=int, default=1, help="scenario seed (with --demo)")
    common.add_argument(
        "--speed", type=float, default=1.0, help="scenario time per wall second (with --demo)"
    )
    common.add_argument(
        "--oximeter",
        choices=["viatom", "berrymed", "plx"],
        default="viatom",
        help="which emulated oximeter protocol (with --demo)",
    )
    common.add_argument(
        "--operator",
        default=None,
        help="who is at the console, for the audit trail (default: the login name)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("monitor", parents=[common], help="open the console (the default)")
    rec = sub.add_parser("record", parents=[common], help="record a session without a window")
    rec.add_argument("--headless", action="store_true", help="no window (the only mode of record)")
    rec.add_argument(
        "--minutes", type=float, required=True, help="wall minutes to record (may be fractional)"
    )
    snap = sub.add_parser("snapshot", parents=[common], help="render the main window to a PNG")
    snap.add_argument("--after", type=float, default=10.0, help="seconds to run before rendering")
    snap.add_argument("--out", type=Path, required=True, help="PNG file to write")
    rep = sub.add_parser("replay", parents=[common], help="replay and review recorded sessions")
    rep.add_argument(
        "target", nargs="?", default="", help="a session id (in --db) or a session file; none: the browser"
    )
    rep.add_argument("--reviewer", default="", help="your name on annotations and verdicts (else asked)")
    rep.add_argument("--at", type=float, default=None, help="with --out: seconds into the session to render")
    rep.add_argument("--out", type=Path, default=None, help="render that instant to a PNG and exit")
    exp = sub.add_parser("export", parents=[common], help="export a recorded session")
    exp.add_argument("target", help="a session id (in --db) or a standalone session file")
    exp.add_argument(
        "--format", required=True, choices=["csv", "csv-zip", "edf", "session", "pdf"], dest="fmt"
    )
    exp.add_argument("--out", type=Path, required=True, help="folder (csv) or file to write")
    exp.add_argument("--progress", action="store_true", help="print 'progress FRACTION STAGE' lines")
    # `kapmonitor --demo` (no sub-command) means `kapmonitor monitor --demo`
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "monitor")
    ns = parser.parse_args(args_list)
    if ns.command == "record" and not ns.headless:
        parser.error("record runs without a window: pass --headless")
    if ns.speed <= 0:
        parser.error("--speed must be positive")
    return Options(
        command=ns.command,
        demo=ns.demo,
        db=ns.db or default_database_path(),
        scenario=ns.scenario,
        seed=ns.seed,
        speed=ns.speed,
        minutes=getattr(ns, "minutes", 0.0),
        after=getattr(ns, "after", 0.0),
        out=getattr(ns, "out", None),
        headless=getattr(ns, "headless", False),
        verbose=ns.verbose,
        oximeter=ns.oximeter,
        operator=ns.operator or _login_name(),
        target=getattr(ns, "target", ""),
        export_format=getattr(ns, "fmt", ""),
        at=getattr(ns, "at", None),
        reviewer=getattr(ns, "reviewer", ""),
        progress=getattr(ns, "progress", False),
    )


def _login_name() -> str:
    try:
        return getpass.getuser() or "operator"
    except (KeyError, OSError):  # no passwd entry (containers)
        return "operator"


def setup_logging(verbose: bool) -> None:
    """Log to stderr; bumble and bleak only at WARNING unless --verbose."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        for noisy in ("bumble", "bleak"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def open_target(target: str, db_path: Path) -> tuple[Database, str]:
    """A session to review: a standalone session file, or a session id in the workstation database."""
    path = Path(target)
    if path.is_file():
        db = open_database(path)
        sessions = list_sessions(db)
        if len(sessions) != 1:
            ids = ", ".join(s.id for s in sessions) or "none"
            db.close()
            raise SystemExit(
                f"kapmonitor: {target} holds {len(sessions)} sessions ({ids}); name one by id with --db"
            )
        return db, sessions[0].id
    db = open_database(db_path)
    if get_session(db, target) is None:
        db.close()
        raise SystemExit(f"kapmonitor: no session {target!r} in {db_path} (and no such file)")
    return db, target


def _print_progress(fraction: float, stage: str) -> None:
    print(f"progress {fraction:.3f} {stage}", flush=True)


def export(opts: Options) -> int:
    """`kapmonitor export`: one session as CSV files, a CSV zip, EDF+, a PDF report or a session file."""
    from kapmonitor.export import export_csv, export_csv_zip, export_edf, export_session_file

    db, session_id = open_target(opts.target, opts.db)
    assert opts.out is not None
    progress = _print_progress if opts.progress else None
    try:
        if opts.export_format == "csv":
            written = export_csv(db, session_id, opts.out, progress=progress)
            print("\n".join(str(p) for p in written))
        elif opts.export_format == "csv-zip":
            print(export_csv_zip(db, session_id, opts.out, progress=progress))
        elif opts.export_format == "edf":
            export_edf(db, session_id, opts.out, progress=progress)
            print(opts.out)
        elif opts.export_format == "pdf":
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # a PDF needs fonts, not a display
            from PySide6.QtGui import QGuiApplication

            from kapmonitor.export.report_data import report_data
            from ui.report_pdf import write_report_pdf

            _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
            if progress:
                progress(0.0, "reading")
            data = report_data(db, session_id, SystemClock())
            if progress:
                progress(0.4, "drawing")
            print(write_report_pdf(data, opts.out))
            if progress:
                progress(1.0, "done")
        else:
            counts = export_session_file(db, session_id, opts.out, progress=progress)
            print(f"{opts.out}: " + ", ".join(f"{n} {t}" for t, n in counts.items() if n))
    except (FileExistsError, KeyError) as exc:
        raise SystemExit(f"kapmonitor: {exc}") from exc
    finally:
        db.close()
    return 0


def replay(opts: Options) -> int:
    """`kapmonitor replay`: the session browser, a recorded session to review, or one instant as a PNG."""
    if opts.out is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        if not opts.target:
            raise SystemExit("kapmonitor: replay --out renders one session: name it (id or file)")
    from PySide6.QtWidgets import QApplication

    from ui.review_panel import Reviewer
    from ui.session_browser import ReplayLauncher, SessionBrowser

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    launcher = ReplayLauncher(Reviewer(opts.reviewer), SystemClock())
    if not opts.target:
        browser = SessionBrowser(opts.db, launcher)
        browser.resize(1500, 800)
        browser.show()
        code = app.exec()
        launcher.close_all()
        browser.close()
        return int(code)
    db, session_id = open_target(opts.target, opts.db)
    window = launcher.open(db, session_id)
    if opts.out is not None:
        window.show()
        window.fit_monitor()  # the monitor screen at its design size, 1600 x 900
        window.seek(opts.at if opts.at is not None else window.replay.duration)
        window.frame()
        window.monitor.render_png(opts.out)  # the monitor screen at that instant
        print(opts.out)
        launcher.close_all()
        return 0
    window.showMaximized()
    code = app.exec()
    launcher.close_all()
    return int(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kapmonitor` command."""
    opts = parse_args(argv)
    setup_logging(opts.verbose)
    if opts.command == "export":
        return export(opts)
    if opts.command == "replay":
        return replay(opts)
    if opts.command == "record":
        session_id = asyncio.run(record(opts))
        print(session_id, flush=True)
        return 0
    return _run_qt(opts)


if __name__ == "__main__":
    raise SystemExit(main())
