"""Tests of the emulated heart-rate strap, driven through bleak's public API over the virtual radio."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import pytest
import pytest_asyncio
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic

from devices._ble.bumble_backend import bumble_backends
from devices.battery import parse_battery_level
from devices.emulated.hr_strap import (
    ENERGY_EVERY,
    BeatClock,
    EmulatedHeartRateStrap,
    encode_measurement,
)
from devices.emulated.plx_oximeter import EmulatedPlxOximeter
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS, Scenario, VitalsPoint
from devices.hr.driver import HR_MEASUREMENT, HR_SERVICE, hr_spec
from devices.hr.parser import BodySensorLocation, SensorContact, parse_heart_rate
from kapmonitor.measurements import Param, Quality

SPEED = 20.0  # scenario seconds per wall second: one notification every 50 ms
ADV_MS = 20.0  # gatt.md: ~20 ms advertising interval in tests
WAIT_S = 2.0  # upper bound for anything the radio should do "at once"


# -- pure parts ---------------------------------------------------------------------------------
def test_measurement_of_a_normal_point_with_beats() -> None:
    raw = encode_measurement(VitalsPoint(97.0, 74.0, 3.4, False, 88), [0.81, 0.80])
    m = parse_heart_rate(raw)
    assert raw[0] == 0x16  # contact supported + detected, RR intervals; u8 value
    assert (m.heart_rate, m.contact, m.energy_expended) == (74, SensorContact.CONTACT, None)
    assert m.rr_intervals == (829, 819)  # round(s × 1024), oldest first


def test_measurement_without_a_beat_has_no_rr_field() -> None:
    raw = encode_measurement(VitalsPoint(97.0, 45.0, 3.4, False, 88), [], energy_kj=123)
    assert raw == bytes.fromhex("0E 2D 7B 00")  # contact, energy 123 kJ, no bit 4


def test_measurement_of_sensor_off_says_no_contact() -> None:
    raw = encode_measurement(VitalsPoint(None, None, None, True, 50), [])
    assert raw == bytes.fromhex("04 00")  # supported, no contact; 0
    [n] = hr_spec().subscriptions[0].decode(raw, "d", 0.0, 0.0)
    assert n.value is None and n.quality == Quality.SENSOR_OFF  # type: ignore[union-attr]


def test_beat_clock_follows_the_rate() -> None:
    rates = {0: 60.0, 1: 60.0, 2: 120.0, 3: 120.0, 4: 120.0}
    clock = BeatClock(0.0)

    def hr_at(t: float) -> float:
        return rates[int(t)]

    assert clock.beats_until(0.0, hr_at) == [1.0]  # the first beat is timed from an assumed one
    assert clock.beats_until(1.0, hr_at) == [1.0]
    assert clock.beats_until(2.0, hr_at) == [1.0]  # the beat at 2.0 closes the 60 /min interval
    assert clock.beats_until(3.0, hr_at) == [0.5, 0.5]
    assert clock.beats == 5


def test_beat_clock_stops_without_contact_and_restarts_untimed() -> None:
    clock = BeatClock(0.0)
    pulse: dict[int, float | None] = {0: 60.0, 1: None, 2: 60.0, 3: 60.0}

    def hr_at(t: float) -> float | None:
        return pulse[int(t)]

    assert clock.beats_until(0.0, hr_at) == [1.0]
    assert clock.beats_until(1.0, hr_at) == []  # sensor off: no beats timed
    assert clock.beats_until(2.0, hr_at) == []  # first beat after contact: nothing to time it from
    assert clock.beats_until(3.0, hr_at) == [1.0]


# -- over the radio -----------------------------------------------------------------------------
@pytest_asyncio.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    async with VirtualRadio() as r:
        yield r


class Make(Protocol):
    def __call__(self, scenario: Scenario, *, speed: float = SPEED) -> EmulatedHeartRateStrap: ...


@pytest_asyncio.fixture
async def make(radio: VirtualRadio) -> AsyncIterator[Make]:
    """Straps on the test's radio, stopped at teardown whatever the test did."""
    made: list[EmulatedHeartRateStrap] = []

    def factory(scenario: Scenario, *, speed: float = SPEED) -> EmulatedHeartRateStrap:
        strap = EmulatedHeartRateStrap(radio, scenario, speed=speed, advertising_interval_ms=ADV_MS)
        made.append(strap)
        return strap

    yield factory
    for strap in made:
        await strap.stop()


async def connected_client(
    radio: VirtualRadio, strap: EmulatedHeartRateStrap, gone: asyncio.Event | None = None
) -> BleakClient:
    scanner_cls, client_cls = bumble_backends(radio)
    device = await BleakScanner.find_device_by_address(strap.address, timeout=WAIT_S, backend=scanner_cls)
    assert device is not None
    client = BleakClient(
        device,
        disconnected_callback=None if gone is None else (lambda _c: gone.set()),
        timeout=WAIT_S,
        backend=client_cls,
    )
    await client.connect()
    return client


