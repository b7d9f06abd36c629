"""End to end: emulated PLX oximeter → bleak (bumble backend) → parser → Session → SQLite and screen."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from pytestqt.qtbot import QtBot

from devices._ble.bumble_backend import bumble_backends
from devices._ble.link import DeviceLink
from devices.emulated.plx_oximeter import EmulatedPlxOximeter
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS
from devices.plx.driver import plx_spec
from devices.plx.parser import parse_plx_continuous
from kapmonitor.clock import SystemClock
from kapmonitor.measurements import DeviceState, Param
from kapmonitor.session import Session
from kapmonitor.storage import Recorder, open_database, queries
from tests.session_wait import until
from ui.main_window import MainWindow

#: scenario seconds per wall second: the emulator notifies every 1/SPEED s
SPEED = 10.0


@dataclass
class Rig:
    radio: VirtualRadio
    oximeter: EmulatedPlxOximeter
    session: Session
    recorder: Recorder
    link: DeviceLink
    task: asyncio.Task[None]
    db_path: Path

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait (on session events, never a blind sleep) until `condition` holds."""
        await until(self.session, condition, timeout)


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = SystemClock()
    radio = VirtualRadio()
    await radio.start()
    oximeter = EmulatedPlxOximeter(radio, SCENARIOS["normal"](7), speed=SPEED, advertising_interval_ms=20.0)
    await oximeter.start()
    db_path = tmp_path / "kap.sqlite"
    db = open_database(db_path)
    recorder = Recorder(db, clock)
    recorder.begin_session(kind="demo")
    session = Session(clock, recorder)
    scanner, client = bumble_backends(radio)
    link = DeviceLink(
        plx_spec(),
        session,
        clock,
        scanner_backend=scanner,
        client_backend=client,
        stale_after_s=2.0,
        backoff_s=(0.1,),
        watchdog_period_s=0.2,
    )
    task = asyncio.create_task(link.run())
    rig = Rig(radio, oximeter, session, recorder, link, task, db_path)
    try:
        yield rig
    finally:
        link.stop()
        await asyncio.wait_for(task, 10.0)
        await oximeter.stop()
        await radio.close()
        if recorder.session_id is not None:
            recorder.end_session()
        db.close()


def spo2_count(session: Session) -> int:
    trend = session.trends.get(Param.SPO2)
    return 0 if trend is None else len(trend)


@pytest.mark.asyncio
async def test_values_reach_the_session_the_database_and_the_numerics(rig: Rig, qtbot: QtBot) -> None:
    window = MainWindow(rig.session)
    qtbot.addWidget(window)
    await rig.until(lambda: spo2_count(rig.session) >= 5)
    address = rig.oximeter.address
    status = rig.session.devices[address]
    assert status.state is DeviceState.CONNECTED
    assert status.info.name == "KAP-Emu PLX"
    assert rig.link.device_information["manufacturer"] == "KAP Emulation"
    assert status.detail.endswith("signal -50 dBm")  # the virtual radio's RSSI (gatt.md)

    # every value the session holds is one the emulator sent, in order
    sent = [parse_plx_continuous(raw) for _t, raw in rig.oximeter.sent]
    sent_spo2 = [m.spo2 for m in sent]
    _t, got = rig.session.trends[Param.SPO2].arrays()
    got_list = got.tolist()
    start = sent_spo2.index(got_list[0])
    assert sent_spo2[start : start + len(got_list)] == got_list

    # the numeric tiles show the newest values
    latest_spo2 = rig.session.latest[Param.SPO2].value
    latest_pulse = rig.session.latest[Param.PULSE_RATE].value
    assert latest_spo2 is not None and latest_pulse is not None
    assert window.tiles[Param.SPO2].value_text() == f"{latest_spo2:.0f}"
    assert window.tiles[Param.PULSE_RATE].value_text() == f"{latest_pulse:.0f}"

    # and the database has them once the recorder has flushed
    rig.recorder.flush()
    sid = rig.recorder.session_id
    assert sid is not None
    _mono, _wall, values = queries.numerics(rig.recorder.db, sid, Param.SPO2)
    assert values.tolist() == got_list
    _mono, _wall, pulses = queries.numerics(rig.recorder.db, sid, Param.PULSE_RATE)
    _t, pulse_trend = rig.session.trends[Param.PULSE_RATE].arrays()
    assert pulses.tolist() == pulse_trend.tolist()
    assert np.all(np.diff(_mono) >= 0)
    states = [e.state for e in queries.device_events(rig.recorder.db, sid) if e.device == address]
    assert states[:2] == ["connecting", "connected"]
    battery = rig.session.latest[Param.BATTERY]
    assert battery.device == address and battery.value is not None
    window.shutdown()


@pytest.mark.asyncio
async def test_a_malformed_notification_is_counted_logged_and_dropped(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.until(lambda: spo2_count(rig.session) >= 2)
    address = rig.oximeter.address
    before = spo2_count(rig.session)
    with caplog.at_level(logging.WARNING, logger="kapmonitor.session"):
        await rig.oximeter.inject(b"\x1f\x60")  # flags announce 18 more bytes than there are
        await rig.until(lambda: rig.session.devices[address].counters.malformed == 1)
    assert "1f 60" in caplog.text
    assert rig.link.malformed == 1
    # the link is still up and good packets keep coming
    await rig.until(lambda: spo2_count(rig.session) >= before + 2)
    assert rig.session.devices[address].state is DeviceState.CONNECTED
    rig.recorder.flush()
    sid = rig.recorder.session_id
    assert sid is not None
    rows = queries.malformed_packets(rig.recorder.db, sid)
    assert [bytes(r.data) for r in rows] == [b"\x1f\x60"]
    assert "ParseError" in rows[0].error


@pytest.mark.asyncio
async def test_a_vanished_device_is_detected_by_the_watchdog_and_reconnected(rig: Rig) -> None:
    await rig.until(lambda: spo2_count(rig.session) >= 2)
    address = rig.oximeter.address
    connections = rig.link.connections
    await rig.oximeter.vanish(silent=True)  # no disconnect event: only the data watchdog can tell
    await rig.until(lambda: rig.session.devices[address].state is DeviceState.LOST, timeout=10.0)
    assert "no data" in rig.session.devices[address].detail
    await rig.oximeter.come_back()
    await rig.until(lambda: rig.session.devices[address].state is DeviceState.CONNECTED, timeout=15.0)
    assert rig.link.connections == connections + 1
    before = spo2_count(rig.session)
    await rig.until(lambda: spo2_count(rig.session) >= before + 2)
