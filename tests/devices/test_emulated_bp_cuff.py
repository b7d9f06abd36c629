"""Tests of the emulated BP cuff, driven through bleak's public API over the virtual radio."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakGATTProtocolError, BleakGATTProtocolErrorCode

from devices._ble.bumble_backend import bumble_backends
from devices.bp.driver import bp_spec
from devices.bp.parser import (
    BPDateTime,
    BPFeature,
    PulseRateRange,
    parse_bp_feature,
    parse_bp_measurement,
    parse_intermediate_cuff_pressure,
)
from devices.emulated.bp_cuff import (
    EmulatedBPCuff,
    cuff_pressures,
    encode_feature,
    encode_intermediate,
    encode_reading,
)
from devices.emulated.plx_oximeter import EmulatedPlxOximeter
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS, Scenario, VitalsPoint
from kapmonitor.measurements import BloodPressure, BPStatus

SPEED = 200.0  # scenario seconds per wall second: a 4-step cycle of 5 s steps takes 0.1 s
ADV_MS = 20.0
WAIT_S = 2.0
BERLIN = ZoneInfo("Europe/Berlin")
BP_SERVICE = "00001810-0000-1000-8000-00805f9b34fb"
BP_MEASUREMENT = "00002a35-0000-1000-8000-00805f9b34fb"
CUFF_PRESSURE = "00002a36-0000-1000-8000-00805f9b34fb"


# -- pure encoding ------------------------------------------------------------------------------
#: A cuff's clock shows naive local time; built from an aware value to keep the linter's zone rule.
LOCAL_NEW_YEAR = datetime(2026, 1, 1, tzinfo=BERLIN).replace(tzinfo=None)
POINT = VitalsPoint(97.0, 72.0, 3.4, False, 88, systolic=131.0, diastolic=84.0, mean=100.0)


def test_reading_layout() -> None:
    when = datetime(2026, 11, 25, 13, 5, 7, tzinfo=BERLIN).replace(tzinfo=None)
    raw = encode_reading(POINT, when, user_id=3)
    assert raw[0] == 0x1E  # mmHg, time stamp, pulse, user, status
    assert len(raw) == 19
    m = parse_bp_measurement(raw)
    assert (m.systolic, m.diastolic, m.mean, m.pulse_rate, m.user_id) == (131, 84, 100, 72, 3)
    assert m.timestamp == BPDateTime(2026, 11, 25, 13, 5, 7)
    assert m.status == 0


def test_reading_in_kpa_and_status_bits() -> None:
    raw = encode_reading(POINT, LOCAL_NEW_YEAR, kpa=True)
    m = parse_bp_measurement(raw)
    assert m.kpa and m.systolic == 17.5 and m.diastolic == 11.2 and m.mean == 13.3
    shaky = parse_bp_measurement(
        encode_reading(
            VitalsPoint(
                97.0, 130.0, 3.0, False, 88, artefact=True, systolic=150.0, diastolic=90.0, mean=110.0
            ),
            LOCAL_NEW_YEAR,
        )
    )
    assert shaky.status is not None and shaky.status & 1  # body movement
    assert shaky.pulse_rate_range == PulseRateRange.ABOVE_UPPER_LIMIT
    slow = parse_bp_measurement(
        encode_reading(
            VitalsPoint(97.0, 38.0, 3.0, False, 88, systolic=110.0, diastolic=70.0, mean=83.0),
            LOCAL_NEW_YEAR,
        )
    )
    assert slow.pulse_rate_range == PulseRateRange.BELOW_LOWER_LIMIT


def test_cycle_deflates_from_above_systolic_to_below_diastolic() -> None:
    pressures = cuff_pressures(POINT, 4)
    assert pressures == [161.0, 132.0, 103.0, 74.0]  # 131 + 30 down to 84 − 10, evenly
    assert cuff_pressures(POINT, 1) == [161.0]
    assert cuff_pressures(POINT, 0) == []
    m = parse_intermediate_cuff_pressure(encode_intermediate(161.0))
    assert m.cuff_pressure == 161 and m.diastolic is None and m.mean is None


def test_feature_value() -> None:
    assert parse_bp_feature(encode_feature()) == (
        BPFeature.BODY_MOVEMENT_DETECTION | BPFeature.PULSE_RATE_RANGE_DETECTION
    )


# -- over the radio -----------------------------------------------------------------------------
@pytest_asyncio.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    async with VirtualRadio() as r:
        yield r


class Make(Protocol):
    def __call__(self, scenario: Scenario, **kwargs: Any) -> EmulatedBPCuff: ...


@pytest_asyncio.fixture
async def make(radio: VirtualRadio) -> AsyncIterator[Make]:
    made: list[EmulatedBPCuff] = []

    def factory(scenario: Scenario, **kwargs: Any) -> EmulatedBPCuff:
        kwargs.setdefault("speed", SPEED)
        kwargs.setdefault("advertising_interval_ms", ADV_MS)
        cuff = EmulatedBPCuff(radio, scenario, **kwargs)
        made.append(cuff)
        return cuff

    yield factory
    for cuff in made:
        await cuff.stop()


def _any(_device: BLEDevice, _adv: AdvertisementData) -> bool:
    return True  # the scanner's service filter alone decides


async def find_cuff(radio: VirtualRadio) -> BLEDevice | None:
    """Scan as the app does for a BP cuff: by the 16-bit service UUID "1810"."""
    scanner_cls, _ = bumble_backends(radio)
    return await BleakScanner.find_device_by_filter(
        _any, timeout=WAIT_S, backend=scanner_cls, service_uuids=["1810"]
    )


async def connected_client(radio: VirtualRadio, gone: asyncio.Event | None = None) -> BleakClient:
    """Scan for the first device advertising 0x1810 and connect to it."""
    _, client_cls = bumble_backends(radio)
    device = await find_cuff(radio)
    assert device is not None
    client = BleakClient(
        device,
        disconnected_callback=None if gone is None else (lambda _c: gone.set()),
        timeout=WAIT_S,
        backend=client_cls,
    )
    await client.connect()
    return client


Packets = asyncio.Queue[tuple[str, bytes]]


def collector(queue: Packets, label: str) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
    def on_data(_char: BleakGATTCharacteristic, data: bytearray) -> None:
        queue.put_nowait((label, bytes(data)))

    return on_data


async def subscribe_both(client: BleakClient) -> Packets:
    queue: Packets = asyncio.Queue()
    await client.start_notify(CUFF_PRESSURE, collector(queue, "2a36"))
    await client.start_notify(BP_MEASUREMENT, collector(queue, "2a35"))
    return queue


async def until_reading(queue: Packets) -> tuple[list[bytes], bytes]:
    """The cuff pressures received, then the first 0x2A35 reading."""
    pressures: list[bytes] = []
    async with asyncio.timeout(WAIT_S):
        while True:
            label, raw = await queue.get()
            if label == "2a35":
                return pressures, raw
            pressures.append(raw)


@pytest.mark.asyncio
async def test_advertises_the_service_and_serves_the_gatt_table(radio: VirtualRadio, make: Make) -> None:
    oximeter = EmulatedPlxOximeter(radio, SCENARIOS["normal"](1), advertising_interval_ms=ADV_MS)
    await oximeter.start()  # advertises too, with 0x1822: the scan must not pick it
    cuff = make(SCENARIOS["normal"](1), serial="SN-BP-7", battery=64)
    await cuff.start()
    for _ in range(3):
        found = await find_cuff(radio)
        assert found is not None and found.name == "KAP-Emu BP" and found.address == cuff.address
    await oximeter.stop()
    client = await connected_client(radio)
    try:
        assert client.services.get_service(BP_SERVICE) is not None
        props = {c: client.services.get_characteristic(c) for c in ("2a35", "2a36", "2a49")}
        assert props["2a35"] is not None and "indicate" in props["2a35"].properties
        assert props["2a36"] is not None and "notify" in props["2a36"].properties
        assert await client.read_gatt_char("2a49") == encode_feature()
        assert await client.read_gatt_char("2a19") == bytes([64])
        assert await client.read_gatt_char("2a29") == b"KAP Emulation"
        assert await client.read_gatt_char("2a24") == b"BP-EMU-1"
        assert await client.read_gatt_char("2a25") == b"SN-BP-7"
    finally:
        await client.disconnect()


def decode(cuff: EmulatedBPCuff, raw: bytes, wall: float, tz: Any = BERLIN) -> BloodPressure:
    """What the app's driver makes of a 0x2A35 packet received at UTC wall time `wall`."""
    (reading,) = bp_spec(tz).subscriptions[0].decode(raw, cuff.address, 1.0, wall)
    assert isinstance(reading, BloodPressure)
    return reading


