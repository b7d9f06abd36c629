"""Alarm sound channel: the generated bursts, and the player heard on a PulseAudio null sink."""

from __future__ import annotations

import importlib.util
import signal
import sys
import wave
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from tests import audio_support as audio
from ui.sound import (
    BURST_MS,
    INTER_BURST_MS,
    MIN_VOLUME_PERCENT,
    STALL_MARGIN_MS,
    AlarmSoundPlayer,
    pulse_server_socket,
    server_reachable,
)

REPO = Path(__file__).resolve().parents[2]
SOUNDS = REPO / "resources" / "sounds"

# The expected bursts, written out independently of the generator (see resources/sounds/README.md):
# pulse onsets in ms from the first pulse, pulse width td and ramp (rise = fall) in ms, fundamental in Hz.
# High: 10 pulses as 3 + 2, 3 + 2 (reference/alarms.md), td 120 ms inside its ≈100–150 ms.
EXPECTED: dict[str, tuple[tuple[int, ...], int, int, float]] = {
    "high": ((0, 200, 400, 800, 1000, 1620, 1820, 2020, 2420, 2620), 120, 12, 660.0),
    "medium": ((0, 360, 720), 180, 36, 550.0),
    "low": ((0, 360), 180, 36, 440.0),
}

# Start-to-start burst periods in ms (burst length + inter-burst gap, resources/sounds/README.md).
EXPECTED_PERIOD_MS = {"high": 5740, "medium": 5900, "low": 18540}

# Tolerances. Within one file or one captured burst the samples come from one audio clock, so onsets
# are exact up to the envelope detector (4 ms RMS window; measured error < 1 ms): 3 ms.
IN_BURST_TOL_MS = 3.0
# Half-maximum widths: the 8 ms RMS envelope smears the ramps by up to ~1.5 ms (measured on the files).
WIDTH_TOL_MS = 3.0
# Between bursts (and after a replacing play()), a QTimer in the player starts a new stream: its start
# latency varies (measured +3 ms); allow 40 ms, well inside the alarms.md repeat ranges (seconds).
BETWEEN_BURSTS_TOL_MS = 40.0
# The alarm-signal-generation budget: play() to sound on the sink, p99.
LATENCY_BUDGET_MS = 100.0


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_alarm_sounds", REPO / "scripts" / "make_alarm_sounds.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2), "16-bit PCM mono"
        rate = wav.getframerate()
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float64), rate


def _half_max_widths_ms(td: int, ramp: int) -> float:
    # raised-cosine ramps: half maximum is half a ramp in from each end
    return float(td - ramp)


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


def _check_burst(pulses: list[audio.Pulse], priority: str, tol_ms: float = IN_BURST_TOL_MS) -> None:
    onsets, td, ramp, _ = EXPECTED[priority]
    assert len(pulses) == len(onsets), f"{priority}: {len(pulses)} pulses, expected {len(onsets)}"
    first = pulses[0].onset_s
    for pulse, expected_onset in zip(pulses, onsets, strict=True):
        assert (pulse.onset_s - first) * 1000 == pytest.approx(expected_onset, abs=tol_ms)
        assert pulse.width_s * 1000 == pytest.approx(_half_max_widths_ms(td, ramp), abs=WIDTH_TOL_MS)


# ---------------------------------------------------------------- the generated files


def test_generator_is_deterministic_and_the_committed_wavs_are_its_output(tmp_path: Path) -> None:
    generator = _load_generator()
    generator.main(["--out", str(tmp_path / "a")])
    generator.main(["--out", str(tmp_path / "b")])
    for priority in EXPECTED:
        name = f"alarm_{priority}.wav"
        first = (tmp_path / "a" / name).read_bytes()
        assert first == (tmp_path / "b" / name).read_bytes(), f"{name} differs between two runs"
        assert first == (SOUNDS / name).read_bytes(), f"resources/sounds/{name} is stale: re-run the script"


@pytest.mark.parametrize("priority", list(EXPECTED))
def test_each_file_holds_one_burst_of_the_specified_pattern(priority: str) -> None:
    samples, rate = _read_wav(SOUNDS / f"alarm_{priority}.wav")
    assert rate == audio.RATE
    pulses = audio.find_pulses(samples, rate)
    _check_burst(pulses, priority, tol_ms=1.0)
    # the first pulse starts at once (no leading silence adds to the alarm delay)
    first = audio.first_sound(samples)
    assert first is not None
    assert first < rate * 0.005
    # then ≥ 100 ms of silence after the last pulse: QSoundEffect holds back a sound's last ~10 ms
    # until its next start, and what it holds back must be silence (see the generator's docstring)
    end = rate * BURST_MS[priority] // 1000
    assert samples.size - end >= rate // 10
    assert not samples[end:].any()


