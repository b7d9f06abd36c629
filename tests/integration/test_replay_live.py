"""Acceptance: a session recorded live on emulated devices through bleak replays as it was shown.

The emulated Viatom oximeter (pleth) and BP cuff are bumble GATT servers; the console's own
DeviceLink reaches them through bleak's bumble backend, the real Session, AlarmEngine, Recorder and
SessionLog record them. While recording, the live state is captured at many instants; the replay of
the database must show the same values, trends, BP readings, device states, alarm list,
observations and phase changes at each of those instants.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tzlocal

from devices._ble.bumble_backend import bumble_backends
from devices._ble.link import DeviceLink
from devices.emulated.bp_cuff import EmulatedBPCuff
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS
from devices.emulated.viatom_oximeter import EmulatedViatomOximeter
from devices.registry import BP_CUFF, OXIMETER, specs_for_role
from kapmonitor.alarms import AlarmEngine, AlarmState, TransitionEvent, kap_defaults
from kapmonitor.clock import FakeClock, ScaledClock, SystemClock
from kapmonitor.measurements import DeviceState, Param, Quality, Waveform
from kapmonitor.observations import DOSE_GIVEN, press
from kapmonitor.replay import MarkerKind, ReplayClock, ReplaySession
from kapmonitor.replay.model import WAVE_WINDOW_S
from kapmonitor.session import AlarmChanged, BloodPressureTaken, Session, SessionEvent
from kapmonitor.storage import Recorder, open_database
from kapmonitor.storage.recorder import GAP_TOLERANCE_S
from kapmonitor.storage.session_log import SessionLog
from kapmonitor.workflow import (
    Dose,
    Phase,
    PhaseChange,
    Record,
    SessionDetails,
    SessionWorkflow,
    TreatmentProtocol,
)

#: scenario seconds per wall second, for the emulators and the session clock alike (as --demo --speed)
SPEED = 25.0
#: scenario seconds recorded: the desaturation starts at 120 s (devices/emulated/scenario.py) and
#: the 2-minute sensor hold-off (alarms.md) ends then, so both SpO2 alarms fall inside
RECORD_S = 260.0
#: the live state is captured this often (scenario seconds)
SNAPSHOT_EVERY_S = 7.0
WHO = "RN Test"
DETAILS = SessionDetails(
    patient="P-LIVE",
    clinicians=(WHO,),
    protocol=TreatmentProtocol.ESKETAMINE_IN,
    planned_dose_mg=56.0,
    route="intranasal",
    lot="LOT-1",
)


@dataclass(slots=True)
class Snapshot:
    """What the live console's session showed at one instant (mono = its clock then)."""

    mono: float
    latest: dict[Param, tuple[float | None, float, Quality, str]]
    trends: dict[Param, tuple[np.ndarray, np.ndarray]]
    bp: list[tuple[float | None, float | None, float | None, float]]
    devices: dict[str, tuple[DeviceState, str, bool, int]]
    alarms: list[tuple[int, str, str, str]]  # id, state, priority, message, in the engine's order
    observations: list[tuple[float, str, str]]  # key-press mono, code, text
    phases: list[float]  # mono of each phase change so far
    pleth: np.ndarray  # every pleth sample received so far


@dataclass(slots=True)
class Live:
    path: Path
    session_id: str
    snapshots: list[Snapshot] = field(default_factory=list)
    raised: list[tuple[float, int, str]] = field(default_factory=list)  # mono, alarm id, priority
    bp_taken: int = 0


