"""The presence lifecycle the emulated wearables share: radio, advertising, vanishing, ticking, injecting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypedDict, Unpack

from bumble import data_types, gatt
from bumble.core import UUID, AdvertisingData, DataType
from bumble.device import Connection, Device
from bumble.profiles.device_information_service import DeviceInformationService

from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import Scenario, VitalsPoint

log = logging.getLogger(__name__)

# UUIDs (gatt.md, "Battery 0x180F")
BATTERY_SERVICE = UUID.from_16_bits(0x180F, "Battery")
BATTERY_LEVEL = UUID.from_16_bits(0x2A19, "Battery Level")

#: gatt.md quirks: bumble advertises every 1 s unless told; tests use ~20 ms. 100 ms keeps a demo
#: scan snappy without flooding the loop with reports.
DEFAULT_ADVERTISING_INTERVAL_MS = 100.0
#: How long an explicit disconnect may take before it is abandoned.
DISCONNECT_TIMEOUT_S = 1.0


class PeripheralOptions(TypedDict, total=False):
    """EmulatedPeripheral's keyword arguments past `name`, for subclasses that pass them on."""

    speed: float
    advertising_interval_ms: float
    address: str | None
    manufacturer: str
    model: str
    serial: str
    firmware: str
    silent_vanish: bool
    battery: int
    requires_pairing: bool


