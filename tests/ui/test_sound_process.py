"""Alarm sound in a child process: heard on a PulseAudio null sink, and the console outlives its crashes."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from kapmonitor.alarms import AlarmEngine, AlarmKind, Priority, TechnicalCondition, kap_defaults
from kapmonitor.clock import FakeClock
from kapmonitor.session import Session
from kapmonitor.storage import Recorder, open_database
from tests import audio_support as audio
from tests.ui.test_alarm_sound import EXPECTED, IN_BURST_TOL_MS, LATENCY_BUDGET_MS
from ui.main_window import AUDIO_SOURCE, MainWindow
from ui.sound import BURST_MS, LIVENESS_PERIOD_MS, MIN_VOLUME_PERCENT, STALL_MARGIN_MS
from ui.sound_process import REPLY_TIMEOUT_MS, RESTART_DELAYS_MS, STARTUP_TIMEOUT_MS, ProcessAlarmSound

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
MakeSound = Callable[[dict[str, str]], ProcessAlarmSound]

# SIGKILL of the child to failed(): QProcess sees the exit at once; 1 s is the brief's bound.
KILL_TO_FAILED_S = 1.0
# With no audio device, play() to failed() through the child: the in-process player answers within
# 0.1 s (test_alarm_sound); the hop adds a pipe write and a line back.
NO_DEVICE_FAILED_S = 0.2
# After the PulseAudio server dies the failure shows within one check of the server by the player
# (LIVENESS_PERIOD_MS; or at once when the child aborts in libpulse), mid-burst or between bursts,
# instead of the high burst's stall (2.84 s file + STALL_MARGIN_MS, 4.6-5.0 s measured before).
# Measured: see the README figures; allowed: one period plus 500 ms for timers and the pipe hop.
SERVER_DEATH_TO_FAILED_MS = LIVENESS_PERIOD_MS + 500


@pytest.fixture(scope="module")
def pulse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[audio.PulseServer]:
    server = _start_server(tmp_path_factory.mktemp("pulse"))
    yield server
    server.stop()


def _start_server(root: Path) -> audio.PulseServer:
    server = audio.PulseServer(root)
    try:
        server.start()
    except audio.AudioSetupError as error:
        pytest.fail(f"the alarm-sound tests need a PulseAudio null sink and could not start one: {error}")
    return server


def _start_capture(qtbot: QtBot, server: audio.PulseServer) -> audio.Capture:
    cap = audio.Capture(server)
    cap.start()
    qtbot.waitUntil(cap.receiving, timeout=10_000)
    return cap


@pytest.fixture
def capture(pulse_server: audio.PulseServer, qtbot: QtBot) -> Iterator[audio.Capture]:
    cap = _start_capture(qtbot, pulse_server)
    yield cap
    cap.stop()


@pytest.fixture
def make_sound(qtbot: QtBot) -> Iterator[MakeSound]:
    """Builds a ProcessAlarmSound whose child uses `env`, and returns it once the child is ready."""
    made: list[ProcessAlarmSound] = []

    def make(env: dict[str, str]) -> ProcessAlarmSound:
        sound = ProcessAlarmSound(environment=env)
        made.append(sound)
        with qtbot.waitSignal(sound.ready, timeout=STARTUP_TIMEOUT_MS):
            pass
        return sound

    yield make
    for sound in made:
        sound.close()
        assert sound.pid() == 0


def _failures(sound: ProcessAlarmSound) -> list[tuple[float, str]]:
    """Every failed() from now on, with its perf_counter time."""
    seen: list[tuple[float, str]] = []
    sound.failed.connect(lambda reason: seen.append((audio.now(), reason)))
    return seen


def _covered(cap: audio.Capture, t: float) -> bool:
    return bool(cap.arrivals) and cap.arrivals[-1][0] > t


def _wait_covered(qtbot: QtBot, cap: audio.Capture, t: float) -> None:
    qtbot.waitUntil(lambda: _covered(cap, t), timeout=2000)


def _first_sound_after(cap: audio.Capture, t: float) -> int | None:
    return audio.first_sound(cap.samples(), cap.index_at(t))


def _first_burst(qtbot: QtBot, cap: audio.Capture, t0: float, priority: str) -> list[audio.Pulse]:
    """Waits until the sink has had the whole burst started after t0; returns its pulses (times from t0)."""
    end = t0 + (BURST_MS[priority] + 400) / 1000
    qtbot.waitUntil(lambda: _covered(cap, end), timeout=10_000)
    samples = cap.samples()[cap.index_at(t0) : cap.index_at(end)]
    return audio.find_pulses(samples)


def _assert_burst(pulses: list[audio.Pulse], priority: str) -> None:
    onsets, _, _, _ = EXPECTED[priority]
    assert len(pulses) == len(onsets), [round(p.onset_s * 1000) for p in pulses]
    first = pulses[0].onset_s
    assert [(p.onset_s - first) * 1000 for p in pulses] == pytest.approx(onsets, abs=IN_BURST_TOL_MS)


@pytest.mark.slow
def test_high_burst_played_through_the_child_is_heard(
    qtbot: QtBot, pulse_server: audio.PulseServer, capture: audio.Capture, make_sound: MakeSound
) -> None:
    sound = make_sound(pulse_server.env())
    failures = _failures(sound)
    with qtbot.waitSignal(sound.sounding_changed, timeout=1000) as blocker:
        t_play = audio.now()
        sound.play("high")
    assert blocker.args == ["high"]
    pulses = _first_burst(qtbot, capture, t_play, "high")
    sound.stop()
    _assert_burst(pulses, "high")
    # the first pulse reaches the sink within the alarm-signal budget, through the extra process hop
    assert pulses[0].onset_s * 1000 <= LATENCY_BUDGET_MS
    assert failures == []
    assert not sound.is_playing()


@pytest.mark.slow
def test_killing_the_child_raises_failed_then_it_restarts_and_sounds_again(
    qtbot: QtBot, pulse_server: audio.PulseServer, capture: audio.Capture, make_sound: MakeSound
) -> None:
    sound = make_sound(pulse_server.env())
    sound.play("high")
    t_play = audio.now()
    qtbot.waitUntil(lambda: _first_sound_after(capture, t_play) is not None, timeout=2000)
    pid = sound.pid()
    assert pid > 0
    with qtbot.waitSignal(sound.failed, timeout=round(KILL_TO_FAILED_S * 1000)) as failed:
        t_kill = audio.now()
        os.kill(pid, signal.SIGKILL)
    assert audio.now() - t_kill < KILL_TO_FAILED_S
    assert str(failed.args[0]).startswith("alarm sound process ended: it crashed")
    # the alarm is still wanted; a new child takes it up after the first back-off step
    assert sound.is_playing()
    with qtbot.waitSignal(sound.ready, timeout=RESTART_DELAYS_MS[0] + STARTUP_TIMEOUT_MS):
        pass
    assert sound.pid() not in (0, pid)
    t_ready = audio.now()
    _assert_burst(_first_burst(qtbot, capture, t_ready, "high"), "high")
    sound.stop()


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))
def test_the_console_outlives_the_audio_server_dying_mid_alarm(
    qtbot: QtBot, tmp_path: Path, make_sound: MakeSound, trial: int
) -> None:
    # In-process, Qt 6.12 aborts the whole process in libpulse here in about 1 of 3 trials
    # ("Assertion 'c' failed at context.c:1087"); this process (the console) must just get failed().
    server = _start_server(tmp_path / "pulse")
    cap = _start_capture(qtbot, server)
    try:
        sound = make_sound(server.env())
        failures = _failures(sound)
        t_play = audio.now()
        sound.play("high")
        qtbot.waitUntil(lambda: _first_sound_after(cap, t_play) is not None, timeout=2000)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=5)
        t_dead = audio.now()
        qtbot.waitUntil(lambda: bool(failures), timeout=SERVER_DEATH_TO_FAILED_MS)
        print(f"trial {trial}: after {1000 * (failures[0][0] - t_dead):.0f} ms: {failures[0][1]}")
        # still running: the alarm channel keeps working and answers the next alarm with a failure
        # (no server to play on), promptly, instead of the console having gone
        if sound.is_playing():
            sound.stop()
        qtbot.waitUntil(lambda: sound.pid() > 0, timeout=RESTART_DELAYS_MS[-1] + STARTUP_TIMEOUT_MS)
        with qtbot.waitSignal(sound.ready, timeout=STARTUP_TIMEOUT_MS, raising=False):
            pass  # a restarted child may still be starting; already-ready children emit nothing more
        seen = len(failures)
        t_again = audio.now()
        sound.play("medium")
        qtbot.waitUntil(lambda: len(failures) > seen, timeout=STARTUP_TIMEOUT_MS)
        assert failures[-1][0] - t_again < STARTUP_TIMEOUT_MS / 1000
        assert not sound.is_playing() or "process ended" in failures[-1][1]
    finally:
        cap.stop()
        server.stop()


def test_without_an_audio_device_failed_comes_promptly(
    qtbot: QtBot, tmp_path: Path, make_sound: MakeSound
) -> None:
    server = audio.PulseServer(tmp_path)  # never started: its socket does not exist
    sound = make_sound(server.env())
    pid = sound.pid()
    failures = _failures(sound)
    t_play = audio.now()
    sound.play("high")
    sound.check_device()
    qtbot.waitUntil(lambda: bool(failures), timeout=1000)
    at, reason = failures[0]
    assert at - t_play < NO_DEVICE_FAILED_S
    assert "no audio output" in reason
    assert not sound.is_playing()
    assert sound.pid() == pid  # not replaced: a new child would find no output either


@pytest.mark.slow
def test_a_child_whose_output_stalls_is_replaced_but_the_failure_is_not_declared_over_at_once(
    qtbot: QtBot, tmp_path: Path, make_sound: MakeSound
) -> None:
    # a suspended sink: the server is there and the output listed, but nothing is consumed (as a hung
    # device). Each new child finds the output and stalls again: the alarm must stay up throughout,
    # not clear with every replacement and come back a burst later.
    server = _start_server(tmp_path / "pulse")
    try:
        sound = make_sound(server.env())
        said: list[tuple[str, int]] = []
        sound.failed.connect(lambda reason: said.append((reason, sound.pid())))
        recovered: list[bool] = []
        sound.recovered.connect(lambda: recovered.append(True))
        first = sound.pid()
        server.suspend_sink(True)
        sound.play("high")
        stall_ms = BURST_MS["high"] + 100 + STALL_MARGIN_MS + 1000  # file length, then the watchdog
        qtbot.waitUntil(lambda: bool(said), timeout=stall_ms)
        assert "stalled" in said[0][0] or "did not start" in said[0][0], said
        assert said[0][1] == 0  # the child that had an output was replaced
        with qtbot.waitSignal(sound.ready, timeout=RESTART_DELAYS_MS[0] + STARTUP_TIMEOUT_MS):
            pass
        assert sound.pid() not in (0, first)
        assert sound.is_playing()  # the alarm went on to the new child
        qtbot.waitUntil(lambda: len(said) > 1, timeout=stall_ms)  # which stalls in turn
        assert said[1][1] == 0
        assert recovered == []  # never declared over: the new children found an output, not a working one
    finally:
        server.stop()


def test_a_child_that_found_no_output_is_replaced_when_a_server_appears(
    qtbot: QtBot, tmp_path: Path, make_sound: MakeSound
) -> None:
    server = audio.PulseServer(tmp_path / "pulse")  # not started yet
    sound = make_sound(server.env())
    assert "no audio output" in sound.last_failure()  # it was asked at once whether it has an output
    waiting = sound.pid()
    recovered: list[float] = []
    sound.recovered.connect(lambda: recovered.append(audio.now()))
    try:
        server.start()
        t_up = audio.now()
        # the child's next check of the server (LIVENESS_PERIOD_MS), the first back-off step, a start
        qtbot.waitUntil(
            lambda: bool(recovered), timeout=LIVENESS_PERIOD_MS + RESTART_DELAYS_MS[0] + STARTUP_TIMEOUT_MS
        )
        print(f"server up to recovered(): {(recovered[0] - t_up) * 1000:.0f} ms")
        assert sound.pid() not in (0, waiting)
        assert sound.check_device()
    finally:
        sound.close()
        server.stop()


def test_a_child_that_stops_answering_is_replaced(
    qtbot: QtBot, tmp_path: Path, make_sound: MakeSound
) -> None:
    sound = make_sound(audio.PulseServer(tmp_path).env())
    pid = sound.pid()
    os.kill(pid, signal.SIGSTOP)  # hung: alive, but it reads and answers nothing
    with qtbot.waitSignal(sound.failed, timeout=REPLY_TIMEOUT_MS + 1000) as failed:
        t_volume = audio.now()
        assert sound.set_volume(0) == MIN_VOLUME_PERCENT
    assert audio.now() - t_volume >= REPLY_TIMEOUT_MS / 1000 * 0.9
    assert failed.args == [
        f"alarm sound process ended: it did not answer 'volume 20' within {REPLY_TIMEOUT_MS} ms"
    ]
    with qtbot.waitSignal(sound.ready, timeout=RESTART_DELAYS_MS[0] + STARTUP_TIMEOUT_MS):
        pass
    assert sound.pid() not in (0, pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the hung child was killed, not left behind


def test_unknown_priority_is_refused_in_the_console(tmp_path: Path, make_sound: MakeSound) -> None:
    sound = make_sound(audio.PulseServer(tmp_path).env())
    with pytest.raises(ValueError, match="unknown alarm priority"):
        sound.play("urgent")
    assert not sound.is_playing()


@pytest.mark.slow
def test_play_to_sound_latency_through_the_child(
    qtbot: QtBot, pulse_server: audio.PulseServer, capture: audio.Capture, make_sound: MakeSound
) -> None:
    sound = make_sound(pulse_server.env())
    plays = 20
    t_plays = []
    for _ in range(plays):
        t_play = audio.now()
        sound.play("high")
        t_plays.append(t_play)
        # stop in the gap after the first pulse, as the in-process measurement does
        _wait_covered(qtbot, capture, t_play + 0.15)
        sound.stop()
        _wait_covered(qtbot, capture, audio.now() + 0.15)
    samples = capture.samples()
    latencies_ms = []
    for t_play in t_plays:
        index = audio.first_sound(samples, capture.index_at(t_play))
        assert index is not None, "a play() produced no sound"
        latencies_ms.append((capture.sample_time(index) - t_play) * 1000)
    p50, p99 = np.percentile(latencies_ms, [50, 99])
    print(f"play() through the child to the sink, {plays} plays: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    assert p99 <= LATENCY_BUDGET_MS


class _Console:
    """A console window on a real session (SQLite file, fake clock) with `sound` as its alarm sound."""

    def __init__(self, qtbot: QtBot, tmp_path: Path, sound: ProcessAlarmSound) -> None:
        self.clock = FakeClock()
        self.db = open_database(tmp_path / "sessions.sqlite")
        self.recorder = Recorder(self.db, self.clock)
        self.recorder.begin_session(kind="live")
        self.engine = AlarmEngine(self.clock, kap_defaults())
        self.session = Session(self.clock, self.recorder, alarms=self.engine)
        self.window = MainWindow(self.session, sound=sound, operator=lambda: "Dr Ada")
        qtbot.addWidget(self.window)
        self.window.resize(1600, 900)
        self.window.show()

    def failing(self) -> bool:
        return self.engine.technical_active(TechnicalCondition.AUDIO_FAILURE, AUDIO_SOURCE)

    def close(self) -> None:
        self.window.close()
        self.recorder.end_session("completed")
        self.db.close()


@pytest.mark.slow
def test_audio_failure_clears_once_a_restarted_child_works(
    qtbot: QtBot,
    tmp_path: Path,
    pulse_server: audio.PulseServer,
    make_sound: MakeSound,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sound = make_sound(pulse_server.env())
    console = _Console(qtbot, tmp_path, sound)
    bar = console.window.alarm_bar
    assert bar is not None
    try:
        recovered: list[float] = []
        sound.recovered.connect(lambda: recovered.append(audio.now()))
        pid = sound.pid()
        with qtbot.waitSignal(sound.failed, timeout=round(KILL_TO_FAILED_S * 1000)):
            os.kill(pid, signal.SIGKILL)
        assert console.failing()
        assert bar.failure_text().startswith("AUDIO FAILURE — WATCH THE SCREEN (alarm sound process ended")
        assert bar.shown_priority() is Priority.HIGH
        assert recovered == []  # failed, not yet proven working

        caplog.set_level(logging.WARNING, logger="ui.main_window")
        with qtbot.waitSignal(sound.recovered, timeout=RESTART_DELAYS_MS[0] + STARTUP_TIMEOUT_MS):
            pass
        assert sound.pid() not in (0, pid)
        assert not console.failing()
        assert bar.failure_text() == ""
        assert bar.main_text() == "No active alarms"
        (alarm,) = [a for a in console.engine.history() if a.kind is AlarmKind.TECHNICAL]
        assert alarm.message == "ALARM AUDIO FAILURE: audio"
        assert alarm.cleared_wall is not None and alarm.cleared_reason == "condition ended"
        assert "alarm sound works again: audio-failure alarm cleared" in caplog.text

        # the volume notice on a working channel, for the README picture
        sound.set_volume(0)
        if os.environ.get("KAPMONITOR_SCREENSHOTS"):
            bar.render_png(SHOTS / "alarm-bar-volume-floor.png")
        assert bar.volume_text() == f"ALARM VOLUME {MIN_VOLUME_PERCENT} % — MINIMUM, NEVER SILENT"
    finally:
        console.close()


def test_audio_failure_stays_while_a_restarted_child_finds_no_output(
    qtbot: QtBot, tmp_path: Path, make_sound: MakeSound
) -> None:
    sound = make_sound(audio.PulseServer(tmp_path / "pulse").env())  # never started: no output
    console = _Console(qtbot, tmp_path, sound)
    try:
        recovered: list[bool] = []
        sound.recovered.connect(lambda: recovered.append(True))
        pid = sound.pid()
        with qtbot.waitSignal(sound.failed, timeout=round(KILL_TO_FAILED_S * 1000)):
            os.kill(pid, signal.SIGKILL)
        assert console.failing()
        # the restarted child answers (ready), but its device check finds no output: still failing
        with qtbot.waitSignal(sound.ready, timeout=RESTART_DELAYS_MS[0] + STARTUP_TIMEOUT_MS):
            pass
        assert sound.pid() not in (0, pid)
        # and it says so itself (no output, or its sounds cannot load on none)
        qtbot.waitUntil(lambda: "process ended" not in sound.last_failure(), timeout=1000)
        assert recovered == []
        assert console.failing()
        assert console.window.alarm_bar is not None
        assert console.window.alarm_bar.failure_text().startswith("AUDIO FAILURE")
    finally:
        console.close()


def test_a_first_start_is_no_recovery(qtbot: QtBot, tmp_path: Path) -> None:
    sound = ProcessAlarmSound(environment=audio.PulseServer(tmp_path).env())
    recovered: list[bool] = []
    sound.recovered.connect(lambda: recovered.append(True))
    try:
        with qtbot.waitSignal(sound.ready, timeout=STARTUP_TIMEOUT_MS):
            pass
        assert recovered == []  # nothing had failed: nothing to declare over
    finally:
        sound.close()
