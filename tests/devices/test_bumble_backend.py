"""Tests of the bleak backend over bumble: bleak's public API against real GATT servers on the radio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError, BleakGATTProtocolError, BleakGATTProtocolErrorCode
from bleak_retry_connector import BleakClientWithServiceCache, establish_connection
from bumble import att, data_types, gatt
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device

from devices._ble.bumble_backend import (
    BleakConnectTimeoutError,
    BumbleBleakClient,
    BumbleBleakScanner,
    BumbleDeviceDetails,
    bumble_backends,
    parse_advertising_data,
)
from devices.emulated.plx_oximeter import EmulatedPlxOximeter
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS

SPEED = 20.0  # emulator scenario seconds per wall second
ADV_MS = 20.0  # gatt.md: ~20 ms advertising interval in tests
WAIT_S = 2.0  # upper bound for anything the radio should do "at once"
CONNECT_TIMEOUT_S = 1.0  # the short connect timeout of the timeout tests

PLX_SERVICE = "00001822-0000-1000-8000-00805f9b34fb"
PLX_CONTINUOUS = "00002a5f-0000-1000-8000-00805f9b34fb"
CCCD = "00002902-0000-1000-8000-00805f9b34fb"
# a small test peripheral: Blood Pressure measurement (indicate) and a vendor read/write value
BP_SERVICE = UUID.from_16_bits(0x1810)
BP_MEASUREMENT = UUID.from_16_bits(0x2A35)
VENDOR_SERVICE = "4b415000-0000-4000-8000-00000000c0de"
VENDOR_VALUE = "4b415001-0000-4000-8000-00000000c0de"
VENDOR_SECRET = "4b415002-0000-4000-8000-00000000c0de"
#: gatt.md's example 0x2A35: 120/80 mmHg, MAP 93, 2024-05-06 07:08:09, pulse 72, user 1, irregular
BP_EXAMPLE = bytes.fromhex("1E 78 00 50 00 5D 00 E8 07 05 06 07 08 09 48 00 01 04 00")


@dataclass
class Rig:
    radio: VirtualRadio
    emu: EmulatedPlxOximeter
    scanner_cls: type[BaseBleakScanner]
    client_cls: type[BaseBleakClient]
    clients: list[BleakClient] = field(default_factory=list)

    async def device(self, address: str | None = None) -> BLEDevice:
        found = await BleakScanner.find_device_by_address(
            address or self.emu.address, timeout=WAIT_S, backend=self.scanner_cls
        )
        assert found is not None
        return found

    def client(
        self, target: BLEDevice | str, gone: asyncio.Event | None = None, **kwargs: float
    ) -> BleakClient:
        client = BleakClient(
            target,
            disconnected_callback=None if gone is None else (lambda _c: gone.set()),
            timeout=kwargs.get("timeout", WAIT_S),
            backend=self.client_cls,
        )
        self.clients.append(client)
        return client


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    async with VirtualRadio() as radio:
        emu = EmulatedPlxOximeter(radio, SCENARIOS["normal"](7), speed=SPEED, advertising_interval_ms=ADV_MS)
        await emu.start()
        scanner_cls, client_cls = bumble_backends(radio)
        rig = Rig(radio, emu, scanner_cls, client_cls)
        try:
            yield rig
        finally:
            for client in rig.clients:
                await client.disconnect()
            await emu.stop()


def is_connected(client: BleakClient) -> bool:
    """Read the property through a call, so that the type checker does not pin it to one value."""
    return client.is_connected


async def bp_peripheral(radio: VirtualRadio) -> tuple[Device, gatt.Characteristic[bytes], list[bytes]]:
    """A bumble peripheral with an indicating characteristic and a vendor read/write value."""
    device = await radio.add_device("KAP-Test BP")
    written: list[bytes] = []

    def on_write(_connection: Connection, value: bytes) -> None:
        if len(value) > 4:
            raise att.ATT_Error(att.ErrorCode.VALUE_NOT_ALLOWED)
        written.append(value)

    def on_read(_connection: Connection) -> bytes:
        return written[-1] if written else b"\x00"

    indicating = gatt.Characteristic(
        BP_MEASUREMENT, gatt.Characteristic.Properties.INDICATE, gatt.Characteristic.READABLE, b""
    )
    device.add_services(
        [
            gatt.Service(BP_SERVICE, [indicating]),
            gatt.Service(
                UUID(VENDOR_SERVICE),
                [
                    gatt.Characteristic(
                        UUID(VENDOR_VALUE),
                        gatt.Characteristic.Properties.READ | gatt.Characteristic.Properties.WRITE,
                        gatt.Characteristic.READABLE | gatt.Characteristic.WRITEABLE,
                        gatt.CharacteristicValue(read=on_read, write=on_write),
                    ),
                    gatt.Characteristic(
                        UUID(VENDOR_SECRET),
                        gatt.Characteristic.Properties.READ,
                        gatt.Characteristic.READABLE | gatt.Characteristic.READ_REQUIRES_ENCRYPTION,
                        b"secret",
                    ),
                ],
            ),
        ]
    )
    advertising = AdvertisingData(
        [
            data_types.CompleteLocalName("KAP-Test BP"),
            data_types.CompleteListOf16BitServiceUUIDs([BP_SERVICE]),
        ]
    )
    await device.start_advertising(
        auto_restart=True,
        advertising_data=bytes(advertising),
        advertising_interval_min=ADV_MS,
        advertising_interval_max=ADV_MS,
    )
    return device, indicating, written


# -- pure parts ---------------------------------------------------------------------------------
def test_advertising_data_is_deduplicated() -> None:
    # bumble's scan response repeats the advertising structures (gatt.md quirks)
    once = [
        (0x01, b"\x06"),
        (0x03, bytes.fromhex("2218 0f18")),
        (0x09, b"KAP-Emu PLX"),
        (0xFF, bytes.fromhex("5900 0102")),
        (0x16, bytes.fromhex("0f18 64")),
    ]
    parsed = parse_advertising_data(once + once)
    assert parsed.local_name == "KAP-Emu PLX"
    assert parsed.service_uuids == [
        "00001822-0000-1000-8000-00805f9b34fb",
        "0000180f-0000-1000-8000-00805f9b34fb",
    ]
    assert parsed.manufacturer_data == {0x0059: b"\x01\x02"}
    assert parsed.service_data == {"0000180f-0000-1000-8000-00805f9b34fb": b"\x64"}


def test_malformed_advertising_structures_are_skipped() -> None:
    parsed = parse_advertising_data([(0x03, b"\x22"), (0xFF, b"\x01"), (0x08, b"KAP"), (0x0A, b"")])
    assert parsed.service_uuids == []
    assert parsed.manufacturer_data == {}
    assert parsed.local_name == "KAP"  # the shortened name when there is no complete one


def test_scanner_normalises_16_bit_filters() -> None:
    scanner = BumbleBleakScanner(None, ["1822", "0000180D-0000-1000-8000-00805F9B34FB"])
    assert scanner.is_allowed_uuid([PLX_SERVICE])
    assert scanner.is_allowed_uuid(["0000180d-0000-1000-8000-00805f9b34fb"])
    assert not scanner.is_allowed_uuid(["00001810-0000-1000-8000-00805f9b34fb"])


@pytest.mark.asyncio
async def test_unbound_classes_refuse_politely() -> None:
    with pytest.raises(BleakError, match="bumble_backends"):
        await BleakScanner(backend=BumbleBleakScanner).start()
    with pytest.raises(BleakError, match="bumble_backends"):
        await BleakClient("C1:4B:41:50:00:01", backend=BumbleBleakClient).connect()


# -- scanning -----------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_scan_finds_the_oximeter_by_16_bit_service_uuid(rig: Rig) -> None:
    def is_plx(_device: BLEDevice, adv: AdvertisementData) -> bool:
        return PLX_SERVICE in adv.service_uuids

    found = await BleakScanner.find_device_by_filter(
        is_plx, timeout=WAIT_S, service_uuids=["1822"], backend=rig.scanner_cls
    )
    assert found is not None
    assert found.name == "KAP-Emu PLX"
    assert found.address == rig.emu.address
    assert isinstance(found.details, BumbleDeviceDetails)  # not a BlueZ dict
    # a filter for another service sees nothing
    other = await BleakScanner.find_device_by_filter(
        lambda _d, _a: True, timeout=0.2, service_uuids=["180d"], backend=rig.scanner_cls
    )
    assert other is None


@pytest.mark.asyncio
async def test_one_clean_detection_per_advertising_event(rig: Rig) -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, AdvertisementData]] = []

    def on_detection(device: BLEDevice, adv: AdvertisementData) -> None:
        if device.address == rig.emu.address:
            seen.append((loop.time(), adv))

    async with BleakScanner(on_detection, backend=rig.scanner_cls) as scanner:
        async with asyncio.timeout(WAIT_S):
            while len(seen) < 12:
                await asyncio.sleep(ADV_MS / 1000)
        assert rig.emu.address in scanner.discovered_devices_and_advertisement_data
    for _, adv in seen:
        assert adv.local_name == "KAP-Emu PLX"
        assert adv.service_uuids == [PLX_SERVICE]  # once, although the scan response repeats it
        assert adv.rssi == -50
    # the emulator advertises every 20 ms and bumble reports each event twice (advertisement and
    # scan response, within the same millisecond); after de-duplication one report per event
    span = seen[-1][0] - seen[0][0]
    events = span / (ADV_MS / 1000)
    assert len(seen) - 1 <= 1.25 * events + 1


@pytest.mark.asyncio
async def test_a_raising_detection_callback_does_not_stop_the_scan(rig: Rig) -> None:
    calls = 0

    def bad(_device: BLEDevice, _adv: AdvertisementData) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("app bug")

    async with BleakScanner(bad, backend=rig.scanner_cls):
        async with asyncio.timeout(WAIT_S):
            while calls < 3:
                await asyncio.sleep(ADV_MS / 1000)
    assert calls >= 3


@pytest.mark.asyncio
async def test_scanning_survives_a_central_rebuild(rig: Rig) -> None:
    old = rig.radio.central
    new = await rig.radio.rebuild_central()
    assert new is not old and new.random_address != old.random_address
    assert await rig.device() is not None


@pytest.mark.asyncio
async def test_radio_parties_have_distinct_random_static_addresses(rig: Rig) -> None:
    extra = [await rig.radio.add_device(f"extra-{i}") for i in range(3)]
    addresses = [d.random_address for d in rig.radio.devices]
    assert len(set(map(str, addresses))) == len(addresses) >= 5
    for address in addresses:
        assert address.address_type == address.RANDOM_DEVICE_ADDRESS
        assert bytes(address)[5] & 0xC0 == 0xC0  # static: the two top bits set (stored little-endian)
    for device in extra:
        await rig.radio.remove_device(device)


# -- connecting, discovery, I/O -----------------------------------------------------------------
@pytest.mark.asyncio
async def test_connect_discovers_services_and_raises_the_mtu(rig: Rig) -> None:
    client = rig.client(await rig.device())
    await client.connect()
    assert client.is_connected
    assert client.backend_id == "BumbleBleakClient"
    assert client.name == "KAP-Emu PLX"
    assert client.mtu_size == 247  # requested after connecting (gatt.md)
    services = client.services
    assert services.get_service("1822") is not None
    characteristic = services.get_characteristic("2a5f")
    assert characteristic is not None
    assert characteristic.service_uuid == PLX_SERVICE
    assert characteristic.properties == ["notify"]
    assert [d.uuid for d in characteristic.descriptors] == [CCCD]
    assert characteristic.max_write_without_response_size == 244
    assert {s.uuid[4:8] for s in services} >= {"1800", "1822", "180f", "180a"}


@pytest.mark.asyncio
async def test_read_by_uuid_handle_and_descriptor(rig: Rig) -> None:
    client = rig.client(await rig.device())
    await client.connect()
    battery = client.services.get_characteristic("2a19")
    assert battery is not None
    by_uuid = await client.read_gatt_char("2a19")
    by_handle = await client.read_gatt_char(battery.handle)
    assert by_uuid == by_handle
    assert by_uuid[0] == rig.emu.scenario.at(rig.emu.scenario_time).battery
    assert await client.read_gatt_char("2a29") == b"KAP Emulation"
    assert await client.read_gatt_char(battery.handle, use_cached=True) == by_uuid
    plx = client.services.get_characteristic("2a5f")
    assert plx is not None
    cccd = plx.get_descriptor(CCCD)
    assert cccd is not None
    assert await client.read_gatt_descriptor(cccd.handle) == b"\x00\x00"
    await client.start_notify(plx, lambda _c, _d: None)
    assert await client.read_gatt_descriptor(cccd.handle) == b"\x01\x00"


@pytest.mark.asyncio
async def test_notifications_and_stop_notify(rig: Rig) -> None:
    client = rig.client(await rig.device())
    await client.connect()
    queue: asyncio.Queue[tuple[BleakGATTCharacteristic, bytes]] = asyncio.Queue()
    await client.start_notify("2a5f", lambda char, data: queue.put_nowait((char, bytes(data))))
    for _ in range(2):
        char, data = await asyncio.wait_for(queue.get(), WAIT_S)
        assert char.uuid == PLX_CONTINUOUS
        assert data[0] == 0x1C
    await client.stop_notify("2a5f")
    while not queue.empty():
        queue.get_nowait()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 4 / SPEED)  # four periods without data


@pytest.mark.asyncio
async def test_a_raising_notification_callback_does_not_break_the_link(rig: Rig) -> None:
    client = rig.client(await rig.device())
    await client.connect()
    calls = 0
    third = asyncio.Event()

    def bad(_char: BleakGATTCharacteristic, _data: bytearray) -> None:
        nonlocal calls
        calls += 1
        if calls >= 3:
            third.set()
        raise RuntimeError("app bug")

    await client.start_notify("2a5f", bad)
    await asyncio.wait_for(third.wait(), WAIT_S)
    assert client.is_connected
    assert await client.read_gatt_char("2a29") == b"KAP Emulation"


@pytest.mark.asyncio
async def test_indications_writes_and_att_errors(rig: Rig) -> None:
    peripheral, indicating, written = await bp_peripheral(rig.radio)
    address = str(peripheral.random_address).split("/")[0]
    client = rig.client(address)  # a plain address string, not a BLEDevice
    await client.connect()
    assert client.name == "KAP-Test BP"  # read from the GAP service
    # indications (the characteristic does not notify)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    await client.start_notify("2a35", lambda _c, data: queue.put_nowait(bytes(data)))
    await peripheral.indicate_subscribers(indicating, BP_EXAMPLE)  # returns once confirmed
    assert await asyncio.wait_for(queue.get(), WAIT_S) == BP_EXAMPLE
    # write with response, read back
    await client.write_gatt_char(VENDOR_VALUE, b"\x05\x06", response=True)
    assert written == [b"\x05\x06"]
    assert await client.read_gatt_char(VENDOR_VALUE) == b"\x05\x06"
    # ATT error responses become BleakGATTProtocolError
    with pytest.raises(BleakGATTProtocolError) as refused_write:
        await client.write_gatt_char(VENDOR_VALUE, b"too long", response=True)
    assert refused_write.value.code == BleakGATTProtocolErrorCode.VALUE_NOT_ALLOWED
    with pytest.raises(BleakGATTProtocolError) as refused_read:
        await client.read_gatt_char(VENDOR_SECRET)
    assert refused_read.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION
    # real SMP pairing encrypts the link, after which the protected value can be read
    await client.pair()
    assert await client.read_gatt_char(VENDOR_SECRET) == b"secret"
    await client.disconnect()
    await rig.radio.remove_device(peripheral)


@pytest.mark.asyncio
async def test_pair_encrypts_the_link(rig: Rig) -> None:
    client = rig.client(await rig.device())
    await client.connect()
    await client.pair()
    (connection,) = rig.emu.connections
    assert connection.is_encrypted
    assert await client.read_gatt_char("2a29") == b"KAP Emulation"  # still talking, encrypted
    await client.unpair()


# -- disconnection --------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_peripheral_disconnect_calls_back_and_resets_services(rig: Rig) -> None:
    gone = asyncio.Event()
    client = rig.client(await rig.device(), gone)
    await client.connect()
    assert client.services.get_characteristic("2a5f") is not None
    await rig.emu.disconnect_all()
    await asyncio.wait_for(gone.wait(), WAIT_S)
    assert not is_connected(client)
    with pytest.raises(BleakError):
        _ = client.services  # reset: discovery has to run again
    with pytest.raises(BleakError):
        await client.read_gatt_char("2a29")
    await client.connect()  # the same client connects again
    assert is_connected(client)


@pytest.mark.asyncio
async def test_our_disconnect_calls_back_once_and_cleans_up(rig: Rig) -> None:
    calls: list[BleakClient] = []
    before = len(rig.radio.devices)
    client = BleakClient(await rig.device(), disconnected_callback=calls.append, backend=rig.client_cls)
    await client.connect()
    assert len(rig.radio.devices) == before + 1  # this connection's central
    await client.disconnect()
    await client.disconnect()  # twice is harmless
    assert calls == [client]  # as BlueZ and CoreBluetooth do
    assert not is_connected(client)
    assert rig.emu.connections == []  # the peripheral saw it too
    assert len(rig.radio.devices) == before


@pytest.mark.asyncio
async def test_connect_to_a_silent_device_times_out_and_the_radio_recovers(rig: Rig) -> None:
    device = await rig.device()
    await rig.emu.vanish()  # stops advertising
    loop = asyncio.get_running_loop()
    before = len(rig.radio.devices)
    started = loop.time()
    client = rig.client(device, timeout=CONNECT_TIMEOUT_S)
    with pytest.raises(BleakConnectTimeoutError):
        await client.connect()
    elapsed = loop.time() - started
    # both a TimeoutError (as BlueZ raises) and a BleakError, so either kind of handler catches it
    assert issubclass(BleakConnectTimeoutError, TimeoutError)
    assert issubclass(BleakConnectTimeoutError, BleakError)
    assert CONNECT_TIMEOUT_S <= elapsed < CONNECT_TIMEOUT_S + 0.5
    assert not is_connected(client)
    assert len(rig.radio.devices) == before  # the wedged central is gone
    # the link is not wedged: another advertising device connects at once
    other = EmulatedPlxOximeter(
        rig.radio, SCENARIOS["normal"](1), name="KAP-Emu PLX 2", speed=SPEED, advertising_interval_ms=ADV_MS
    )
    await other.start()
    try:
        second = rig.client(await rig.device(other.address))
        await second.connect()
        assert is_connected(second)
        await second.disconnect()
    finally:
        await other.stop()
    # and the first one connects once it advertises again
    await rig.emu.come_back()
    await client.connect()
    assert is_connected(client)


@pytest.mark.asyncio
async def test_connect_timeout_can_be_passed_to_connect(rig: Rig) -> None:
    device = await rig.device()
    await rig.emu.vanish()
    client = rig.client(device, timeout=30.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await client.connect(timeout=0.3)
    assert loop.time() - started < 1.0


@pytest.mark.asyncio
async def test_concurrent_connects_to_one_peripheral_are_serialised(rig: Rig) -> None:
    device = await rig.device()
    first = rig.client(device, timeout=CONNECT_TIMEOUT_S)
    second = rig.client(device, timeout=CONNECT_TIMEOUT_S)
    results = await asyncio.gather(first.connect(), second.connect(), return_exceptions=True)
    # the peripheral takes one central and stops advertising: the other attempt must time out
    # instead of ending with a phantom link that the peripheral never accepted
    outcomes = sorted(type(r).__name__ for r in results)
    assert outcomes == ["BleakConnectTimeoutError", "NoneType"]
    assert [is_connected(first), is_connected(second)].count(True) == 1
    assert len(rig.emu.connections) == 1


@pytest.mark.asyncio
async def test_pending_connections_to_one_peer_never_overlap(rig: Rig) -> None:
    device = await rig.device()
    await rig.emu.vanish()  # nobody will answer: both attempts stay pending until they time out
    baseline = len(rig.radio.devices)
    most = 0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, len(rig.radio.devices) - baseline)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        results = await asyncio.gather(
            rig.client(device, timeout=0.4).connect(),
            rig.client(device, timeout=0.4).connect(),
            return_exceptions=True,
        )
    finally:
        watcher.cancel()
    assert [type(r) for r in results] == [BleakConnectTimeoutError, BleakConnectTimeoutError]
    assert most == 1  # one pending central at a time (gatt.md: serialise)
    assert loop.time() - started < 0.4 + 0.3  # the timeout bounds the wait for the other attempt too
    assert len(rig.radio.devices) == baseline


@pytest.mark.asyncio
async def test_the_backend_refuses_another_event_loop(rig: Rig) -> None:
    def in_another_loop() -> None:
        async def scan() -> None:
            await BleakScanner(backend=rig.scanner_cls).start()

        asyncio.run(scan())

    with pytest.raises(BleakError, match="event loop"):
        await asyncio.to_thread(in_another_loop)


# -- bleak-retry-connector ----------------------------------------------------------------------
@pytest.mark.asyncio
async def test_establish_connection_works_with_the_backend(rig: Rig) -> None:
    device = await rig.device()
    for client_class in (BleakClient, BleakClientWithServiceCache):
        client = await establish_connection(client_class, device, "plx", backend=rig.client_cls)
        rig.clients.append(client)
        assert client.is_connected
        assert client.services.get_characteristic("2a5f") is not None
        await client.disconnect()