@pytest.mark.parametrize("priority", list(EXPECTED))
def test_tone_has_fundamental_and_four_harmonics_in_300_to_4000_hz(priority: str) -> None:
    samples, rate = _read_wav(SOUNDS / f"alarm_{priority}.wav")
    _, td, _, f0 = EXPECTED[priority]
    pulse = samples[: rate * td // 1000]
    spectrum = np.abs(np.fft.rfft(pulse * np.hanning(pulse.size)))
    freqs = np.fft.rfftfreq(pulse.size, 1 / rate)
    peak = spectrum.max()
    for k in range(1, 6):
        band = (freqs > k * f0 - 30) & (freqs < k * f0 + 30)
        assert 300 <= k * f0 <= 4000
        assert spectrum[band].max() > 0.1 * peak, f"harmonic {k} ({k * f0} Hz) missing"
    # nothing but those harmonics: energy between them is small
    between = (freqs > 1.5 * f0 - 50) & (freqs < 1.5 * f0 + 50)
    assert spectrum[between].max() < 0.05 * peak


def test_repeat_intervals_lie_in_the_reference_ranges() -> None:
    # reference/alarms.md: high every 2.5–15 s, medium 2.5–30 s, low ≥ 15 s (gap and period both)
    ranges = {"high": (2500, 15000), "medium": (2500, 30000), "low": (15000, 10**9)}
    for priority, (low, high) in ranges.items():
        assert low <= INTER_BURST_MS[priority] <= high
        assert low <= INTER_BURST_MS[priority] + BURST_MS[priority] <= high
        onsets, td, _, _ = EXPECTED[priority]
        assert BURST_MS[priority] == onsets[-1] + td
        assert BURST_MS[priority] + INTER_BURST_MS[priority] == EXPECTED_PERIOD_MS[priority]


# ---------------------------------------------------------------- the player, in this process


def test_volume_is_clamped_to_the_audible_floor_and_says_so(qtbot: QtBot) -> None:
    player = AlarmSoundPlayer()
    with qtbot.waitSignal(player.volume_changed, timeout=1000) as blocker:
        applied = player.set_volume(0)
    assert applied == MIN_VOLUME_PERCENT > 0
    assert blocker.args == [MIN_VOLUME_PERCENT, True]
    assert player.volume() == MIN_VOLUME_PERCENT
    with qtbot.waitSignal(player.volume_changed, timeout=1000) as blocker:
        assert player.set_volume(150) == 100
    assert blocker.args == [100, False]
    with qtbot.waitSignal(player.volume_changed, timeout=1000) as blocker:
        assert player.set_volume(55) == 55
    assert blocker.args == [55, False]


def test_unknown_priority_is_refused(qtbot: QtBot) -> None:
    player = AlarmSoundPlayer()
    with pytest.raises(ValueError, match="unknown alarm priority"):
        player.play("urgent")
    assert not player.is_playing()


def test_missing_sound_files_fail_loudly(qtbot: QtBot, tmp_path: Path) -> None:
    player = AlarmSoundPlayer(sounds_dir=tmp_path)
    assert "missing" in player.last_failure()
    with qtbot.waitSignal(player.failed, timeout=1000) as blocker:
        player.play("high")
    assert blocker.args == [f"alarm sound file missing: {tmp_path / 'alarm_high.wav'}"]
    assert not player.is_playing()


# ---------------------------------------------------------------- heard on a PulseAudio null sink


@pytest.fixture(scope="module")
def pulse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[audio.PulseServer]:
    server = audio.PulseServer(tmp_path_factory.mktemp("pulse"))
    try:
        server.start()
    except audio.AudioSetupError as error:
        pytest.fail(f"the alarm-sound tests need a PulseAudio null sink and could not start one: {error}")
    yield server
    server.stop()


@pytest.fixture
def capture(pulse_server: audio.PulseServer, qtbot: QtBot) -> Iterator[audio.Capture]:
    cap = audio.Capture(pulse_server)
    cap.start()
    qtbot.waitUntil(cap.receiving, timeout=10_000)
    yield cap
    cap.stop()


def _record(
    qtbot: QtBot, server: audio.PulseServer, cap: audio.Capture, script: list[list[object]]
) -> tuple[list[dict[str, object]], np.ndarray]:
    events = audio.run_player(server.env(), script)
    end = max(float(str(e["t"])) for e in events)
    # wait until the capture covers the end of the script plus 300 ms (any sound after stop() shows)
    qtbot.waitUntil(lambda: cap.arrivals[-1][0] > end + 0.3, timeout=5000)
    assert [e for e in events if e["event"] == "failed"] == []
    return events, cap.stop()


def _times(events: list[dict[str, object]], event: str) -> list[float]:
    return [float(str(e["t"])) for e in events if e["event"] == event]


@pytest.mark.slow
def test_high_priority_burst_and_its_repeat_are_heard(
    qtbot: QtBot, pulse_server: audio.PulseServer, capture: audio.Capture
) -> None:
    period_ms = EXPECTED_PERIOD_MS["high"]
    # the whole first burst and the first three pulses of the second one
    stop_ms = period_ms + 610
    events, samples = _record(
        qtbot, pulse_server, capture, [[0, "play", "high"], [stop_ms, "stop"], [stop_ms + 50, "quit"]]
    )
    pulses = audio.find_pulses(samples)
    assert len(pulses) == 13, [round(p.onset_s * 1000) for p in pulses]
    _check_burst(pulses[:10], "high")
    second = pulses[10:]
    assert (second[0].onset_s - pulses[0].onset_s) * 1000 == pytest.approx(
        period_ms, abs=BETWEEN_BURSTS_TOL_MS
    )
    assert [round((p.onset_s - second[0].onset_s) * 1000) for p in second] == pytest.approx(
        [0, 200, 400], abs=IN_BURST_TOL_MS
    )
    # heard within the latency budget of play(); silent after stop() (no 4th pulse of the second burst)
    first_index = audio.first_sound(samples)
    assert first_index is not None
    (t_play,) = _times(events, "play")
    assert (capture.sample_time(first_index) - t_play) * 1000 <= LATENCY_BUDGET_MS


@pytest.mark.slow
def test_a_new_play_replaces_the_sound_mid_burst(
    qtbot: QtBot, pulse_server: audio.PulseServer, capture: audio.Capture
) -> None:
    # medium pulses would start at 0, 360, 720 ms; low replaces it at 600 ms, so the third never sounds
    script: list[list[object]] = [[0, "play", "medium"], [600, "play", "low"], [1400, "stop"], [1500, "quit"]]
    events, samples = _record(qtbot, pulse_server, capture, script)
    pulses = audio.find_pulses(samples)
    assert len(pulses) == 4, [round(p.onset_s * 1000) for p in pulses]
    _check_burst(pulses[2:], "low")
    assert (pulses[1].onset_s - pulses[0].onset_s) * 1000 == pytest.approx(360, abs=IN_BURST_TOL_MS)
    # each pulse carries its priority's own tone: the second play() switched sounds, it did not add one
    for pulse, f0 in zip(pulses, (550.0, 550.0, 440.0, 440.0), strict=True):
        segment = samples[int(pulse.onset_s * audio.RATE) : int(pulse.end_s * audio.RATE)]
        assert _dominant_hz(segment, audio.RATE) == pytest.approx(f0, abs=15)
    _, t_low = _times(events, "play")
    onset_delay = capture.sample_time(int(pulses[2].onset_s * audio.RATE)) - t_low
    assert 0 < onset_delay < LATENCY_BUDGET_MS / 1000


@pytest.mark.slow
def test_play_to_sound_latency_p99_within_budget(
    qtbot: QtBot, pulse_server: audio.PulseServer, capture: audio.Capture
) -> None:
    plays = 20
    script: list[list[object]] = []
    for i in range(plays):
        script += [[i * 300, "play", "high"], [i * 300 + 150, "stop"]]
    script.append([plays * 300, "quit"])
    events, samples = _record(qtbot, pulse_server, capture, script)
    latencies_ms = []
    offset = min(t - n / audio.RATE for t, n in capture.arrivals)
    for t_play in _times(events, "play"):
        start = max(0, int((t_play - offset) * audio.RATE))
        index = audio.first_sound(samples, start)
        assert index is not None, "a play() produced no sound"
        latencies_ms.append((capture.sample_time(index) - t_play) * 1000)
    assert len(latencies_ms) == plays
    p50, p99 = np.percentile(latencies_ms, [50, 99])
    print(f"play() to first sample on the sink over {plays} plays: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    assert p99 <= LATENCY_BUDGET_MS


@pytest.mark.slow
def test_volume_zero_still_sounds_at_the_floor(
    qtbot: QtBot, pulse_server: audio.PulseServer, capture: audio.Capture
) -> None:
    script: list[list[object]] = [[0, "volume", 0], [5, "play", "low"], [900, "quit"]]
    events, samples = _record(qtbot, pulse_server, capture, script)
    assert next(e for e in events if e["event"] == "volume")["applied"] == MIN_VOLUME_PERCENT
    pulses = audio.find_pulses(samples)
    _check_burst(pulses, "low")
    # the file's peak is 0.7 of full scale; at the floor the sink receives about 20 % of it
    expected_peak = 0.7 * 32767 * MIN_VOLUME_PERCENT / 100
    assert np.abs(samples).max() == pytest.approx(expected_peak, rel=0.1)


def test_without_an_audio_device_the_player_fails_promptly(tmp_path: Path) -> None:
    server = audio.PulseServer(tmp_path)  # never started: its socket does not exist
    events = audio.run_player(server.env(), [[0, "play", "high"], [300, "quit"]])
    ready = next(e for e in events if e["event"] == "ready")
    assert ready["outputs"] is False
    (t_play,) = _times(events, "play")
    after_play = [e for e in events if e["event"] == "failed" and float(str(e["t"])) >= t_play]
    assert after_play, events
    assert float(str(after_play[0]["t"])) - t_play < 0.1
    assert "no audio output" in str(after_play[0]["reason"])
    quit_event = next(e for e in events if e["event"] == "quit")
    assert quit_event["playing"] is False


def test_without_an_audio_device_every_reason_names_the_missing_output(tmp_path: Path) -> None:
    # the sounds finish loading (with an error) before the alarm comes: whichever of the load error
    # and the device check reports first, the clinician reads the specific reason (CI run of stop 8
    # got the generic "failed to load" first)
    server = audio.PulseServer(tmp_path)  # never started
    events = audio.run_player(server.env(), [[800, "play", "high"], [1100, "quit"]])
    failed = [e for e in events if e["event"] == "failed"]
    assert failed, events
    for event in failed:
        assert "no audio output" in str(event["reason"]), event


@pytest.mark.slow
def test_an_output_that_stops_consuming_mid_alarm_raises_failed(tmp_path: Path) -> None:
    # QSoundEffect reports no error when its output stops taking data (a hung device, a suspended sink,
    # a lost server): the burst just never finishes. The player's stall watchdog must say so.
    # (Killing the server instead is not used here: Qt 6.12 then sometimes aborts the process inside
    # libpulse, "Assertion 'c' failed at context.c:1087" — see the report for the issue.)
    server = audio.PulseServer(tmp_path / "pulse")
    try:
        server.start()
    except audio.AudioSetupError as error:
        pytest.fail(f"the alarm-sound tests need a PulseAudio null sink and could not start one: {error}")
    try:
        proc = audio.start_player(server.env(), [[0, "play", "high"], [5500, "quit"]])
        events = audio.wait_for_event(proc, "sounding")
        server.suspend_sink(True)
        t_stalled = audio.now()
        events += audio.finish_player(proc)
    finally:
        server.stop()
    failures = [e for e in events if e["event"] == "failed"]
    assert failures, events
    assert "stalled" in str(failures[0]["reason"])
    (t_play,) = _times(events, "play")
    t_failed = float(str(failures[0]["t"]))
    assert t_stalled < t_failed
    # the burst file lasts 2.84 s; the watchdog allows STALL_MARGIN_MS more (+ 0.3 s for timers)
    assert t_failed - t_play < 2.84 + STALL_MARGIN_MS / 1000 + 0.3
    assert next(e for e in events if e["event"] == "quit")["playing"] is False


def test_the_pulse_server_socket_is_found_where_libpulse_looks() -> None:
    assert pulse_server_socket({"PULSE_SERVER": "unix:/run/p/native"}) == Path("/run/p/native")
    assert pulse_server_socket({"PULSE_SERVER": "/run/p/native tcp:host"}) == Path("/run/p/native")
    assert pulse_server_socket({"PULSE_RUNTIME_PATH": "/r", "XDG_RUNTIME_DIR": "/x"}) == Path("/r/native")
    assert pulse_server_socket({"XDG_RUNTIME_DIR": "/x"}) == Path("/x/pulse/native")
    # a remote server, or nothing to say where it is: not probed (the stall watchdog remains)
    assert pulse_server_socket({"PULSE_SERVER": "tcp:host:4713", "XDG_RUNTIME_DIR": "/x"}) is None
    assert pulse_server_socket({"PULSE_SERVER": "host"}) is None
    assert pulse_server_socket({}) is None


def test_a_killed_server_is_seen_gone_though_its_socket_file_stays(tmp_path: Path) -> None:
    server = audio.PulseServer(tmp_path / "pulse")
    assert not server_reachable(server.socket)  # no file yet
    try:
        server.start()
    except audio.AudioSetupError as error:
        pytest.fail(f"the alarm-sound tests need a PulseAudio null sink and could not start one: {error}")
    try:
        assert server_reachable(server.socket)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=5)
        assert server.socket.exists()  # a killed daemon leaves its socket behind: connect() is refused
        assert not server_reachable(server.socket)
    finally:
        server.stop()
