"""The Recorder: buffers a session's measurements and writes them to SQLite in one-second batches."""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from sqlite_utils import Database

import kapmonitor
from kapmonitor.alarms.model import Transition
from kapmonitor.clock import Clock
from kapmonitor.measurements import BloodPressure, DeviceEvent, DeviceInfo, MalformedPacket, Numeric, Waveform

SessionKind = Literal["live", "demo"]
EndStatus = Literal["completed", "interrupted"]

#: Flush at least once a second: a crash costs at most the unflushed second (design.md, "Storage").
#: A flush happens at the first session tick after the interval has passed, and the console ticks
#: every 0.25 s (ui/app.py TICK_PERIOD_S), so the interval is one tick short of the second: flushes
#: are then 0.75-1.0 s apart. With 1.0 s they were 1.0-1.25 s apart (measured by the crash suite).
DEFAULT_FLUSH_INTERVAL_S = 0.75
#: A waveform chunk is written once it holds this much signal (or at the next flush, if sooner).
CHUNK_SECONDS = 1.0
#: A packet whose receive time is further than this from where the running chunk expects its first
#: sample (a gap: disconnect and return, or a burst) starts a new chunk, so times stay true.
GAP_TOLERANCE_S = 0.5

_INT16_MIN: Final = -(2**15)
_INT16_MAX: Final = 2**15 - 1
_SAMPLE_DTYPE: Final = np.dtype("<i2")  # packed little-endian int16, as queries.waveform reads