@pytest.mark.asyncio
async def test_measure_sends_cuff_pressures_then_the_indicated_reading(
    radio: VirtualRadio, make: Make
) -> None:
    scenario = SCENARIOS["hypertensive_peak"](5)
    cuff = make(scenario, tz=BERLIN, epoch=1_780_000_000.0)
    await cuff.start(at_s=40 * 60.0)  # the peak of the pressor response
    client = await connected_client(radio)
    try:
        queue = await subscribe_both(client)
        raw = await cuff.measure()
        pressures, received = await until_reading(queue)
        assert received == raw
        # the cuff pressures came first, deflating, in the systolic slot
        cuff_values = [parse_intermediate_cuff_pressure(p).cuff_pressure for p in pressures]
        (taken,) = cuff.readings
        point = scenario.at(taken.started)
        assert cuff_values == cuff_pressures(point, 4)
        # the reading is the scenario's BP at the start of the cycle, stamped by the cuff's clock
        reading = decode(cuff, received, cuff.wall_at(cuff.scenario_time))
        assert (reading.systolic, reading.diastolic, reading.mean, reading.pulse_rate) == (
            point.systolic,
            point.diastolic,
            point.mean,
            point.pulse,
        )
        assert reading.systolic is not None and reading.systolic > 150  # the hypertensive peak
        assert taken.taken >= taken.started + 4 * cuff.cycle_step_s - 0.01  # asyncio may wake a hair early
        # whole seconds on the cuff's clock, read back as Berlin local time
        assert reading.measured_wall == int(cuff.wall_at(taken.taken))
        assert not reading.stored
        assert reading.user_id == 1 and reading.status == BPStatus.NONE
        assert not cuff.stored
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_reading_taken_while_disconnected_arrives_after_reconnecting(
    radio: VirtualRadio, make: Make
) -> None:
    scenario = SCENARIOS["normal"](3)
    cuff = make(scenario, tz=BERLIN)
    await cuff.start(at_s=600.0)
    gone = asyncio.Event()
    client = await connected_client(radio, gone)
    queue = await subscribe_both(client)
    first = await cuff.measure()
    assert (await until_reading(queue))[1] == first
    await client.disconnect()
    await asyncio.wait_for(gone.wait(), WAIT_S)
    # two readings while nobody listens: kept in the cuff's memory
    old = await cuff.measure()
    cuff.skip(300.0)
    older_than_n = await cuff.measure()
    assert [raw for _, raw in cuff.stored] == [old, older_than_n]
    cuff.skip(600.0)  # ten minutes later the console reconnects
    client = await connected_client(radio)
    try:
        queue = await subscribe_both(client)
        received = [(await until_reading(queue))[1] for _ in range(2)]
        assert received == [old, older_than_n]  # oldest first, as sent
        now = cuff.wall_at(cuff.scenario_time)
        readings = [decode(cuff, raw, now) for raw in received]
        stamps = [r.measured_wall for r in readings]
        assert stamps == [int(cuff.wall_at(r.taken)) for r in list(cuff.readings)[1:]]
        assert stamps[0] is not None and stamps[1] is not None and stamps[0] < stamps[1] < now - 600
        assert all(r.stored for r in readings)
        # a fresh reading after the upload is live again (it waits for the upload to finish)
        fresh = await cuff.measure()
        assert not cuff.stored
        assert (await until_reading(queue))[1] == fresh
        assert not decode(cuff, fresh, cuff.wall_at(cuff.scenario_time)).stored
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_readings_taken_while_vanished_are_uploaded_on_return(radio: VirtualRadio, make: Make) -> None:
    cuff = make(SCENARIOS["normal"](2))
    await cuff.start()
    gone = asyncio.Event()
    await connected_client(radio, gone)
    await cuff.vanish()
    await asyncio.wait_for(gone.wait(), WAIT_S)
    assert not cuff.present
    raw = await cuff.measure()
    assert [r for _, r in cuff.stored] == [raw]
    await cuff.come_back()
    client = await connected_client(radio)
    try:
        queue = await subscribe_both(client)
        assert (await until_reading(queue))[1] == raw
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_memory_keeps_the_newest_readings(radio: VirtualRadio, make: Make) -> None:
    cuff = make(SCENARIOS["normal"](2), memory=2, cycle_steps=0)
    await cuff.start()
    taken = [await cuff.measure() for _ in range(3)]
    assert [raw for _, raw in cuff.stored] == taken[1:]


