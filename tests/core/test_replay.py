"""Tests of the replay: the replay clock, the model against the live session it recorded, markers, browser."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlite_utils import Database

from kapmonitor.clock import FakeClock
from kapmonitor.export import export_session_file
from kapmonitor.measurements import DeviceState, Numeric, Param
from kapmonitor.replay import (
    SPEEDS,
    MarkerKind,
    ReplayClock,
    ReplaySession,
    search_sessions,
    session_summaries,
    sort_sessions,
)
from kapmonitor.session import BloodPressureTaken, DeviceChanged, NumericsChanged, SessionEvent
from kapmonitor.storage import open_database
from tests.recorded_session import (
    CUFF,
    OXIMETER,
    RecordedSession,
    SessionSpec,
    build_recorded_session,
    pleth_samples,
)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> RecordedSession:
    return build_recorded_session(tmp_path_factory.mktemp("replay") / "kap.sqlite")


@pytest.fixture
def db(recorded: RecordedSession) -> Iterator[Database]:
    database = open_database(recorded.path)
    yield database
    database.close()


@pytest.fixture
def base() -> FakeClock:
    return FakeClock(start_wall=0.0, start_mono=0.0)


@pytest.fixture
def replay(db: Database, recorded: RecordedSession, base: FakeClock) -> ReplaySession:
    return ReplaySession(db, recorded.session_id, ReplayClock(base))


# ------------------------------------------------------------------------------ clock
def test_replay_clock_moves_only_while_playing_at_its_speed(base: FakeClock) -> None:
    clock = ReplayClock(base)
    clock.set_timeline(origin_mono=100.0, origin_wall=1000.0, duration=600.0)
    base.advance(5)
    assert clock.position == 0.0  # paused
    clock.play()
    base.advance(2)
    assert clock.position == 2.0
    clock.set_speed(60.0)
    assert clock.position == 2.0  # no jump on a speed change
    base.advance(3)
    assert clock.position == 182.0
    assert clock.monotonic() == 282.0
    assert clock.wall() == 1182.0
    clock.pause()
    base.advance(10)
    assert clock.position == 182.0


def test_replay_clock_seeks_and_clamps_to_the_timeline(base: FakeClock) -> None:
    clock = ReplayClock(base, speed=10.0)
    clock.set_timeline(origin_mono=0.0, origin_wall=0.0, duration=100.0)
    assert clock.seek(-5.0) == 0.0
    assert clock.seek(250.0) == 100.0
    assert clock.at_end
    clock.play()  # from the end, play starts again at the beginning
    base.advance(1)
    assert clock.position == 10.0
    clock.seek(95.0)
    base.advance(10)
    assert clock.position == 100.0  # stops at the end
    assert SPEEDS == (1.0, 2.0, 10.0, 60.0)
    with pytest.raises(ValueError, match="positive"):
        clock.set_speed(0.0)


# ------------------------------------------------------------------------------ model
def test_replay_shows_what_the_live_session_showed_at_every_checkpoint(
    replay: ReplaySession, recorded: RecordedSession
) -> None:
    """The replay at a position equals the live Session's state when it was recorded."""
    assert recorded.snapshots, "the fixture captured no live state"
    for snap in recorded.snapshots.values():
        replay.seek(snap.position)
        latest = {p: (n.value, n.mono, n.quality, n.device) for p, n in replay.latest.items()}
        assert latest == snap.latest, snap.position
        assert set(replay.trends) >= set(snap.trends)
        for param, (t, v) in snap.trends.items():
            rt, rv = replay.trends[param].arrays()
            np.testing.assert_array_equal(rt, t)
            np.testing.assert_array_equal(rv, v)  # NaN gaps where the live trend broke
        assert len(replay.bp_readings) == snap.bp_count
        devices = {d: (s.state, s.detail, s.stale, s.counters.malformed) for d, s in replay.devices.items()}
        assert devices == snap.devices, snap.position


