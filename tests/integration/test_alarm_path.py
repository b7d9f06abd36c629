"""End to end: an emulated desaturation through bleak raises the medium, then the high SpO2 alarm on time."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import numpy as np
import pytest

from devices._ble.bumble_backend import bumble_backends
from devices._ble.link import DeviceLink
from devices.emulated.plx_oximeter import EmulatedPlxOximeter
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS
from devices.plx.driver import plx_spec
from kapmonitor.alarms import AlarmEngine, TransitionEvent, kap_defaults
from kapmonitor.clock import ScaledClock, SystemClock
from kapmonitor.measurements import Param
from kapmonitor.session import AlarmChanged, Session, SessionEvent
from kapmonitor.storage import Recorder, alarm_events, open_database

#: scenario seconds per wall second; the session clock runs at the same speed as the emulator
SPEED = 25.0


@pytest.mark.asyncio
async def test_desaturation_raises_medium_after_its_delay_then_high_at_once(tmp_path: Path) -> None:
    clock = ScaledClock(SystemClock(), SPEED)
    db = open_database(tmp_path / "alarm.sqlite")
    recorder = Recorder(db, clock)
    sid = recorder.begin_session(kind="demo")
    engine = AlarmEngine(clock, kap_defaults())  # the default 120 s sensor hold-off included
    session = Session(clock, recorder, alarms=engine)
    raised: list[tuple[float, str]] = []
    high_seen = asyncio.Event()

    def on_event(event: SessionEvent) -> None:
        if isinstance(event, AlarmChanged) and event.transition.event is TransitionEvent.RAISED:
            t = event.transition
            if t.param is Param.SPO2:
                raised.append((t.mono, t.priority.marker if t.priority else "?"))
                if t.priority is not None and t.priority.marker == "***":
                    high_seen.set()

    session.subscribe(on_event)
    async with VirtualRadio() as radio:
        oximeter = EmulatedPlxOximeter(
            radio, SCENARIOS["desaturation"](4), speed=SPEED, advertising_interval_ms=20
        )
        await oximeter.start()
        scanner, client = bumble_backends(radio)
        link = DeviceLink(plx_spec(), session, clock, scanner_backend=scanner, client_backend=client)
        link_task = asyncio.create_task(link.run())

        async def ticker() -> None:
            while True:
                session.tick()
                await asyncio.sleep(0.01)  # 0.25 scenario-seconds: finer than the 1 s samples

        tick_task = asyncio.create_task(ticker())
        try:
            # desaturation: from t=120 s SpO2 falls about 1 %/4 s to ~82 % (scenario.py)
            await asyncio.wait_for(high_seen.wait(), 400 / SPEED)
        finally:
            link.stop()
            await asyncio.wait_for(link_task, 10)
            tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick_task
    recorder.flush()

    t, v = session.trends[Param.SPO2].arrays()
    finite = ~np.isnan(v)
    first_below_90 = float(t[finite & (v < 90)][0])
    first_below_85 = float(t[finite & (v < 85)][0])
    markers = [m for _t, m in raised]
    assert markers[:2] == ["**", "***"]
    medium_at, high_at = raised[0][0], raised[1][0]
    # alarms.md: SpO2 < 90 % medium after a 10 s condition delay; < 85 % high with no delay.
    # The samples come once a scenario-second, so the condition may have begun up to 1 s earlier.
    assert 9.0 <= medium_at - first_below_90 <= 10.0 + 0.5
    assert 0.0 <= high_at - first_below_85 <= 0.5
    rows = [r for r in alarm_events(db, sid) if r.event == "raised" and r.param == "spo2"]
    assert [r.priority for r in rows[:2]] == ["medium", "high"]
    assert rows[0].value is not None and rows[0].value < 90
    assert rows[1].value is not None and rows[1].value < 85
    recorder.end_session()
    db.close()
