"""Exports of a recorded session: CSV files or zip, EDF+, and a standalone session file."""

from kapmonitor.export.csv_export import export_csv, export_csv_zip
from kapmonitor.export.edf_export import export_edf
from kapmonitor.export.progress import Progress
from kapmonitor.export.session_file import SessionFileError, export_session_file

__all__ = [
    "Progress",
    "SessionFileError",
    "export_csv",
    "export_csv_zip",
    "export_edf",
    "export_session_file",
]
