"""The replay model: a recorded session read from the database, served like a live Session at any position."""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from kapmonitor.measurements import (
    BloodPressure,
    DeviceCounters,
    DeviceEvent,
    DeviceInfo,
    DeviceState,
    MalformedPacket,
    Measurement,
    Numeric,
    Param,
    Quality,
)
from kapmonitor.replay.clock import ReplayClock
from kapmonitor.ringbuffer import RingBuffer
from kapmonitor.session import (
    BloodPressureTaken,
    DeviceChanged,
    DeviceStatus,
    NumericsChanged,
    Session,
)
from kapmonitor.storage import (
    alarm_events,
    audit_entries,
    blood_pressure,
    device_events,
    get_session,
    malformed_packets,
    session_devices,
)
from kapmonitor.storage.queries import AlarmEventRow, AuditRow, DeviceEventRow, MalformedRow, SessionRow

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The waveform window a frame shows before its position (the live sweep keeps 16 s; this is
#: what a replayed sweep needs to draw one screen).
WAVE_WINDOW_S = 10.0
#: A move forward by more than this is a seek (listeners get the state restated, not every event
#: passed); 60x playback at ~30 frames/s moves 2 s a frame.
SEEK_BEYOND_S = 60.0
#: Decoded waveform chunks kept in memory (one ~1 s chunk each): two windows' worth and more.
WAVE_CACHE_CHUNKS = 256


class Database(Protocol):
    """What the replay needs of a database connection (kapmonitor.storage.open_database's)."""

    def execute(self, sql: str, parameters: Any = ...) -> Any: ...


class MarkerKind(StrEnum):
    """Kinds of point events on the timeline; alarm, observation and phase join as they are recorded."""

    ANNOTATION = "annotation"  # a reviewer's note (migration 0005)
    ADJUDICATION = "adjudication"  # a reviewer's verdict on an alarm, at the alarm's onset

    BP = "bp"
    DEVICE = "device"
    MALFORMED = "malformed"
    AUDIT = "audit"
    ALARM = "alarm"  # an alarm raised (or returned, after latching)
    ALARM_EVENT = "alarm_event"  # any other alarm transition: acknowledged, cleared, pause...
    OBSERVATION = "observation"
    PHASE = "phase"
    DECISION = "decision"


@dataclass(frozen=True, slots=True)
class Marker:
    """One point event on the replay timeline (a generic stream: kind, time, text)."""

    kind: str  # a MarkerKind value, or a newer stream's name
    position: float  # seconds since the session start (monotonic timeline)
    mono: float
    wall: float
    text: str
    device: str = ""


@dataclass(frozen=True, slots=True)
class NumericSeries:
    """Every recorded sample of one parameter, in time order, as columns."""

    param: Param
    mono: FloatArray
    wall: FloatArray
    value: FloatArray  # NaN where the device sent "no valid value"
    quality: IntArray
    device: IntArray  # index into `devices`
    devices: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.mono.size)

    def index_at(self, mono: float) -> int:
        """Index of the last sample at or before `mono` (-1 if none)."""
        return int(np.searchsorted(self.mono, mono, side="right")) - 1

    def numeric(self, i: int) -> Numeric:
        v = float(self.value[i])
        return Numeric(
            param=self.param,
            value=None if np.isnan(v) else v,
            mono=float(self.mono[i]),
            wall=float(self.wall[i]),
            device=self.devices[int(self.device[i])],
            quality=Quality(int(self.quality[i])),
        )


def load_numeric_series(db: Database, session_id: str) -> dict[Param, NumericSeries]:
    """All numerics of a session as one NumericSeries per parameter (one query per parameter)."""
    params = [
        str(r[0])
        for r in db.execute(
            "SELECT DISTINCT param FROM numerics WHERE session_id = ?", (session_id,)
        ).fetchall()
    ]
    out: dict[Param, NumericSeries] = {}
    for name in params:
        try:
            param = Param(name)
        except ValueError:
            continue  # a parameter this version does not know: not shown, still in the exports' rows
        rows = db.execute(
            "SELECT mono, t_utc, value, quality, device FROM numerics "
            "WHERE session_id = ? AND param = ? ORDER BY mono, seq",
            (session_id, name),
        ).fetchall()
        devices: dict[str, int] = {}
        table = np.array(
            [(r[0], r[1], r[2], r[3], devices.setdefault(r[4], len(devices))) for r in rows],
            dtype=np.float64,
        ).reshape(-1, 5)  # None (no valid value) becomes NaN
        out[param] = NumericSeries(
            param=param,
            mono=np.ascontiguousarray(table[:, 0]),
            wall=np.ascontiguousarray(table[:, 1]),
            value=np.ascontiguousarray(table[:, 2]),
            quality=table[:, 3].astype(np.int64),
            device=table[:, 4].astype(np.int64),
            devices=tuple(devices),
        )
    return out