class LiveConsole:
    """The console's pipeline as ui/app.py builds it, recording into `path`, plus the live captures."""

    def __init__(self, path: Path) -> None:
        self.clock = ScaledClock(SystemClock(), SPEED)
        self.db = open_database(path)
        self.recorder = Recorder(self.db, self.clock)
        sid = self.recorder.begin_session(kind="demo", note="live replay acceptance")
        self.engine = AlarmEngine(self.clock, kap_defaults())
        self.session = Session(self.clock, self.recorder, alarms=self.engine)
        self.log = SessionLog(self.db, self.clock, sid, seq=self.recorder.next_seq)
        self.log.save_details(DETAILS)
        self.workflow = SessionWorkflow(DETAILS, self.clock)
        self.live = Live(path, sid)
        self.observations: list[tuple[float, str, str]] = []
        self.phases: list[float] = []
        self.pleth: list[float] = []
        self.script = list(SCRIPT)
        self.session.subscribe(self._on_event)
        live_wave = self.session._ingest_wave

        def keep_pleth(w: Waveform) -> None:  # every sample the live sweep got, for the replayed window
            self.pleth.extend(w.samples)
            live_wave(w)

        self.session._ingest_wave = keep_pleth  # type: ignore[method-assign]

    def _on_event(self, event: SessionEvent) -> None:
        if isinstance(event, AlarmChanged) and event.transition.event is TransitionEvent.RAISED:
            t = event.transition
            assert t.alarm_id is not None and t.priority is not None
            self.live.raised.append((t.mono, t.alarm_id, t.priority.label))
        elif isinstance(event, BloodPressureTaken):
            self.live.bp_taken += 1

    def write(self, records: Sequence[Record]) -> None:
        self.log.write(records)
        self.phases.extend(r.mono for r in records if isinstance(r, PhaseChange))
        # a dose is a 'dose_given' observation (workflow.Dose)
        self.observations.extend((r.mono, DOSE_GIVEN, r.detail) for r in records if isinstance(r, Dose))

    def observe(self, code: str, text: str = "") -> None:
        pressed = press(code, self.clock)
        self.log.add_observation(pressed, WHO, text=text)
        self.observations.append((pressed.mono, code, text))

    def capture(self) -> None:
        session = self.session
        self.live.snapshots.append(
            Snapshot(
                mono=session.clock.monotonic(),
                latest={p: (n.value, n.mono, n.quality, n.device) for p, n in session.latest.items()},
                trends={p: buf.arrays() for p, buf in session.trends.items()},
                bp=[(b.systolic, b.diastolic, b.mean, b.mono) for b in session.bp_readings],
                devices={  # a role's search placeholder is shown live, never recorded (Session)
                    d: (s.state, s.detail, s.stale, s.counters.malformed)
                    for d, s in session.devices.items()
                    if not s.info.placeholder
                },
                alarms=[
                    (a.id, a.state.value, a.priority.label, a.message) for a in self.engine.active_alarms()
                ],
                observations=list(self.observations),
                phases=list(self.phases),
                pleth=np.array(self.pleth, dtype=np.float64),
            )
        )

    def step(self, t: float, acknowledged: bool) -> bool:
        """The scripted clinician at scenario time t: baseline, dose, observations, an acknowledgement."""
        wf = self.workflow
        if self.session.bp_readings and wf.baseline is None:
            self.write(wf.record_baseline(self.session.bp_readings[0], WHO))
            if not wf.needs_decision:
                self.write(wf.start_dosing(WHO))
                self.write(wf.log_device(WHO))
        if t >= MONITORING_AT_S and wf.phase is Phase.DOSING:
            self.write(wf.start_monitoring(WHO))
        if self.script and t >= self.script[0][0]:
            _at, code, text = self.script.pop(0)
            self.observe(code, text)
        if not acknowledged and self.live.raised:
            mono, alarm_id, _p = self.live.raised[0]
            if self.clock.monotonic() >= mono + 5.0:
                self.engine.acknowledge(alarm_id, WHO)
                return True
        return acknowledged

    async def run(self) -> None:
        scenario = SCENARIOS["desaturation"](3)
        clock = self.clock
        async with VirtualRadio() as radio:
            oximeter = EmulatedViatomOximeter(radio, scenario, speed=SPEED, advertising_interval_ms=20)
            cuff = EmulatedBPCuff(
                radio,
                scenario,
                speed=SPEED,
                epoch=clock.wall(),
                tz=tzlocal.get_localzone(),
                interval_min=1.0,  # a reading every scenario minute
                advertising_interval_ms=20,
            )
            await oximeter.start()
            await cuff.start()
            scanner, client = bumble_backends(radio)
            links = [
                DeviceLink(
                    specs_for_role(role),
                    self.session,
                    clock,
                    scanner_backend=scanner,
                    client_backend=client,
                    role=role,
                )
                for role in (OXIMETER, BP_CUFF)
            ]
            tasks = [asyncio.create_task(link.run()) for link in links]
            start = clock.monotonic()
            self.write(self.workflow.start_baseline(WHO))
            next_capture = start
            acknowledged = False
            try:
                while clock.monotonic() - start < RECORD_S:
                    self.session.tick()
                    acknowledged = self.step(clock.monotonic() - start, acknowledged)
                    if clock.monotonic() >= next_capture:
                        self.capture()
                        next_capture += SNAPSHOT_EVERY_S
                    await asyncio.sleep(0.25 / SPEED)  # a quarter scenario-second, as the app ticks
                self.session.tick()
                self.capture()
            finally:
                for link in links:
                    link.stop()
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
                await cuff.stop()
                await oximeter.stop()

    def close(self) -> None:
        if self.recorder.session_id is not None:
            self.recorder.end_session("completed")
        self.db.close()


