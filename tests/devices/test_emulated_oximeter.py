"""Tests of the emulated PLX pulse oximeter, driven through bleak's public API over the virtual radio."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Protocol

import pytest
import pytest_asyncio
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from devices._ble.bumble_backend import bumble_backends
from devices.emulated.plx_oximeter import (
    EmulatedPlxOximeter,
    encode_continuous,
    encode_features,
    encode_spot_check,
)
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS, Scenario, VitalsPoint
from devices.ieee11073 import SFLOAT_NAN, decode_sfloat, sfloat_at
from devices.plx.parser import parse_plx_spot_check, spot_check_to_numerics
from kapmonitor.measurements import Quality

SPEED = 20.0  # scenario seconds per wall second: one notification every 50 ms
ADV_MS = 20.0  # gatt.md: ~20 ms advertising interval in tests
WAIT_S = 2.0  # upper bound for anything the radio should do "at once"

PLX_CONTINUOUS = "00002a5f-0000-1000-8000-00805f9b34fb"


# -- pure encoding ------------------------------------------------------------------------------
def test_continuous_layout_of_a_normal_point() -> None:
    raw = encode_continuous(VitalsPoint(97.0, 72.0, 3.4, False, 88))
    assert len(raw) == 12  # fits the default 20-byte notification (gatt.md)
    assert raw[0] == 0x1C  # measurement status, device/sensor status, PAI
    assert sfloat_at(raw, 1) == 97
    assert sfloat_at(raw, 3) == 72
    (status,) = struct.unpack_from("<H", raw, 5)
    assert status == 1 << 5  # measurement ongoing
    assert int.from_bytes(raw[7:10], "little") == 0
    assert sfloat_at(raw, 10) == 3.4


def test_continuous_layout_of_sensor_off_and_artefact() -> None:
    off = encode_continuous(VitalsPoint(None, None, None, True, 50))
    assert struct.unpack_from("<HH", off, 1) == (SFLOAT_NAN, SFLOAT_NAN)
    assert struct.unpack_from("<H", off, 10)[0] == SFLOAT_NAN
    assert int.from_bytes(off[7:10], "little") & (1 << 11)  # sensor unconnected to user
    assert struct.unpack_from("<H", off, 5)[0] & (1 << 13)  # measurement unavailable

    shaky = encode_continuous(VitalsPoint(93.0, 110.0, 0.3, False, 50, artefact=True))
    sensor = int.from_bytes(shaky[7:10], "little")
    assert sensor & (1 << 6) and sensor & (1 << 5)  # erratic signal, low perfusion
    assert struct.unpack_from("<H", shaky, 5)[0] & (1 << 14)  # questionable


def test_spot_check_of_a_point_live_and_from_storage() -> None:
    point = VitalsPoint(95.0, 64.0, 2.1, False, 88, artefact=True)
    when = datetime(2026, 1, 1, 9, 30, 5, tzinfo=UTC).replace(tzinfo=None)  # the device's naive clock
    live = parse_plx_spot_check(encode_spot_check(point, when))
    assert (live.spo2, live.pulse_rate, live.pulse_amplitude_index) == (95.0, 64.0, 2.1)
    assert live.timestamp == when
    (value, *_rest) = spot_check_to_numerics(live, device="d", mono=0.0, wall=0.0)
    assert value.quality & Quality.QUESTIONABLE and not value.quality & Quality.FROM_STORAGE
    stored = parse_plx_spot_check(encode_spot_check(point, when, stored=True))
    (value, *_rest) = spot_check_to_numerics(stored, device="d", mono=0.0, wall=0.0)
    assert value.quality & Quality.FROM_STORAGE  # status bit 9, as RACP uploads carry it
    off = parse_plx_spot_check(encode_spot_check(VitalsPoint(None, None, None, True, 50)))
    assert off.spo2 is None and off.pulse_rate is None and off.timestamp is None


def test_demonstration_flag_is_optional() -> None:
    point = VitalsPoint(97.0, 72.0, 3.4, False, 88)
    assert not struct.unpack_from("<H", encode_continuous(point), 5)[0] & (1 << 10)
    assert struct.unpack_from("<H", encode_continuous(point, demonstration=True), 5)[0] & (1 << 10)


def test_features_value() -> None:
    raw = encode_features()
    supported, status_mask = struct.unpack_from("<HH", raw)
    assert supported == 0b0100_0011  # status, device/sensor status, PAI
    assert status_mask & (1 << 5) and status_mask & (1 << 13)
    assert int.from_bytes(raw[4:7], "little") & (1 << 11)


# -- over the radio -----------------------------------------------------------------------------
@pytest_asyncio.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    async with VirtualRadio() as r:
        yield r


def backends(radio: VirtualRadio) -> tuple[type[BaseBleakScanner], type[BaseBleakClient]]:
    return bumble_backends(radio)


class Make(Protocol):
    def __call__(
        self, scenario: Scenario, *, speed: float = SPEED, serial: str = "EMU-0001"
    ) -> EmulatedPlxOximeter: ...


@pytest_asyncio.fixture
async def make(radio: VirtualRadio) -> AsyncIterator[Make]:
    """Emulators on the test's radio, stopped at teardown whatever the test did."""
    made: list[EmulatedPlxOximeter] = []

    def factory(scenario: Scenario, *, speed: float = SPEED, serial: str = "EMU-0001") -> EmulatedPlxOximeter:
        emu = EmulatedPlxOximeter(radio, scenario, speed=speed, advertising_interval_ms=ADV_MS, serial=serial)
        made.append(emu)
        return emu

    yield factory
    for emu in made:
        await emu.stop()


