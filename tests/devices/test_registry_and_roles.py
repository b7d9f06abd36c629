"""The device registry, the supported-only scan, and a role link that pins and remembers its device."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from bumble import data_types
from bumble.core import UUID, AdvertisingData

from devices._ble.bumble_backend import bumble_backends
from devices._ble.link import DeviceLink
from devices._ble.scan import scan_supported
from devices.emulated.plx_oximeter import EmulatedPlxOximeter
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS
from devices.registry import OXIMETER, identify, roles_available, specs_for_role
from kapmonitor.clock import SystemClock
from kapmonitor.measurements import DeviceInfo, DeviceState, MalformedPacket, Measurement

PLX_UUID = "00001822-0000-1000-8000-00805f9b34fb"


def test_identify_by_service_uuid_only_for_supported_devices() -> None:
    entry = identify("anything", [PLX_UUID])
    assert entry is not None and entry.role == OXIMETER and entry.family == "plx"
    assert identify("Some Speaker", ["0000110b-0000-1000-8000-00805f9b34fb"]) is None
    assert OXIMETER in roles_available()
    specs = specs_for_role(OXIMETER)
    assert specs and all(s.kind == "pulse-oximeter" for s in specs[:1])


async def _advertise_unsupported(radio: VirtualRadio) -> None:
    device = await radio.add_device("Some Speaker")
    data = AdvertisingData(
        [
            data_types.Flags(AdvertisingData.Flags.LE_GENERAL_DISCOVERABLE_MODE),
            data_types.CompleteListOf16BitServiceUUIDs([UUID.from_16_bits(0x110B)]),
            data_types.CompleteLocalName("Some Speaker"),
        ]
    )
    await device.start_advertising(
        auto_restart=True,
        advertising_data=bytes(data),
        advertising_interval_min=20,
        advertising_interval_max=20,
    )


@pytest.mark.asyncio
async def test_scan_shows_only_supported_devices_with_name_kind_and_rssi() -> None:
    async with VirtualRadio() as radio:
        oximeter = EmulatedPlxOximeter(radio, SCENARIOS["normal"](1), advertising_interval_ms=20)
        await oximeter.start()
        await _advertise_unsupported(radio)
        scanner, _client = bumble_backends(radio)
        found = await scan_supported(0.5, backend=scanner)
        assert [(f.address, f.name, f.family, f.role) for f in found] == [
            (oximeter.address, "KAP-Emu PLX", "plx", OXIMETER)
        ]
        assert found[0].rssi == -50  # gatt.md: the virtual radio always reports −50


class Sink:
    def __init__(self) -> None:
        self.states: list[tuple[str, DeviceState, str]] = []
        self.data: list[Measurement] = []
        self.connected = asyncio.Event()
        self.changed = asyncio.Event()

    def register_device(self, info: DeviceInfo) -> None:
        pass

    def forget_device(self, device: str) -> None:
        pass

    def device_state(self, device: str, state: DeviceState, detail: str = "") -> None:
        self.states.append((device, state, detail))
        self.changed.set()
        if state is DeviceState.CONNECTED:
            self.connected.set()

    def ingest(self, measurements: Sequence[Measurement]) -> None:
        self.data.extend(measurements)

    def malformed(self, packet: MalformedPacket) -> None:
        pass


@pytest.mark.asyncio
async def test_a_role_link_connects_to_the_remembered_device_only_and_reports_its_choice() -> None:
    async with VirtualRadio() as radio:
        first = EmulatedPlxOximeter(radio, SCENARIOS["normal"](1), advertising_interval_ms=20, name="Oxi A")
        second = EmulatedPlxOximeter(radio, SCENARIOS["normal"](2), advertising_interval_ms=20, name="Oxi B")
        await first.start()
        await second.start()
        scanner, client = bumble_backends(radio)
        chosen: list[tuple[str, str, str]] = []
        sink = Sink()
        link = DeviceLink(
            specs_for_role(OXIMETER),
            sink,
            SystemClock(),
            scanner_backend=scanner,
            client_backend=client,
            address=second.address,  # remembered from the last session
            role=OXIMETER,
            on_chosen=lambda *a: chosen.append(a),
        )
        task = asyncio.create_task(link.run())
        await asyncio.wait_for(sink.connected.wait(), 10)
        assert link.device_id == second.address
        assert chosen == []  # already remembered: nothing new to remember
        assert next(s for s in sink.states if s[1] is DeviceState.CONNECTED)[0] == second.address
        link.stop()
        await asyncio.wait_for(task, 10)


@pytest.mark.asyncio
async def test_after_a_drop_the_role_reconnects_to_the_same_device_not_another() -> None:
    async with VirtualRadio() as radio:
        first = EmulatedPlxOximeter(radio, SCENARIOS["normal"](1), advertising_interval_ms=20, name="Oxi A")
        await first.start()
        scanner, client = bumble_backends(radio)
        sink = Sink()
        link = DeviceLink(
            specs_for_role(OXIMETER),
            sink,
            SystemClock(),
            scanner_backend=scanner,
            client_backend=client,
            role=OXIMETER,
            backoff_s=(0.05,),
            scan_timeout_s=0.5,
            on_chosen=lambda *a: chosen.append(a),
        )
        chosen: list[tuple[str, str, str]] = []
        task = asyncio.create_task(link.run())
        await asyncio.wait_for(sink.connected.wait(), 10)
        assert link.device_id == first.address
        assert chosen == [(OXIMETER, first.address, "Oxi A")]
        # the first oximeter goes away; another one is on the air
        second = EmulatedPlxOximeter(radio, SCENARIOS["normal"](2), advertising_interval_ms=20, name="Oxi B")
        await second.start()
        sink.connected.clear()
        await first.vanish()
        # a few scan rounds pass: the link must not take the other oximeter
        lost_at = len(sink.states)
        async with asyncio.timeout(10):
            while sum(1 for s in sink.states[lost_at:] if s[1] is DeviceState.SEARCHING) < 3:
                sink.changed.clear()
                await sink.changed.wait()
        assert not sink.connected.is_set()
        await first.come_back()
        await asyncio.wait_for(sink.connected.wait(), 10)
        assert [s[0] for s in sink.states if s[1] is DeviceState.CONNECTED] == [first.address] * 2
        assert len(chosen) == 1
        link.stop()
        await asyncio.wait_for(task, 10)