def build_markers(
    origin_mono: float,
    bp: Iterable[BloodPressure],
    device_rows: Iterable[DeviceEventRow],
    malformed_rows: Iterable[MalformedRow],
    audit_rows: Iterable[AuditRow],
    *,
    extra: Iterable[Marker] = (),
) -> list[Marker]:
    """The session's point events as one marker stream in time order (positions from origin_mono)."""
    markers: list[Marker] = []
    for b in bp:
        text = f"BP {_fmt(b.systolic)}/{_fmt(b.diastolic)} ({_fmt(b.mean)}) mmHg"
        if b.stored:
            text += " (stored)"
        markers.append(Marker(MarkerKind.BP, b.mono - origin_mono, b.mono, b.wall, text, b.device))
    for e in device_rows:
        text = e.detail if e.state is None else f"{e.state.value} {e.detail}".strip()
        markers.append(Marker(MarkerKind.DEVICE, e.mono - origin_mono, e.mono, e.t_utc, text, e.device))
    for m in malformed_rows:
        text = f"malformed {m.characteristic}: {m.error}"
        markers.append(Marker(MarkerKind.MALFORMED, m.mono - origin_mono, m.mono, m.t_utc, text, m.device))
    for a in audit_rows:
        text = f"{a.who}: {a.action} {a.detail}".strip()
        markers.append(Marker(MarkerKind.AUDIT, a.mono - origin_mono, a.mono, a.t_utc, text))
    markers.extend(extra)
    markers.sort(key=lambda m: m.position)
    return markers


def has_table(db: Database, name: str) -> bool:
    """Whether the database has this table (streams of newer migrations are read only if present)."""
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None


#: Alarm transitions that start (or restart) an alarm: the "next alarm" jumps land on these.
ALARM_ONSETS = frozenset({"raised", "returned"})