class EmulatedPeripheral:
    """A wearable on the virtual radio: it joins, advertises, vanishes, comes back and leaves.

    Subclasses list their services in `_gatt_services` (Battery and Device Information are added
    here when `standard_services` is set), name what they advertise in `service_uuids`, and may run
    one background task from `start()` (`_ticker_work`). `vanish()` holds the device away until
    `come_back()`; `inject()`-style sends go through `_spawn`, so `stop()` cancels them.
    """

    #: services named in the advertisement (16-bit ones and 128-bit ones each get their list)
    service_uuids: ClassVar[tuple[UUID, ...]] = ()
    #: add Battery (0x180F) and Device Information (0x180A), as the standard-profile wearables do
    standard_services: ClassVar[bool] = True
    #: Battery Level can be notified (a cuff only lets it be read)
    battery_notifies: ClassVar[bool] = True
    #: how this kind of device names itself in log lines
    log_name: ClassVar[str] = "emulator"

    def __init__(
        self,
        radio: VirtualRadio,
        scenario: Scenario,
        *,
        name: str,
        speed: float = 1.0,
        advertising_interval_ms: float = DEFAULT_ADVERTISING_INTERVAL_MS,
        address: str | None = None,
        manufacturer: str = "KAP Emulation",
        model: str = "EMU-1",
        serial: str = "EMU-0000",
        firmware: str = "0.1.0",
        silent_vanish: bool = False,
        battery: int = 100,
        requires_pairing: bool = False,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.radio = radio
        self.scenario = scenario
        self.name = name
        self.speed = speed
        self.advertising_interval_ms = advertising_interval_ms
        self.manufacturer = manufacturer
        self.model = model
        self.serial = serial
        self.firmware = firmware
        self.silent_vanish = silent_vanish
        #: subscribing (writing a CCCD) needs an encrypted link: the central must pair first, as
        #: with cuffs like the A&D UA-651BLE (gatt.md, "Blood Pressure Service")
        self.requires_pairing = requires_pairing
        self._address = (
            address.upper() if address else str(radio.allocate_address("peripheral")).split("/")[0]
        )
        self._device: Device | None = None
        self._battery_char: gatt.Characteristic[bytes] | None = None
        self._battery = battery
        self._running = False
        self._ticker: asyncio.Task[None] | None = None
        self._unregister: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._present = False
        self._held_away = False  # vanish() was called: only come_back() returns
        self._presence_lock = asyncio.Lock()
        self._subscriptions_changed = asyncio.Event()

    # -- properties ------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return self._address

    @property
    def running(self) -> bool:
        return self._running

    @property
    def present(self) -> bool:
        """On the air (advertising or connected), as opposed to vanished."""
        return self._present

    @property
    def connections(self) -> list[Connection]:
        return list(self._device.connections.values()) if self._device is not None else []

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, at_s: float = 0.0) -> None:
        """Join the radio, advertise, and run the scenario from scenario time `at_s`."""
        if self._running:
            return
        self._check_start(at_s)
        await self._appear()
        self._running = True
        self._on_start(at_s)
        work = self._ticker_work(at_s)
        if work is not None:
            self._ticker = asyncio.get_running_loop().create_task(work)
        self._unregister = self.radio.on_close(self.stop)

    async def stop(self) -> None:
        """Stop the scenario, disconnect everyone and leave the radio."""
        if self._running:
            self._on_stop()
        self._running = False
        ticker, self._ticker = self._ticker, None
        unregister, self._unregister = self._unregister, None
        if unregister is not None:
            unregister()
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        for task in list(self._tasks):
            task.cancel()
        self._held_away = False
        await self._leave(silent=False, for_good=True)

    async def disconnect_all(self) -> None:
        """Disconnect every central explicitly (a vanished peer gives no event: gatt.md quirks)."""
        for connection in self.connections:
            try:
                await asyncio.wait_for(connection.disconnect(), DISCONNECT_TIMEOUT_S)
            except Exception as exc:
                log.debug("%s: disconnect of %s failed: %r", self.log_name, connection.peer_address, exc)
        await self.radio.settle()  # the centrals have seen it when this returns

    async def vanish(self, *, silent: bool | None = None) -> None:
        """Stop advertising and notifying and drop the link; the scenario clock keeps running.

        silent=False disconnects explicitly, so the central hears of it at once. silent=True leaves
        the radio without a word, like a wearable out of range: the central's link goes quiet and
        only a data watchdog notices. None (the default) means `silent_vanish`.
        """
        self._held_away = True
        await self._leave(silent=self.silent_vanish if silent is None else silent)

    async def come_back(self) -> None:
        """Rejoin the radio (if needed) and advertise again after vanish()."""
        self._held_away = False
        await self._appear()

    async def until_subscriptions(self, condition: Callable[[], bool], timeout: float) -> None:
        """Wait until `condition` holds, checking it each time a central writes a CCCD here.

        The link reports 'connected' before it subscribes (no sample may precede that event), so
        a test that needs a subscription waits for it here, where the device sees it.
        """
        async with asyncio.timeout(timeout):
            while not condition():
                self._subscriptions_changed.clear()
                await self._subscriptions_changed.wait()

    def _on_any_subscription(self, *_args: object) -> None:
        # called by bumble on every CCCD write (subscribe or unsubscribe): must not raise
        self._subscriptions_changed.set()

    async def go_away(self, seconds: float, *, silent: bool | None = None) -> None:
        """vanish(), stay away `seconds` of scenario time (seconds / speed of wall time), come_back()."""
        await self.vanish(silent=silent)
        await asyncio.sleep(seconds / self.speed)
        await self.come_back()

    # -- hooks for subclasses --------------------------------------------------------------------
    def _gatt_services(self) -> list[gatt.Service]:
        """The device's own services (building the characteristics it sends on)."""
        return []

    def _forget_gatt(self) -> None:
        """Drop the characteristics of a device that has left the radio."""
        self._battery_char = None

    def _check_start(self, at_s: float) -> None:
        """Refuse a start time (raise ValueError) before anything happens."""

    def _on_start(self, at_s: float) -> None:
        """Called once on the air, before the ticker starts."""

    def _on_stop(self) -> None:
        """Called first in stop() of a running device."""

    def _ticker_work(self, at_s: float) -> Coroutine[Any, Any, None] | None:
        """The background work start() runs until stop() (None: nothing)."""
        return None

    def _battery_bytes(self) -> bytes:
        return bytes([self._battery])

    # -- internals -------------------------------------------------------------------------------
    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` in a task that stop() cancels."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _follow_range(self, point: VitalsPoint) -> None:
        """Unless held away by vanish(), leave or return as the scenario says the wearable is in range."""
        if self._held_away:
            return
        if not point.in_range and self._present:
            await self._leave(silent=self.silent_vanish)
        elif point.in_range and not self._present:
            await self._appear()

    async def _set_battery(self, level: int) -> None:
        """Take the battery level, notifying subscribers when it changed."""
        if level == self._battery:
            return
        self._battery = level
        if self._device is not None and self._battery_char is not None and self.battery_notifies:
            await self._device.notify_subscribers(self._battery_char, self._battery_bytes())

    async def _notify_subscribers(self, characteristic: gatt.Characteristic[bytes], value: bytes) -> int:
        """Notify `value` to each central that enabled notifications of `characteristic`; how many."""
        device = self._device
        if device is None:
            return 0
        sent = 0
        for connection in list(device.connections.values()):
            if not cccd_bit(device, connection, characteristic, 0x01):
                continue
            try:
                await device.notify_subscriber(connection, characteristic, value)
                sent += 1
            except Exception as exc:  # the link died under us
                log.debug("%s: notify to %s failed: %r", self.log_name, connection.peer_address, exc)
        return sent

    async def _appear(self) -> None:
        async with self._presence_lock:
            if self._present:
                return
            if self._device is None:
                self._device = await self.radio.add_device(self.name, address=self._address)
                self._device.on("characteristic_subscription", self._on_any_subscription)
                self._build_gatt(self._device)
            await self._device.start_advertising(
                auto_restart=True,
                advertising_data=self._advertising_data(),
                advertising_interval_min=self.advertising_interval_ms,
                advertising_interval_max=self.advertising_interval_ms,
            )
            self._present = True

    async def _leave(self, *, silent: bool, for_good: bool = False) -> None:
        async with self._presence_lock:
            self._present = False
            device = self._device
            if device is None:
                return
            if silent:
                self._device = None
                self._forget_gatt()
                await self.radio.remove_device(device, graceful=False)
                return
            # stop advertising first: with auto_restart a disconnection would start it again
            if device.legacy_advertising_set is not None or device.legacy_advertiser is not None:
                await device.stop_advertising()
            await self.disconnect_all()
            if for_good:
                self._device = None
                self._forget_gatt()
                await self.radio.remove_device(device)

    def _advertised_uuids(self) -> list[UUID]:
        return list(self.service_uuids)

    def _advertising_data(self) -> bytes:
        flags = (
            AdvertisingData.Flags.LE_GENERAL_DISCOVERABLE_MODE | AdvertisingData.Flags.BR_EDR_NOT_SUPPORTED
        )
        structures: list[DataType] = [data_types.Flags(flags)]
        uuids = self._advertised_uuids()
        short = [u for u in uuids if len(u.to_bytes()) == 2]
        long = [u for u in uuids if len(u.to_bytes()) != 2]
        if short:
            structures.append(data_types.CompleteListOf16BitServiceUUIDs(short))
        if long:
            structures.append(data_types.CompleteListOf128BitServiceUUIDs(long))
        structures.append(data_types.CompleteLocalName(self.name))
        return bytes(AdvertisingData(structures))

    def _build_gatt(self, device: Device) -> None:
        services = self._gatt_services()
        if self.requires_pairing:
            for service in services:
                for characteristic in service.characteristics:
                    if characteristic.properties & SUBSCRIBABLE:
                        characteristic.descriptors = [
                            *characteristic.descriptors,
                            encrypted_cccd(device, characteristic),
                        ]
        if self.standard_services:
            properties = gatt.Characteristic.Properties.READ
            if self.battery_notifies:
                properties |= gatt.Characteristic.Properties.NOTIFY
            self._battery_char = gatt.Characteristic(
                BATTERY_LEVEL,
                properties,
                gatt.Characteristic.READABLE,
                gatt.CharacteristicValue(read=self._read_battery),
            )
            services += [
                gatt.Service(BATTERY_SERVICE, [self._battery_char]),
                DeviceInformationService(
                    manufacturer_name=self.manufacturer,
                    model_number=self.model,
                    serial_number=self.serial,
                    firmware_revision=self.firmware,
                ),
            ]
        device.add_services(services)

    def _read_battery(self, _connection: Connection) -> bytes:
        return self._battery_bytes()


class TickingPeripheral(EmulatedPeripheral):
    """An emulated wearable that sends on one characteristic every `tick_s` scenario seconds.

    From `start(at_s)` scenario time runs at `speed` whether or not anyone listens; each tick takes
    the scenario's point, follows its in-range flag (unless held away), takes its battery level and,
    while present, calls `_send_tick`. Subclasses build `_stream_char` in `_gatt_services`; `inject()`
    and the `sent` log go through it.
    """

    #: scenario seconds between ticks
    tick_s: ClassVar[float] = 1.0

    def __init__(
        self,
        radio: VirtualRadio,
        scenario: Scenario,
        *,
        name: str,
        history: int = 1000,
        **options: Unpack[PeripheralOptions],
    ) -> None:
        super().__init__(radio, scenario, name=name, **options)
        self._stream_char: gatt.Characteristic[bytes] | None = None
        self._point: VitalsPoint | None = None
        self.scenario_time = 0.0
        self.ticks = 0
        #: (scenario time or None for injected packets, bytes) of everything sent, newest last
        self.sent: deque[tuple[float | None, bytes]] = deque(maxlen=history)
        self.notifications_sent = 0

    @property
    def point(self) -> VitalsPoint | None:
        """The scenario point of the last tick."""
        return self._point

    @property
    def subscribed(self) -> bool:
        """Some central has notifications of the stream characteristic on (it hears `inject`)."""
        device, characteristic = self._device, self._stream_char
        if device is None or characteristic is None:
            return False
        return any(cccd_bit(device, c, characteristic, 0x01) for c in list(device.connections.values()))

    def inject(self, raw: bytes) -> asyncio.Task[None]:
        """Send `raw` (any bytes, malformed ones included) as a notification to all subscribers.

        Returns the sending task; await it to know it has gone out.
        """
        return self._spawn(self._notify(bytes(raw), None))

    # -- hooks for subclasses --------------------------------------------------------------------
    def _observe(self, t: float, point: VitalsPoint) -> None:
        """Called every tick, present or not, before the in-range check."""

    async def _send_tick(self, t: float, tick: int, point: VitalsPoint) -> None:
        """What goes out at tick number `tick` (scenario time `t`) while present."""
        raise NotImplementedError

    # -- internals -------------------------------------------------------------------------------
    def _forget_gatt(self) -> None:
        super()._forget_gatt()
        self._stream_char = None

    def _ticker_work(self, at_s: float) -> Coroutine[Any, Any, None] | None:
        return self._run(at_s)

    async def _run(self, at_s: float) -> None:
        loop = asyncio.get_running_loop()
        period = self.tick_s / self.speed
        started = loop.time()
        tick = 0
        while True:
            t = at_s + tick * self.tick_s
            try:
                await self._tick(t, tick)
            except asyncio.CancelledError:
                raise
            except Exception:  # the emulator keeps going, like a device would
                log.exception("%s: tick at t=%s failed", self.log_name, t)
            tick += 1
            self.ticks = tick
            await asyncio.sleep(max(0.0, started + tick * period - loop.time()))

    async def _tick(self, t: float, tick: int) -> None:
        point = self.scenario.at(t)
        self._point = point
        self.scenario_time = t
        self._observe(t, point)
        await self._follow_range(point)
        if not self._present:
            return
        await self._set_battery(point.battery)
        await self._send_tick(t, tick, point)

    async def _notify(self, value: bytes, t: float | None) -> None:
        characteristic = self._stream_char
        if self._device is None or characteristic is None or not self._present:
            return
        self.sent.append((t, value))
        self.notifications_sent += await self._notify_subscribers(characteristic, value)


SUBSCRIBABLE = gatt.Characteristic.Properties.NOTIFY | gatt.Characteristic.Properties.INDICATE


def encrypted_cccd(device: Device, characteristic: gatt.Characteristic[bytes]) -> gatt.Descriptor:
    """The CCCD bumble would add for `characteristic`, except that writing it needs encryption.

    bumble adds a CCCD only when the characteristic has none; this one keeps bumble's own
    subscription bookkeeping (gatt_server.subscribers, the subscription event) and makes an
    unpaired central's subscribe fail with "Insufficient Encryption", as a bonded-only device does.
    """
    return gatt.Descriptor(
        gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
        gatt.Descriptor.READABLE | gatt.Descriptor.WRITEABLE | gatt.Descriptor.WRITE_REQUIRES_ENCRYPTION,
        device.gatt_server.make_descriptor_value(characteristic),
    )


def cccd_bit(
    device: Device, connection: Connection, characteristic: gatt.Characteristic[bytes], bit: int
) -> bool:
    """`connection` has written `bit` (0x01 notify, 0x02 indicate) into `characteristic`'s CCCD."""
    cccd = device.gatt_server.subscribers.get(connection, {}).get(characteristic.handle)
    return cccd is not None and len(cccd) == 2 and bool(cccd[0] & bit)