async def connected_client(
    radio: VirtualRadio, emu: EmulatedPlxOximeter, gone: asyncio.Event | None = None
) -> BleakClient:
    scanner_cls, client_cls = backends(radio)
    device = await BleakScanner.find_device_by_address(emu.address, timeout=WAIT_S, backend=scanner_cls)
    assert device is not None
    client = BleakClient(
        device,
        disconnected_callback=None if gone is None else (lambda _c: gone.set()),
        timeout=WAIT_S,
        backend=client_cls,
    )
    await client.connect()
    return client


def is_connected(client: BleakClient) -> bool:
    """Read the property through a call, so that the type checker does not pin it to one value."""
    return client.is_connected


async def next_packets(queue: asyncio.Queue[bytes], count: int) -> list[bytes]:
    return [await asyncio.wait_for(queue.get(), WAIT_S) for _ in range(count)]


def collector() -> tuple[asyncio.Queue[bytes], Callable[[BleakGATTCharacteristic, bytearray], None]]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def on_data(_char: BleakGATTCharacteristic, data: bytearray) -> None:
        queue.put_nowait(bytes(data))

    return queue, on_data


@pytest.mark.asyncio
async def test_gatt_table_static_values(radio: VirtualRadio, make: Make) -> None:
    scenario = SCENARIOS["normal"](3)
    emu = make(scenario, serial="SN-42")
    await emu.start()
    client = await connected_client(radio, emu)
    try:
        assert client.services.get_characteristic("2a5f") is not None
        assert "notify" in client.services.get_characteristic("2a5f").properties  # type: ignore[union-attr]
        assert await client.read_gatt_char("2a60") == encode_features()
        assert await client.read_gatt_char("2a29") == b"KAP Emulation"
        assert await client.read_gatt_char("2a24") == b"PLX-EMU-1"
        assert await client.read_gatt_char("2a25") == b"SN-42"
        assert await client.read_gatt_char("2a26") == b"0.1.0"
        battery = (await client.read_gatt_char("2a19"))[0]
        assert battery == scenario.at(emu.scenario_time).battery
    finally:
        await client.disconnect()
        await emu.stop()