def collector() -> tuple[asyncio.Queue[bytes], Callable[[BleakGATTCharacteristic, bytearray], None]]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def on_data(_char: BleakGATTCharacteristic, data: bytearray) -> None:
        queue.put_nowait(bytes(data))

    return queue, on_data


async def next_packets(queue: asyncio.Queue[bytes], count: int) -> list[bytes]:
    return [await asyncio.wait_for(queue.get(), WAIT_S) for _ in range(count)]


def sent_times(strap: EmulatedHeartRateStrap, packets: list[bytes]) -> list[float]:
    """The scenario second each received packet was built from, from the strap's log (in order)."""
    log = list(strap.sent)
    n = len(packets)
    starts = [i for i in range(len(log) - n + 1) if [raw for _, raw in log[i : i + n]] == packets]
    assert starts, "the received packets are not what the strap sent, in order"
    times = [t for t, _ in log[starts[-1] : starts[-1] + n]]
    assert None not in times  # none of them was an injected packet
    return [t for t in times if t is not None]


@pytest.mark.asyncio
async def test_scan_by_180d_finds_the_strap_and_only_it(radio: VirtualRadio, make: Make) -> None:
    strap = make(SCENARIOS["normal"](1))
    oximeter = EmulatedPlxOximeter(radio, SCENARIOS["normal"](2), speed=SPEED, advertising_interval_ms=ADV_MS)
    await strap.start()
    await oximeter.start()
    try:
        scanner_cls, _ = bumble_backends(radio)
        # the filter as a user types it: the backend normalises "180d" to the 128-bit form
        found = await BleakScanner.discover(
            timeout=0.3, return_adv=True, service_uuids=["180d"], backend=scanner_cls
        )
        assert list(found) == [strap.address]  # the oximeter (0x1822) advertises too, but is filtered out
        _device, adv = found[strap.address]
        assert adv.local_name == "KAP-Emu HRM"
        assert adv.service_uuids == [HR_SERVICE]
        assert hr_spec().matches(adv.local_name, adv.service_uuids)
        everything = await BleakScanner.discover(timeout=0.3, return_adv=True, backend=scanner_cls)
        assert oximeter.address in everything  # the filter, not the oximeter's silence, left it out
    finally:
        await oximeter.stop()


@pytest.mark.asyncio
async def test_gatt_table_static_values(radio: VirtualRadio, make: Make) -> None:
    scenario = SCENARIOS["low_battery"](3)
    strap = make(scenario)
    await strap.start(at_s=30.0)
    client = await connected_client(radio, strap)
    try:
        char = client.services.get_characteristic("2a37")
        assert char is not None and "notify" in char.properties
        assert await client.read_gatt_char("2a38") == bytes([BodySensorLocation.CHEST]) == b"\x01"
        assert await client.read_gatt_char("2a29") == b"KAP Emulation"
        assert await client.read_gatt_char("2a24") == b"HRM-EMU-1"
        assert await client.read_gatt_char("2a25") == b"EMU-0002"
        assert await client.read_gatt_char("2a26") == b"0.1.0"
        level = parse_battery_level(await client.read_gatt_char("2a19"))
        assert level == scenario.at(strap.scenario_time).battery
        assert level < 15  # the low-battery scenario, not a constant
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_notifications_carry_the_scenario_pulse_and_consistent_rr(
    radio: VirtualRadio, make: Make
) -> None:
    scenario = SCENARIOS["tachycardia"](5)
    strap = make(scenario)
    await strap.start(at_s=150.0)  # in the excursion: pulse ~135, two or three beats a second
    client = await connected_client(radio, strap)
    try:
        queue, on_data = collector()
        await client.start_notify(HR_MEASUREMENT, on_data)
        packets = await next_packets(queue, 5)
        times = sent_times(strap, packets)
        assert times == [times[0] + i for i in range(5)]  # one per scenario second, none skipped
        intervals = 0
        for raw, t in zip(packets, times, strict=True):
            m = parse_heart_rate(raw)
            expected = scenario.at(t).pulse
            assert expected is not None and expected > 120
            assert m.heart_rate == expected
            assert m.contact is SensorContact.CONTACT
            [n] = hr_spec().subscriptions[0].decode(raw, "d", 0.0, 0.0)
            assert n.param == Param.HEART_RATE and n.value == expected  # type: ignore[union-attr]
            assert 2 <= len(m.rr_intervals) <= 3  # the beats of that second at ~135 /min
            for rr in m.rr_seconds:
                assert abs(60.0 / rr - expected) < 8.0  # RR intervals agree with the rate
            intervals += len(m.rr_intervals)
        assert intervals >= 10
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_energy_expended_every_tenth_notification(radio: VirtualRadio, make: Make) -> None:
    strap = make(SCENARIOS["normal"](1), speed=60.0)
    await strap.start()
    client = await connected_client(radio, strap)
    try:
        queue, on_data = collector()
        await client.start_notify(HR_MEASUREMENT, on_data)
        packets = await next_packets(queue, 2 * ENERGY_EVERY + 1)
        energies = [parse_heart_rate(raw).energy_expended for raw in packets]
        with_energy = [i for i, e in enumerate(energies) if e is not None]
        assert len(with_energy) in (2, 3)
        assert all(b - a == ENERGY_EVERY for a, b in itertools.pairwise(with_energy))
        values = [e for e in energies if e is not None]
        assert values == sorted(values) and values[-1] > 0  # it accumulates
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_sensor_off_reaches_the_wire_as_no_contact(radio: VirtualRadio, make: Make) -> None:
    strap = make(SCENARIOS["sensor_off"](2), speed=60.0)
    await strap.start(at_s=58.0)  # off from 60 s to 90 s: ~0.03 s, then 0.5 s
    client = await connected_client(radio, strap)
    try:
        queue, on_data = collector()
        await client.start_notify(HR_MEASUREMENT, on_data)
        async with asyncio.timeout(WAIT_S):
            while (m := parse_heart_rate(await queue.get())).contact is not SensorContact.NO_CONTACT:
                assert m.contact is SensorContact.CONTACT
        assert m.heart_rate == 0 and m.rr_intervals == ()
        async with asyncio.timeout(WAIT_S):  # the finger... the strap is back on at 90 s
            while (m := parse_heart_rate(await queue.get())).contact is not SensorContact.CONTACT:
                pass
        assert m.heart_rate > 0
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_injected_packet_arrives_unchanged(radio: VirtualRadio, make: Make) -> None:
    strap = make(SCENARIOS["normal"](1))
    await strap.start()
    client = await connected_client(radio, strap)
    try:
        queue, on_data = collector()
        await client.start_notify(HR_MEASUREMENT, on_data)
        malformed = bytes.fromhex("10 48 28")  # RR flag, broken interval
        await strap.inject(malformed)
        async with asyncio.timeout(WAIT_S):
            while (raw := await queue.get()) != malformed:
                parse_heart_rate(raw)  # only regular measurements before it
        assert (None, malformed) in strap.sent
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_vanish_and_come_back(radio: VirtualRadio, make: Make) -> None:
    strap = make(SCENARIOS["normal"](1))
    await strap.start()
    gone = asyncio.Event()
    await connected_client(radio, strap, gone)
    await strap.vanish()
    await asyncio.wait_for(gone.wait(), WAIT_S)
    assert not strap.present and strap.connections == []
    scanner_cls, _ = bumble_backends(radio)
    assert await BleakScanner.find_device_by_address(strap.address, timeout=0.2, backend=scanner_cls) is None
    await strap.come_back()
    client = await connected_client(radio, strap)
    queue, on_data = collector()
    await client.start_notify(HR_MEASUREMENT, on_data)
    await next_packets(queue, 2)
    await client.disconnect()


