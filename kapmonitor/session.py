"""The live Session: takes measurements from drivers, keeps live buffers, watches staleness, records."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kapmonitor.alarms import AlarmEngine, AuditEntry, TechnicalCondition, Transition
from kapmonitor.clock import Clock
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
    Waveform,
)
from kapmonitor.ringbuffer import RingBuffer

log = logging.getLogger(__name__)

#: A trend keeps one point per sample; 1 Hz numerics for 6 hours fit.
TREND_CAPACITY = 6 * 3600
#: Live waveform window kept for the sweep display: 16 s at up to 125 Hz.
WAVE_CAPACITY = 2000
#: No data from a connected device for this long is a technical condition ("no data for 15 s",
#: ../shared/reference/alarms.md, KAP defaults).
STALE_AFTER_S = 15.0
#: A change of (wall - monotonic) larger than this between two ticks is a wall-clock step (NTP step,
#: DST or a manual change); NTP's own slewing moves it by well under a millisecond per second.
CLOCK_STEP_S = 2.0
#: The low-priority "Clock problem" technical alarm (reference/alarms.md "Technical alarms") stays
#: this long after the last step, so that it is seen; records keep their order by seq and mono.
CLOCK_NOTICE_S = 300.0


class Sink(Protocol):
    """Where a session's record goes (kapmonitor.storage.Recorder implements it)."""

    def add_device(self, info: DeviceInfo) -> None: ...
    def add_numeric(self, n: Numeric) -> None: ...
    def add_waveform(self, w: Waveform) -> None: ...
    def add_blood_pressure(self, bp: BloodPressure) -> None: ...
    def add_device_event(self, e: DeviceEvent) -> None: ...
    def add_malformed(self, m: MalformedPacket) -> None: ...
    def add_audit(self, who: str, action: str, detail: str = "") -> None: ...
    def add_alarm_transition(self, t: Transition, value: float | None = None) -> None: ...
    def maybe_flush(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class NumericsChanged:
    """New numeric values arrived (the newest per parameter are in Session.latest)."""

    numerics: tuple[Numeric, ...]


@dataclass(frozen=True, slots=True)
class DeviceChanged:
    """A device changed state, went stale, or reported something worth showing."""

    event: DeviceEvent


@dataclass(frozen=True, slots=True)
class RecordingProblem:
    """Writing the record failed (the rows are kept and retried) or recovered (`ok`)."""

    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class BloodPressureTaken:
    """A blood-pressure reading arrived (live or uploaded from the cuff's memory)."""

    reading: BloodPressure


@dataclass(frozen=True, slots=True)
class AlarmChanged:
    """The alarm engine changed something (raised, acknowledged, paused, cleared...)."""

    transition: Transition


SessionEvent = NumericsChanged | DeviceChanged | RecordingProblem | BloodPressureTaken | AlarmChanged
Listener = Callable[[SessionEvent], None]


@dataclass(slots=True)
class DeviceStatus:
    """What the session knows about one device."""

    info: DeviceInfo
    state: DeviceState
    detail: str
    counters: DeviceCounters
    stale: bool = False


class Session:
    """One monitoring session. Call ingest() from device callbacks and tick() a few times a second."""

    def __init__(
        self,
        clock: Clock,
        sink: Sink | None = None,
        *,
        alarms: AlarmEngine | None = None,
        stale_after_s: float = STALE_AFTER_S,
        trend_capacity: int = TREND_CAPACITY,
    ) -> None:
        self.clock = clock
        self._sink = sink
        self._stale_after = stale_after_s
        self._trend_capacity = trend_capacity
        self.started_mono = clock.monotonic()
        self.started_wall = clock.wall()
        self.latest: dict[Param, Numeric] = {}
        self.trends: dict[Param, RingBuffer] = {}
        self.waves: dict[str, RingBuffer] = {}
        self.devices: dict[str, DeviceStatus] = {}
        self._listeners: list[Listener] = []
        self._tick_hooks: list[Callable[[], object]] = []
        #: The alarm engine this session feeds (None: no alarms, e.g. in unit tests of the buffers).
        self.alarms = alarms
        if alarms is not None:
            alarms.subscribe(self._on_alarm_transition)
            alarms.subscribe_audit(self._on_audit)
        #: Every blood-pressure reading of the session in arrival order (stored ones included).
        self.bp_readings: list[BloodPressure] = []
        #: keys of the stored readings recorded (a device re-uploading its memory): see _first_time
        self._stored_seen: set[tuple[object, ...]] = set()
        #: Set while the recorder cannot write (shown on screen); None when recording works.
        self.recording_error: str | None = None
        self._wall_offset = self.started_wall - self.started_mono
        self._clock_step_mono: float | None = None

    # -- listeners -------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every SessionEvent; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def add_tick_hook(self, hook: Callable[[], object]) -> Callable[[], None]:
        """Run `hook` on every tick(), before the alarm engine's tick (for core rules that depend on
        the session's clock, e.g. the BP schedule's "BP reading due"); returns a function removing it.

        A hook that raises is logged and the tick goes on: the watchdog, the alarms and the recorder
        never stop because of one rule.
        """
        self._tick_hooks.append(hook)
        return lambda: self._tick_hooks.remove(hook)

    def _emit(self, event: SessionEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken view must never stop monitoring
                log.exception("session listener failed on %r", event)

    # -- devices ---------------------------------------------------------------------------
    def register_device(self, info: DeviceInfo) -> None:
        """Make a device known (before it connects), so the status line can show it."""
        if info.device not in self.devices:
            self.devices[info.device] = DeviceStatus(
                info=info, state=DeviceState.SEARCHING, detail="", counters=DeviceCounters()
            )
        else:
            self.devices[info.device].info = info
        if self._sink is not None and not info.placeholder:
            self._sink.add_device(info)

    def forget_device(self, device: str) -> None:
        """Drop a device from the status list (a search placeholder once the real device is found)."""
        if self.devices.pop(device, None) is not None:
            self._emit(
                DeviceChanged(DeviceEvent(device, None, "removed", self.clock.monotonic(), self.clock.wall()))
            )

    def _status(self, device: str) -> DeviceStatus:
        status = self.devices.get(device)
        if status is None:
            status = DeviceStatus(
                info=DeviceInfo(device=device, name=device, kind="unknown"),
                state=DeviceState.SEARCHING,
                detail="",
                counters=DeviceCounters(),
            )
            self.devices[device] = status
        return status

    def device_state(self, device: str, state: DeviceState, detail: str = "") -> None:
        """Record a device's new connection state and tell the listeners."""
        status = self._status(device)
        status.state = state
        status.detail = detail
        if state in (DeviceState.LOST, DeviceState.DISCONNECTED):
            self._break_trends(device)
        if state is DeviceState.CONNECTED:
            status.stale = False
            # the staleness watchdog counts from the connection, not from the last old sample
            status.counters.last_data_mono = self.clock.monotonic()
        event = DeviceEvent(device, state, detail, self.clock.monotonic(), self.clock.wall())
        if status.info.placeholder:  # a role still searching: shown, not recorded, no alarm
            self._emit(DeviceChanged(event))
            return
        if self._sink is not None:
            self._sink.add_device_event(event)
        self._emit(DeviceChanged(event))
        if self.alarms is not None:
            self.alarms.on_device_state(device, state, detail)
            if state is not DeviceState.CONNECTED:
                self.alarms.set_technical(TechnicalCondition.NO_DATA, device, False)

    def malformed(self, packet: MalformedPacket) -> None:
        """Count and log a packet a parser refused; it never reaches a buffer or plot."""
        status = self._status(packet.device)
        status.counters.malformed += 1
        log.warning(
            "malformed packet #%d from %s on %s: %s; bytes=%s",
            status.counters.malformed,
            packet.device,
            packet.characteristic,
            packet.error,
            packet.data.hex(" "),
        )
        if self._sink is not None:
            self._sink.add_malformed(packet)

    # -- data ------------------------------------------------------------------------------
    def ingest(self, measurements: Iterable[Measurement]) -> None:
        """Take measurements from a driver: buffers, record, listeners. Cheap per sample."""
        numerics: list[Numeric] = []
        for m in measurements:
            status = self._status(m.device)
            status.counters.packets += 1
            if isinstance(m, Numeric) and m.quality & Quality.FROM_STORAGE:
                # an old value: recorded, but not "the device's latest data" for the stale watchdog
                self._ingest_stored(m)
                continue
            status.counters.last_data_mono = m.mono
            if status.stale:
                status.stale = False
                self._device_note(m.device, "data resumed")
                if self.alarms is not None:
                    self.alarms.set_technical(TechnicalCondition.NO_DATA, m.device, False)
            if isinstance(m, Numeric):
                self._ingest_numeric(m)
                numerics.append(m)
                if self.alarms is not None:
                    self.alarms.on_numeric(m)
            elif isinstance(m, Waveform):
                self._ingest_wave(m)
            else:
                self._ingest_bp(m)
        if numerics:
            self._emit(NumericsChanged(tuple(numerics)))

    def _ingest_numeric(self, n: Numeric) -> None:
        trend = self.trends.get(n.param)
        if trend is None:
            trend = self.trends[n.param] = RingBuffer(self._trend_capacity)
        trend.append(n.mono, n.value)
        self.latest[n.param] = n
        if self._sink is not None:
            self._sink.add_numeric(n)

    def _ingest_stored(self, n: Numeric) -> None:
        """A value from a device's memory (e.g. a PLX spot-check uploaded through RACP).

        Like a stored cuff reading: recorded once at its own time (a re-upload of the same device
        and time is ignored), never the live value, never in the live trend, never alarmed on.
        """
        if not self._first_time(("value", n.device, n.param, n.wall)):
            return
        if self._sink is not None:
            self._sink.add_numeric(n)

    def _first_time(self, key: tuple[object, ...]) -> bool:
        """False (and logged) if a stored reading with this key was already recorded this session."""
        if key in self._stored_seen:
            log.info("stored reading already recorded, ignored: %s", key)
            return False
        self._stored_seen.add(key)
        return True

    def _ingest_wave(self, w: Waveform) -> None:
        buf = self.waves.get(w.name)
        if buf is None:
            buf = self.waves[w.name] = RingBuffer(WAVE_CAPACITY)
        n = len(w.samples)
        t = w.mono + np.arange(n, dtype=np.float64) / w.rate_hz
        buf.extend(t, np.asarray(w.samples, dtype=np.float64))
        if self._sink is not None:
            self._sink.add_waveform(w)

    def _break_trends(self, device: str) -> None:
        """Put a gap (NaN) in the live trends this device feeds, so no line bridges a lost spell.

        Only the display buffers get it: the record keeps what was received, and the gap in the
        record is the device events (lost, connected) around it.
        """
        now = self.clock.monotonic()
        for param, latest in self.latest.items():
            trend = self.trends.get(param)
            if latest.device == device and trend is not None:
                last = trend.last()
                if last is not None and not np.isnan(last[1]):
                    trend.append(now, None)

    def _ingest_bp(self, bp: BloodPressure) -> None:
        key = ("bp", bp.device, bp.measured_wall, bp.systolic, bp.diastolic, bp.mean)
        if bp.measured_wall is not None and not self._first_time(key):
            return  # a cuff re-uploading a stored reading: never recorded twice
        self.bp_readings.append(bp)
        if self._sink is not None:
            self._sink.add_blood_pressure(bp)
        self._emit(BloodPressureTaken(bp))
        if self.alarms is not None:
            self.alarms.on_blood_pressure(bp)

    def _device_note(self, device: str, detail: str) -> None:
        status = self._status(device)
        event = DeviceEvent(device, None, detail, self.clock.monotonic(), self.clock.wall())
        if self._sink is not None:
            self._sink.add_device_event(event)
        self._emit(DeviceChanged(event))
        log.info("%s: %s", status.info.name, detail)

    # -- time ------------------------------------------------------------------------------
    def tick(self) -> None:
        """Periodic work: the data-staleness watchdog, wall-clock steps, alarms, the recorder's flush."""
        now = self.clock.monotonic()
        self._watch_wall_clock(now)
        for device, status in self.devices.items():
            if status.state is not DeviceState.CONNECTED or status.stale or not status.info.streaming:
                continue
            last = status.counters.last_data_mono
            if last is not None and now - last >= self._stale_after:
                status.stale = True
                self._break_trends(device)
                self._device_note(device, f"no data for {now - last:.0f} s")
                if self.alarms is not None:
                    self.alarms.set_technical(
                        TechnicalCondition.NO_DATA,
                        device,
                        True,
                        f"{status.info.name}: no data for {now - last:.0f} s",
                    )
        for hook in list(self._tick_hooks):
            try:
                hook()
            except Exception:
                log.exception("session tick hook %r failed", hook)
        if self.alarms is not None:
            try:
                self.alarms.tick()
            except Exception:  # pragma: no cover - the engine logs its own listener errors
                log.exception("alarm engine tick failed")
        if self._sink is not None:
            try:
                flushed = self._sink.maybe_flush()
            except Exception as exc:  # the rows stay buffered in the recorder and are retried
                log.exception("recording failed")
                self.recording_error = str(exc) or type(exc).__name__
                self._emit(RecordingProblem(ok=False, detail=self.recording_error))
            else:
                if flushed and self.recording_error is not None:
                    self.recording_error = None
                    self._emit(RecordingProblem(ok=True, detail="recording resumed"))

    def _watch_wall_clock(self, now: float) -> None:
        """Notice a step of the wall clock against the monotonic one: log it, audit it, and show it.

        Ordering and durations use the monotonic clock and are not affected (design.md "Storage");
        the step is recorded so that a reviewer knows why the wall times of the record jump.
        """
        offset = self.clock.wall() - now
        step = offset - self._wall_offset
        self._wall_offset = offset
        if abs(step) >= CLOCK_STEP_S:
            detail = f"wall clock stepped by {step:+.0f} s (ordering and durations use the monotonic clock)"
            log.warning("%s", detail)
            self._clock_step_mono = now
            if self._sink is not None:
                self._sink.add_audit("system", "clock_step", detail)
            if self.alarms is not None:
                self.alarms.set_technical(TechnicalCondition.CLOCK, "workstation", True, detail)
        elif self._clock_step_mono is not None and now - self._clock_step_mono >= CLOCK_NOTICE_S:
            self._clock_step_mono = None
            if self.alarms is not None:
                self.alarms.set_technical(TechnicalCondition.CLOCK, "workstation", False)

    def _on_alarm_transition(self, transition: Transition) -> None:
        if self._sink is not None:
            value = None
            alarm = None
            if self.alarms is not None and transition.alarm_id is not None:
                alarm = self.alarms.alarm(transition.alarm_id)
            if alarm is not None:
                # the value that caused it when raised; the latest (worst for the record) afterwards
                value = alarm.trigger_value if transition.event == "raised" else alarm.last_value
            self._sink.add_alarm_transition(transition, value)
        self._emit(AlarmChanged(transition))

    def _on_audit(self, entry: AuditEntry) -> None:
        # acknowledgements, pauses, alarm-off and limit changes are committed at once with who/when
        if self._sink is not None:
            try:
                self._sink.add_audit(entry.who, entry.action, entry.detail)
            except Exception:
                log.exception("could not write the audit entry %r", entry)
                raise

    def is_stale(self, device: str) -> bool:
        status = self.devices.get(device)
        return status is not None and status.stale

    def elapsed(self) -> float:
        """Monotonic seconds since the session started."""
        return self.clock.monotonic() - self.started_mono