@pytest.mark.asyncio
async def test_cuff_clock_offset_and_zone_are_on_the_wire(radio: VirtualRadio, make: Make) -> None:
    zone = timezone(timedelta(hours=-5))
    cuff = make(SCENARIOS["normal"](2), tz=zone, clock_offset_s=-90.0, epoch=1_767_258_000.0, cycle_steps=0)
    await cuff.start()
    raw = await cuff.measure()
    (taken,) = cuff.readings
    stamp = parse_bp_measurement(raw).timestamp
    shown = datetime.fromtimestamp(1_767_258_000.0 + taken.taken - 90.0, zone)
    assert stamp == BPDateTime(shown.year, shown.month, shown.day, shown.hour, shown.minute, shown.second)
    assert stamp is not None and stamp.hours == 3  # 09:00Z is 04:00 at UTC-5, 90 s slow: 03:58
    # a slow cuff clock makes the driver's age estimate larger by the same 90 s
    assert decode(cuff, raw, cuff.wall_at(taken.taken), zone).measured_wall == pytest.approx(
        cuff.wall_at(taken.taken) - 90.0, abs=1.0
    )


@pytest.mark.asyncio
async def test_automatic_schedule_measures_every_interval(radio: VirtualRadio, make: Make) -> None:
    cuff = make(SCENARIOS["normal"](4), interval_min=1.0, speed=300.0, cycle_steps=2, cycle_step_s=2.0)
    await cuff.start()
    client = await connected_client(radio)
    try:
        queue = await subscribe_both(client)
        received = [(await until_reading(queue))[1] for _ in range(3)]
        by_raw = {r.raw: r for r in cuff.readings}
        starts = [by_raw[raw].started for raw in received]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        # one per scenario minute (±12 scenario s = ±40 ms of loop latency at this speed)
        assert len(gaps) == 2 and all(gap == pytest.approx(60.0, abs=12.0) for gap in gaps)
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_injected_bytes_arrive_unchanged(radio: VirtualRadio, make: Make) -> None:
    cuff = make(SCENARIOS["normal"](1))
    await cuff.start()
    client = await connected_client(radio)
    try:
        queue = await subscribe_both(client)
        malformed = bytes([0x1E, 0x78, 0x00])
        await cuff.inject(malformed)
        assert await asyncio.wait_for(queue.get(), WAIT_S) == ("2a35", malformed)
        await cuff.inject(b"\x00\x01", intermediate=True)
        assert await asyncio.wait_for(queue.get(), WAIT_S) == ("2a36", b"\x00\x01")
        assert not cuff.stored  # injected bytes are never kept
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_stop_leaves_the_radio(radio: VirtualRadio, make: Make) -> None:
    before = len(radio.devices)
    cuff = make(SCENARIOS["normal"](1), interval_min=5.0)
    await cuff.start()
    assert len(radio.devices) == before + 1 and cuff.running
    await cuff.stop()
    assert len(radio.devices) == before
    assert not cuff.running