#: scenario second at which the clinician moves on from dosing to monitoring
MONITORING_AT_S = 100.0
#: (scenario s, code, text): what the clinician notes
SCRIPT: tuple[tuple[float, str, str], ...] = (
    (30.0, "anxiety", ""),
    (95.0, "speaking", ""),
    (170.0, "note", "pale"),
)


async def record_live(path: Path) -> Live:
    """Record RECORD_S scenario seconds of the desaturation scenario on emulated devices."""
    console = LiveConsole(path)
    try:
        await console.run()
    finally:
        console.close()
    return console.live


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Live:
    return asyncio.run(record_live(tmp_path_factory.mktemp("live") / "kap.sqlite"))


def _contains(stream: np.ndarray, window: np.ndarray) -> int:
    """Where `window` occurs in `stream` as a contiguous run (its end index), or -1."""
    hay, needle = stream.astype("<i2").tobytes(), window.astype("<i2").tobytes()
    at = hay.find(needle)
    while at >= 0 and at % 2:  # a sample boundary, not half of one
        at = hay.find(needle, at + 1)
    return -1 if at < 0 else at // 2 + window.size


def test_the_recording_has_what_the_replay_is_checked_on(live: Live) -> None:
    assert len(live.snapshots) > 20
    assert [p for _m, _i, p in live.raised][:2] == ["medium", "high"]  # the desaturation's two alarms
    assert live.bp_taken >= 3
    last = live.snapshots[-1]
    assert len(last.observations) == 4 and len(last.phases) >= 3  # 3 notes and a dose
    assert any(
        state == AlarmState.ACKNOWLEDGED.value for s in live.snapshots for _i, state, _p, _m in s.alarms
    )
    assert last.pleth.size > 100 * RECORD_S // 4  # the Viatom streams its pleth (50 Hz)


def test_replay_matches_the_live_session_at_every_captured_instant(live: Live) -> None:
    db = open_database(live.path)
    try:
        replay = ReplaySession(db, live.session_id, ReplayClock(FakeClock()))
        origin = replay.row.started_mono
        everything = live.snapshots[-1].pleth
        rate = replay.wave_tracks["pleth"].rate_hz
        for snap in live.snapshots:
            position = snap.mono - origin
            replay.seek(position)
            where = f"at {position:.2f} s"
            assert replay.position == pytest.approx(position, abs=1e-9), where
            latest = {p: (n.value, n.mono, n.quality, n.device) for p, n in replay.latest.items()}
            assert latest == snap.latest, where
            for param, (t, v) in snap.trends.items():
                rt, rv = replay.trends[param].arrays()
                np.testing.assert_array_equal(rt, t, err_msg=where)
                np.testing.assert_array_equal(rv, v, err_msg=where)
            assert [(b.systolic, b.diastolic, b.mean, b.mono) for b in replay.bp_readings] == snap.bp, where
            devices = {
                d: (s.state, s.detail, s.stale, s.counters.malformed) for d, s in replay.devices.items()
            }
            assert devices == snap.devices, where
            alarms = [(a.alarm_id, a.state, a.priority, a.message) for a in replay.alarms_at()]
            assert alarms == snap.alarms, where
            cutoff = origin + position
            observed = [m for m in replay.markers_of([MarkerKind.OBSERVATION]) if m.mono <= cutoff]
            assert [m.mono for m in observed] == [o[0] for o in snap.observations], where
            for marker, (_mono, code, text) in zip(observed, snap.observations, strict=True):
                assert marker.text.startswith(code) and text in marker.text and WHO in marker.text
            phases = [m.mono for m in replay.markers_of([MarkerKind.PHASE]) if m.mono <= cutoff]
            assert phases == snap.phases, where
            _t, wave = replay.waves["pleth"].arrays()
            if wave.size:
                # the record places a chunk's samples at its first packet's time + i / rate, live
                # places each packet's at its own receive time: they agree within the recorder's
                # GAP_TOLERANCE_S (a later packet starts a new chunk)
                end = _contains(everything, wave)
                assert end >= 0, f"{where}: the replayed sweep is not a run of the recorded pleth"
                tolerance = round(GAP_TOLERANCE_S * rate) + 10  # + one packet
                assert abs(end - snap.pleth.size) <= tolerance, where
                shown = min(WAVE_WINDOW_S * rate, snap.pleth.size)  # a full window, once there is one
                assert wave.size == pytest.approx(shown, abs=tolerance), where
        onsets = [(m.mono, m.text.split()[1]) for m in replay.markers_of([MarkerKind.ALARM])]
        assert onsets[: len(live.raised)] == [(mono, prio) for mono, _i, prio in live.raised]
    finally:
        db.close()