@pytest.mark.asyncio
async def test_a_silently_vanished_strap_is_not_heard_until_it_comes_back(
    radio: VirtualRadio, make: Make
) -> None:
    """Its controller left the link: it must not go on advertising as a ghost.

    (It did: bumble's controller keeps its own link reference, so the central found the absent
    strap, and a connection to the ghost hung until the connect timeout.)
    """
    strap = make(SCENARIOS["normal"](1))
    await strap.start()
    heard: list[str] = []
    remove = radio.add_advertisement_listener(
        lambda adv: heard.append(str(adv.address).split("/")[0].upper())
    )
    client = await connected_client(radio, strap)
    await strap.vanish(silent=True)
    assert not strap.present and client.is_connected  # silent: the central was told nothing
    heard.clear()
    scanner_cls, _ = bumble_backends(radio)
    assert await BleakScanner.find_device_by_address(strap.address, timeout=0.3, backend=scanner_cls) is None
    assert strap.address not in heard
    await strap.come_back()
    assert await BleakScanner.find_device_by_address(strap.address, timeout=WAIT_S, backend=scanner_cls)
    remove()
    await client.disconnect()


@pytest.mark.asyncio
async def test_scenario_out_of_range_disconnects_and_returns(radio: VirtualRadio, make: Make) -> None:
    strap = make(SCENARIOS["disconnect_return"](1), speed=60.0)
    await strap.start(at_s=55.0)  # out of range from 60 s to 90 s
    gone = asyncio.Event()
    await connected_client(radio, strap, gone)
    await asyncio.wait_for(gone.wait(), WAIT_S)
    scanner_cls, _ = bumble_backends(radio)
    device = await BleakScanner.find_device_by_address(strap.address, timeout=WAIT_S, backend=scanner_cls)
    assert device is not None
    assert strap.scenario_time >= 90.0


@pytest.mark.asyncio
async def test_stop_leaves_the_radio(radio: VirtualRadio, make: Make) -> None:
    before = len(radio.devices)
    strap = make(SCENARIOS["normal"](1))
    await strap.start()
    running_before, on_air = strap.running, len(radio.devices)
    await strap.stop()
    assert running_before and on_air == before + 1
    assert len(radio.devices) == before
    assert not strap.running and not strap.present


def test_speed_must_be_positive() -> None:
    radio = VirtualRadio()
    with pytest.raises(ValueError, match="speed"):
        EmulatedHeartRateStrap(radio, SCENARIOS["normal"](1), speed=0.0)
