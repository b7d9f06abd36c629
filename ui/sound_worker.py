"""Alarm sound child process: runs ui.sound.AlarmSoundPlayer and obeys one-line commands on stdin.

Started by ui.sound_process.ProcessAlarmSound as `python -m ui.sound_worker [--sounds-dir DIR]`, so that a
crash inside the audio stack (libpulse aborts when its server dies) ends this process, not the console.

Protocol (UTF-8 lines). Once its event loop runs the child writes `ready`. Each command gets exactly one
reply, in order:

    play <priority> <volume_step>  ->  ok
    stop                           ->  ok
    volume <percent>               ->  volume <applied> <clamped 0|1>
    check                          ->  device <0|1>
    anything else                  ->  error <text>

At any time the child may also write `failed <text>` (the player's failed signal; the player has gone
quiet), `lost <text>` instead when the player's audio server or output went away (the server is checked
every second), and `available` (the audio server, unreachable when the child started, now accepts
connections: a new child could use it). The child exits when its stdin closes, so it never outlives the
console.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import IO

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal

from ui.sound import DEFAULT_SOUNDS_DIR, AlarmSoundPlayer


class _StdinReader(QObject):
    """Reads stdin lines in a thread and hands them to the Qt loop (queued signals)."""

    line = Signal(str)
    closed = Signal()

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self._stream = stream

    def start(self) -> None:
        threading.Thread(target=self._run, name="stdin-reader", daemon=True).start()

    def _run(self) -> None:
        for raw in self._stream:
            self.line.emit(raw.decode("utf-8", errors="replace").strip())
        self.closed.emit()


def _reply(text: str) -> None:
    sys.stdout.write(" ".join(text.split()) + "\n")  # one line, whatever the text holds
    sys.stdout.flush()


def handle(player: AlarmSoundPlayer, command: str) -> str:
    """Carry out one command line; returns the reply line."""
    words = command.split()
    try:
        match words:
            case ["play", priority, step]:
                player.play(priority, int(step))
                return "ok"
            case ["stop"]:
                player.stop()
                return "ok"
            case ["volume", percent]:
                requested = int(percent)
                applied = player.set_volume(requested)
                return f"volume {applied} {int(requested < applied)}"
            case ["check"]:
                return f"device {int(player.check_device())}"
    except ValueError as error:
        return f"error {error}"
    return f"error unknown command {command!r}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.sound_worker")
    parser.add_argument("--sounds-dir", type=Path, default=DEFAULT_SOUNDS_DIR)
    args = parser.parse_args(argv)
    app = QCoreApplication(sys.argv[:1])
    player = AlarmSoundPlayer(args.sounds_dir)
    player.failed.connect(lambda reason: _reply(f"{'lost' if player.output_lost() else 'failed'} {reason}"))
    player.server_appeared.connect(lambda: _reply("available"))
    reader = _StdinReader(sys.stdin.buffer)
    reader.line.connect(lambda line: _reply(handle(player, line)), Qt.ConnectionType.QueuedConnection)
    reader.closed.connect(app.quit, Qt.ConnectionType.QueuedConnection)
    reader.start()
    _reply("ready")
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