_SQL_NUMERIC = (
    "INSERT INTO numerics (session_id, seq, mono, t_utc, param, value, quality, device) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_CHUNK = (
    "INSERT INTO waveform_chunks (session_id, seq, name, device, rate_hz, start_mono, start_utc, n, "
    "samples) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_DEVICE_EVENT = (
    "INSERT INTO device_events (session_id, seq, mono, t_utc, device, state, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SQL_MALFORMED = (
    "INSERT INTO malformed_packets (session_id, seq, mono, t_utc, device, characteristic, data, error) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# OR IGNORE: the unique index refuses a stored reading uploaded twice (in memory and on disk)
_SQL_BP = (
    "INSERT OR IGNORE INTO blood_pressure (session_id, seq, mono, t_utc, measured_utc, systolic, "
    "diastolic, mean, pulse, status, stored, user_id, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_ALARM = (
    "INSERT INTO alarm_events (session_id, seq, mono, t_utc, event, alarm_id, alarm_key, state, priority, "
    "param, message, detail, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_DEVICE = "INSERT OR REPLACE INTO devices (session_id, device, name, kind) VALUES (?, ?, ?, ?)"
_EVENT_TABLES: Final = (
    "numerics",
    "waveform_chunks",
    "device_events",
    "malformed_packets",
    "audit",
    "blood_pressure",
    "alarm_events",
    # the session log's tables (migration 0003, written by storage.session_log.SessionLog)
    "observations",
    "phase_changes",
    "decisions",
    # reviewer annotations and adjudications (migration 0005, written by storage.review.ReviewLog)
    "annotations",
    "alarm_adjudications",
)

type _Row = tuple[object, ...]


class RecorderError(RuntimeError):
    """A write to the database failed; buffered rows are kept and retried at the next flush."""


def new_session_id(wall: float) -> str:
    """A readable session id from a UTC wall time: '20261125-114512-a3f9' (4 random hex digits)."""
    stamp = datetime.fromtimestamp(wall, tz=UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(2)}"


def pack_samples(samples: npt.ArrayLike) -> bytes:
    """Pack waveform samples as little-endian int16; refuses values that int16 cannot hold."""
    wide = np.asarray(samples, dtype=np.int64)
    if wide.size and (int(wide.min()) < _INT16_MIN or int(wide.max()) > _INT16_MAX):
        raise ValueError(
            f"waveform sample out of int16 range [{_INT16_MIN}, {_INT16_MAX}]: "
            f"min {int(wide.min())}, max {int(wide.max())}"
        )
    return wide.astype(_SAMPLE_DTYPE).tobytes()


@dataclass(slots=True)
class _Chunk:
    """Samples of one (device, waveform) accumulating towards a chunk."""

    device: str
    name: str
    rate_hz: float
    start_mono: float
    start_wall: float
    parts: list[npt.NDArray[np.int16]] = field(default_factory=list)
    n: int = 0

    def expected_next_mono(self) -> float:
        return self.start_mono + self.n / self.rate_hz

    def fits(self, w: Waveform) -> bool:
        return w.rate_hz == self.rate_hz and abs(w.mono - self.expected_next_mono()) <= GAP_TOLERANCE_S


class Recorder:
    """Records one session into the database (implements kapmonitor.session.Sink).

    add_* calls only buffer (cheap, per sample); maybe_flush() — from Session.tick() — writes the
    buffer in ONE transaction once `flush_interval_s` of monotonic time has passed since the last
    flush. Audit entries are committed at once. Every event row gets `seq`, a per-session counter
    shared by all tables, so the log's order survives wall-clock jumps (and monotonic-clock resets
    after a reboot, when a session is resumed with attach()).
    """

    def __init__(
        self, db: Database, clock: Clock, *, flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S
    ) -> None:
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be positive")
        self._db = db
        self._clock = clock
        self._interval = flush_interval_s
        self._session_id: str | None = None
        self._ended = False
        self._seq = 0
        self._last_flush = clock.monotonic()
        self._numerics: list[_Row] = []
        self._chunks: list[_Row] = []
        self._device_events: list[_Row] = []
        self._malformed: list[_Row] = []
        self._bp: list[_Row] = []
        self._alarms: list[_Row] = []
        self._devices: dict[str, _Row] = {}
        self._acc: dict[tuple[str, str], _Chunk] = {}

    # -- session ---------------------------------------------------------------------------
    @property
    def db(self) -> Database:
        return self._db

    @property
    def session_id(self) -> str | None:
        """The id of the session this recorder writes to (None before begin_session)."""
        return self._session_id

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written (waveform samples count once a chunk is cut)."""
        return (
            len(self._numerics)
            + len(self._chunks)
            + len(self._device_events)
            + len(self._malformed)
            + len(self._bp)
            + len(self._alarms)
            + len(self._devices)
        )

    @property
    def last_seq(self) -> int:
        """The highest seq handed out so far in this session."""
        return self._seq

    def begin_session(self, kind: SessionKind = "live", note: str = "") -> str:
        """Create the session's row (committed at once) and start recording into it."""
        if self._session_id is not None:
            raise RuntimeError(f"this recorder already records session {self._session_id}")
        if kind not in ("live", "demo"):
            raise ValueError(f"session kind must be 'live' or 'demo', not {kind!r}")
        wall, mono = self._clock.wall(), self._clock.monotonic()
        for _attempt in range(8):  # 4 random hex digits per second: a clash is rare, retry it
            session_id = new_session_id(wall)
            try:
                self._write(
                    "INSERT INTO sessions (id, started_utc, started_mono, status, kind, app_version, "
                    "note) VALUES (?, ?, ?, 'recording', ?, ?, ?)",
                    (session_id, wall, mono, kind, kapmonitor.__version__, note),
                )
            except sqlite3.IntegrityError:
                continue
            break
        else:
            raise RecorderError("could not find an unused session id")
        self._session_id = session_id
        self._last_flush = mono
        return session_id

    @classmethod
    def attach(
        cls,
        db: Database,
        clock: Clock,
        session_id: str,
        *,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
    ) -> Recorder:
        """A recorder that continues an unfinished session, its seq following the highest stored.

        The session must be 'recording' (the app died) or 'interrupted' (it is set back to
        'recording'); a completed session is refused. After a reboot the monotonic clock restarts,
        so `mono` may step back at the resume point; `seq` and `t_utc` still order the record.
        """
        row = db.execute("SELECT status FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise KeyError(f"no session {session_id!r} in the database")
        status = row[0]
        if status == "completed":
            raise ValueError(f"session {session_id} is completed; it cannot be resumed")
        recorder = cls(db, clock, flush_interval_s=flush_interval_s)
        if status == "interrupted":
            recorder._write(
                "UPDATE sessions SET status = 'recording', ended_utc = NULL, ended_mono = NULL WHERE id = ?",
                (session_id,),
            )
        recorder._session_id = session_id
        recorder._seq = max_seq(db, session_id)
        return recorder

    def end_session(self, status: EndStatus = "completed") -> None:
        """Flush everything, then mark the session ended with `status`."""
        sid = self._require_session()
        if status not in ("completed", "interrupted"):
            raise ValueError(f"a session ends 'completed' or 'interrupted', not {status!r}")
        self.flush()
        self._write(
            "UPDATE sessions SET ended_utc = ?, ended_mono = ?, status = ? WHERE id = ?",
            (self._clock.wall(), self._clock.monotonic(), status, sid),
        )
        self._ended = True

    def _require_session(self) -> str:
        if self._session_id is None:
            raise RuntimeError("no session: call begin_session() or Recorder.attach() first")
        if self._ended:
            raise RuntimeError(f"session {self._session_id} has ended")
        return self._session_id

    def next_seq(self) -> int:
        """Hand out the session's next seq to another writer (the SessionLog), so that every table
        shares one log order without collisions."""
        self._require_session()
        return self._next_seq()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # -- Sink ------------------------------------------------------------------------------
    def add_numeric(self, n: Numeric) -> None:
        sid = self._require_session()
        self._numerics.append(
            (sid, self._next_seq(), n.mono, n.wall, n.param.value, n.value, int(n.quality), n.device)
        )

    def add_waveform(self, w: Waveform) -> None:
        """Buffer waveform samples; they are cut into ~1 s chunks of packed int16.

        A chunk's sample i is at start_mono + i / rate_hz, start_mono being the receive time of the
        chunk's first packet; a rate change or a gap of more than GAP_TOLERANCE_S starts a new chunk.
        Raises ValueError for samples outside int16 (nothing is buffered then).
        """
        sid = self._require_session()
        if not w.samples:
            return
        if w.rate_hz <= 0:
            raise ValueError(f"waveform {w.name!r} from {w.device}: rate must be positive")
        packed = np.frombuffer(pack_samples(w.samples), dtype=_SAMPLE_DTYPE)
        key = (w.device, w.name)
        acc = self._acc.get(key)
        if acc is not None and not acc.fits(w):
            self._cut(sid, key)
            acc = None
        if acc is None:
            acc = self._acc[key] = _Chunk(w.device, w.name, w.rate_hz, w.mono, w.wall)
        acc.parts.append(packed)
        acc.n += len(packed)
        if acc.n >= CHUNK_SECONDS * acc.rate_hz:
            self._cut(sid, key)

    def _cut(self, sid: str, key: tuple[str, str]) -> None:
        acc = self._acc.pop(key)
        samples = np.concatenate(acc.parts).astype(_SAMPLE_DTYPE, copy=False).tobytes()
        self._chunks.append(
            (
                sid,
                self._next_seq(),
                acc.name,
                acc.device,
                acc.rate_hz,
                acc.start_mono,
                acc.start_wall,
                acc.n,
                samples,
            )
        )

    def add_device_event(self, e: DeviceEvent) -> None:
        sid = self._require_session()
        state = None if e.state is None else e.state.value
        self._device_events.append((sid, self._next_seq(), e.mono, e.wall, e.device, state, e.detail))

    def add_malformed(self, m: MalformedPacket) -> None:
        sid = self._require_session()
        self._malformed.append(
            (sid, self._next_seq(), m.mono, m.wall, m.device, m.characteristic, bytes(m.data), m.error)
        )

    def add_blood_pressure(self, bp: BloodPressure) -> None:
        sid = self._require_session()
        self._bp.append(
            (
                sid,
                self._next_seq(),
                bp.mono,
                bp.wall,
                bp.measured_wall,
                bp.systolic,
                bp.diastolic,
                bp.mean,
                bp.pulse_rate,
                int(bp.status),
                int(bp.stored),
                bp.user_id,
                bp.device,
            )
        )

    def add_alarm_transition(self, t: Transition, value: float | None = None) -> None:
        """Buffer an alarm transition (raised, acknowledged, cleared, paused...) with its value."""
        sid = self._require_session()
        self._alarms.append(
            (
                sid,
                self._next_seq(),
                t.mono,
                t.wall,
                t.event.value,
                t.alarm_id,
                t.key,
                None if t.state is None else t.state.value,
                None if t.priority is None else t.priority.name.lower(),
                None if t.param is None else str(t.param),
                t.message,
                t.detail,
                value,
            )
        )

    def add_device(self, info: DeviceInfo) -> None:
        """Note what a device is (name, kind) for this session; the newest description wins."""
        sid = self._require_session()
        self._devices[info.device] = (sid, info.device, info.name, info.kind)

    def add_audit(self, who: str, action: str, detail: str = "") -> None:
        """Append to the audit trail, committed at once (not batched).

        Outside a session (before begin_session) the row has no session and its seq continues the
        session-less audit rows. After end_session it still belongs to the ended session.
        """
        mono, wall = self._clock.monotonic(), self._clock.wall()
        sid = self._session_id
        if sid is None:
            self._write(
                "INSERT INTO audit (session_id, seq, mono, t_utc, who, action, detail) "
                "SELECT NULL, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ? FROM audit "
                "WHERE session_id IS NULL",
                (mono, wall, who, action, detail),
            )
            return
        seq = self._seq + 1
        self._write(
            "INSERT INTO audit (session_id, seq, mono, t_utc, who, action, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sid, seq, mono, wall, who, action, detail),
        )
        self._seq = seq  # only once committed: a failed audit write does not burn a number

    # -- writing ---------------------------------------------------------------------------
    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        """One statement in its own committed transaction; sqlite3 errors become RecorderError
        (except IntegrityError, which callers may expect)."""
        try:
            with self._db.atomic():
                self._db.conn.execute(sql, params)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise RecorderError(f"database write failed: {exc}") from exc

    def maybe_flush(self) -> bool:
        """Flush if `flush_interval_s` has passed on the monotonic clock since the last flush.

        Returns whether it flushed. A failed flush raises RecorderError and is retried after the
        next interval (not on every call), with every buffered row kept.
        """
        if self._session_id is None or self._ended:
            return False
        now = self._clock.monotonic()
        if now - self._last_flush < self._interval:
            return False
        self._last_flush = now
        self.flush()
        return True

    def flush(self) -> int:
        """Write everything buffered (partial waveform chunks too) in ONE transaction.

        Returns the number of rows written. If the write fails the transaction is rolled back,
        nothing is dropped (the rows stay buffered, with their seq) and RecorderError is raised.
        """
        if self._session_id is None:
            return 0
        self._last_flush = self._clock.monotonic()
        for key in list(self._acc):
            self._cut(self._session_id, key)
        rows = self.pending
        if rows == 0:
            return 0
        conn = self._db.conn
        try:
            with self._db.atomic():
                # executemany on plain tuples: no per-row dict work (see the report's rows/s figure)
                if self._numerics:
                    conn.executemany(_SQL_NUMERIC, self._numerics)
                if self._chunks:
                    conn.executemany(_SQL_CHUNK, self._chunks)
                if self._device_events:
                    conn.executemany(_SQL_DEVICE_EVENT, self._device_events)
                if self._malformed:
                    conn.executemany(_SQL_MALFORMED, self._malformed)
                if self._bp:
                    conn.executemany(_SQL_BP, self._bp)
                if self._alarms:
                    conn.executemany(_SQL_ALARM, self._alarms)
                if self._devices:
                    conn.executemany(_SQL_DEVICE, list(self._devices.values()))
        except sqlite3.Error as exc:
            raise RecorderError(
                f"could not write {rows} buffered rows of session {self._session_id}: {exc}; "
                "they are kept and will be written at the next flush"
            ) from exc
        self._numerics = []
        self._chunks = []
        self._device_events = []
        self._malformed = []
        self._bp = []
        self._alarms = []
        self._devices = {}
        return rows


def max_seq(db: Database, session_id: str) -> int:
    """The highest seq stored for a session in any event table (0 if none)."""
    highest = 0
    for table in _EVENT_TABLES:
        row = db.execute(f"SELECT MAX(seq) FROM {table} WHERE session_id = ?", (session_id,)).fetchone()
        if row is not None and row[0] is not None:
            highest = max(highest, int(row[0]))
    return highest
