"""Exports from the replay window and the session browser: a subprocess with a progress dialog.

The export runs as `kapmonitor export ... --progress` in its own process (design.md: no pure-Python
CPU work in a thread of the GUI process); it prints `progress FRACTION STAGE` lines, which QProcess
delivers to the event loop, so the window stays responsive and the QProgressDialog moves.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressDialog,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.export.csv_export import FILES as CSV_FILES

#: `kapmonitor export --format` values, their names and file suffixes ('' = a folder).
FORMATS: dict[str, tuple[str, str]] = {
    "pdf": ("PDF session report", ".pdf"),
    "csv-zip": ("CSV tables in one zip", ".zip"),
    "csv": ("CSV tables in a folder", ""),
    "edf": ("EDF+ (pleth, numerics, events)", ".edf"),
    "session": ("Standalone session file (SQLite)", ".sqlite"),
}
#: The progress dialog appears only for an export that takes longer than this.
SHOW_AFTER_MS = 400
STEPS = 1000


def default_output(folder: Path, session_id: str, fmt: str) -> Path:
    """A file (or folder) name in `folder` that does not exist yet (exports never overwrite)."""
    suffix = FORMATS[fmt][1]
    stem = f"kapmonitor-{session_id}" + ("-csv" if fmt == "csv" else "")
    path = folder / f"{stem}{suffix}"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}{suffix}"
        n += 1
    return path


def parse_progress(line: str) -> tuple[float, str] | None:
    """('progress 0.425 numerics') -> (0.425, 'numerics'); None for any other line."""
    parts = line.strip().split(" ", 2)
    if len(parts) < 2 or parts[0] != "progress":
        return None
    try:
        fraction = float(parts[1])
    except ValueError:
        return None
    return min(max(fraction, 0.0), 1.0), parts[2] if len(parts) > 2 else ""


class ExportJob(QObject):
    """One export in a subprocess, shown on a QProgressDialog; Cancel kills it and removes its output."""

    #: ok, and what to tell the user (the written path, or the error)
    done = Signal(bool, str)

    def __init__(
        self, db_path: Path, session_id: str, fmt: str, out: Path, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}")
        self.db_path = db_path
        self.session_id = session_id
        self.fmt = fmt
        self.out = out
        #: every fraction reported, in order (the dialog shows the last)
        self.fractions: list[float] = []
        self.finished_ok: bool | None = None
        self.message = ""
        self._buffer = b""
        self._cancelled = False
        self.dialog = QProgressDialog(f"Exporting {FORMATS[fmt][0]}…", "Cancel", 0, STEPS, parent)
        self.dialog.setWindowTitle("kapmonitor — export")
        self.dialog.setMinimumDuration(SHOW_AFTER_MS)
        self.dialog.setAutoClose(True)
        self.dialog.setAutoReset(False)
        self.dialog.canceled.connect(self.cancel)
        self.process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("QT_QPA_PLATFORM", "offscreen")  # a PDF needs fonts, not a display
        self.process.setProcessEnvironment(env)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)

    def arguments(self) -> list[str]:
        return [
            "-m",
            "ui.app",
            "export",
            self.session_id,
            "--db",
            os.fspath(self.db_path),
            "--format",
            self.fmt,
            "--out",
            os.fspath(self.out),
            "--progress",
        ]

    def start(self) -> None:
        self.dialog.setValue(0)
        self.process.start(sys.executable, self.arguments())

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def _read(self) -> None:
        self._buffer += bytes(self.process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            parsed = parse_progress(raw.decode("utf-8", "replace"))
            if parsed is None:
                continue
            fraction, stage = parsed
            self.fractions.append(fraction)
            if not self._cancelled:
                self.dialog.setLabelText(f"Exporting {FORMATS[self.fmt][0]}: {stage}…")
                self.dialog.setValue(round(fraction * STEPS))

    def cancel(self) -> None:
        """Stop the export and remove what it wrote (it never overwrites, so all of it is its own)."""
        if self._cancelled or not self.running:
            return
        self._cancelled = True
        self.process.kill()

    def _remove_output(self) -> None:
        if self.fmt == "csv":
            for name in CSV_FILES:
                (self.out / name).unlink(missing_ok=True)
            if self.out.is_dir() and not any(self.out.iterdir()):
                self.out.rmdir()
            return
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.out}{suffix}").unlink(missing_ok=True)

    def _finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        self._read()
        if self._cancelled:
            self._remove_output()
            self.finished_ok, self.message = False, "Export cancelled: nothing kept."
        elif code == 0:
            self.finished_ok, self.message = True, f"Exported to {self.out}"
        else:
            err = bytes(self.process.readAllStandardError().data()).decode("utf-8", "replace").strip()
            self.finished_ok = False
            self.message = "Export failed: " + (err.splitlines()[-1] if err else f"exit code {code}")
        self.dialog.setValue(STEPS)
        self.dialog.close()
        self.done.emit(self.finished_ok, self.message)


class ExportDialog(QDialog):
    """Choose a format and a path, then run the export (Enter exports, Esc closes)."""

    def __init__(
        self, db_path: Path, session_id: str, *, folder: Path | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.db_path = db_path
        self.session_id = session_id
        self.folder = folder or Path.home()
        self.job: ExportJob | None = None
        self.setWindowTitle(f"Export session {session_id}")
        self.setStyleSheet("QLabel, QComboBox, QLineEdit, QPushButton { font-size: 17px; }")
        self.format_box = QComboBox()
        for key, (name, _suffix) in FORMATS.items():
            self.format_box.addItem(name, key)
        self.path_edit = QLineEdit()
        self.path_edit.setMinimumWidth(560)
        choose = QPushButton("Choose…")
        choose.clicked.connect(self._choose)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(choose)
        form = QFormLayout()
        form.addRow("Format", self.format_box)
        form.addRow("Write to", path_row)
        self.result_label = QLabel()
        self.result_label.setWordWrap(True)
        buttons = QDialogButtonBox()
        self.export_button = buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setDefault(True)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        buttons.accepted.connect(self.start)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.result_label)
        layout.addWidget(buttons)
        self.format_box.currentIndexChanged.connect(self._suggest)
        self._suggest()

    @property
    def fmt(self) -> str:
        return str(self.format_box.currentData())

    def select_format(self, fmt: str) -> None:
        self.format_box.setCurrentIndex(list(FORMATS).index(fmt))

    def _suggest(self) -> None:
        current = Path(self.path_edit.text()) if self.path_edit.text() else None
        folder = current.parent if current is not None else self.folder
        self.path_edit.setText(os.fspath(default_output(folder, self.session_id, self.fmt)))

    def _choose(self) -> None:
        if self.fmt == "csv":
            chosen = QFileDialog.getExistingDirectory(self, "Folder for the CSV files", self.path_edit.text())
        else:
            chosen, _ = QFileDialog.getSaveFileName(self, "Export to", self.path_edit.text())
        if chosen:
            self.path_edit.setText(chosen)

    def start(self) -> None:
        """Run the export with the chosen format and path (the dialog stays open to show the result)."""
        if self.job is not None and self.job.running:
            return
        out = Path(self.path_edit.text()).expanduser()
        if self.fmt != "csv" and out.exists():
            self.result_label.setText(f"{out} exists; an export never overwrites a file.")
            return
        self.job = ExportJob(self.db_path, self.session_id, self.fmt, out, parent=self)
        self.job.done.connect(self._done)
        self.export_button.setEnabled(False)
        self.result_label.setText("Exporting…")
        self.job.start()

    def _done(self, ok: bool, message: str) -> None:
        self.export_button.setEnabled(True)
        self.result_label.setText(message)
        if ok:
            self._suggest()  # the next export gets a new name