def test_latest_values_and_their_age(replay: ReplaySession, recorded: RecordedSession) -> None:
    replay.seek(150.5)
    n = replay.latest[Param.SPO2]
    assert n.mono == recorded.start_mono + 150.0
    assert replay.age(Param.SPO2) == pytest.approx(0.5)
    assert replay.elapsed() == pytest.approx(150.5)
    replay.seek(440.0)  # the oximeter has been silent since 400 s
    assert replay.latest[Param.SPO2].mono == recorded.start_mono + 399.0
    assert replay.devices[OXIMETER].state is DeviceState.LOST
    assert replay.is_stale(OXIMETER)


def test_the_wave_window_holds_the_recorded_samples_before_the_position(
    replay: ReplaySession, recorded: RecordedSession
) -> None:
    replay.seek(120.0)
    t, v = replay.waves["pleth"].arrays()
    mono = recorded.start_mono + 120.0
    assert len(t) == 1000  # 10 s at 100 Hz
    assert t[-1] <= mono and t[0] > mono - 10.0
    # sample index i of the pleth is at start + i/100 until the drop-out at 400 s
    first = round((t[0] - recorded.start_mono) * 100)
    np.testing.assert_array_equal(v, np.array(pleth_samples(first, 1000, 100.0), dtype=np.float64))
    version = replay.waves["pleth"].version
    replay.seek(430.0)  # the oximeter is silent: an empty sweep
    assert len(replay.waves["pleth"]) == 0
    assert replay.waves["pleth"].version != version


def test_playing_forward_tells_listeners_what_the_position_passed(
    db: Database, recorded: RecordedSession, base: FakeClock
) -> None:
    clock = ReplayClock(base)
    replay = ReplaySession(db, recorded.session_id, clock)
    replay.seek(290.0)
    events: list[SessionEvent] = []
    replay.subscribe(events.append)
    clock.set_speed(60.0)
    clock.play()
    for _ in range(90):  # 3 s of 30-Hz frames = 180 s of session: the BP at 300 s, the drop at 400 s
        base.advance(1 / 30)
        replay.tick()
    assert replay.position == pytest.approx(470.0)
    taken = [e.reading for e in events if isinstance(e, BloodPressureTaken)]
    assert [(b.systolic, b.diastolic) for b in taken] == [(118.0, 76.0)]
    changes = [e.event for e in events if isinstance(e, DeviceChanged)]
    oxi = [(e.state, e.detail) for e in changes if e.device == OXIMETER]
    assert oxi == [
        (None, "no data for 15 s"),
        (DeviceState.LOST, "link dropped"),
        (DeviceState.CONNECTING, ""),
        (DeviceState.CONNECTED, "Oxi 1"),
    ]
    numerics = [n for e in events if isinstance(e, NumericsChanged) for n in e.numerics]
    assert {n.param for n in numerics} == {Param.SPO2, Param.PULSE_RATE}
    assert replay.latest[Param.SPO2].mono == recorded.start_mono + 470.0
    events.clear()
    replay.tick()  # nothing moved (the base clock did not): nothing to tell
    assert events == []


def test_seeking_back_restates_the_devices_and_numerics(replay: ReplaySession) -> None:
    replay.seek(1000.0)
    assert len(replay.bp_readings) == 2
    events: list[SessionEvent] = []
    replay.subscribe(events.append)
    replay.seek(430.0)
    assert len(replay.bp_readings) == 1
    states = {e.event.device: e.event.state for e in events if isinstance(e, DeviceChanged)}
    assert states == {OXIMETER: DeviceState.LOST, CUFF: DeviceState.CONNECTED}
    restated = [e for e in events if isinstance(e, NumericsChanged)]
    assert len(restated) == 1
    assert {n.param for n in restated[0].numerics} == {Param.SPO2, Param.PULSE_RATE}
    assert not [e for e in events if isinstance(e, BloodPressureTaken)]  # going back takes no BP