def load_log_markers(db: Database, session_id: str, origin_mono: float) -> list[Marker]:
    """Alarm transitions (migration 0004), observations, phase changes and decisions (0003).

    An observation sits at its key press (pressed_*), not at its save; a correction is its own
    marker saying which observation it amends.
    """
    markers: list[Marker] = []
    if has_table(db, "alarm_events"):
        for a in alarm_events(db, session_id):  # type: ignore[arg-type]  # a sqlite_utils Database
            kind = MarkerKind.ALARM if a.event in ALARM_ONSETS else MarkerKind.ALARM_EVENT
            words = [a.event]
            if a.priority:
                words.append(a.priority)
            if a.message:
                words.append(a.message)
            if a.value is not None:
                words.append(f"(value {a.value:g})")
            if a.detail:
                words.append(a.detail)
            markers.append(Marker(kind, a.mono - origin_mono, a.mono, a.t_utc, " ".join(words)))
    if has_table(db, "observations"):
        for oid, code, text, scale, score, dose, mono, wall, author, amends in db.execute(
            "SELECT id, code, text, scale, score, dose_mg, pressed_mono, pressed_utc, author, amends "
            "FROM observations WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall():
            words = [str(code)]
            if scale is not None:
                words.append(f"{scale}={score}")
            if dose is not None:
                words.append(f"{dose:g} mg")
            if text:
                words.append(str(text))
            if amends is not None:
                words.append(f"(amends #{amends})")
            words.append(f"[#{oid} {author}]")
            markers.append(Marker(MarkerKind.OBSERVATION, mono - origin_mono, mono, wall, " ".join(words)))
    if has_table(db, "phase_changes"):
        for mono, wall, before, after, who, detail in db.execute(
            "SELECT mono, t_utc, from_phase, to_phase, who, detail FROM phase_changes "
            "WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall():
            text = f"{before} → {after} ({who}) {detail}".strip()
            markers.append(Marker(MarkerKind.PHASE, mono - origin_mono, mono, wall, text))
    if has_table(db, "decisions"):
        for mono, wall, kind, choice, reason, who in db.execute(
            "SELECT mono, t_utc, kind, choice, reason, who FROM decisions WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall():
            text = f"{kind}: {choice} ({who}) {reason}".strip()
            markers.append(Marker(MarkerKind.DECISION, mono - origin_mono, mono, wall, text))
    if has_table(db, "annotations"):
        for mono, wall, text, reviewer in db.execute(
            "SELECT mono, t_utc, text, reviewer FROM annotations WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall():
            markers.append(
                Marker(MarkerKind.ANNOTATION, mono - origin_mono, mono, wall, f"{text} [{reviewer}]")
            )
    if has_table(db, "alarm_adjudications"):
        for alarm_id, verdict, comment, reviewer, mono, wall in db.execute(
            "SELECT j.alarm_id, j.verdict, j.comment, j.reviewer, e.mono, e.t_utc "
            "FROM alarm_adjudications AS j "
            "JOIN alarm_events AS e ON e.session_id = j.session_id AND e.alarm_id = j.alarm_id AND e.seq = "
            "(SELECT MIN(seq) FROM alarm_events WHERE session_id = j.session_id AND alarm_id = j.alarm_id) "
            "WHERE j.session_id = ? ORDER BY j.seq",
            (session_id,),
        ).fetchall():
            text = f"alarm #{alarm_id}: {verdict} ({reviewer}) {comment}".strip()
            markers.append(Marker(MarkerKind.ADJUDICATION, mono - origin_mono, mono, wall, text))
    return markers


def load_markers(db: Database, session_id: str, origin_mono: float) -> list[Marker]:
    """All of a session's markers read from the database, in time order."""
    return build_markers(
        origin_mono,
        sorted(blood_pressure(db, session_id), key=lambda b: b.mono),  # type: ignore[arg-type]
        device_events(db, session_id),  # type: ignore[arg-type]
        malformed_packets(db, session_id),  # type: ignore[arg-type]
        audit_entries(db, session_id),  # type: ignore[arg-type]
        extra=load_log_markers(db, session_id, origin_mono),
    )


#: Alarm states (alarm_events.state) in which an alarm is on the list (kapmonitor.alarms.LIVE_STATES).
LIVE_ALARM_STATES = frozenset({"active", "acknowledged", "latched"})
#: Priority names (alarm_events.priority) in their order, for sorting.
PRIORITY_RANK = {"low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True, slots=True)
class AlarmAt:
    """An alarm as the live alarm list showed it at one instant of the recording."""

    alarm_id: int
    key: str
    state: str  # active, acknowledged or latched
    priority: str  # low, medium or high
    message: str
    raised_position: float  # seconds since the session start

    @property
    def marker(self) -> str:
        """The IEC text marker: *** high, ** medium, * low (colour is never the only cue)."""
        return "*" * PRIORITY_RANK.get(self.priority, 0)


@dataclass(slots=True)
class AlarmSpan:
    """One alarm over the session: raised at start_position, cleared at end_position (None: never)."""

    alarm_id: int
    start_position: float
    end_position: float | None
    priority: str  # the highest it reached
    message: str


@dataclass(frozen=True, slots=True)
class LinkGap:
    """A device's link down: from its lost/disconnected event to its next "connected" (None: it
    never came back); positions are seconds since the session start."""

    device: str
    start_position: float
    end_position: float | None
    detail: str
    start_mono: float  # the opening event's monotonic time (its DEVICE marker's `mono`)


def _alarm_rows(db: Database, session_id: str) -> list[AlarmEventRow]:
    """A session's per-alarm transitions (engine-wide ones, alarm_id None, left out) in time order."""
    if not has_table(db, "alarm_events"):
        return []
    rows = [r for r in alarm_events(db, session_id) if r.alarm_id is not None]  # type: ignore[arg-type]
    return sorted(rows, key=lambda r: (r.mono, r.seq))


class WaveformTrack:
    """One recorded waveform, read lazily by time window: an index of chunk start times in
    memory, the packed int16 samples fetched and decoded only for the chunks a window touches."""

    def __init__(self, db: Database, session_id: str, name: str, device: str) -> None:
        self._db = db
        self._session_id = session_id
        self.name = name
        self.device = device
        rows = db.execute(
            "SELECT start_mono, rate_hz, n, seq FROM waveform_chunks "
            "WHERE session_id = ? AND name = ? AND device = ? ORDER BY start_mono",
            (session_id, name, device),
        ).fetchall()
        meta = np.array(rows, dtype=np.float64).reshape(-1, 4)
        self.starts: FloatArray = np.ascontiguousarray(meta[:, 0])
        self.rates: FloatArray = np.ascontiguousarray(meta[:, 1])
        self.counts: IntArray = meta[:, 2].astype(np.int64)
        self.seqs: IntArray = meta[:, 3].astype(np.int64)
        self.ends: FloatArray = self.starts + self.counts / self.rates
        # chunks never overlap, so their ends are sorted too (searchsorted needs it)
        self._ends_sorted = np.maximum.accumulate(self.ends) if self.ends.size else self.ends
        self._cache: OrderedDict[int, tuple[FloatArray, FloatArray]] = OrderedDict()

    @property
    def rate_hz(self) -> float:
        return float(self.rates[0]) if self.rates.size else 0.0

    def __len__(self) -> int:
        return int(self.starts.size)

    def _load(self, indices: list[int]) -> None:
        missing = [i for i in indices if i not in self._cache]
        if missing:
            seqs = [int(self.seqs[i]) for i in missing]
            marks = ",".join("?" * len(seqs))
            rows = self._db.execute(
                f"SELECT seq, samples FROM waveform_chunks WHERE session_id = ? AND seq IN ({marks})",
                (self._session_id, *seqs),
            ).fetchall()
            blobs = {int(r[0]): bytes(r[1]) for r in rows}
            for i in missing:
                v = np.frombuffer(blobs[int(self.seqs[i])], dtype="<i2").astype(np.float64)
                t = self.starts[i] + np.arange(v.size, dtype=np.float64) / self.rates[i]
                self._cache[i] = (t, v)
        for i in indices:
            self._cache.move_to_end(i)
        while len(self._cache) > max(WAVE_CACHE_CHUNKS, len(indices)):
            self._cache.popitem(last=False)

    def window(self, start_mono: float, end_mono: float) -> tuple[FloatArray, FloatArray]:
        """(times, samples) of the samples with start_mono < t <= end_mono, in time order."""
        first = int(np.searchsorted(self._ends_sorted, start_mono, side="right"))
        last = int(np.searchsorted(self.starts, end_mono, side="right"))
        indices = list(range(first, last))
        if not indices:
            return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.float64)
        self._load(indices)
        t = np.concatenate([self._cache[i][0] for i in indices])
        v = np.concatenate([self._cache[i][1] for i in indices])
        keep = (t > start_mono) & (t <= end_mono)
        return t[keep], v[keep]


class SeriesView(RingBuffer):
    """A read-only RingBuffer look-alike over fixed arrays, showing the first `end` points.

    The UI reads `.arrays()` and `.version` exactly as from a live RingBuffer; the version bumps
    only when what it shows changes, so plots redraw only then.
    """

    def __init__(self, t: FloatArray, v: FloatArray) -> None:
        super().__init__(1)
        self._full_t = t
        self._full_v = v
        self._end = 0
        self._view_version = 0

    def show(self, t: FloatArray, v: FloatArray, end: int | None = None) -> None:
        """Replace the arrays (waveform windows) and/or the visible length."""
        self._full_t, self._full_v = t, v
        self._end = int(t.size) if end is None else end
        self._view_version += 1

    def set_end(self, end: int) -> None:
        if end != self._end:
            self._end = end
            self._view_version += 1

    @property
    def version(self) -> int:
        return self._view_version

    @property
    def capacity(self) -> int:
        return int(self._full_t.size)

    def __len__(self) -> int:
        return self._end

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        return self._full_t[: self._end].copy(), self._full_v[: self._end].copy()

    def last(self) -> tuple[float, float] | None:
        if self._end == 0:
            return None
        return float(self._full_t[self._end - 1]), float(self._full_v[self._end - 1])

    def append(self, t: float, v: float | None) -> None:
        raise TypeError("a replayed series is read-only")

    def extend(self, t: FloatArray, v: FloatArray) -> None:
        raise TypeError("a replayed series is read-only")

    def clear(self) -> None:
        raise TypeError("a replayed series is read-only")


@dataclass(frozen=True, slots=True)
class _DeviceStep:
    """A device's status from one event on (cumulative: state, detail, stale)."""

    mono: float
    state: DeviceState
    detail: str
    stale: bool
    event: DeviceEvent


def _is_break(e: DeviceEventRow) -> bool:
    """Events at which the live session broke its trends (Session._break_trends)."""
    if e.state in (DeviceState.LOST, DeviceState.DISCONNECTED):
        return True
    return e.state is None and e.detail.startswith("no data for")


def _with_gaps(series: NumericSeries, breaks: list[tuple[float, str]]) -> tuple[FloatArray, FloatArray]:
    """The series' (t, v) with a NaN at each break of the device that fed its last sample."""
    t, v = series.mono, series.value
    at: list[int] = []
    when: list[float] = []
    for mono, device in breaks:
        i = series.index_at(mono)
        # as live: only after a real value of this device, and once until the next sample
        if i < 0 or np.isnan(v[i]) or series.devices[int(series.device[i])] != device:
            continue
        if at and at[-1] == i + 1:
            continue
        at.append(i + 1)
        when.append(mono)
    if not at:
        return t, v
    return np.insert(t, at, when), np.insert(v, at, np.nan)


class ReplaySession(Session):
    """A recorded session served as a live Session would show it at the replay clock's position.

    Pass it to the monitor widgets unchanged: `latest`, `trends`, `waves`, `devices`,
    `bp_readings`, `elapsed()`, `is_stale()` and `subscribe()` behave as live. Call `tick()` each
    frame (or `advance_to()`/`seek()`): listeners then get NumericsChanged, DeviceChanged and
    BloodPressureTaken for what the position passed. Recording methods (ingest...) refuse: a
    replay is read-only. Numerics load once as arrays, waveforms lazily by window.
    """

    def __init__(
        self,
        db: Database,
        session_id: str,
        clock: ReplayClock,
        *,
        wave_window_s: float = WAVE_WINDOW_S,
        extra_markers: Iterable[Marker] = (),
    ) -> None:
        row = get_session(db, session_id)  # type: ignore[arg-type]  # a sqlite_utils Database
        if row is None:
            raise KeyError(f"no session {session_id!r} in the database")
        self.row: SessionRow = row
        self.session_id = session_id
        self._db = db
        self._wave_window = wave_window_s
        self.series = load_numeric_series(db, session_id)
        self.all_bp: list[BloodPressure] = sorted(
            blood_pressure(db, session_id),  # type: ignore[arg-type]
            key=lambda b: b.mono,
        )
        # time order for bisecting (seq order is the same unless a resumed session's clock restarted)
        self.device_rows = sorted(device_events(db, session_id), key=lambda e: e.mono)  # type: ignore[arg-type]
        self.malformed_rows = malformed_packets(db, session_id)  # type: ignore[arg-type]
        self.audit_rows = audit_entries(db, session_id)  # type: ignore[arg-type]
        self.wave_tracks: dict[str, WaveformTrack] = {}
        for name, device in db.execute(
            "SELECT name, device FROM waveform_chunks WHERE session_id = ? "
            "GROUP BY name, device ORDER BY name, COUNT(*) DESC",
            (session_id,),
        ).fetchall():
            if name not in self.wave_tracks:  # several devices: the one with most signal
                self.wave_tracks[str(name)] = WaveformTrack(db, session_id, str(name), str(device))

        self.duration = self._duration()
        self._wall_at = self._wall_map()
        clock.set_timeline(
            origin_mono=row.started_mono,
            origin_wall=row.started_utc,
            duration=self.duration,
            wall_at=self._wall_at,
        )
        self.replay_clock = clock
        super().__init__(clock)
        self.started_mono = row.started_mono
        self.started_wall = row.started_utc

        breaks = [(e.mono, e.device) for e in self.device_rows if _is_break(e)]
        self.trends = {}
        self._trend_views: dict[Param, tuple[SeriesView, FloatArray]] = {}
        for param, s in self.series.items():
            t, v = _with_gaps(s, breaks)
            view = SeriesView(t, v)
            self.trends[param] = view
            self._trend_views[param] = (view, t)
        self._wave_views: dict[str, SeriesView] = {}
        self.waves = {}
        for name in self.wave_tracks:
            empty = np.empty(0, dtype=np.float64)
            self._wave_views[name] = SeriesView(empty, empty)
            self.waves[name] = self._wave_views[name]

        self._device_steps: dict[str, list[_DeviceStep]] = {}
        self._build_device_steps()
        self._device_step_mono = {d: [st.mono for st in steps] for d, steps in self._device_steps.items()}
        self._malformed_mono: dict[str, list[float]] = {}
        for m in self.malformed_rows:
            self._malformed_mono.setdefault(m.device, []).append(m.mono)
        for monos in self._malformed_mono.values():
            monos.sort()
        infos = {d.device: d for d in session_devices(db, session_id)}  # type: ignore[arg-type]
        names = set(infos) | set(self._device_steps) | set(self._malformed_mono)
        for s in self.series.values():
            names.update(s.devices)
        self._all_devices: dict[str, DeviceStatus] = {}
        # the record keeps no streaming flag: a device that took BP readings is a cuff, whose
        # silence between readings is normal (DeviceInfo.streaming); every other one streams
        cuffs = {b.device for b in self.all_bp}
        for device in sorted(names):
            info = infos.get(device)
            streaming = device not in cuffs
            self._all_devices[device] = DeviceStatus(
                info=DeviceInfo(device, info.name, info.kind, streaming=streaming)
                if info
                else DeviceInfo(device, device, "unknown", streaming=streaming),
                state=DeviceState.SEARCHING,
                detail="",
                counters=DeviceCounters(),
            )
        # a device is listed from its first record on, as live from its registration (which the
        # link follows at once with "connecting"); search placeholders are never recorded
        first = self._first_seen()
        self._device_first = sorted(
            ((first.get(d, row.started_mono), d) for d in self._all_devices), key=lambda x: x
        )

        self._extra_markers = tuple(extra_markers)
        self.markers: list[Marker] = []
        self._marker_positions: list[float] = []
        self.reload_markers()
        self._alarm_rows = _alarm_rows(db, session_id)
        self._alarm_mono = [r.mono for r in self._alarm_rows]
        self._bp_mono = [b.mono for b in self.all_bp]
        self._event_mono = [e.mono for e in self.device_rows]
        self._index: dict[Param, int] = {}
        self._position = -1.0
        self._frame(clock.position, emit=False)

    # -- loading -----------------------------------------------------------------------------
    def _first_seen(self) -> dict[str, float]:
        """Each device's first recorded moment: an event, a numeric, a waveform chunk, a bad packet."""
        first: dict[str, float] = {}

        def seen(device: str, mono: float) -> None:
            first[device] = min(first.get(device, mono), mono)

        for device, steps in self._device_steps.items():
            seen(device, steps[0].mono)
        for device, monos in self._malformed_mono.items():
            seen(device, monos[0])
        for s in self.series.values():
            for k, device in enumerate(s.devices):
                idx = np.flatnonzero(s.device == k)
                if idx.size:
                    seen(device, float(s.mono[idx[0]]))
        for track in self.wave_tracks.values():
            if len(track):
                seen(track.device, float(track.starts[0]))
        return first

    def reload_markers(self) -> None:
        """Read the markers again (after a reviewer's annotation or verdict: the recording is unchanged)."""
        row = self.row
        self.markers = build_markers(
            row.started_mono,
            self.all_bp,
            self.device_rows,
            self.malformed_rows,
            self.audit_rows,
            extra=[*load_log_markers(self._db, self.session_id, row.started_mono), *self._extra_markers],
        )
        self._marker_positions = [m.position for m in self.markers]

    def _duration(self) -> float:
        row = self.row
        if row.ended_mono is not None and row.ended_mono >= row.started_mono:
            return row.ended_mono - row.started_mono
        last = row.started_mono
        for s in self.series.values():
            if len(s):
                last = max(last, float(s.mono[-1]))
        for track in self.wave_tracks.values():
            if len(track):
                last = max(last, float(track.ends.max()))
        for e in self.device_rows:
            last = max(last, e.mono)
        for b in self.all_bp:
            last = max(last, b.mono)
        return last - row.started_mono

    def _wall_map(self) -> Callable[[float], float]:
        """Position → recorded UTC, interpolated between recorded (mono, t_utc) pairs."""
        densest = max(self.series.values(), key=len, default=None)
        origin_mono, origin_wall = self.row.started_mono, self.row.started_utc
        if densest is None or len(densest) == 0:
            return lambda p: origin_wall + p
        xs = np.concatenate(([0.0], densest.mono - origin_mono))
        ys = np.concatenate(([origin_wall], densest.wall))
        order = np.argsort(xs, kind="stable")
        xs, ys = xs[order], ys[order]

        def wall_at(position: float) -> float:
            i = int(np.searchsorted(xs, position, side="right")) - 1
            i = max(i, 0)
            return float(ys[i] + (position - xs[i]))  # the last recorded pair, then elapsed seconds

        return wall_at

    def _build_device_steps(self) -> None:
        current: dict[str, tuple[DeviceState, str, bool]] = {}
        for e in self.device_rows:
            state, detail, stale = current.get(e.device, (DeviceState.SEARCHING, "", False))
            if e.state is not None:
                state, detail = e.state, e.detail
                if e.state is DeviceState.CONNECTED:
                    stale = False
            elif e.detail.startswith("no data for"):
                stale = True
            elif e.detail == "data resumed":
                stale = False
            current[e.device] = (state, detail, stale)
            event = DeviceEvent(e.device, e.state, e.detail, e.mono, e.t_utc)
            self._device_steps.setdefault(e.device, []).append(
                _DeviceStep(e.mono, state, detail, stale, event)
            )

    # -- frames ------------------------------------------------------------------------------
    @property
    def position(self) -> float:
        """The position of the last frame (seconds since the session start)."""
        return self._position

    def tick(self) -> None:
        """Per frame: bring the state to the replay clock's position (cheap when nothing changed)."""
        self.advance_to(self.replay_clock.position)

    def seek(self, position: float) -> float:
        """Move the clock and the state to `position`; returns where it landed."""
        landed = self.replay_clock.seek(position)
        self.advance_to(landed)
        return landed

    def advance_to(self, position: float) -> None:
        """Show the session as it was at `position`, telling the listeners what changed."""
        self._frame(position, emit=True)

    def _frame(self, position: float, *, emit: bool) -> None:
        position = min(max(position, 0.0), self.duration)
        previous = self._position
        if position == previous:
            return
        # a step forward replays what it passed; a seek (back, or far ahead) restates the state
        forward = previous >= 0.0 and previous < position <= previous + SEEK_BEYOND_S
        mono = self.row.started_mono + position
        self._position = position

        changed: list[Numeric] = []
        for param, s in self.series.items():
            i = s.index_at(mono)
            if i != self._index.get(param, -1):
                self._index[param] = i
                if i >= 0:
                    n = s.numeric(i)
                    self.latest[param] = n
                    changed.append(n)
                else:
                    self.latest.pop(param, None)
            view, t = self._trend_views[param]
            view.set_end(int(np.searchsorted(t, mono, side="right")))

        for name, track in self.wave_tracks.items():
            t, v = track.window(mono - self._wave_window, mono)
            self._wave_views[name].show(t, v)

        k = bisect.bisect_right(self._bp_mono, mono)
        passed_bp = self.all_bp[len(self.bp_readings) : k] if forward else []
        if k != len(self.bp_readings):
            self.bp_readings[:] = self.all_bp[:k]

        events: list[DeviceEvent] = []
        listed = [d for first, d in self._device_first if first <= mono]
        if list(self.devices) != listed:
            self.devices.clear()
            self.devices.update((d, self._all_devices[d]) for d in listed)
        for device, status in self.devices.items():
            steps = self._device_steps.get(device, [])
            j = bisect.bisect_right(self._device_step_mono.get(device, []), mono)
            if j:
                step = steps[j - 1]
                status.state, status.detail, status.stale = step.state, step.detail, step.stale
            else:
                status.state, status.detail, status.stale = DeviceState.SEARCHING, "", False
            status.counters.malformed = bisect.bisect_right(self._malformed_mono.get(device, []), mono)
            last_data: float | None = None
            for s in self.series.values():
                i = self._index.get(s.param, -1)
                if i >= 0 and s.devices[int(s.device[i])] == device:
                    last_data = float(s.mono[i]) if last_data is None else max(last_data, float(s.mono[i]))
            status.counters.last_data_mono = last_data
            if not forward and j:
                # after a seek: each device's current state, dated by the event that set it last
                step = steps[j - 1]
                events.append(DeviceEvent(device, step.state, step.detail, step.mono, step.event.wall))
        if forward:
            lo = bisect.bisect_right(self._event_mono, previous + self.row.started_mono)
            hi = bisect.bisect_right(self._event_mono, mono)
            for e in self.device_rows[lo:hi]:
                events.append(DeviceEvent(e.device, e.state, e.detail, e.mono, e.t_utc))
        if not emit:
            return
        for event in events:
            self._emit(DeviceChanged(event))
        for bp in passed_bp:
            self._emit(BloodPressureTaken(bp))
        if changed or not forward:
            self._emit(NumericsChanged(tuple(changed) if forward else tuple(self.latest.values())))

    # -- queries -----------------------------------------------------------------------------
    def age(self, param: Param) -> float | None:
        """Seconds since the shown value of `param` was received (None if there is none yet)."""
        n = self.latest.get(param)
        return None if n is None else self.row.started_mono + self._position - n.mono

    def wall_at(self, position: float) -> float:
        """The recorded UTC wall time at a position."""
        return self._wall_at(position)

    def alarms_at(self, position: float | None = None) -> list[AlarmAt]:
        """The alarms on the live alarm list at `position` (default: the shown one), as the engine
        listed them: highest priority first, newest first within a priority (AlarmEngine.active_alarms).

        Read from the recorded transitions: an alarm is listed from its raise until the transition
        that left it cleared; its state, priority and message are those of its last transition so far.
        """
        position = self._position if position is None else position
        mono = self.row.started_mono + position
        last: dict[int, AlarmEventRow] = {}
        raised: dict[int, AlarmEventRow] = {}
        for r in self._alarm_rows[: bisect.bisect_right(self._alarm_mono, mono)]:
            assert r.alarm_id is not None
            last[r.alarm_id] = r
            if r.event == "raised":
                raised[r.alarm_id] = r
        out = [
            AlarmAt(
                alarm_id=alarm_id,
                key=r.alarm_key,
                state=r.state or "",
                priority=r.priority or "",
                message=r.message,
                raised_position=raised.get(alarm_id, r).mono - self.row.started_mono,
            )
            for alarm_id, r in last.items()
            if r.state in LIVE_ALARM_STATES
        ]
        out.sort(key=lambda a: (-PRIORITY_RANK.get(a.priority, 0), -a.raised_position, -a.alarm_id))
        return out

    def alarm_spans(self) -> list[AlarmSpan]:
        """Every alarm from its raise to the transition that cleared it, by raise time (the timeline)."""
        origin = self.row.started_mono
        spans: dict[int, AlarmSpan] = {}
        for r in self._alarm_rows:
            assert r.alarm_id is not None
            span = spans.get(r.alarm_id)
            if span is None:
                span = spans[r.alarm_id] = AlarmSpan(r.alarm_id, r.mono - origin, None, "", r.message)
            if PRIORITY_RANK.get(r.priority or "", 0) > PRIORITY_RANK.get(span.priority, 0):
                span.priority = r.priority or ""
            if r.state == "cleared" and span.end_position is None:
                span.end_position = r.mono - origin
        return sorted(spans.values(), key=lambda a: (a.start_position, a.alarm_id))

    def link_gaps(self) -> list[LinkGap]:
        """Every spell without a link, per device, in time order (the replay timeline shades them)."""
        origin = self.row.started_mono
        open_since: dict[str, DeviceEventRow] = {}
        gaps: list[LinkGap] = []
        for e in self.device_rows:
            if e.state in (DeviceState.LOST, DeviceState.DISCONNECTED):
                open_since.setdefault(e.device, e)  # a failed retry inside a gap does not restart it
            elif e.state is DeviceState.CONNECTED and e.device in open_since:
                began = open_since.pop(e.device)
                gaps.append(LinkGap(e.device, began.mono - origin, e.mono - origin, began.detail, began.mono))
        gaps += [LinkGap(d, e.mono - origin, None, e.detail, e.mono) for d, e in open_since.items()]
        return sorted(gaps, key=lambda g: (g.start_position, g.device))

    def markers_of(self, kinds: Iterable[str] | None = None) -> list[Marker]:
        wanted = None if kinds is None else {str(k) for k in kinds}
        return [m for m in self.markers if wanted is None or m.kind in wanted]

    def next_marker(self, kinds: Iterable[str] | None = None, after: float | None = None) -> Marker | None:
        """The first marker of `kinds` strictly after `after` (default: the current position)."""
        after = self._position if after is None else after
        wanted = None if kinds is None else {str(k) for k in kinds}
        for m in self.markers[bisect.bisect_right(self._marker_positions, after) :]:
            if wanted is None or m.kind in wanted:
                return m
        return None

    def previous_marker(
        self, kinds: Iterable[str] | None = None, before: float | None = None
    ) -> Marker | None:
        """The last marker of `kinds` strictly before `before` (default: the current position)."""
        before = self._position if before is None else before
        wanted = None if kinds is None else {str(k) for k in kinds}
        for m in reversed(self.markers[: bisect.bisect_left(self._marker_positions, before)]):
            if wanted is None or m.kind in wanted:
                return m
        return None

    def jump_next(self, kinds: Iterable[str] | None = None) -> Marker | None:
        """Seek to the next marker of `kinds` (e.g. MarkerKind.BP); None (and no move) at the end."""
        m = self.next_marker(kinds)
        if m is not None:
            self.seek(m.position)
        return m

    def jump_previous(self, kinds: Iterable[str] | None = None) -> Marker | None:
        m = self.previous_marker(kinds)
        if m is not None:
            self.seek(m.position)
        return m

    def overview(self) -> dict[str, tuple[FloatArray, FloatArray]]:
        """The whole session for the timeline: positions (s) and values of SpO2, pulse and BP."""
        origin = self.row.started_mono
        out: dict[str, tuple[FloatArray, FloatArray]] = {}
        for param in (Param.SPO2, Param.PULSE_RATE):
            view = self._trend_views.get(param)
            if view is not None:
                out[param.value] = (view[1] - origin, view[0]._full_v)
        if self.all_bp:
            t = np.array([b.mono - origin for b in self.all_bp], dtype=np.float64)
            for key, attr in (("sys", "systolic"), ("dia", "diastolic"), ("map", "mean")):
                v = np.array([getattr(b, attr) for b in self.all_bp], dtype=np.float64)
                out[key] = (t, v)
        return out

    # -- a replay records nothing ------------------------------------------------------------
    def ingest(self, measurements: Iterable[Measurement]) -> None:
        raise TypeError("a replay is read-only")

    def register_device(self, info: DeviceInfo) -> None:
        raise TypeError("a replay is read-only")

    def device_state(self, device: str, state: DeviceState, detail: str = "") -> None:
        raise TypeError("a replay is read-only")

    def malformed(self, packet: MalformedPacket) -> None:
        raise TypeError("a replay is read-only")


def _fmt(v: float | None) -> str:
    return "---" if v is None else f"{v:g}"
