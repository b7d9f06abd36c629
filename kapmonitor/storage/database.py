"""Opening the kapmonitor SQLite database: owner-only file, WAL, synchronous=FULL, migrations."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from sqlite_utils import Database

from kapmonitor.storage.migrations import migrate

APP_NAME = "kapmonitor"
DB_FILENAME = "kapmonitor.sqlite"

#: How long a write waits for another connection's lock before failing ("database is locked").
#: Short, because writes run on the GUI's event loop; a failed flush keeps its rows for the next one.
DEFAULT_BUSY_TIMEOUT_MS = 1000


def default_database_path() -> Path:
    """The workstation's database in the platform's user-data folder (`--db PATH` overrides it)."""
    return platformdirs.user_data_path(APP_NAME) / DB_FILENAME


def _create_owner_only(path: Path) -> None:
    """Create `path` empty and readable by its owner only, unless it exists already."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        if hasattr(os, "fchmod"):  # POSIX: 0o600 regardless of the process umask
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def open_database(path: str | Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Database:
    """Open (creating if need be) the database at `path`, configured and migrated.

    The file is created owner-only (0o600) before SQLite opens it; SQLite gives its -wal and -shm
    files the same mode. The connection uses WAL with synchronous=FULL, foreign keys and a busy
    timeout, and every pending numbered migration is applied.
    """
    path = Path(path)
    _create_owner_only(path)
    db = Database(path)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms):d}")
        db.enable_wal()
        # FULL, not NORMAL: with NORMAL the WAL is synced only at checkpoints (~every 500 s at our
        # write rate), so minutes could vanish on power loss; FULL costs ~4 ms per one-second
        # transaction on a consumer SSD (design.md, "Measured facts: Durability").
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db