def test_a_far_jump_forward_is_a_seek(replay: ReplaySession) -> None:
    replay.seek(10.0)
    events: list[SessionEvent] = []
    replay.subscribe(events.append)
    replay.seek(1000.0)  # past two BP readings and the oximeter's drop-out
    assert len(replay.bp_readings) == 2
    assert not [e for e in events if isinstance(e, BloodPressureTaken)]
    states = [(e.event.device, e.event.state) for e in events if isinstance(e, DeviceChanged)]
    assert states == [(OXIMETER, DeviceState.CONNECTED), (CUFF, DeviceState.CONNECTED)]


def test_trend_versions_change_only_when_the_shown_trend_does(replay: ReplaySession) -> None:
    replay.seek(100.0)
    trend = replay.trends[Param.SPO2]
    v = trend.version
    replay.seek(100.5)  # no new sample between 100 and 100.5
    assert trend.version == v
    replay.seek(101.0)
    assert trend.version == v + 1
    assert replay.trends[Param.SPO2] is trend  # the plot keeps its buffer


def test_jumps_between_markers(replay: ReplaySession) -> None:
    replay.seek(0.0)
    m = replay.jump_next([MarkerKind.BP])
    assert m is not None and m.position == pytest.approx(300.0) and replay.position == pytest.approx(300.0)
    m = replay.jump_next([MarkerKind.BP])
    assert m is not None and m.position == pytest.approx(900.0)
    assert "121/77" in m.text
    m = replay.jump_previous([MarkerKind.BP])
    assert m is not None and m.position == pytest.approx(300.0)
    assert replay.jump_previous([MarkerKind.BP]) is None
    assert replay.position == pytest.approx(300.0)  # no marker: no move
    m = replay.jump_next([MarkerKind.MALFORMED, MarkerKind.DEVICE])
    assert m is not None and m.kind == MarkerKind.DEVICE and m.text == "no data for 15 s"
    kinds = {m.kind for m in replay.markers}
    assert kinds == {MarkerKind.BP, MarkerKind.DEVICE, MarkerKind.MALFORMED, MarkerKind.AUDIT}
    positions = [m.position for m in replay.markers]
    assert positions == sorted(positions)


def test_overview_has_the_whole_session(replay: ReplaySession, recorded: RecordedSession) -> None:
    replay.seek(10.0)
    overview = replay.overview()
    t, v = overview["spo2"]
    assert t[0] == 0.0 and t[-1] == pytest.approx(recorded.spec.duration_s - 1)
    assert np.nanmin(v) < 90.0  # the desaturation at minute 12 is in it
    bp_t, sys = overview["sys"]
    np.testing.assert_allclose(bp_t, [300.0, 900.0, 1500.0])
    np.testing.assert_array_equal(sys, [118.0, 121.0, 124.0])
    assert replay.duration == pytest.approx(recorded.spec.duration_s)


def test_a_replay_is_read_only(replay: ReplaySession) -> None:
    with pytest.raises(TypeError, match="read-only"):
        replay.ingest([Numeric(Param.SPO2, 90.0, 0.0, 0.0, OXIMETER)])
    with pytest.raises(TypeError, match="read-only"):
        replay.trends[Param.SPO2].append(0.0, 1.0)


def test_an_unknown_session_is_refused(db: Database, base: FakeClock) -> None:
    with pytest.raises(KeyError):
        ReplaySession(db, "no-such-session", ReplayClock(base))