@pytest.mark.asyncio
async def test_notifications_carry_the_scenario(radio: VirtualRadio, make: Make) -> None:
    scenario = SCENARIOS["desaturation"](8)
    emu = make(scenario)
    await emu.start(at_s=150.0)  # in the middle of the fall
    client = await connected_client(radio, emu)
    try:
        queue, on_data = collector()
        await client.start_notify(PLX_CONTINUOUS, on_data)
        packets = await next_packets(queue, 3)
        # the emulator's log says which scenario second each packet was built from
        log = list(emu.sent)
        starts = [i for i in range(len(log) - 2) if [raw for _, raw in log[i : i + 3]] == packets]
        assert starts, "the received packets are not what the emulator sent, in order"
        times = [t for t, _ in log[starts[-1] : starts[-1] + 3] if t is not None]
        assert len(times) == 3  # none of them was an injected packet
        for raw, t in zip(packets, times, strict=True):
            assert raw[0] == 0x1C and len(raw) == 12
            expected = scenario.at(t)
            assert decode_sfloat(struct.unpack_from("<H", raw, 1)[0]) == expected.spo2
            assert decode_sfloat(struct.unpack_from("<H", raw, 3)[0]) == expected.pulse
            assert decode_sfloat(struct.unpack_from("<H", raw, 10)[0]) == expected.pi
        # one measurement per scenario second, in order, none skipped
        assert times == [times[0], times[0] + 1, times[0] + 2]
        assert times[0] >= 150.0
    finally:
        await client.disconnect()
        await emu.stop()


@pytest.mark.asyncio
async def test_speed_sets_the_notification_period(radio: VirtualRadio, make: Make) -> None:
    emu = make(SCENARIOS["normal"](1), speed=40.0)
    await emu.start()
    client = await connected_client(radio, emu)
    try:
        queue, on_data = collector()
        await client.start_notify(PLX_CONTINUOUS, on_data)
        await next_packets(queue, 1)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await next_packets(queue, 10)
        elapsed = loop.time() - began
        assert 10 / 40.0 * 0.7 < elapsed < 10 / 40.0 * 2.0  # ~25 ms each, never faster
    finally:
        await client.disconnect()
        await emu.stop()


@pytest.mark.asyncio
async def test_injected_packet_arrives_unchanged(radio: VirtualRadio, make: Make) -> None:
    emu = make(SCENARIOS["normal"](1))
    await emu.start()
    client = await connected_client(radio, emu)
    try:
        queue, on_data = collector()
        await client.start_notify(PLX_CONTINUOUS, on_data)
        malformed = bytes([0xFF, 0x07, 0x08, 0x01])  # reserved flags, truncated
        await emu.inject(malformed)
        async with asyncio.timeout(WAIT_S):
            while (raw := await queue.get()) != malformed:
                assert raw[0] == 0x1C  # only regular measurements before it
        assert (None, malformed) in emu.sent
    finally:
        await client.disconnect()
        await emu.stop()


@pytest.mark.asyncio
async def test_sensor_off_from_the_scenario_reaches_the_wire(radio: VirtualRadio, make: Make) -> None:
    emu = make(SCENARIOS["sensor_off"](2))
    await emu.start(at_s=58.0)
    client = await connected_client(radio, emu)
    try:
        queue, on_data = collector()
        await client.start_notify(PLX_CONTINUOUS, on_data)
        async with asyncio.timeout(WAIT_S):
            while True:
                raw = await queue.get()
                if int.from_bytes(raw[7:10], "little") & (1 << 11):
                    break
        assert struct.unpack_from("<H", raw, 1)[0] == SFLOAT_NAN
        assert sfloat_at(raw, 1) is None and sfloat_at(raw, 3) is None
    finally:
        await client.disconnect()
        await emu.stop()


@pytest.mark.asyncio
async def test_emulator_disconnect_fires_the_disconnected_callback(radio: VirtualRadio, make: Make) -> None:
    emu = make(SCENARIOS["normal"](1))
    await emu.start()
    gone = asyncio.Event()
    client = await connected_client(radio, emu, gone)
    assert is_connected(client)
    await emu.disconnect_all()
    await asyncio.wait_for(gone.wait(), WAIT_S)
    assert not is_connected(client)
    assert emu.connections == []
    # it advertises again and takes a new connection
    again = await connected_client(radio, emu)
    assert again.is_connected
    await again.disconnect()
    await emu.stop()


