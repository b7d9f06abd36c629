"""Standalone session file: one session with all its rows, copied into a new owner-only SQLite database."""

from __future__ import annotations

import os
from pathlib import Path

from kapmonitor.export.progress import Progress, Stages
from kapmonitor.replay.model import Database
from kapmonitor.storage import get_session, open_database


class SessionFileError(RuntimeError):
    """The session file could not be written."""


def database_file(db: Database) -> str:
    """The path of the connection's main database file (SessionFileError if it is in memory)."""
    for _seq, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            if not file:
                raise SessionFileError("the source database is in memory; it has no file to attach")
            return str(file)
    raise SessionFileError("the source database has no main file")


def _columns(db: Database, schema: str, table: str) -> list[str]:
    return [str(r[1]) for r in db.execute(f'PRAGMA "{schema}".table_info("{table}")').fetchall()]


def export_session_file(
    db: Database, session_id: str, path: str | os.PathLike[str], *, progress: Progress | None = None
) -> dict[str, int]:
    """Write session `session_id` of `db` into a new database at `path`; returns rows copied per table.

    The new file is created owner-only and migrated by open_database (the same numbered migrations
    as the workstation's database), then every table that has a `session_id` column gets this
    session's rows, the `sessions` row first. It opens with open_database and replays directly.
    Refuses to overwrite an existing file.
    """
    target_path = Path(path)
    if get_session(db, session_id) is None:  # type: ignore[arg-type]  # a sqlite_utils Database
        raise KeyError(f"no session {session_id!r} in the database")
    if target_path.exists():
        raise FileExistsError(f"{target_path} exists; a session file is never overwritten")
    source_file = database_file(db)
    stages = Stages(progress, {"tables": 1.0})
    stages.report("tables")
    target = open_database(target_path)
    copied: dict[str, int] = {}
    try:
        target.execute("ATTACH DATABASE ? AS src", (source_file,))
        try:
            tables = [
                str(r[0])
                for r in target.execute(
                    "SELECT name FROM main.sqlite_master WHERE type = 'table' ORDER BY rowid"
                ).fetchall()
            ]
            with target.atomic():
                columns = _columns(target, "main", "sessions")
                names = ", ".join(f'"{c}"' for c in columns)
                target.execute(
                    f"INSERT INTO main.sessions ({names}) SELECT {names} FROM src.sessions WHERE id = ?",
                    (session_id,),
                )
                copied["sessions"] = 1
                for done, table in enumerate(tables):
                    stages.report("tables", done / len(tables))
                    cols = _columns(target, "main", table)
                    if table == "sessions" or "session_id" not in cols:
                        continue
                    common = [c for c in cols if c in set(_columns(target, "src", table))]
                    names = ", ".join(f'"{c}"' for c in common)
                    cursor = target.execute(
                        f'INSERT INTO main."{table}" ({names}) SELECT {names} FROM src."{table}" '
                        "WHERE session_id = ? ORDER BY rowid",  # amendments after what they amend
                        (session_id,),
                    )
                    copied[table] = int(cursor.rowcount)
        finally:
            target.execute("DETACH DATABASE src")
    except BaseException:
        target.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target_path}{suffix}").unlink(missing_ok=True)
        raise
    target.close()  # the last connection closes: SQLite checkpoints and removes the -wal file
    stages.finish()
    return copied