def test_a_standalone_session_file_replays_the_same(
    db: Database, recorded: RecordedSession, base: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "one-session.sqlite"
    export_session_file(db, recorded.session_id, path)
    single = open_database(path)
    try:
        copy = ReplaySession(single, recorded.session_id, ReplayClock(base))
        original = ReplaySession(db, recorded.session_id, ReplayClock(base))
        for position in (0.0, 205.0, 430.0, 1500.0, 1800.0):
            copy.seek(position)
            original.seek(position)
            assert copy.latest == original.latest
            assert copy.bp_readings == original.bp_readings
            for param, trend in original.trends.items():
                np.testing.assert_array_equal(copy.trends[param].arrays()[1], trend.arrays()[1])
            np.testing.assert_array_equal(
                copy.waves["pleth"].arrays()[1], original.waves["pleth"].arrays()[1]
            )
        assert copy.markers == original.markers
    finally:
        single.close()


# ------------------------------------------------------------------------------ session log markers
def test_alarms_observations_and_phase_changes_become_markers(tmp_path: Path, base: FakeClock) -> None:
    rec = build_recorded_session(tmp_path / "log.sqlite", SessionSpec(duration_s=120.0, checkpoints=()))
    start = rec.start_mono
    with sqlite3.connect(rec.path) as conn:
        conn.execute(
            "INSERT INTO observations (id, session_id, seq, code, text, pressed_mono, pressed_utc, "
            "saved_mono, saved_utc, author) VALUES (1, ?, 100001, 'nausea', 'mild', ?, ?, ?, ?, 'dr a')",
            (rec.session_id, start + 30.0, rec.start_wall + 30.0, start + 40.0, rec.start_wall + 40.0),
        )
        conn.execute(
            "INSERT INTO phase_changes (session_id, seq, mono, t_utc, from_phase, to_phase, who) "
            "VALUES (?, 100002, ?, ?, 'pre_dose', 'dosing', 'dr a')",
            (rec.session_id, start + 60.0, rec.start_wall + 60.0),
        )
        for seq, at, event, value in ((100003, 70.0, "raised", 88.0), (100004, 95.0, "cleared", 93.0)):
            conn.execute(
                "INSERT INTO alarm_events (session_id, seq, mono, t_utc, event, alarm_id, alarm_key, "
                "priority, param, message, value) VALUES (?, ?, ?, ?, ?, 1, 'spo2.low', 'medium', 'spo2', "
                "'SpO2 < 90 %', ?)",
                (rec.session_id, seq, start + at, rec.start_wall + at, event, value),
            )
    conn.close()
    db = open_database(rec.path)
    try:
        replay = ReplaySession(db, rec.session_id, ReplayClock(base))
        obs = replay.jump_next([MarkerKind.OBSERVATION])
        assert obs is not None and obs.position == pytest.approx(30.0)  # the key press, not the save
        assert "nausea" in obs.text and "mild" in obs.text
        phase = replay.jump_next([MarkerKind.PHASE, MarkerKind.OBSERVATION])
        assert phase is not None and phase.kind == MarkerKind.PHASE and phase.position == pytest.approx(60.0)
        assert "pre_dose → dosing" in phase.text
        alarm = replay.jump_next([MarkerKind.ALARM])
        assert alarm is not None and alarm.position == pytest.approx(70.0)
        assert alarm.text == "raised medium SpO2 < 90 % (value 88)"
        assert replay.jump_next([MarkerKind.ALARM]) is None  # the clearing is not a new alarm
        cleared = replay.next_marker([MarkerKind.ALARM_EVENT])
        assert cleared is not None and cleared.position == pytest.approx(95.0)
        assert cleared.text.startswith("cleared")
    finally:
        db.close()


# ------------------------------------------------------------------------------ browser
def test_browser_lists_searches_and_sorts_sessions(tmp_path: Path) -> None:
    path = tmp_path / "many.sqlite"
    day = 86_400.0
    a = build_recorded_session(path, SessionSpec(duration_s=1000.0, checkpoints=(), note="first"))
    b = build_recorded_session(
        path, SessionSpec(duration_s=120.0, checkpoints=(), note="second", start_wall=a.start_wall + day)
    )
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO session_details (session_id, patient, protocol, route, created_utc, updated_utc) "
            "VALUES (?, 'P-017', 'KAP IM 0.5 mg/kg', 'im', 0, 0)",
            (a.session_id,),
        )
        for seq, event in ((10**6, "raised"), (10**6 + 1, "acknowledged"), (10**6 + 2, "raised")):
            conn.execute(
                "INSERT INTO alarm_events (session_id, seq, mono, t_utc, event, alarm_id) "
                "VALUES (?, ?, 0, 0, ?, 1)",
                (a.session_id, seq, event),
            )
    conn.close()
    db = open_database(path)
    try:
        summaries = session_summaries(db)
    finally:
        db.close()
    assert [s.session_id for s in summaries] == [b.session_id, a.session_id]  # newest first
    first = summaries[1]
    assert (first.patient, first.protocol, first.note) == ("P-017", "KAP IM 0.5 mg/kg", "first")
    assert first.duration_s == pytest.approx(1000.0)
    assert first.bp_readings == 2  # at 300 and 900 s
    assert first.malformed_packets == 1
    assert first.observations == 0
    assert first.alarms == 2  # raised twice; the acknowledgement is no alarm
    assert (summaries[0].bp_readings, summaries[0].alarms) == (0, 0)
    assert [s.session_id for s in search_sessions(summaries, "p-017")] == [a.session_id]
    assert [s.session_id for s in search_sessions(summaries, "2026-01-02")] == [b.session_id]
    assert [s.session_id for s in search_sessions(summaries, "kap second")] == []
    assert len(search_sessions(summaries, "  ")) == 2
    by_duration = sort_sessions(summaries, "duration", descending=False)
    assert [s.session_id for s in by_duration] == [b.session_id, a.session_id]
    assert [s.session_id for s in sort_sessions(summaries, "alarms")] == [a.session_id, b.session_id]
    by_patient = sort_sessions(summaries, "patient")
    assert [s.session_id for s in by_patient] == [a.session_id, b.session_id]  # no patient: last
    with pytest.raises(ValueError, match="cannot sort"):
        sort_sessions(summaries, "colour")