@pytest.mark.asyncio
async def test_vanish_and_come_back(radio: VirtualRadio, make: Make) -> None:
    emu = make(SCENARIOS["normal"](1))
    await emu.start()
    gone = asyncio.Event()
    client = await connected_client(radio, emu, gone)
    await emu.vanish()
    await asyncio.wait_for(gone.wait(), WAIT_S)
    assert not emu.present
    scanner_cls, _ = backends(radio)
    assert await BleakScanner.find_device_by_address(emu.address, timeout=0.2, backend=scanner_cls) is None
    await emu.come_back()
    client = await connected_client(radio, emu)
    assert client.is_connected
    await client.disconnect()
    await emu.stop()


@pytest.mark.asyncio
async def test_silent_vanish_gives_no_event_only_silence(radio: VirtualRadio, make: Make) -> None:
    emu = make(SCENARIOS["normal"](1))
    await emu.start()
    gone = asyncio.Event()
    client = await connected_client(radio, emu, gone)
    queue, on_data = collector()
    await client.start_notify(PLX_CONTINUOUS, on_data)
    await next_packets(queue, 1)
    await emu.vanish(silent=True)
    while not queue.empty():  # drop what was already in flight
        queue.get_nowait()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 5 / SPEED)  # five periods of silence
    assert client.is_connected and not gone.is_set()  # the link "is up" but nothing comes
    await client.disconnect()  # the app's watchdog gives up on it
    assert gone.is_set()
    await emu.come_back()
    client = await connected_client(radio, emu)
    queue, on_data = collector()
    await client.start_notify(PLX_CONTINUOUS, on_data)
    await next_packets(queue, 2)
    await client.disconnect()
    await emu.stop()


@pytest.mark.asyncio
async def test_go_away_drops_the_link_then_returns(radio: VirtualRadio, make: Make) -> None:
    emu = make(SCENARIOS["normal"](1))
    await emu.start()
    gone = asyncio.Event()
    await connected_client(radio, emu, gone)
    away = asyncio.create_task(emu.go_away(4.0))  # 4 scenario seconds = 0.2 s
    await asyncio.wait_for(gone.wait(), WAIT_S)
    await asyncio.wait_for(away, WAIT_S)
    assert emu.present
    client = await connected_client(radio, emu)
    await client.disconnect()
    await emu.stop()


@pytest.mark.asyncio
async def test_scenario_out_of_range_disconnects_and_returns(radio: VirtualRadio, make: Make) -> None:
    emu = make(SCENARIOS["disconnect_return"](1), speed=60.0)
    await emu.start(at_s=55.0)  # out of range from 60 s to 90 s: ~0.1 s, then 0.5 s away
    gone = asyncio.Event()
    await connected_client(radio, emu, gone)
    await asyncio.wait_for(gone.wait(), WAIT_S)
    assert not emu.present
    scanner_cls, _ = backends(radio)
    device = await BleakScanner.find_device_by_address(emu.address, timeout=WAIT_S, backend=scanner_cls)
    assert device is not None
    assert emu.scenario_time >= 90.0
    await emu.stop()


@pytest.mark.asyncio
async def test_stop_leaves_the_radio(radio: VirtualRadio, make: Make) -> None:
    before = len(radio.devices)
    emu = make(SCENARIOS["normal"](1))
    await emu.start()
    assert len(radio.devices) == before + 1
    await emu.stop()
    assert len(radio.devices) == before
    assert not emu.running


@pytest.mark.asyncio
async def test_closing_the_radio_stops_its_emulators() -> None:
    radio = VirtualRadio()
    await radio.start()
    emu = EmulatedPlxOximeter(radio, SCENARIOS["normal"](1), speed=SPEED, advertising_interval_ms=ADV_MS)
    await emu.start()
    running_before = emu.running
    await radio.close()
    assert running_before and not emu.running
    assert radio.devices == []