def subscribed(cuff: EmulatedBPCuff) -> bool:
    return cuff.subscribed  # read afresh (a property changes under the test's feet)


@pytest.mark.asyncio
async def test_a_cuff_that_requires_pairing_refuses_subscriptions_until_paired(
    radio: VirtualRadio, make: Make
) -> None:
    cuff = make(SCENARIOS["normal"](1), requires_pairing=True)
    await cuff.start()
    client = await connected_client(radio)
    try:
        queue: Packets = asyncio.Queue()
        for characteristic in (BP_MEASUREMENT, CUFF_PRESSURE):
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.start_notify(characteristic, collector(queue, characteristic))
            assert refused.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION
        assert not subscribed(cuff)
        assert await client.read_gatt_char("2a49") == encode_feature()  # reads stay open
        await client.pair()
        (connection,) = cuff.connections
        assert connection.is_encrypted
        queue = await subscribe_both(client)
        assert cuff.subscribed
        (pressures, received), sent = await asyncio.gather(until_reading(queue), cuff.measure())
        assert received == sent and len(pressures) == cuff.cycle_steps
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_the_cuff_battery_follows_the_low_battery_scenario(radio: VirtualRadio, make: Make) -> None:
    scenario = SCENARIOS["low_battery"](2)
    cuff = make(scenario, battery=80)
    await cuff.start()
    client = await connected_client(radio)
    try:
        assert await client.read_gatt_char("2a19") == bytes([80])
        await cuff.measure()
        level = (await client.read_gatt_char("2a19"))[0]
        assert level == scenario.at(cuff.readings[-1].started).battery
        assert level < 15  # the scenario's drained battery, not the constant it started with
    finally:
        await client.disconnect()