# ------------------------------------------------------------------------------ alarms and review
def test_alarms_at_a_position_are_the_live_list_then(tmp_path: Path, base: FakeClock) -> None:
    rec = build_recorded_session(tmp_path / "alarms.sqlite", SessionSpec(duration_s=120.0, checkpoints=()))
    start, wall = rec.start_mono, rec.start_wall
    rows = (  # (at s, alarm id, event, state, priority, message)
        (10.0, 1, "raised", "active", "medium", "SpO2 < 90 %"),
        (20.0, 2, "raised", "active", "high", "SpO2 < 85 %"),
        (25.0, 1, "acknowledged", "acknowledged", "medium", "SpO2 < 90 %"),
        (30.0, 2, "latched", "latched", "high", "SpO2 < 85 %"),
        (40.0, 1, "cleared", "cleared", "medium", "SpO2 < 90 %"),
        (50.0, 2, "acknowledged", "latched", "high", "SpO2 < 85 %"),  # a latched one, acknowledged ...
        (50.0, 2, "cleared", "cleared", "high", "SpO2 < 85 %"),  # ... ends at once (AlarmEngine)
    )
    with sqlite3.connect(rec.path) as conn:
        for k, (at, aid, event, state, prio, msg) in enumerate(rows):
            conn.execute(
                "INSERT INTO alarm_events (session_id, seq, mono, t_utc, event, alarm_id, alarm_key, state, "
                "priority, param, message) VALUES (?, ?, ?, ?, ?, ?, 'k', ?, ?, 'spo2', ?)",
                (rec.session_id, 10**6 + k, start + at, wall + at, event, aid, state, prio, msg),
            )
        # an engine-wide event (no alarm id) is not an alarm on the list
        conn.execute(
            "INSERT INTO alarm_events (session_id, seq, mono, t_utc, event) "
            "VALUES (?, ?, ?, ?, 'pause_started')",
            (rec.session_id, 10**6 + 99, start + 22.0, wall + 22.0),
        )
    conn.close()
    db = open_database(rec.path)
    try:
        replay = ReplaySession(db, rec.session_id, ReplayClock(base))

        def listed(at: float) -> list[tuple[int, str, str]]:
            return [(a.alarm_id, a.state, a.marker) for a in replay.alarms_at(at)]

        assert listed(5.0) == []
        assert listed(10.0) == [(1, "active", "**")]
        assert listed(26.0) == [(2, "active", "***"), (1, "acknowledged", "**")]  # high first
        assert listed(35.0) == [(2, "latched", "***"), (1, "acknowledged", "**")]
        assert listed(45.0) == [(2, "latched", "***")]
        assert listed(60.0) == []
        replay.seek(26.0)
        assert [a.alarm_id for a in replay.alarms_at()] == [2, 1]  # default: the shown position
        assert replay.alarms_at(26.0)[0].raised_position == pytest.approx(20.0)
    finally:
        db.close()


