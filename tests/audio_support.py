"""Real-audio test support: private PulseAudio daemon with a null sink, monitor capture, pulse analysis.

Also a small driver (`python -m tests.audio_support SCRIPT_JSON`) that runs ui.sound.AlarmSoundPlayer in a
child process: QtMultimedia connects to PulseAudio once per process (it never reconnects, and reads
PULSE_SERVER only then), so the player under test gets a process whose environment points at the daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

RATE = 44_100
SINK = "kaptest"
READY_TIMEOUT_S = 10.0


class AudioSetupError(RuntimeError):
    """The PulseAudio test set-up could not start (the test must fail, not skip)."""


def now() -> float:
    # perf_counter is CLOCK_MONOTONIC on Linux: one clock shared by this process and the player's child.
    return time.perf_counter()


@dataclass
class PulseServer:
    """A private PulseAudio daemon (runs as root with --system=false) with the null sink `kaptest`."""

    root: Path
    proc: subprocess.Popen[bytes] | None = None
    keepalive: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "pulse.sock"

    def env(self) -> dict[str, str]:
        """Environment for clients (pactl, parec, the player's process)."""
        env = dict(os.environ)
        env.update(
            PULSE_SERVER=f"unix:{self.socket}",
            PULSE_SINK=SINK,
            HOME=str(self.root),
            XDG_RUNTIME_DIR=str(self.root),
            QT_QPA_PLATFORM="offscreen",
        )
        env.pop("QT_AUDIO_BACKEND", None)  # Qt 6.12 uses PipeWire only if this asks for it
        return env

    def start(self) -> None:
        for tool in ("pulseaudio", "pactl", "parec", "pacat"):
            if shutil.which(tool) is None:
                raise AudioSetupError(f"{tool} not found: run scripts/bootstrap.sh --dev (pulseaudio-utils)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "test.pa"
        config.write_text(
            f"load-module module-null-sink sink_name={SINK} rate={RATE} channels=1\n"
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            f"set-default-sink {SINK}\n"
        )
        self._log = log = (self.root / "pulseaudio.log").open("wb")
        # -n: no default.pa (no hardware probing); --exit-idle-time=-1: stay up while the test is idle
        self.proc = subprocess.Popen(
            [
                "pulseaudio",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--system=false",
                "-n",
                "-F",
                str(config),
            ],
            env=self.env(),
            stdout=log,
            stderr=log,
        )
        deadline = now() + READY_TIMEOUT_S
        while True:
            probe = subprocess.run(["pactl", "info"], env=self.env(), capture_output=True, check=False)
            if probe.returncode == 0 and f"Default Sink: {SINK}" in probe.stdout.decode():
                break
            if self.proc.poll() is not None or now() > deadline:
                self.stop()
                raise AudioSetupError(
                    f"PulseAudio did not become ready within {READY_TIMEOUT_S} s "
                    f"(exit {self.proc.returncode}); log:\n{self.log_text()}"
                )
            time.sleep(0.05)  # polling an external daemon's start-up, not waiting for behaviour under test
        # A null sink with no input delivers nothing to its monitor; a silent stream keeps its clock
        # running, so gaps between bursts are captured at their real length.
        self.keepalive = subprocess.Popen(
            ["pacat", "--playback", "--latency-msec=20", "--raw", "--format=s16le", f"--rate={RATE}",
             "--channels=1", f"--device={SINK}", "/dev/zero"],
            env=self.env(),
        )  # fmt: skip

    def suspend_sink(self, suspended: bool) -> None:
        """Suspend (or resume) the null sink: streams to it stop being consumed, as with a hung device."""
        subprocess.run(
            ["pactl", "suspend-sink", SINK, "1" if suspended else "0"],
            env=self.env(),
            check=True,
            capture_output=True,
        )

    def log_text(self) -> str:
        path = self.root / "pulseaudio.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in (self.keepalive, self.proc):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.keepalive = None
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class Capture:
    """parec of the null sink's monitor, read in a thread; each chunk's arrival time is kept."""

    server: PulseServer
    proc: subprocess.Popen[bytes] | None = None
    data: bytearray = field(default_factory=bytearray)
    # (arrival time, total samples received so far) per chunk
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["parec", "--latency-msec=10", f"--device={SINK}.monitor", "--format=s16le",
             f"--rate={RATE}", "--channels=1", "--raw"],
            env=self.server.env(),
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        fd = stream.fileno()
        while chunk := os.read(fd, 8192):
            with self._arrived:
                self.data.extend(chunk)
                self.arrivals.append((now(), len(self.data) // 2))
                self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()  # the capture ended: nobody waits for more

    def wait_covered(self, t: float, timeout_s: float) -> bool:
        """Block until a chunk arrived after perf_counter time `t` (the sink has had everything played
        before t); False after timeout_s. Call it from a worker thread when a loop must keep running."""
        with self._arrived:
            return self._arrived.wait_for(
                lambda: bool(self.arrivals) and self.arrivals[-1][0] > t, timeout=timeout_s
            )

    def receiving(self) -> bool:
        return bool(self.arrivals)

    def index_at(self, t: float) -> int:
        """Sample index that reached the monitor at perf_counter time t (inverse of sample_time)."""
        offset = min(at - n / RATE for at, n in self.arrivals)
        return max(0, int((t - offset) * RATE))

    def stop(self) -> np.ndarray:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.samples()

    def samples(self) -> np.ndarray:
        usable = len(self.data) // 2 * 2
        return np.frombuffer(bytes(self.data[:usable]), dtype="<i2").astype(np.float64)

    def sample_time(self, index: int) -> float:
        """Wall (perf_counter) time at which sample `index` reached the monitor: an upper bound.

        Each chunk arrives after its last sample was rendered; the least-delayed chunk gives the tightest
        offset between the sample clock and perf_counter (the sink clock is real time).
        """
        offset = min(t - n / RATE for t, n in self.arrivals)
        return offset + index / RATE


@dataclass(frozen=True)
class Pulse:
    onset_s: float
    end_s: float

    @property
    def width_s(self) -> float:
        return self.end_s - self.onset_s


def envelope(samples: np.ndarray, window_ms: float = 8.0) -> np.ndarray:
    """Moving RMS over window_ms (a few periods of the ≥ 440 Hz fundamental)."""
    n = max(1, round(RATE * window_ms / 1000))
    power = np.convolve(samples * samples, np.ones(n) / n, mode="same")
    return np.sqrt(power)


def find_pulses(
    samples: np.ndarray, rate: int = RATE, rel_threshold: float = 0.5, merge_ms: float = 15.0
) -> list[Pulse]:
    """Pulses as the spans where the envelope exceeds rel_threshold × its peak (half maximum by default).

    With symmetric raised-cosine ramps, a half-maximum onset lies half a ramp after the true onset and
    the half-maximum width is the pulse width minus one ramp. Dips shorter than merge_ms (envelope ripple
    on a slow ramp) do not split a pulse; the shortest real gap between pulses is 80 ms.
    """
    env = envelope(samples)
    peak = float(env.max()) if env.size else 0.0
    if peak <= 0.0:
        return []
    above = env > rel_threshold * peak
    edges = np.diff(above.astype(np.int8))
    starts = list(np.nonzero(edges == 1)[0] + 1)
    ends = list(np.nonzero(edges == -1)[0] + 1)
    if above[0]:
        starts.insert(0, 0)
    if above[-1]:
        ends.append(above.size)
    pulses: list[Pulse] = []
    for s, e in zip(starts, ends, strict=True):
        if pulses and s / rate - pulses[-1].end_s < merge_ms / 1000:
            pulses[-1] = Pulse(pulses[-1].onset_s, e / rate)
        else:
            pulses.append(Pulse(s / rate, e / rate))
    return pulses


def first_sound(samples: np.ndarray, start: int = 0, level: float = 200.0) -> int | None:
    """Index of the first sample at or after `start` whose magnitude exceeds `level` (silence is 0)."""
    hits = np.nonzero(np.abs(samples[start:]) > level)[0]
    return int(hits[0]) + start if hits.size else None


def start_player(server_env: dict[str, str], script: list[list[object]]) -> subprocess.Popen[str]:
    """Start the player in a child process, acting on a script of steps.

    Steps: [at_ms, "play", priority] | [at_ms, "volume", percent] | [at_ms, "stop"] | [at_ms, "quit"].
    The child prints one JSON event per line: {"t": perf_counter, "event": ..., ...}.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "tests.audio_support", json.dumps(script)],
        env=server_env,
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_player(proc: subprocess.Popen[str], timeout_s: float = 60.0) -> list[dict[str, object]]:
    """Wait for the scripted child to quit; returns its events (see start_player)."""
    out, err = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise AssertionError(f"player process failed ({proc.returncode}):\n{err}")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def wait_for_event(proc: subprocess.Popen[str], event: str) -> list[dict[str, object]]:
    """Read the child's events up to and including the first `event` (bounded by the child's script)."""
    assert proc.stdout is not None
    seen: list[dict[str, object]] = []
    for line in proc.stdout:
        if line.startswith("{"):
            seen.append(json.loads(line))
            if seen[-1]["event"] == event:
                return seen
    raise AssertionError(f"the player process ended without a {event!r} event: {seen}")


def run_player(server_env: dict[str, str], script: list[list[object]]) -> list[dict[str, object]]:
    """start_player, then finish_player."""
    return finish_player(start_player(server_env, script))


def _driver(script: list[list[object]]) -> int:
    """Child-process side of run_player: act at the scripted times, print events as JSON lines."""
    from PySide6.QtCore import QCoreApplication, Qt, QTimer

    from ui.sound import AlarmSoundPlayer

    app = QCoreApplication([])
    player = AlarmSoundPlayer()

    def emit(event: str, **fields: object) -> None:
        print(json.dumps({"t": now(), "event": event, **fields}), flush=True)

    player.failed.connect(lambda reason: emit("failed", reason=reason))
    player.sounding_changed.connect(lambda priority: emit("sounding", priority=priority))

    def act(step: list[object]) -> None:
        action = step[1]
        if action == "play":
            emit("play", priority=step[2])
            player.play(str(step[2]))
        elif action == "volume":
            emit("volume", applied=player.set_volume(int(str(step[2]))))
        elif action == "stop":
            emit("stop")
            player.stop()
        elif action == "quit":
            emit("quit", playing=player.is_playing())
            app.quit()

    emit("ready", outputs=player.check_device())
    timers = []
    for step in script:
        delay = step[0]
        assert isinstance(delay, int)
        timer = QTimer(app)
        timer.setSingleShot(True)
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.timeout.connect(lambda s=step: act(s))
        timer.start(delay)
        timers.append(timer)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(_driver(json.loads(sys.argv[1])))
