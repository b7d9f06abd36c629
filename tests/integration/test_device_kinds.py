"""End to end for each device kind: emulator → bleak (bumble backend) → DeviceLink → Session → SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pytest
import pytest_asyncio
import tzlocal
from pytestqt.qtbot import QtBot

from devices._ble.bumble_backend import bumble_backends
from devices._ble.link import STALE_AFTER_S, WATCHDOG_PERIOD_S, DeviceLink
from devices._ble.racp import RESPONSE_TIMEOUT_S as RACP_TIMEOUT_S
from devices.bp.parser import parse_bp_measurement
from devices.emulated.berrymed_oximeter import EmulatedBerryMedOximeter
from devices.emulated.bp_cuff import EmulatedBPCuff
from devices.emulated.hr_strap import EmulatedHeartRateStrap
from devices.emulated.malformed import (
    BP_STRUCTURED,
    HR_STRUCTURED,
    PLX_STRUCTURED,
    MalformedInjector,
    bp_is_malformed,
    hr_is_malformed,
    plx_is_malformed,
)
from devices.emulated.plx_oximeter import EmulatedPlxOximeter
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS
from devices.emulated.viatom_oximeter import EmulatedViatomOximeter
from devices.plx.parser import parse_plx_spot_check
from devices.registry import BP_CUFF, HR_STRAP, OXIMETER, specs_for_role
from kapmonitor.alarms import AlarmEngine, kap_defaults
from kapmonitor.clock import Clock, ScaledClock, SystemClock
from kapmonitor.measurements import DeviceState, Param, Quality
from kapmonitor.session import Session
from kapmonitor.storage import Recorder, open_database, queries
from tests.session_wait import until
from ui.app import parse_args
from ui.demo import Demo
from ui.main_window import MainWindow

#: scenario seconds per wall second, for the emulators and the console's ScaledClock alike (as the
#: demo runs: ui/app.py pairs `--speed` with ScaledClock)
SPEED = 10.0
ADV_MS = 20.0
WAIT_S = 10.0


class Emulator(Protocol):
    radio: VirtualRadio

    @property
    def address(self) -> str: ...

    async def start(self, at_s: float = 0.0) -> None: ...

    async def stop(self) -> None: ...


class JumpClock:
    """The console's clock (ScaledClock at SPEED) that can also jump forward: "ten minutes pass"."""

    def __init__(self, base: Clock) -> None:
        self.base = base
        self.offset = 0.0

    def monotonic(self) -> float:
        return self.base.monotonic() + self.offset

    def wall(self) -> float:
        return self.base.wall() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Rig:
    clock: JumpClock
    session: Session
    recorder: Recorder
    link: DeviceLink

    async def until(self, condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
        """Wait (on session events, never a blind sleep) until `condition` holds."""
        await until(self.session, condition, timeout)

    @property
    def sid(self) -> str:
        self.recorder.flush()
        sid = self.recorder.session_id
        assert sid is not None
        return sid

    def count(self, param: Param) -> int:
        trend = self.session.trends.get(param)
        return 0 if trend is None else len(trend)

    def state(self, address: str) -> DeviceState | None:
        status = self.session.devices.get(address)
        return None if status is None else status.state


@asynccontextmanager
async def console(
    tmp_path: Path,
    role: str,
    emulator: Emulator,
    clock: JumpClock,
    *,
    alarms: AlarmEngine | None = None,
    at_s: float = 0.0,
    racp_timeout_s: float = RACP_TIMEOUT_S,
) -> AsyncIterator[Rig]:
    """A recording session with one DeviceLink for `role`, built as the app builds it."""
    await emulator.start(at_s)
    db = open_database(tmp_path / "kap.sqlite")
    recorder = Recorder(db, clock)
    recorder.begin_session(kind="demo")
    session = Session(clock, recorder, alarms=alarms)
    scanner, client = bumble_backends(emulator.radio)
    link = DeviceLink(
        specs_for_role(role),
        session,
        clock,
        scanner_backend=scanner,
        client_backend=client,
        role=role,
        backoff_s=(0.1,),
        watchdog_period_s=0.2,
        racp_timeout_s=racp_timeout_s,
    )
    task = asyncio.create_task(link.run())
    try:
        yield Rig(clock, session, recorder, link)
    finally:
        link.stop()
        await asyncio.wait_for(task, WAIT_S)
        await emulator.stop()
        if recorder.session_id is not None:
            recorder.end_session()
        db.close()


@dataclass
class Bedside(Rig):
    """Several roles on one session, as the app runs them (one DeviceLink per role)."""

    links: dict[str, DeviceLink] = field(default_factory=dict)


@asynccontextmanager
async def bedside(
    tmp_path: Path, emulators: dict[str, Emulator], clock: JumpClock, *, at_s: float = 0.0
) -> AsyncIterator[Bedside]:
    """One recording session with a DeviceLink per role (default watchdog threshold), all at once.

    The link watchdog looks every 0.1 wall s, i.e. every scenario second at SPEED 10: the
    default period (1 s) of a console running in real time.
    """
    for emulator in emulators.values():
        await emulator.start(at_s)
    db = open_database(tmp_path / "kap.sqlite")
    recorder = Recorder(db, clock)
    recorder.begin_session(kind="demo")
    session = Session(clock, recorder)
    scanner, client = bumble_backends(next(iter(emulators.values())).radio)
    links = {
        role: DeviceLink(
            specs_for_role(role),
            session,
            clock,
            scanner_backend=scanner,
            client_backend=client,
            role=role,
            backoff_s=(0.1,),
            watchdog_period_s=WATCHDOG_PERIOD_S / SPEED,
        )
        for role in emulators
    }
    tasks = [asyncio.create_task(link.run()) for link in links.values()]
    try:
        yield Bedside(clock, session, recorder, links[next(iter(links))], links)
    finally:
        for link in links.values():
            link.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        for emulator in emulators.values():
            await emulator.stop()
        if recorder.session_id is not None:
            recorder.end_session()
        db.close()


@pytest_asyncio.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    r = VirtualRadio()
    await r.start()
    try:
        yield r
    finally:
        await r.close()


def scaled_clock() -> JumpClock:
    return JumpClock(ScaledClock(SystemClock(), SPEED))


# --------------------------------------------------------------------------------------- BP cuff


@pytest.mark.asyncio
async def test_bp_cuff_reading_and_a_stored_one_after_reconnect(radio: VirtualRadio, tmp_path: Path) -> None:
    clock = scaled_clock()
    scenario = SCENARIOS["normal"](5)
    # the cuff's clock shows the console's local time (registry: bp_spec(tzlocal.get_localzone()))
    cuff = EmulatedBPCuff(
        radio,
        scenario,
        speed=SPEED,
        epoch=clock.wall(),
        tz=tzlocal.get_localzone(),
        cycle_step_s=1.0,  # a short cuff cycle keeps the test quick
        advertising_interval_ms=ADV_MS,
    )
    async with console(tmp_path, BP_CUFF, cuff, clock) as rig:
        await rig.until(lambda: rig.state(cuff.address) is DeviceState.CONNECTED)
        await cuff.until_subscriptions(lambda: cuff.subscribed, WAIT_S)
        raw = await cuff.measure()
        await rig.until(lambda: len(rig.session.bp_readings) == 1)
        live = rig.session.bp_readings[0]
        point = scenario.at(cuff.readings[0].started)
        assert (live.systolic, live.diastolic, live.mean) == (point.systolic, point.diastolic, point.mean)
        assert live.device == cuff.address and not live.stored
        stamp = parse_bp_measurement(raw).timestamp
        assert stamp is not None
        shown = stamp.to_datetime(tzlocal.get_localzone())
        assert shown is not None and live.measured_wall == shown.timestamp()
        # the cuff's clock follows the console's: a fresh reading is stamped about when it arrives
        assert abs(live.wall - live.measured_wall) < 60.0

        # the console loses the cuff; a reading is taken meanwhile and kept in the cuff's memory
        await cuff.vanish()
        await rig.until(lambda: rig.state(cuff.address) is not DeviceState.CONNECTED)
        await cuff.measure()
        assert len(cuff.stored) == 1
        taken = cuff.readings[-1]
        # ten minutes pass for both before the cuff is back in range
        clock.jump(600.0)
        cuff.skip(600.0)
        await cuff.come_back()
        await rig.until(lambda: len(rig.session.bp_readings) == 2, timeout=15.0)
        # the cuff forgets the reading when the console's confirmation reaches it, a few loop turns
        # after the session took it (no session event follows: 'connected' came before)
        async with asyncio.timeout(WAIT_S):
            while cuff.stored:
                await asyncio.sleep(0)
        stored = rig.session.bp_readings[1]
        later = scenario.at(taken.started)
        assert (stored.systolic, stored.diastolic) == (later.systolic, later.diastolic)
        assert stored.stored
        assert stored.measured_wall is not None and stored.wall - stored.measured_wall > 500.0

        rows = queries.blood_pressure(rig.recorder.db, rig.sid)
        assert [(r.systolic, r.diastolic, r.mean, r.stored) for r in rows] == [
            (point.systolic, point.diastolic, point.mean, False),
            (later.systolic, later.diastolic, later.mean, True),
        ]
        assert [r.measured_wall for r in rows] == [live.measured_wall, stored.measured_wall]


# -------------------------------------------------------------------------------------- HR strap


@pytest.mark.asyncio
async def test_hr_strap_heart_rate_reaches_the_database(radio: VirtualRadio, tmp_path: Path) -> None:
    clock = scaled_clock()
    strap = EmulatedHeartRateStrap(radio, SCENARIOS["normal"](8), speed=SPEED, advertising_interval_ms=ADV_MS)
    async with console(tmp_path, HR_STRAP, strap, clock) as rig:
        await rig.until(lambda: rig.count(Param.HEART_RATE) >= 5)
        assert rig.state(strap.address) is DeviceState.CONNECTED
        _t, got = rig.session.trends[Param.HEART_RATE].arrays()
        sent = [raw for t, raw in strap.sent if t is not None]
        # 0x2A37 with an 8-bit value (flag bit 0 clear): the value is byte 1 (gatt.md)
        sent_hr = [
            float(raw[1]) if not raw[0] & 1 else float(int.from_bytes(raw[1:3], "little")) for raw in sent
        ]
        got_list = got.tolist()
        # what arrived is a run of what was sent (the strap sends from its start, heard or not)
        n = len(got_list)
        assert any(sent_hr[i : i + n] == got_list for i in range(len(sent_hr) - n + 1))
        _mono, _wall, values = queries.numerics(rig.recorder.db, rig.sid, Param.HEART_RATE)
        assert values.tolist() == got_list
        assert all(40 <= v <= 140 for v in got_list)


# ------------------------------------------------------------------- proprietary oximeters + pleth


async def _check_oximeter_with_pleth(rig: Rig, address: str, rate_hz: float) -> None:
    await rig.until(lambda: rig.state(address) is DeviceState.CONNECTED)
    await rig.until(lambda: rig.count(Param.SPO2) >= 1 and rig.count(Param.PULSE_RATE) >= 1)
    # count the pleth samples recorded over 5 scenario seconds (5 oximeter parameter reports), timed
    # by the console's clock, which runs at scenario speed
    sid = rig.sid
    _t, before = queries.waveform(rig.recorder.db, sid, "pleth")
    t0 = rig.clock.monotonic()
    spo2_before = rig.count(Param.SPO2)
    await rig.until(lambda: rig.count(Param.SPO2) >= spo2_before + 5)
    _t, after = queries.waveform(rig.recorder.db, rig.sid, "pleth")
    t1 = rig.clock.monotonic()
    measured = (after.size - before.size) / (t1 - t0)
    assert measured == pytest.approx(rate_hz, rel=0.10)
    assert queries.waveform_devices(rig.recorder.db, sid, "pleth") == [address]
    rates = rig.recorder.db.execute(
        "SELECT DISTINCT rate_hz FROM waveform_chunks WHERE session_id = ?", (sid,)
    ).fetchall()
    assert rates == [(rate_hz,)]
    for param in (Param.SPO2, Param.PULSE_RATE):
        _mono, _wall, values = queries.numerics(rig.recorder.db, sid, param)
        _t, trend = rig.session.trends[param].arrays()
        assert values.size >= 4 and values.tolist() == trend.tolist()
    _mono, _wall, spo2 = queries.numerics(rig.recorder.db, sid, Param.SPO2)
    assert all(85 <= v <= 100 for v in spo2.tolist())


@pytest.mark.asyncio
async def test_viatom_numerics_and_pleth_reach_the_database(radio: VirtualRadio, tmp_path: Path) -> None:
    oximeter = EmulatedViatomOximeter(
        radio, SCENARIOS["normal"](9), speed=SPEED, advertising_interval_ms=ADV_MS
    )
    async with console(tmp_path, OXIMETER, oximeter, scaled_clock()) as rig:
        await _check_oximeter_with_pleth(rig, oximeter.address, 50.0)


@pytest.mark.asyncio
async def test_berrymed_numerics_and_pleth_reach_the_database(radio: VirtualRadio, tmp_path: Path) -> None:
    oximeter = EmulatedBerryMedOximeter(
        radio, SCENARIOS["normal"](10), speed=SPEED, advertising_interval_ms=ADV_MS
    )
    async with console(tmp_path, OXIMETER, oximeter, scaled_clock()) as rig:
        await _check_oximeter_with_pleth(rig, oximeter.address, 100.0)


# ---------------------------------------------------------------------------- malformed injection


@pytest.mark.asyncio
async def test_injected_malformed_packets_are_counted_recorded_and_good_values_flow(
    radio: VirtualRadio, tmp_path: Path
) -> None:
    oximeter = EmulatedPlxOximeter(
        radio, SCENARIOS["normal"](11), speed=SPEED, advertising_interval_ms=ADV_MS
    )
    injector = MalformedInjector(
        oximeter, seed=4, every_s=1.5, structured=PLX_STRUCTURED, keep=plx_is_malformed
    )
    async with console(tmp_path, OXIMETER, oximeter, scaled_clock()) as rig:
        address = oximeter.address
        await rig.until(lambda: rig.count(Param.SPO2) >= 1)
        before = rig.count(Param.SPO2)
        injector.start()
        try:
            await rig.until(lambda: rig.session.devices[address].counters.malformed >= 6)
        finally:
            await injector.stop()
        injected = list(injector.injected)
        assert all(plx_is_malformed(raw) for raw in injected)
        await rig.until(lambda: rig.session.devices[address].counters.malformed == len(injected))
        # good values kept coming between the bad ones, on the same connection
        assert rig.count(Param.SPO2) >= before + 6
        assert rig.state(address) is DeviceState.CONNECTED
        assert rig.link.connections == 1
        rows = queries.malformed_packets(rig.recorder.db, rig.sid)
        assert [bytes(r.data) for r in rows] == injected
        assert all("ParseError" in r.error for r in rows)
        # the same seed gives the same packets
        again = MalformedInjector(oximeter, seed=4, structured=PLX_STRUCTURED, keep=plx_is_malformed)
        assert [again.next_packet() for _ in injected] == injected


# ------------------------------------------------------------------------------ PLX spot-checks


@pytest.mark.asyncio
async def test_a_spot_check_only_oximeter_is_recorded_and_its_silences_are_not_faults(
    radio: VirtualRadio, tmp_path: Path
) -> None:
    speed = 40.0
    clock = JumpClock(ScaledClock(SystemClock(), speed))
    # one spot-check every 20 scenario s: longer than the stream watchdog's threshold
    oximeter = EmulatedPlxOximeter(
        radio,
        SCENARIOS["normal"](13),
        speed=speed,
        advertising_interval_ms=ADV_MS,
        continuous=False,
        spot_check_every_s=20.0,
    )
    assert oximeter.spot_check_every_s is not None and oximeter.spot_check_every_s > STALE_AFTER_S
    async with console(tmp_path, OXIMETER, oximeter, clock) as rig:
        await rig.until(lambda: rig.state(oximeter.address) is DeviceState.CONNECTED)
        # the console takes a value before the emulator has its confirmation: wait for both
        await rig.until(lambda: rig.count(Param.SPO2) >= 4 and len(oximeter.spot_checks) >= 4, timeout=WAIT_S)
        sent = [parse_plx_spot_check(raw).spo2 for _t, raw in oximeter.spot_checks]
        _mono, _wall, values = queries.numerics(rig.recorder.db, rig.sid, Param.SPO2)
        assert values.tolist()[:4] == sent[:4]
        assert not rig.session.devices[oximeter.address].info.streaming
        # half a minute of silence passes at once: neither the session's no-data watchdog nor the
        # link's treats a spot-check device's silence as a fault
        clock.jump(30.0)
        rig.session.tick()
        assert not rig.session.is_stale(oximeter.address)
        before = rig.count(Param.SPO2)
        await rig.until(lambda: rig.count(Param.SPO2) >= before + 1, timeout=WAIT_S)
        assert rig.link.connections == 1 and rig.state(oximeter.address) is DeviceState.CONNECTED


@pytest.mark.asyncio
async def test_an_oximeter_with_both_measurements_delivers_both(radio: VirtualRadio, tmp_path: Path) -> None:
    # the continuous stream says "demonstration data" (status bit 10), the spot-checks do not: the
    # recorded quality tells which characteristic each value came through
    oximeter = EmulatedPlxOximeter(
        radio,
        SCENARIOS["normal"](14),
        speed=SPEED,
        advertising_interval_ms=ADV_MS,
        spot_check_every_s=2.0,
        demonstration=True,
    )
    async with console(tmp_path, OXIMETER, oximeter, scaled_clock()) as rig:
        await rig.until(lambda: len(oximeter.spot_checks) >= 3)  # confirmed by the console's bleak
        await rig.until(lambda: rig.count(Param.SPO2) >= 10)
        qualities = [
            Quality(q)
            for (q,) in rig.recorder.db.execute(
                "SELECT quality FROM numerics WHERE session_id = ? AND param = 'spo2'", (rig.sid,)
            )
        ]
        continuous = [q for q in qualities if q & Quality.DEMO]
        spot = [q for q in qualities if not q & Quality.DEMO]
        assert len(continuous) >= 5 and len(spot) >= 3
        assert len(spot) <= len(oximeter.spot_checks)  # each recorded once
        assert rig.link.malformed == 0 and rig.link.connections == 1
        assert rig.session.devices[oximeter.address].info.streaming


# ----------------------------------------------------------------------- PLX stored spot-checks (RACP)


def _stored_rows(rig: Rig) -> list[tuple[float, float, float | None, int]]:
    """(mono, t_utc, value, quality) of the SpO2 rows recorded as from storage, in time order."""
    sql = (
        "SELECT mono, t_utc, value, quality FROM numerics WHERE session_id = ? AND param = 'spo2'"
        " AND quality & ? ORDER BY mono"
    )
    return [tuple(r) for r in rig.recorder.db.execute(sql, (rig.sid, int(Quality.FROM_STORAGE)))]


@pytest.mark.asyncio
async def test_stored_spot_checks_are_uploaded_placed_by_their_time_recorded_once_and_never_alarmed(
    radio: VirtualRadio, tmp_path: Path
) -> None:
    clock = scaled_clock()
    start = 600.0  # the console connects at scenario minute 10, after the desaturation at ~3-4 min
    scenario = SCENARIOS["desaturation"](3)
    tz = tzlocal.get_localzone()
    epoch = clock.wall() - start  # scenario time `start` is the console's now
    # the oximeter's clock shows the console's local time (registry: plx_spec() uses the local zone)
    oximeter = EmulatedPlxOximeter(
        radio,
        scenario,
        speed=SPEED,
        advertising_interval_ms=ADV_MS,
        record_memory=10,
        epoch=epoch,
        tz=tz,
    )
    taken = (100.0, 200.0, 240.0)  # spot-checks taken while no console was connected
    for t in taken:
        oximeter.store_spot_check(t)
    values = [scenario.at(t).spo2 for t in taken]
    assert values[1] is not None and values[1] < 85  # would be the high-priority low-SpO2 alarm live
    engine = AlarmEngine(clock, kap_defaults(), hold_off_s=0.0)
    async with console(tmp_path, OXIMETER, oximeter, clock, alarms=engine, at_s=start) as rig:
        await rig.until(lambda: rig.link.stored_uploads == 1)
        assert oximeter.racp_writes == [b"\x04\x01", b"\x01\x01"]  # gatt.md: count, then all records
        assert len(oximeter.uploaded) == 3 and rig.link.stored_upload is not None
        assert rig.link.stored_upload.startswith("3 record(s)")
        await rig.until(lambda: rig.count(Param.SPO2) >= 5)  # live values flow as usual
        rows = _stored_rows(rig)
        # placed by their own time (the oximeter's clock, whole seconds), not by their arrival
        own = [oximeter.clock_datetime(t).replace(tzinfo=tz).timestamp() for t in taken]
        assert [r[1] for r in rows] == own
        assert all(0.0 <= epoch + t - w < 1.0 for w, t in zip(own, taken, strict=True))
        assert [r[2] for r in rows] == values
        connected = next(mono for mono, state, _d in _events(rig, oximeter.address) if state == "connected")
        assert all(r[0] < connected - 300.0 for r in rows)  # mono moved back by the record's age
        # never the live value, never in the live trend
        latest = rig.session.latest[Param.SPO2]
        assert not latest.quality & Quality.FROM_STORAGE
        assert latest.value is not None and latest.value >= 90.0  # the scenario is back to normal
        _t, trend = rig.session.trends[Param.SPO2].arrays()
        assert values[1] not in trend.tolist() and values[2] not in trend.tolist()

        # the oximeter drops out and comes back: it uploads the same three records again
        await oximeter.vanish()
        await rig.until(lambda: rig.state(oximeter.address) is not DeviceState.CONNECTED)
        await oximeter.come_back()
        await rig.until(lambda: rig.link.stored_uploads == 2, timeout=15.0)
        assert rig.link.connections == 2 and len(oximeter.uploaded) == 6
        assert _stored_rows(rig) == rows  # recorded once
        # no alarm of any kind for the stored low SpO2, on either connection
        rig.session.tick()
        assert [a for a in engine.history() if a.param is Param.SPO2] == []
        assert rig.link.malformed == 0


@pytest.mark.asyncio
async def test_an_oximeter_that_never_answers_racp_is_logged_and_keeps_streaming(
    radio: VirtualRadio, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    oximeter = EmulatedPlxOximeter(
        radio,
        SCENARIOS["normal"](6),
        speed=SPEED,
        advertising_interval_ms=ADV_MS,
        record_memory=5,
        racp_mute=True,
    )
    oximeter.store_spot_check(10.0)
    caplog.set_level("WARNING", logger="devices._ble.link")
    async with console(tmp_path, OXIMETER, oximeter, scaled_clock(), at_s=60.0, racp_timeout_s=0.5) as rig:
        await rig.until(lambda: rig.link.stored_upload is not None)
        assert rig.link.stored_upload is not None and rig.link.stored_upload.startswith(
            "failed: TimeoutError"
        )
        assert oximeter.racp_writes == [b"\x04\x01"]
        assert any("stored records not uploaded" in r.getMessage() for r in caplog.records)
        before = rig.count(Param.SPO2)
        await rig.until(lambda: rig.count(Param.SPO2) >= before + 3)  # the link goes on
        assert rig.state(oximeter.address) is DeviceState.CONNECTED and rig.link.connections == 1
        assert rig.link.stored_uploads == 0 and _stored_rows(rig) == []


@pytest.mark.asyncio
async def test_no_value_is_recorded_before_the_link_reports_connected(
    radio: VirtualRadio, tmp_path: Path
) -> None:
    """The battery read and the first notifications come after 'connected', on every connection.

    The record marks a gap by the device events lost → connected; a value stamped between them
    (the battery read at each connection used to be) would lie inside the gap it marks.
    """
    clock = scaled_clock()
    strap = EmulatedHeartRateStrap(radio, SCENARIOS["normal"](4), speed=SPEED, advertising_interval_ms=ADV_MS)
    async with console(tmp_path, HR_STRAP, strap, clock) as rig:
        await rig.until(lambda: rig.count(Param.HEART_RATE) >= 2 and rig.count(Param.BATTERY) >= 1)
        await strap.vanish(silent=False)
        await rig.until(lambda: rig.state(strap.address) is DeviceState.LOST)
        await strap.come_back()
        await rig.until(
            lambda: rig.link.connections == 2 and rig.state(strap.address) is DeviceState.CONNECTED
        )
        hr_back = rig.count(Param.HEART_RATE)
        await rig.until(lambda: rig.count(Param.HEART_RATE) >= hr_back + 2 and rig.count(Param.BATTERY) >= 2)
        marks = ("lost", "connected")
        events = [(m, state) for m, state, _d in _events(rig, strap.address) if state in marks]
        assert [state for _m, state in events] == ["connected", "lost", "connected"]
        (first_connected, _), (lost, _), (back, _) = events
        for param in (Param.HEART_RATE, Param.BATTERY):
            mono, _wall, _values = queries.numerics(rig.recorder.db, rig.sid, param)
            assert mono.size >= 2
            assert mono.min() >= first_connected, f"{param}: a value before the first 'connected'"
            inside = mono[(mono > lost) & (mono < back)]
            assert inside.size == 0, f"{param}: {inside.size} value(s) inside the gap {lost:.2f}-{back:.2f}"


# ----------------------------------------------------------------------------------------- battery


@pytest.mark.asyncio
async def test_a_notified_battery_level_is_followed_during_the_session(
    radio: VirtualRadio, tmp_path: Path
) -> None:
    speed = 40.0  # low_battery drains 1 % per 40 scenario s: one step per wall second
    clock = JumpClock(ScaledClock(SystemClock(), speed))
    scenario = SCENARIOS["low_battery"](2)
    strap = EmulatedHeartRateStrap(radio, scenario, speed=speed, advertising_interval_ms=ADV_MS)
    async with console(tmp_path, HR_STRAP, strap, clock) as rig:
        await rig.until(lambda: rig.state(strap.address) is DeviceState.CONNECTED)
        await rig.until(lambda: rig.count(Param.BATTERY) >= 1)  # read just after 'connected'
        first = rig.count(Param.BATTERY)
        assert first == 1  # read once at connection
        await rig.until(lambda: rig.count(Param.BATTERY) >= first + 2, timeout=WAIT_S)
        assert rig.link.connections == 1  # followed on the same connection, not by reconnecting
        _mono, _wall, levels = queries.numerics(rig.recorder.db, rig.sid, Param.BATTERY)
        got = levels.tolist()
        assert len(got) >= 3 and got == sorted(got, reverse=True) and got[-1] < got[0] <= 12.0
        latest = rig.session.latest[Param.BATTERY]
        assert latest.device == strap.address and latest.value == got[-1]


# ----------------------------------------------------------------------------------------- pairing


@pytest.mark.asyncio
async def test_a_cuff_that_needs_pairing_is_paired_and_its_readings_recorded(
    radio: VirtualRadio, tmp_path: Path
) -> None:
    clock = scaled_clock()
    cuff = EmulatedBPCuff(
        radio,
        SCENARIOS["normal"](6),
        speed=SPEED,
        epoch=clock.wall(),
        tz=tzlocal.get_localzone(),
        cycle_step_s=1.0,
        advertising_interval_ms=ADV_MS,
        requires_pairing=True,  # subscribing needs an encrypted link (gatt.md: A&D UA-651BLE)
    )
    async with console(tmp_path, BP_CUFF, cuff, clock) as rig:
        await rig.until(lambda: rig.state(cuff.address) is DeviceState.CONNECTED)
        # pairing comes with the first subscription, after 'connected'
        await cuff.until_subscriptions(lambda: cuff.subscribed, WAIT_S)
        assert rig.link.pairings == 1 and rig.link.connections == 1
        (connection,) = cuff.connections
        assert connection.is_encrypted and cuff.subscribed
        await cuff.measure()
        await rig.until(lambda: len(rig.session.bp_readings) == 1)
        rows = queries.blood_pressure(rig.recorder.db, rig.sid)
        point = cuff.scenario.at(cuff.readings[0].started)
        assert [(r.systolic, r.diastolic, r.stored) for r in rows] == [
            (point.systolic, point.diastolic, False)
        ]


# ------------------------------------------------------------ three at once, disconnect and return


def _events(rig: Rig, address: str) -> list[tuple[float, str | None, str]]:
    return [
        (e.mono, e.state, e.detail)
        for e in queries.device_events(rig.recorder.db, rig.sid)
        if e.device == address
    ]


@pytest.mark.asyncio
async def test_three_devices_at_once_then_disconnect_and_return_with_the_gap_marked(
    radio: VirtualRadio, tmp_path: Path, qtbot: QtBot
) -> None:
    """Oximeter (pleth) + BP cuff + HR strap connected together; the wearables leave range 60-90 s.

    The oximeter disconnects as it goes; the strap just falls silent (no disconnect event), so only
    the watchdog can tell. Both come back by themselves, the links reconnect, and the one session
    record goes on with the gap between "lost" and "connected" and no samples inside it.
    """
    clock = scaled_clock()
    scenario = SCENARIOS["disconnect_return"](12)
    oximeter = EmulatedViatomOximeter(radio, scenario, speed=SPEED, advertising_interval_ms=ADV_MS)
    cuff = EmulatedBPCuff(
        radio,
        scenario,
        speed=SPEED,
        epoch=clock.wall(),
        tz=tzlocal.get_localzone(),
        cycle_step_s=1.0,
        advertising_interval_ms=ADV_MS,
    )
    strap = EmulatedHeartRateStrap(
        radio, scenario, speed=SPEED, advertising_interval_ms=ADV_MS, silent_vanish=True
    )
    emulators: dict[str, Emulator] = {OXIMETER: oximeter, BP_CUFF: cuff, HR_STRAP: strap}
    addresses = [oximeter.address, cuff.address, strap.address]
    # start at scenario 40 s: 2 s of wall time before the wearables leave range
    async with bedside(tmp_path, emulators, clock, at_s=40.0) as rig:
        # 'connected' comes before the subscriptions and start commands: the oximeter and the strap
        # stream, so the session's events keep this condition checked until all are set up
        await rig.until(
            lambda: (
                all(rig.state(a) is DeviceState.CONNECTED for a in addresses)
                and cuff.subscribed
                and oximeter.wave_enabled
            )
        )
        # all three connected at the same time, each by its own link, each to its own device
        assert {role: link.device_id for role, link in rig.links.items()} == dict(
            zip((OXIMETER, BP_CUFF, HR_STRAP), addresses, strict=True)
        )
        assert cuff.subscribed and oximeter.wave_enabled and strap.connections
        window = MainWindow(rig.session)
        qtbot.addWidget(window)
        await cuff.measure()
        await rig.until(lambda: len(rig.session.bp_readings) == 1)
        await rig.until(lambda: rig.count(Param.SPO2) >= 1 and rig.count(Param.HEART_RATE) >= 1)
        # on screen: the oximeter's numerics, the cuff's reading, a line per device, the pleth
        spo2, reading = rig.session.latest[Param.SPO2].value, rig.session.bp_readings[0]
        assert spo2 is not None and window.tiles[Param.SPO2].value_text() == f"{spo2:.0f}"
        assert reading.systolic is not None and reading.diastolic is not None
        assert window.bp_tile.value_text() == f"{reading.systolic:.0f}/{reading.diastolic:.0f}"
        rows = window.status_line.row_texts()
        for name in (oximeter.name, cuff.name, strap.name):
            assert any(name in row for row in rows), (name, rows)
        assert len(rig.session.waves["pleth"]) > 0
        window.shutdown()

        # out of range: the wearables go (their "lost" events are checked below), the cuff stays
        await rig.until(lambda: rig.state(oximeter.address) is not DeviceState.CONNECTED)
        await rig.until(lambda: rig.state(strap.address) is not DeviceState.CONNECTED)
        assert rig.state(cuff.address) is DeviceState.CONNECTED
        # ... and come back on their own: each link reconnects to the same device
        await rig.until(
            lambda: (
                rig.links[OXIMETER].connections == 2
                and rig.links[HR_STRAP].connections == 2
                and rig.state(oximeter.address) is DeviceState.CONNECTED
                and rig.state(strap.address) is DeviceState.CONNECTED
            ),
            timeout=15.0,
        )
        spo2_back, hr_back = rig.count(Param.SPO2), rig.count(Param.HEART_RATE)
        await rig.until(
            lambda: rig.count(Param.SPO2) >= spo2_back + 3 and rig.count(Param.HEART_RATE) >= hr_back + 3
        )
        assert rig.links[BP_CUFF].connections == 1
        # the new connection's stream is not glued to the partial frame the old one left behind
        assert all(rig.session.devices[a].counters.malformed == 0 for a in addresses)

        sid = rig.sid
        for address, param, how in (
            (oximeter.address, Param.SPO2, "link lost (disconnected)"),
            (strap.address, Param.HEART_RATE, "no data for"),
        ):
            events = _events(rig, address)
            states = [state for _m, state, _d in events if state is not None]
            assert states[:2] == ["connecting", "connected"]
            lost_at = states.index("lost")
            assert "connected" in states[lost_at:], states  # reconnected in the same session
            lost_mono, _s, detail = next(e for e in events if e[1] == "lost")
            assert detail.startswith(how), detail
            back_mono = next(m for m, state, _d in events if state == "connected" and m > lost_mono)
            mono, _wall, _values = queries.numerics(rig.recorder.db, sid, param)
            before = mono[mono <= lost_mono]
            after = mono[mono >= back_mono]
            # the record goes on: samples before and after the gap, none inside it
            assert before.size >= 1 and after.size >= 3
            assert before.size + after.size == mono.size
            # out of range for 30 scenario seconds: the oximeter's gap opens as it goes; the silent
            # strap's opens when the watchdog notices, up to 15 s later (alarms.md), so its gap is
            # at least 30 - 15 s (a ghost advertiser used to stretch it by a connect timeout)
            assert back_mono - lost_mono >= (15.0 if address == strap.address else 20.0)
            # and the live trend is broken (a NaN) where the gap is, so no line bridges it
            _t, trend = rig.session.trends[param].arrays()
            assert np.isnan(trend).any()
            if address == strap.address:
                # no disconnect event: the watchdog reported the silent strap within 15 s of its last
                # sample (alarms.md), and not before the threshold (the link's slack absorbs the
                # loop's lateness, 10x amplified at SPEED: no allowance over the 15 s)
                assert STALE_AFTER_S <= lost_mono - float(before[-1]) <= 15.0
        # the pleth too: recorded before and after, nothing inside the oximeter's gap
        ox_events = _events(rig, oximeter.address)
        lost_mono = next(m for m, state, _d in ox_events if state == "lost")
        back_mono = next(m for m, state, _d in ox_events if state == "connected" and m > lost_mono)
        t, _v = queries.waveform(rig.recorder.db, sid, "pleth")
        assert (t <= lost_mono).any() and (t >= back_mono).any()
        assert not ((t > lost_mono + 0.5) & (t < back_mono - 0.5)).any()
        # the cuff reading is there once, and every device is in the one session's device list
        assert len(queries.blood_pressure(rig.recorder.db, sid)) == 1
        assert {d.device for d in queries.session_devices(rig.recorder.db, sid)} >= set(addresses)


# ------------------------------------------------------------------------------------ --scenario


@pytest.mark.asyncio
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_scenario_is_selectable_with_the_command_line(name: str) -> None:
    """`kapmonitor --demo --scenario NAME` runs NAME on every emulated wearable (+ injector if malformed)."""
    opts = parse_args(
        ["record", "--demo", "--headless", "--minutes", "1", "--scenario", name, "--speed", "5"]
    )
    assert opts.scenario == name and opts.demo
    demo = Demo(SystemClock(), scenario=opts.scenario, seed=opts.seed, speed=opts.speed)
    await demo.start()
    try:
        devices = [demo.oximeter, demo.cuff, demo.strap]
        assert all(d is not None and d.scenario.name == name and d.running for d in devices)
        assert (demo.injector is not None and demo.injector.running) == (name == "malformed")
        # malformed packets go into every wearable, each of its own protocol
        targets = [i.emulator for i in demo.injectors if i.running]
        assert targets == ([demo.oximeter, demo.strap, demo.cuff] if name == "malformed" else [])
        if name == "malformed":
            structured = [i.structured for i in demo.injectors]
            assert structured[1:] == [HR_STRUCTURED, BP_STRUCTURED]
            assert all(i.keep is not None for i in demo.injectors[1:])
    finally:
        await demo.stop()


@pytest.mark.asyncio
async def test_the_malformed_demo_reaches_the_strap_and_the_cuff_too(tmp_path: Path) -> None:
    """`--scenario malformed`: the console counts and records bad packets from every wearable."""
    speed = 20.0  # an injection every 5 scenario s: every 0.25 s of wall time
    clock = JumpClock(ScaledClock(SystemClock(), speed))
    demo = Demo(clock, scenario="malformed", seed=7, speed=speed, oximeter="plx")
    scanner, client = await demo.start()
    db = open_database(tmp_path / "kap.sqlite")
    recorder = Recorder(db, clock)
    recorder.begin_session(kind="demo")
    session = Session(clock, recorder)
    links = [
        DeviceLink(
            specs_for_role(role),
            session,
            clock,
            scanner_backend=scanner,
            client_backend=client,
            role=role,
            backoff_s=(0.1,),
        )
        for role in (OXIMETER, HR_STRAP, BP_CUFF)
    ]
    tasks = [asyncio.create_task(link.run()) for link in links]
    rig = Rig(clock, session, recorder, links[0])
    try:
        assert demo.oximeter is not None and demo.strap is not None and demo.cuff is not None
        addresses = [demo.oximeter.address, demo.strap.address, demo.cuff.address]

        def malformed(address: str) -> int:
            status = session.devices.get(address)
            return 0 if status is None else status.counters.malformed

        # the session emits no event for a malformed packet: the oximeter's values wake the wait
        await rig.until(lambda: all(malformed(a) >= 2 for a in addresses), timeout=15.0)
        rows = queries.malformed_packets(db, rig.sid)
        by_device = {a: [bytes(r.data) for r in rows if r.device == a] for a in addresses}
        sent = {a: i.injected for a, i in zip(addresses, demo.injectors, strict=True)}
        for address in addresses:
            # every recorded bad packet is one the injector of that device sent, in order (a cuff
            # drops what it indicates before the console subscribes)
            remaining = iter(sent[address])
            assert all(any(raw == out for out in remaining) for raw in by_device[address])
        assert [link.malformed for link in links] == [malformed(a) for a in addresses]
        assert all(link.connections == 1 for link in links)
    finally:
        for link in links:
            link.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        await demo.stop()
        recorder.end_session()
        db.close()


def test_an_unknown_scenario_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'; choose one of: artefact, bradycardia"):
        Demo(SystemClock(), scenario="nope")


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["hr", "bp"])
async def test_malformed_packets_into_the_strap_and_the_cuff_are_counted_and_recorded(
    radio: VirtualRadio, tmp_path: Path, kind: str
) -> None:
    clock = scaled_clock()
    scenario = SCENARIOS["malformed"](15)
    strap = EmulatedHeartRateStrap(radio, scenario, speed=SPEED, advertising_interval_ms=ADV_MS)
    cuff = EmulatedBPCuff(
        radio,
        scenario,
        speed=SPEED,
        epoch=clock.wall(),
        tz=tzlocal.get_localzone(),
        advertising_interval_ms=ADV_MS,
    )
    emulator: Emulator = strap if kind == "hr" else cuff
    role = HR_STRAP if kind == "hr" else BP_CUFF
    structured = HR_STRUCTURED if kind == "hr" else BP_STRUCTURED
    keep = hr_is_malformed if kind == "hr" else bp_is_malformed
    injector = MalformedInjector(strap if kind == "hr" else cuff, seed=5, structured=structured, keep=keep)
    injected = [injector.next_packet() for _ in range(8)]  # the injector's seeded sequence
    assert all(keep(raw) for raw in injected)
    async with console(tmp_path, role, emulator, clock) as rig:
        address = emulator.address
        await rig.until(lambda: rig.state(address) is DeviceState.CONNECTED)
        # 'connected' comes before the subscription (no sample may precede it): wait for the
        # device to see it, or the first injected packets would go to nobody
        target = strap if kind == "hr" else cuff
        await target.until_subscriptions(lambda: target.subscribed, WAIT_S)
        for raw in injected:
            await (strap.inject(raw) if kind == "hr" else cuff.inject(raw))
        # good data after the bad: values keep coming (strap), a reading is taken as usual (cuff);
        # the session emits no event for a malformed packet, so wait on those
        if kind == "hr":
            before = rig.count(Param.HEART_RATE)
            await rig.until(lambda: rig.count(Param.HEART_RATE) >= before + 2)
        else:
            await cuff.measure()
            await rig.until(lambda: len(rig.session.bp_readings) == 1)
        assert rig.session.devices[address].counters.malformed == len(injected) == rig.link.malformed
        rows = queries.malformed_packets(rig.recorder.db, rig.sid)
        assert [bytes(r.data) for r in rows] == injected and all("ParseError" in r.error for r in rows)
        assert rig.state(address) is DeviceState.CONNECTED and rig.link.connections == 1