def test_devices_are_listed_from_their_first_record(tmp_path: Path, base: FakeClock) -> None:
    rec = build_recorded_session(tmp_path / "late.sqlite", SessionSpec(duration_s=60.0, checkpoints=()))
    with sqlite3.connect(rec.path) as conn:  # a third device turns up at 30 s
        conn.execute(
            "INSERT INTO device_events (session_id, seq, mono, t_utc, device, state, detail) "
            "VALUES (?, ?, ?, ?, 'AA:BB:CC:00:00:09', 'connecting', 'Strap')",
            (rec.session_id, 10**6, rec.start_mono + 30.0, rec.start_wall + 30.0),
        )
    conn.close()
    db = open_database(rec.path)
    try:
        replay = ReplaySession(db, rec.session_id, ReplayClock(base))
        replay.seek(29.0)
        assert set(replay.devices) == {OXIMETER, CUFF}
        replay.seek(31.0)
        assert set(replay.devices) == {OXIMETER, CUFF, "AA:BB:CC:00:00:09"}
        assert replay.devices["AA:BB:CC:00:00:09"].state is DeviceState.CONNECTING
        replay.seek(10.0)
        assert set(replay.devices) == {OXIMETER, CUFF}
    finally:
        db.close()


def test_review_entries_show_as_markers_after_a_reload(
    tmp_path: Path, recorded: RecordedSession, base: FakeClock
) -> None:
    from kapmonitor.storage.review import ReviewLog

    path = tmp_path / "review.sqlite"
    source = open_database(recorded.path)
    try:
        export_session_file(source, recorded.session_id, path)
    finally:
        source.close()
    db = open_database(path)
    try:
        replay = ReplaySession(db, recorded.session_id, ReplayClock(base))
        count = len(replay.markers)
        ReviewLog(db, FakeClock(), recorded.session_id).annotate("look here", "dr r", position_s=333.0)
        assert len(replay.markers) == count  # read once ...
        replay.reload_markers()  # ... and again on request
        notes = replay.markers_of([MarkerKind.ANNOTATION])
        assert [(round(n.position, 6), n.text) for n in notes] == [(333.0, "look here [dr r]")]
        assert replay.next_marker([MarkerKind.ANNOTATION], after=0.0) == notes[0]
    finally:
        db.close()


def test_link_gaps_run_from_the_loss_to_the_reconnection(replay: ReplaySession) -> None:
    (gap,) = replay.link_gaps()
    assert gap.device == OXIMETER and gap.detail == "link dropped"
    assert gap.start_position == pytest.approx(416.0) and gap.end_position == pytest.approx(460.0)
    lost = [m for m in replay.markers_of([MarkerKind.DEVICE]) if m.text.startswith("lost")]
    assert [(m.mono, m.device) for m in lost] == [(gap.start_mono, OXIMETER)]  # its opening event


def test_a_link_gap_without_a_return_runs_to_the_end(tmp_path: Path) -> None:
    built = build_recorded_session(
        tmp_path / "gaps.sqlite", SessionSpec(duration_s=300.0, drop_at_s=100.0, drop_for_s=1000.0)
    )
    db = open_database(built.path)
    try:
        replay = ReplaySession(db, built.session_id, ReplayClock(FakeClock()))
        (gap,) = replay.link_gaps()
        assert gap.start_position == pytest.approx(116.0) and gap.end_position is None
    finally:
        db.close()
