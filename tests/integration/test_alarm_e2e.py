"""End to end: an emulated desaturation through bleak, the console's alarm bar, sound heard on a null sink,
audio pause and acknowledge at the keyboard, and the audit rows in the SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from devices._ble.bumble_backend import bumble_backends
from devices._ble.link import DeviceLink
from devices.emulated.plx_oximeter import EmulatedPlxOximeter
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import Desaturation, Scenario
from devices.plx.driver import plx_spec
from kapmonitor.alarms import AlarmEngine, Priority, Transition, TransitionEvent, kap_defaults
from kapmonitor.clock import ScaledClock, SystemClock
from kapmonitor.measurements import Param
from kapmonitor.session import AlarmChanged, Session, SessionEvent
from kapmonitor.storage import Recorder, alarm_events, audit_entries, open_database
from tests import audio_support as audio
from tests.ui.test_alarm_sound import EXPECTED, IN_BURST_TOL_MS, LATENCY_BUDGET_MS
from ui.alarm_bar import FLASH_PERIOD_S, PRIORITY_BG
from ui.main_window import MainWindow
from ui.sound import BURST_MS
from ui.sound_process import STARTUP_TIMEOUT_MS, ProcessAlarmSound

#: Scenario seconds per wall second, for the emulator and the console's clock alike. The sound is real
#: time: at 12x the medium alarm sounds for ~3 wall seconds (~36 scenario seconds at this fall rate)
#: before the high one, time for its whole 0.9 s burst and an audio pause in between.
SPEED = 12.0
#: SpO2 falls 0.1 %/s from 40 s (the stock desaturation: 0.25 %/s from 120 s). The slower fall keeps the
#: medium alarm alone long enough to be heard and paused; the default 120 s sensor hold-off is exercised
#: by tests/integration/test_alarm_path.py, here it is 30 s so the fall starts after it.
DESATURATION = Desaturation(start_s=40.0, fall_per_s=0.1)
HOLD_OFF_S = 30.0
OPERATOR = "RN Okafor"
#: Wall seconds within which something the devices or the console do must have happened.
WAIT_S = 30.0
#: A stop()/pause reaches the sink within this time: the child's pipe hop plus the sink's buffering.
SILENCE_AFTER_S = 0.15
HIGH, MEDIUM = Priority.HIGH, Priority.MEDIUM
#: The transitions of the operator's actions the test waits for.
OPERATOR_EVENTS = (TransitionEvent.PAUSE_STARTED, TransitionEvent.PAUSE_ENDED, TransitionEvent.ACKNOWLEDGED)


@dataclass(frozen=True)
class Seen:
    """An alarm raise as the console saw it: scenario time, wall time, and the bar and tile right after."""

    mono: float
    at: float
    bar_text: str
    bar_priority: Priority | None
    bar_colour: str
    flash_period_s: float | None
    tile_priority: object
    paused: bool


@dataclass
class Watch:
    """What the test sees of the session's alarm events. `before` is subscribed before the window (the
    wall time of a raise, before the console reacts), `after` after it (the bar has taken it)."""

    window: MainWindow | None = None
    raised_at: dict[Priority, float] = field(default_factory=dict)
    seen: dict[Priority, Seen] = field(default_factory=dict)
    raised: dict[Priority, asyncio.Event] = field(default_factory=dict)
    # the operator's actions as the engine took them, with the wall time (a button's key shortcut
    # clicks ~100 ms after the key: QAbstractButton.animateClick)
    actions: dict[TransitionEvent, asyncio.Event] = field(default_factory=dict)
    times: dict[TransitionEvent, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.raised = {p: asyncio.Event() for p in (Priority.MEDIUM, Priority.HIGH)}
        self.actions = {e: asyncio.Event() for e in OPERATOR_EVENTS}

    def before(self, event: SessionEvent) -> None:
        t = _spo2_raise(event)
        if t is not None and t.priority is not None:
            self.raised_at.setdefault(t.priority, audio.now())

    def after(self, event: SessionEvent) -> None:
        if not isinstance(event, AlarmChanged):
            return
        t = event.transition
        if t.event in self.actions and (t.event is not TransitionEvent.ACKNOWLEDGED or t.priority is HIGH):
            self.times.setdefault(t.event, audio.now())
            self.actions[t.event].set()
        if _spo2_raise(event) is None or t.priority is None or t.priority in self.seen:
            return
        window = self.window
        assert window is not None and window.alarm_bar is not None and window.session.alarms is not None
        bar = window.alarm_bar
        self.seen[t.priority] = Seen(
            mono=t.mono,
            at=self.raised_at[t.priority],
            bar_text=bar.main_text(),
            bar_priority=bar.shown_priority(),
            bar_colour=bar.background_colour(),
            flash_period_s=bar.flash_period_s(),
            tile_priority=window.tiles[Param.SPO2].property("alarmPriority"),
            paused=window.session.alarms.is_paused(),
        )
        if t.priority in self.raised:
            self.raised[t.priority].set()

    async def raise_of(self, priority: Priority) -> Seen:
        await asyncio.wait_for(self.raised[priority].wait(), WAIT_S)
        return self.seen[priority]

    async def action(self, event: TransitionEvent) -> float:
        await asyncio.wait_for(self.actions[event].wait(), WAIT_S)
        return self.times[event]


def _spo2_raise(event: SessionEvent) -> Transition | None:
    if isinstance(event, AlarmChanged):
        t = event.transition
        if t.event is TransitionEvent.RAISED and t.param is Param.SPO2 and t.priority is not None:
            return t
    return None


@pytest.fixture
def pulse_server(tmp_path: Path) -> Iterator[audio.PulseServer]:
    server = audio.PulseServer(tmp_path / "pulse")
    try:
        server.start()
    except audio.AudioSetupError as error:
        pytest.fail(f"the alarm end-to-end test needs a PulseAudio null sink; it could not start: {error}")
    yield server
    server.stop()


@pytest.fixture
def capture(pulse_server: audio.PulseServer, qtbot: QtBot) -> Iterator[audio.Capture]:
    cap = audio.Capture(pulse_server)
    cap.start()
    qtbot.waitUntil(cap.receiving, timeout=10_000)
    yield cap
    cap.stop()


async def covered(cap: audio.Capture, t: float) -> None:
    """Wait until the sink has had everything played up to wall time t (the Qt loop keeps running)."""
    if not await asyncio.to_thread(cap.wait_covered, t, WAIT_S):
        raise AssertionError(f"the null sink's capture did not reach t={t:.3f} within {WAIT_S} s")


def pulses_between(cap: audio.Capture, t0: float, t1: float) -> list[audio.Pulse]:
    """The pulses heard on the sink between wall times t0 and t1, their times from t0."""
    return audio.find_pulses(cap.samples()[cap.index_at(t0) : cap.index_at(t1)])


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / audio.RATE)[int(np.argmax(spectrum))])


def assert_burst(cap: audio.Capture, t0: float, pulses: list[audio.Pulse], priority: str) -> None:
    """Pulse count, spacing (IEC rhythm, tests/ui/test_alarm_sound.py) and tone of one burst."""
    onsets, _, _, f0 = EXPECTED[priority]
    assert len(pulses) == len(onsets), f"{priority}: {[round(p.onset_s * 1000) for p in pulses]} ms"
    first = pulses[0].onset_s
    assert [(p.onset_s - first) * 1000 for p in pulses] == pytest.approx(onsets, abs=IN_BURST_TOL_MS)
    samples = cap.samples()
    start = cap.index_at(t0)
    for p in pulses:
        segment = samples[start + int(p.onset_s * audio.RATE) : start + int(p.end_s * audio.RATE)]
        assert dominant_hz(segment) == pytest.approx(f0, abs=15)


def press(window: MainWindow, key: Qt.Key) -> None:
    """A single key at the console, as the clinician would press it."""
    QTest.keyClick(window, key)


def run_on_qt_loop(app: QApplication, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """One asyncio loop integrated with Qt, as the console runs (ui/app.py)."""
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        runner.run(main())


@pytest.mark.slow
def test_desaturation_sounds_and_shows_medium_then_high_pause_and_acknowledge_are_audited(
    qtbot: QtBot, qapp: QApplication, tmp_path: Path, pulse_server: audio.PulseServer, capture: audio.Capture
) -> None:
    clock = ScaledClock(SystemClock(), SPEED)
    db = open_database(tmp_path / "alarm.sqlite")
    recorder = Recorder(db, clock)
    sid = recorder.begin_session(kind="demo")
    engine = AlarmEngine(clock, kap_defaults(), hold_off_s=HOLD_OFF_S)
    session = Session(clock, recorder, alarms=engine)
    watch = Watch()
    session.subscribe(watch.before)

    sound = ProcessAlarmSound(environment=pulse_server.env())  # its child plays on the test's sink
    with qtbot.waitSignal(sound.ready, timeout=STARTUP_TIMEOUT_MS):
        pass
    failures: list[str] = []
    sound.failed.connect(failures.append)
    window = MainWindow(session, sound=sound, operator=lambda: OPERATOR)
    watch.window = window
    session.subscribe(watch.after)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitActive(window)  # the bar's keys are window shortcuts: they work in the active window
    assert sound.check_device()

    async def main() -> None:
        async with VirtualRadio() as radio:
            scenario = Scenario("slow desaturation", 4, [DESATURATION])
            oximeter = EmulatedPlxOximeter(radio, scenario, speed=SPEED, advertising_interval_ms=20)
            await oximeter.start()
            scanner, client = bumble_backends(radio)
            link = DeviceLink(plx_spec(), session, clock, scanner_backend=scanner, client_backend=client)
            link_task = asyncio.create_task(link.run())

            async def ticker() -> None:  # the console's periodic tick (as ui/app.py's Monitor)
                while True:
                    session.tick()
                    await asyncio.sleep(0.01)  # 0.12 scenario-seconds: finer than the 1 s samples

            tick_task = asyncio.create_task(ticker())
            try:
                await _clinician(watch, window, sound, capture, tmp_path / "high.png")
            finally:
                link.stop()
                await asyncio.wait_for(link_task, 10)
                tick_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tick_task

    try:
        run_on_qt_loop(qapp, main)
    finally:
        window.close()
        sound.close()
    recorder.flush()
    assert failures == []
    medium, high = watch.seen[MEDIUM], watch.seen[HIGH]

    # -- the right moments: medium 10 s after SpO2 fell below 90 % and stayed there; high at once < 85 %
    t, v = session.trends[Param.SPO2].arrays()
    t, v = t[~np.isnan(v)], v[~np.isnan(v)]
    assert medium.mono < high.mono
    last_at_or_above_90 = float(t[(t <= medium.mono) & (v >= 90)][-1])
    run_start = float(t[(t > last_at_or_above_90) & (v < 90)][0])
    first_below_85 = float(t[v < 85][0])
    # alarms.md: SpO2 < 90 %: medium, 10 s; SpO2 < 85 %: high, 0 s. Samples come once a scenario
    # second, so the condition may have begun up to 1 s before its first sample showed it.
    assert 9.0 <= medium.mono - run_start <= 10.0 + 0.5
    assert 0.0 <= high.mono - first_below_85 <= 0.5

    # -- the bar and the SpO2 tile at each raise (marker, colour, flash rate; colour is not the only cue)
    assert medium.bar_text.startswith("** SpO2 < 90 %")
    assert (medium.bar_priority, medium.bar_colour) == (MEDIUM, PRIORITY_BG[MEDIUM])
    assert medium.flash_period_s == FLASH_PERIOD_S[MEDIUM]
    assert medium.tile_priority == "medium"
    assert high.bar_text.startswith("*** SpO2 < 85 %")
    assert (high.bar_priority, high.bar_colour) == (HIGH, PRIORITY_BG[HIGH])
    assert high.flash_period_s == FLASH_PERIOD_S[HIGH]
    assert high.tile_priority == "high"
    assert high.paused, "the high alarm came during the audio pause (it must break through)"

    # -- the sound on the sink
    paused_at = watch.times[TransitionEvent.PAUSE_STARTED]
    acked_at = watch.times[TransitionEvent.ACKNOWLEDGED]
    medium_pulses = pulses_between(capture, medium.at, paused_at)
    assert_burst(capture, medium.at, medium_pulses, "medium")
    assert medium_pulses[0].onset_s * 1000 <= LATENCY_BUDGET_MS, "medium: raise to sound"
    # paused: nothing from shortly after the pause took effect until the high alarm broke through
    quiet = capture.samples()[capture.index_at(paused_at + SILENCE_AFTER_S) : capture.index_at(high.at)]
    assert quiet.size > audio.RATE // 2 and audio.first_sound(quiet) is None, "sound during the pause"
    high_pulses = pulses_between(capture, high.at, high.at + (BURST_MS["high"] + 400) / 1000)
    assert_burst(capture, high.at, high_pulses, "high")
    assert high_pulses[0].onset_s * 1000 <= LATENCY_BUDGET_MS, "high: raise to sound (breakthrough)"
    # acknowledged: silent from shortly after on (the pause had been cancelled before)
    after_ack = capture.samples()[capture.index_at(acked_at + SILENCE_AFTER_S) :]
    assert after_ack.size > audio.RATE and audio.first_sound(after_ack) is None, "sound after acknowledge"
    print(
        f"raise to first pulse on the sink: medium {medium_pulses[0].onset_s * 1000:.0f} ms, "
        f"high {high_pulses[0].onset_s * 1000:.0f} ms"
    )

    # -- the record in the SQLite file: alarm transitions with values, operator actions with who
    rows = [r for r in alarm_events(db, sid) if r.param == "spo2"]
    raised = [r for r in rows if r.event == "raised"]
    assert [r.priority for r in raised[:2]] == ["medium", "high"]
    assert raised[0].value is not None and raised[0].value < 90
    assert raised[1].value is not None and raised[1].value < 85
    assert {r.priority for r in rows if r.event == "acknowledged"} == {"medium", "high"}
    audit = [(a.who, a.action) for a in audit_entries(db, sid)]
    assert audit == [
        (OPERATOR, "audio_pause"),
        (OPERATOR, "audio_pause_cancel"),
        (OPERATOR, "acknowledge"),
    ]
    recorder.end_session()
    db.close()


async def _clinician(
    watch: Watch, window: MainWindow, sound: ProcessAlarmSound, cap: audio.Capture, shot: Path
) -> None:
    """The clinician's part: hear the medium burst, pause (F2), hear the high one break through, resume
    (F2), acknowledge (Space)."""
    bar = window.alarm_bar
    engine = window.session.alarms
    assert bar is not None and engine is not None
    medium = await watch.raise_of(MEDIUM)
    assert sound.sounding() == "medium"
    await covered(cap, medium.at + (BURST_MS["medium"] + 150) / 1000)
    assert HIGH not in watch.seen, "the high alarm came before the medium burst was heard: lower SPEED"
    press(window, Qt.Key.Key_F2)
    await watch.action(TransitionEvent.PAUSE_STARTED)
    assert engine.is_paused() and bar.pause_text().startswith("AUDIO PAUSED ")
    assert bar.pause_button.text() == "Resume audio (F2)"
    assert not sound.is_playing()
    high = await watch.raise_of(HIGH)
    assert sound.sounding() == "high"
    assert bar.pause_text().startswith("AUDIO PAUSED "), "the countdown stays while the high breaks through"
    await covered(cap, high.at + (BURST_MS["high"] + 400) / 1000)
    window.render_png(shot)  # looked at by hand: the bar red with *** and the countdown, the tile framed
    press(window, Qt.Key.Key_F2)  # resume: the pause is cancelled, the high alarm keeps sounding
    await watch.action(TransitionEvent.PAUSE_ENDED)
    assert not engine.is_paused() and bar.pause_text() == ""
    assert sound.sounding() == "high"
    assert bar.ack_button.isEnabled()
    press(window, Qt.Key.Key_Space)
    acked_at = await watch.action(TransitionEvent.ACKNOWLEDGED)
    assert not sound.is_playing()
    assert bar.main_text().startswith("*** SpO2 < 85 %") and bar.main_text().endswith("[ACK]")
    assert not bar.ack_button.isEnabled()
    await covered(cap, acked_at + 1.5)
