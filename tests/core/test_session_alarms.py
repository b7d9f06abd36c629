"""The session feeds the alarm engine and records every alarm transition and operator action."""

from __future__ import annotations

from pathlib import Path

from kapmonitor.alarms import AlarmEngine, TechnicalCondition, kap_defaults
from kapmonitor.clock import FakeClock
from kapmonitor.measurements import BloodPressure, DeviceState, Numeric, Param
from kapmonitor.session import AlarmChanged, Session, SessionEvent
from kapmonitor.storage import Recorder, alarm_events, audit_entries, open_database


def test_desaturation_raises_medium_then_high_and_everything_is_recorded(tmp_path: Path) -> None:
    clock = FakeClock()
    db = open_database(tmp_path / "alarms.sqlite")
    recorder = Recorder(db, clock)
    sid = recorder.begin_session()
    engine = AlarmEngine(clock, kap_defaults(), hold_off_s=0)
    session = Session(clock, recorder, alarms=engine)
    seen: list[SessionEvent] = []
    session.subscribe(seen.append)
    session.device_state("OXI", DeviceState.CONNECTED)

    def spo2(value: float) -> None:
        session.ingest([Numeric(Param.SPO2, value, clock.monotonic(), clock.wall(), "OXI")])
        session.tick()

    for _ in range(5):
        spo2(97)
        clock.advance(1)
    for _ in range(10):  # below 90 % for 10 s: the medium alarm's condition delay (alarms.md)
        spo2(88)
        clock.advance(1)
    spo2(88)
    assert [a.label for a in engine.active_alarms()] == ["** SpO2 < 90 %"]
    spo2(83)  # below 85 %: high priority, no delay
    assert [a.priority.marker for a in engine.active_alarms()] == ["***", "**"]
    assert engine.acknowledge("all", "nurse Kim") == 2
    recorder.flush()

    rows = alarm_events(db, sid)
    raised = [(r.priority, r.param, r.value) for r in rows if r.event == "raised"]
    assert raised == [("medium", "spo2", 88.0), ("high", "spo2", 83.0)]
    assert sum(r.event == "acknowledged" for r in rows) == 2
    audit = audit_entries(db, sid)
    assert [(a.who, a.action) for a in audit] == [("nurse Kim", "acknowledge")]
    assert any(isinstance(e, AlarmChanged) for e in seen)
    db.close()


def test_no_data_and_disconnection_reach_the_engine() -> None:
    clock = FakeClock()
    engine = AlarmEngine(clock, kap_defaults())
    session = Session(clock, alarms=engine)
    session.device_state("OXI", DeviceState.CONNECTED)
    session.ingest([Numeric(Param.SPO2, 97, clock.monotonic(), clock.wall(), "OXI")])
    clock.advance(15)
    session.tick()
    assert engine.technical_active(TechnicalCondition.NO_DATA, "OXI")
    session.ingest([Numeric(Param.SPO2, 97, clock.monotonic(), clock.wall(), "OXI")])
    assert not engine.technical_active(TechnicalCondition.NO_DATA, "OXI")
    session.device_state("OXI", DeviceState.LOST, "link lost")
    assert engine.technical_active(TechnicalCondition.DISCONNECTED, "OXI")


def test_a_stored_bp_reading_never_alarms_but_a_live_one_does() -> None:
    clock = FakeClock()
    engine = AlarmEngine(clock, kap_defaults())
    session = Session(clock, alarms=engine)

    def bp(sys_: float, stored: bool) -> BloodPressure:
        return BloodPressure(sys_, 95.0, 120.0, 80.0, clock.monotonic(), clock.wall(), "CUFF", stored=stored)

    session.ingest([bp(190, True)])
    assert engine.active_alarms() == []
    session.ingest([bp(190, False)])
    # systolic 190 is above both the medium (160) and the high (180) limit: both shown, high sounds
    assert [a.priority.marker for a in engine.active_alarms()] == ["***", "**"]
    signal = engine.audio_signal()
    assert signal is not None and signal.priority.marker == "***"
