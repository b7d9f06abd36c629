"""Tests of the live Session: buffers, listeners, staleness watchdog, malformed packets, sink."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from kapmonitor.alarms import AlarmEngine, Priority, Transition, kap_defaults
from kapmonitor.clock import FakeClock
from kapmonitor.measurements import (
    BloodPressure,
    DeviceEvent,
    DeviceInfo,
    DeviceState,
    MalformedPacket,
    Numeric,
    Param,
    Waveform,
)
from kapmonitor.session import (
    CLOCK_NOTICE_S,
    CLOCK_STEP_S,
    DeviceChanged,
    NumericsChanged,
    Session,
    SessionEvent,
)


class ListSink:
    """A sink that keeps what it gets (the SQLite recorder has its own tests)."""

    def __init__(self) -> None:
        self.devices: list[DeviceInfo] = []
        self.numerics: list[Numeric] = []
        self.waves: list[Waveform] = []
        self.bps: list[BloodPressure] = []
        self.events: list[DeviceEvent] = []
        self.malformed: list[MalformedPacket] = []
        self.flush_calls = 0
        self.audit: list[tuple[str, str, str]] = []
        self.transitions: list[tuple[Transition, float | None]] = []

    def add_device(self, info: DeviceInfo) -> None:
        self.devices.append(info)

    def add_numeric(self, n: Numeric) -> None:
        self.numerics.append(n)

    def add_waveform(self, w: Waveform) -> None:
        self.waves.append(w)

    def add_blood_pressure(self, bp: BloodPressure) -> None:
        self.bps.append(bp)

    def add_device_event(self, e: DeviceEvent) -> None:
        self.events.append(e)

    def add_malformed(self, m: MalformedPacket) -> None:
        self.malformed.append(m)

    def add_audit(self, who: str, action: str, detail: str = "") -> None:
        self.audit.append((who, action, detail))

    def add_alarm_transition(self, t: Transition, value: float | None = None) -> None:
        self.transitions.append((t, value))

    def maybe_flush(self) -> bool:
        self.flush_calls += 1
        return True


def num(clock: FakeClock, param: Param, value: float | None, device: str = "dev") -> Numeric:
    return Numeric(param, value, clock.monotonic(), clock.wall(), device)


def test_ingest_updates_latest_trend_sink_and_listeners() -> None:
    clock = FakeClock()
    sink = ListSink()
    session = Session(clock, sink)
    seen: list[SessionEvent] = []
    session.subscribe(seen.append)
    session.ingest([num(clock, Param.SPO2, 97), num(clock, Param.PULSE_RATE, 72)])
    clock.advance(1)
    session.ingest([num(clock, Param.SPO2, None)])
    assert session.latest[Param.SPO2].value is None
    assert session.latest[Param.PULSE_RATE].value == 72
    t, v = session.trends[Param.SPO2].arrays()
    assert v[0] == 97 and np.isnan(v[1])
    assert t[1] - t[0] == 1.0
    assert [type(e) for e in seen] == [NumericsChanged, NumericsChanged]
    assert len(sink.numerics) == 3


def test_waveform_samples_are_spread_at_their_rate() -> None:
    clock = FakeClock(start_mono=0.0)
    session = Session(clock)
    session.ingest([Waveform("pleth", 100.0, (1, 2, 3, 4), 10.0, clock.wall(), "dev")])
    t, v = session.waves["pleth"].arrays()
    assert t.tolist() == pytest.approx([10.0, 10.01, 10.02, 10.03])
    assert v.tolist() == [1, 2, 3, 4]


def test_stale_device_is_reported_once_after_15_s_and_clears_on_data() -> None:
    clock = FakeClock()
    sink = ListSink()
    session = Session(clock, sink)
    session.register_device(DeviceInfo("AA", "Oxi", "pulse-oximeter"))
    assert sink.devices == [DeviceInfo("AA", "Oxi", "pulse-oximeter")]
    session.device_state("AA", DeviceState.CONNECTED)
    session.ingest([num(clock, Param.SPO2, 97, "AA")])
    clock.advance(14.9)
    session.tick()
    assert not session.is_stale("AA")
    clock.advance(0.1)
    session.tick()
    assert session.is_stale("AA")
    clock.advance(5)
    session.tick()
    notes = [e.detail for e in sink.events if e.state is None]
    assert notes == ["no data for 15 s"]
    session.ingest([num(clock, Param.SPO2, 96, "AA")])
    assert not session.is_stale("AA")
    assert [e.detail for e in sink.events if e.state is None][-1] == "data resumed"


def test_stale_counts_from_connection_not_from_old_data() -> None:
    clock = FakeClock()
    session = Session(clock)
    session.device_state("AA", DeviceState.CONNECTED)
    session.ingest([num(clock, Param.SPO2, 97, "AA")])
    session.device_state("AA", DeviceState.LOST, "link lost")
    clock.advance(60)
    session.tick()
    assert not session.is_stale("AA")  # lost is already reported; staleness is for connected devices
    session.device_state("AA", DeviceState.CONNECTED)
    clock.advance(10)
    session.tick()
    assert not session.is_stale("AA")


def test_malformed_packet_is_counted_logged_with_bytes_and_recorded(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    sink = ListSink()
    session = Session(clock, sink)
    packet = MalformedPacket("AA", "PLX 0x2A5F", b"\x1f\x60", "too short", clock.monotonic(), clock.wall())
    with caplog.at_level(logging.WARNING):
        session.malformed(packet)
    assert session.devices["AA"].counters.malformed == 1
    assert "1f 60" in caplog.text
    assert sink.malformed == [packet]
    assert Param.SPO2 not in session.latest


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    session = Session(clock)
    got: list[SessionEvent] = []

    def broken(_event: SessionEvent) -> None:
        raise RuntimeError("view broke")

    session.subscribe(broken)
    unsubscribe = session.subscribe(got.append)
    with caplog.at_level(logging.ERROR):
        session.ingest([num(clock, Param.SPO2, 97)])
    assert len(got) == 1
    assert "view broke" in caplog.text
    unsubscribe()
    session.ingest([num(clock, Param.SPO2, 97)])
    assert len(got) == 1


def test_tick_flushes_the_sink_and_device_events_reach_listeners() -> None:
    clock = FakeClock()
    sink = ListSink()
    session = Session(clock, sink)
    seen: list[SessionEvent] = []
    session.subscribe(seen.append)
    session.device_state("AA", DeviceState.CONNECTING, "Oxi")
    session.tick()
    assert sink.flush_calls == 1
    assert isinstance(seen[0], DeviceChanged)
    assert seen[0].event.state is DeviceState.CONNECTING
    assert session.devices["AA"].state is DeviceState.CONNECTING


class FailingSink(ListSink):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def maybe_flush(self) -> bool:
        if self.fail:
            raise OSError("disk full")
        return True


def test_a_failing_flush_is_reported_and_the_recovery_too(caplog: pytest.LogCaptureFixture) -> None:
    from kapmonitor.session import RecordingProblem

    clock = FakeClock()
    sink = FailingSink()
    session = Session(clock, sink)
    seen: list[SessionEvent] = []
    session.subscribe(seen.append)
    with caplog.at_level(logging.ERROR):
        session.tick()
    assert seen == [RecordingProblem(ok=False, detail="disk full")]
    assert session.recording_error == "disk full"
    sink.fail = False
    session.tick()
    assert getattr(session, "recording_error") is None  # noqa: B009 (mypy narrowed the attribute)
    assert seen[-1] == RecordingProblem(ok=True, detail="recording resumed")


def test_forget_device_removes_it_from_the_status_list() -> None:
    clock = FakeClock()
    session = Session(clock)
    seen: list[SessionEvent] = []
    session.subscribe(seen.append)
    session.register_device(DeviceInfo("pulse-oximeter:searching", "pulse-oximeter", "pulse-oximeter"))
    session.device_state("pulse-oximeter:searching", DeviceState.SEARCHING, "scanning")
    session.forget_device("pulse-oximeter:searching")
    assert "pulse-oximeter:searching" not in session.devices
    assert isinstance(seen[-1], DeviceChanged) and seen[-1].event.detail == "removed"
    session.forget_device("unknown")  # harmless
    assert len(seen) == 2


def test_blood_pressure_readings_are_kept_recorded_once_and_announced() -> None:
    from kapmonitor.session import BloodPressureTaken

    clock = FakeClock()
    sink = ListSink()
    session = Session(clock, sink)
    seen: list[SessionEvent] = []
    session.subscribe(seen.append)

    def reading(measured: float | None, stored: bool) -> BloodPressure:
        return BloodPressure(
            130.0,
            85.0,
            100.0,
            70.0,
            clock.monotonic(),
            clock.wall(),
            "CUFF",
            measured_wall=measured,
            stored=stored,
        )

    old = reading(clock.wall() - 900, True)
    session.ingest([old])
    clock.advance(3)
    session.ingest([reading(old.measured_wall, True)])  # the cuff uploads it again after a reconnect
    fresh = reading(None, False)
    session.ingest([fresh])
    assert session.bp_readings == [old, fresh]
    assert sink.bps == [old, fresh]
    assert [e.reading for e in seen if isinstance(e, BloodPressureTaken)] == [old, fresh]


def test_a_lost_device_breaks_its_trends_but_records_no_fake_sample() -> None:
    clock = FakeClock()
    sink = ListSink()
    session = Session(clock, sink)
    session.device_state("AA", DeviceState.CONNECTED)
    session.ingest([num(clock, Param.SPO2, 97, "AA"), num(clock, Param.PULSE_RATE, 70, "BB")])
    clock.advance(2)
    session.device_state("AA", DeviceState.LOST, "link lost")
    session.device_state("AA", DeviceState.LOST, "still lost")  # one gap is enough
    t, v = session.trends[Param.SPO2].arrays()
    assert len(v) == 2 and np.isnan(v[1]) and t[1] == clock.monotonic()
    assert len(session.trends[Param.PULSE_RATE]) == 1  # another device's trend is untouched
    assert len(sink.numerics) == 2  # the gap is display only


def test_a_cuff_is_not_watched_for_silence_and_a_placeholder_is_never_recorded() -> None:
    clock = FakeClock()
    sink = ListSink()
    session = Session(clock, sink)
    session.register_device(DeviceInfo("CUFF", "Cuff", "blood-pressure", streaming=False))
    session.device_state("CUFF", DeviceState.CONNECTED)
    clock.advance(600)
    session.tick()
    assert not session.is_stale("CUFF")
    session.register_device(DeviceInfo("oximeter:searching", "oximeter", "oximeter", placeholder=True))
    session.device_state("oximeter:searching", DeviceState.SEARCHING, "scanning")
    assert session.devices["oximeter:searching"].state is DeviceState.SEARCHING  # shown
    assert [e.device for e in sink.events] == ["CUFF"]  # but not recorded
    assert [d.device for d in sink.devices] == ["CUFF"]


def test_a_wall_clock_step_is_logged_audited_and_shown_as_a_low_technical_alarm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    sink = ListSink()
    engine = AlarmEngine(clock, kap_defaults(), hold_off_s=0)
    session = Session(clock, sink, alarms=engine)
    clock.advance(1.0)
    session.tick()
    assert not engine.active_alarms()
    clock.jump_wall(-3600.0)  # an NTP step: the monotonic clock does not move
    clock.advance(1.0)
    with caplog.at_level(logging.WARNING):
        session.tick()
    assert "wall clock stepped by -3600 s" in caplog.text
    assert [(who, action) for who, action, _ in sink.audit] == [("system", "clock_step")]
    (alarm,) = engine.active_alarms()
    assert alarm.key == "clock@workstation"
    assert alarm.priority is Priority.LOW
    # a slew of well under CLOCK_STEP_S per tick is not a step
    clock.jump_wall(CLOCK_STEP_S / 2)
    clock.advance(1.0)
    session.tick()
    assert len(sink.audit) == 1
    clock.advance(CLOCK_NOTICE_S)
    session.tick()
    assert not engine.active_alarms(), "the notice ends CLOCK_NOTICE_S after the last step"
