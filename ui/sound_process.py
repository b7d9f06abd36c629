"""Alarm sound in a child process: the console survives an audio stack that crashes, and says so.

Qt 6.12 sometimes aborts the whole process inside libpulse when the PulseAudio server dies while a sound
plays ("Assertion 'c' failed at context.c:1087"). A patient monitor must never stop because its sound
server did: `ProcessAlarmSound` offers the same interface as `ui.sound.AlarmSoundPlayer` (the part the
main window uses) but runs the real player in `python -m ui.sound_worker` (protocol in that module).

If the child exits, crashes, or does not answer a command within REPLY_TIMEOUT_MS, `failed()` says
"alarm sound process ended: …" (the caller raises the audio-failure technical alarm, reference/alarms.md
"An audio failure must never go unnoticed") and the child is restarted after a back-off (RESTART_DELAYS_MS,
capped at its last value, so it keeps trying but never spins). The restarted child gets the current volume
and, if an alarm was sounding, that alarm again. Nothing of QtMultimedia is instantiated in this process.

A child that stays alive is replaced too when its own player fails after it had proven an output
(`lost`: its audio server died, and QtMultimedia connects once per process and never reconnects; or
`failed`: a stalled output, which a new stream may cure), and when it started without any output and
says that an audio server has appeared since (`available`). All follow the same back-off. A child that
found no output at start is not replaced on its failure: a new one would just fail again, and the
audio-failure alarm is already up.

Every child is asked whether it has an output when it is ready. After a failure the channel is declared
working again (`recovered()`) only on evidence: a restarted child has answered everything it was given,
found an audio output, and reported no failure. After a `failed` (not `lost`) of a child that had an
output, its replacement must also stay ready without a failure for STABLE_MS: its output may be there
and hung as before (a suspended sink), and the alarm must not clear and come back with every new child.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from PySide6.QtCore import QCoreApplication, QObject, QProcess, QProcessEnvironment, QTimer, Signal

from ui.sound import DEFAULT_SOUNDS_DIR, DEFAULT_VOLUME_PERCENT, MIN_VOLUME_PERCENT, PRIORITIES

#: The child must write `ready` within this time of being started (Python + PySide6 + QtMultimedia
#: imports; measured ~0.3 s here, generous for a loaded machine).
STARTUP_TIMEOUT_MS: Final = 10_000
#: A ready child answers each command within this time (measured: well under 10 ms), or it counts as hung.
REPLY_TIMEOUT_MS: Final = 1000
#: Delay before restart n (0-based) after the child was lost; the last value repeats.
RESTART_DELAYS_MS: Final = (100, 500, 1000, 2000, 5000)
#: A child that has been ready this long resets the back-off to its first step.
STABLE_MS: Final = 30_000

_REPO_ROOT: Final = Path(__file__).resolve().parent.parent


class ProcessAlarmSound(QObject):
    """AlarmSoundPlayer's public interface, with the player in a child process that is restarted if lost."""

    #: Playback is impossible or broke, or the sound process was lost; the text says why.
    failed = Signal(str)
    #: (applied percent, clamped): clamped is True when the requested volume was below the floor.
    volume_changed = Signal(int, bool)
    #: The priority now sounding, or "" when the player went quiet.
    sounding_changed = Signal(str)
    #: A (re)started child is ready and has answered the current volume and sound it was given.
    ready = Signal()
    #: After failed(): a restarted child answered, has an audio output and reported no failure.
    recovered = Signal()

    def __init__(
        self,
        sounds_dir: Path = DEFAULT_SOUNDS_DIR,
        parent: QObject | None = None,
        *,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(parent)
        self._sounds_dir = sounds_dir
        self._environment = environment
        self._volume = DEFAULT_VOLUME_PERCENT
        self._step = 0
        self._priority = ""
        self._device_ok = True
        self._failed_reason = ""
        self._failing = False  # failed() was emitted and recovered() has not followed yet
        self._child_failed = False  # the running child reported a failure
        self._child_proven = False  # the running child found an output before any failure of its own
        self._recover_when_stable = False  # recovered() only after STABLE_MS (see the module docstring)
        self._proc: QProcess | None = None
        self._child_ready = False
        self._syncing = False  # the (re)started child has been given the state, no answer yet
        self._pending: deque[str] = deque()  # commands sent, awaiting their reply, oldest first
        self._restarts = 0
        self._closed = False
        self._startup_timer = self._single_shot(STARTUP_TIMEOUT_MS, self._on_startup_timeout)
        self._reply_timer = self._single_shot(REPLY_TIMEOUT_MS, self._on_reply_timeout)
        self._restart_timer = self._single_shot(0, self._start_child)
        self._stable_timer = self._single_shot(STABLE_MS, self._on_stable)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.close)
        self._start_child()

    # ------------------------------------------------------------------ public API
    def play(self, priority: str, volume_step: int = 0) -> None:
        """Sound `priority`, replacing any other sound (as AlarmSoundPlayer.play)."""
        if priority not in PRIORITIES:
            raise ValueError(f"unknown alarm priority {priority!r}; expected one of {PRIORITIES}")
        step = max(0, volume_step)
        if (priority, step) == (self._priority, self._step):
            return
        was = self._priority
        self._priority, self._step = priority, step
        self._send(f"play {priority} {step}")
        if priority != was:
            self.sounding_changed.emit(priority)

    def stop(self) -> None:
        """Silence the player (no sound until the next play())."""
        was = self._priority
        self._priority = ""
        self._send("stop")
        if was:
            self.sounding_changed.emit("")

    def set_volume(self, percent: int) -> int:
        """Set the base volume; returns the applied percent (never below MIN_VOLUME_PERCENT)."""
        applied = max(MIN_VOLUME_PERCENT, min(100, percent))
        self._volume = applied
        self._send(f"volume {applied}")
        self.volume_changed.emit(applied, percent < MIN_VOLUME_PERCENT)
        return applied

    def volume(self) -> int:
        """The base volume in percent (before escalation steps)."""
        return self._volume

    def check_device(self) -> bool:
        """Ask the child whether an audio output exists; if not, failed() follows as soon as it answers.

        Returns the last answer known (True until a child has answered), since the answer crosses a
        process boundary and the console must not block on it. (A child not yet ready is asked anyway
        once it is.)
        """
        self._send("check")
        return self._device_ok

    def is_playing(self) -> bool:
        """True while an alarm sound is wanted (including while its process is being restarted)."""
        return bool(self._priority)

    def sounding(self) -> str:
        """The priority currently sounding, or ""."""
        return self._priority

    def last_failure(self) -> str:
        """The reason of the most recent failure ("" if none)."""
        return self._failed_reason

    def pid(self) -> int:
        """The child's process id (0 while none runs)."""
        if self._proc is None:
            return 0
        return int(self._proc.processId())

    def close(self) -> None:
        """End the child (closing its stdin ends it) and stop restarting it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for timer in (self._startup_timer, self._reply_timer, self._restart_timer, self._stable_timer):
            timer.stop()
        self._discard_child(graceful=True)

    # ------------------------------------------------------------------ the child
    def _single_shot(self, interval_ms: int, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(interval_ms)
        timer.timeout.connect(slot)
        return timer

    def _start_child(self) -> None:
        if self._closed:
            return
        proc = QProcess(self)
        proc.setProgram(sys.executable)
        proc.setArguments(["-m", "ui.sound_worker", "--sounds-dir", str(self._sounds_dir)])
        proc.setWorkingDirectory(str(_REPO_ROOT))  # `-m ui.sound_worker` finds the package from here
        if self._environment is not None:
            env = QProcessEnvironment()
            for key, value in self._environment.items():
                env.insert(key, value)
            proc.setProcessEnvironment(env)
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.ForwardedErrorChannel)
        # Bound methods, never lambdas holding `self` or `proc`: a lambda connected to a child's
        # signal keeps this object alive from inside that child. When the child's deferred delete
        # then ran, ~QObject released the lambda, the last reference to this object went with it,
        # and this object's destructor deleted the half-destroyed child again (SIGBUS in the next
        # test's event loop). The slots ask sender() which process spoke.
        proc.readyReadStandardOutput.connect(self._on_output)
        proc.errorOccurred.connect(self._on_error)
        proc.finished.connect(self._on_finished)
        self._proc = proc
        self._child_ready = False
        self._child_failed = False
        self._child_proven = False
        self._pending.clear()
        self._startup_timer.start()
        proc.start()

    def _discard_child(self, graceful: bool = False) -> None:
        proc, self._proc = self._proc, None
        self._child_ready = False
        self._syncing = False
        self._pending.clear()
        self._reply_timer.stop()
        self._stable_timer.stop()
        if proc is None:
            return
        # an old process's last words (its exit while being killed) are of no interest any more
        proc.readyReadStandardOutput.disconnect(self._on_output)
        proc.errorOccurred.disconnect(self._on_error)
        proc.finished.disconnect(self._on_finished)
        if proc.state() != QProcess.ProcessState.NotRunning:
            if graceful:
                proc.closeWriteChannel()
                if not proc.waitForFinished(2000):
                    proc.kill()
            else:
                proc.kill()
            proc.waitForFinished(1000)
        proc.deleteLater()

    def _lost(self, reason: str) -> None:
        """The child is gone or unusable: say so, then restart it after the back-off."""
        if self._closed:
            return
        self._replace()
        self._report(f"alarm sound process ended: {reason}")

    def _replace(self) -> None:
        """End the child and start a new one after the back-off (it is given the current state)."""
        if self._closed:
            return
        self._startup_timer.stop()
        self._discard_child()
        delay = RESTART_DELAYS_MS[min(self._restarts, len(RESTART_DELAYS_MS) - 1)]
        self._restarts += 1
        self._restart_timer.start(delay)

    def _send(self, command: str) -> None:
        proc = self._proc
        if proc is None or not self._child_ready:
            return  # the state is resent when the (re)started child says ready
        self._pending.append(command)
        if not self._reply_timer.isActive():
            self._reply_timer.start()
        proc.write(f"{command}\n".encode())

    def _current(self) -> QProcess | None:
        """The running child if it sent the signal being handled, else None (a discarded one)."""
        proc = self._proc
        return proc if proc is not None and self.sender() is proc else None

    def _on_output(self) -> None:
        proc = self._current()
        while proc is not None and proc is self._proc and proc.canReadLine():
            line = bytes(proc.readLine().data()).decode("utf-8", errors="replace").strip()
            self._on_line(line)

    def _on_line(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "ready":
            self._on_child_ready()
        elif word in ("failed", "lost"):
            self._on_child_failed(rest, lost=word == "lost")
        elif word == "available":
            if not self._child_proven:  # it found no output at start; a new child can use the server
                self._recover_when_stable = False  # a new connection to a new server is the evidence
                self._replace()
        elif word in ("ok", "volume", "device", "error"):
            if not self._pending:
                self._lost(f"unexpected reply {line!r}")
                return
            command = self._pending.popleft()
            self._reply_timer.stop()
            if self._pending:
                self._reply_timer.start()
            if word == "device":
                self._device_ok = rest == "1"
                self._child_proven = self._child_proven or (self._device_ok and not self._child_failed)
            elif word == "error":
                self._lost(f"it refused {command!r}: {rest}")
                return
            if self._syncing and not self._pending:
                self._syncing = False
                self.ready.emit()
                if not self._recover_when_stable:
                    self._recover_if_proven()
        elif line:
            self._lost(f"unexpected output {line!r}")

    def _recover_if_proven(self) -> None:
        if self._failing and self._child_ready and self._device_ok and not self._child_failed:
            self._failing = False
            self._recover_when_stable = False
            self.recovered.emit()

    def _on_child_failed(self, reason: str, *, lost: bool) -> None:
        if self._child_proven:
            # it had an output and lost it (its server died: QtMultimedia in it never reconnects) or its
            # output stalled: a new child takes the sound up (the same alarm, still wanted)
            self._recover_when_stable = self._recover_when_stable or not lost
            self._replace()
            self._report(reason)
            return
        # it never had an output: its player failed and went quiet; mirror that (as AlarmSoundPlayer._fail)
        was = self._priority
        self._priority = ""
        self._child_failed = True
        self._report(reason)
        if was:
            self.sounding_changed.emit("")

    def _on_child_ready(self) -> None:
        self._startup_timer.stop()
        self._child_ready = True
        self._stable_timer.start()
        self._send(f"volume {self._volume}")
        if self._priority:
            self._send(f"play {self._priority} {self._step}")
        self._send("check")  # has it an output? (proves it for recovered(), and for a later replacement)
        self._syncing = True  # ready() once the child has answered all of it

    def _on_error(self, error: QProcess.ProcessError) -> None:
        proc = self._current()
        # a crash is also reported by finished(CrashExit), which QProcess emits right after this
        if proc is not None and error != QProcess.ProcessError.Crashed:
            self._lost(f"{error.name}: {proc.errorString()}")

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        proc = self._current()
        if proc is None:
            return
        if status == QProcess.ExitStatus.CrashExit:
            self._lost(f"it crashed ({proc.errorString()})")
        else:
            self._lost(f"it exited with code {code}")

    def _on_startup_timeout(self) -> None:
        self._lost(f"it did not start within {STARTUP_TIMEOUT_MS} ms")

    def _on_reply_timeout(self) -> None:
        if self._pending:
            self._lost(f"it did not answer {self._pending[0]!r} within {REPLY_TIMEOUT_MS} ms")

    def _on_stable(self) -> None:
        self._restarts = 0
        if self._recover_when_stable and not self._syncing:
            self._recover_if_proven()

    def _report(self, reason: str) -> None:
        self._failed_reason = reason
        self._failing = True
        self.failed.emit(reason)
