"""An emulated PLX pulse oximeter (0x1822): a bumble GATT server on the VirtualRadio fed by a scenario."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from bumble import data_types, gatt
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.profiles.device_information_service import DeviceInformationService

from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import Scenario, VitalsPoint
from devices.plx.parser import (
    DeviceSensorStatus,
    MeasurementStatus,
    PlxContinuousFlags,
    PlxSupportedFeatures,
    build_plx_continuous,
    build_plx_features,
)

log = logging.getLogger(__name__)

# UUIDs (gatt.md, "Pulse Oximeter Service 0x1822" and "Battery")
PLX_SERVICE = UUID.from_16_bits(0x1822, "Pulse Oximeter")
PLX_CONTINUOUS_MEASUREMENT = UUID.from_16_bits(0x2A5F, "PLX Continuous Measurement")
PLX_FEATURES = UUID.from_16_bits(0x2A60, "PLX Features")
BATTERY_SERVICE = UUID.from_16_bits(0x180F, "Battery")
BATTERY_LEVEL = UUID.from_16_bits(0x2A19, "Battery Level")

DEFAULT_NAME = "KAP-Emu PLX"
#: gatt.md quirks: bumble advertises every 1 s unless told; tests use ~20 ms. 100 ms keeps a demo
#: scan snappy without flooding the loop with reports.
DEFAULT_ADVERTISING_INTERVAL_MS = 100.0
#: How long an explicit disconnect may take before it is abandoned.
DISCONNECT_TIMEOUT_S = 1.0


#: Perfusion index (%) below which the emulator flags low perfusion.
LOW_PERFUSION_PI = 0.5
#: The Measurement Status bits this emulator may set (advertised in 0x2A60's support mask).
STATUS_USED = (
    MeasurementStatus.MEASUREMENT_ONGOING
    | MeasurementStatus.DATA_FOR_DEMONSTRATION
    | MeasurementStatus.MEASUREMENT_UNAVAILABLE
    | MeasurementStatus.QUESTIONABLE_MEASUREMENT_DETECTED
)
#: The Device and Sensor Status bits this emulator may set.
SENSOR_STATUS_USED = (
    DeviceSensorStatus.LOW_PERFUSION_DETECTED
    | DeviceSensorStatus.ERRATIC_SIGNAL_DETECTED
    | DeviceSensorStatus.SENSOR_UNCONNECTED_TO_USER
)


def encode_continuous(point: VitalsPoint, *, demonstration: bool = False) -> bytes:
    """The 0x2A5F bytes for one scenario point (12 bytes: flags, SpO2, PR, status u16, u24, PAI).

    Built with the same encoder the parser tests use (devices.plx.parser.build_plx_continuous);
    missing values are the SFLOAT NaN code. Sensor off sets device/sensor status bit 11 and
    measurement status "unavailable" (gatt.md bit numbers).
    """
    status = MeasurementStatus(0)
    sensor = DeviceSensorStatus(0)
    if point.sensor_off:
        status |= MeasurementStatus.MEASUREMENT_UNAVAILABLE
        sensor |= DeviceSensorStatus.SENSOR_UNCONNECTED_TO_USER
    else:
        status |= MeasurementStatus.MEASUREMENT_ONGOING
    if demonstration:
        status |= MeasurementStatus.DATA_FOR_DEMONSTRATION
    if point.artefact:
        status |= MeasurementStatus.QUESTIONABLE_MEASUREMENT_DETECTED
        sensor |= DeviceSensorStatus.ERRATIC_SIGNAL_DETECTED
    if point.pi is not None and point.pi < LOW_PERFUSION_PI:
        sensor |= DeviceSensorStatus.LOW_PERFUSION_DETECTED
    return build_plx_continuous(
        spo2=point.spo2,
        pulse_rate=point.pulse,
        measurement_status=int(status),
        device_sensor_status=int(sensor),
        pulse_amplitude_index=point.pi,
        flags=int(
            PlxContinuousFlags.MEASUREMENT_STATUS
            | PlxContinuousFlags.DEVICE_SENSOR_STATUS
            | PlxContinuousFlags.PULSE_AMPLITUDE_INDEX
        ),
    )


def encode_features() -> bytes:
    """0x2A60: measurement status, device/sensor status and PAI supported, with their support masks."""
    return build_plx_features(
        int(
            PlxSupportedFeatures.MEASUREMENT_STATUS_SUPPORT
            | PlxSupportedFeatures.DEVICE_SENSOR_STATUS_SUPPORT
            | PlxSupportedFeatures.PULSE_AMPLITUDE_INDEX
        ),
        measurement_status_support=int(STATUS_USED),
        device_sensor_status_support=int(SENSOR_STATUS_USED),
    )


class EmulatedPlxOximeter:
    """A pulse oximeter on the virtual radio that streams a scenario as 0x2A5F notifications.

    After `start()` it advertises 0x1822 and its name, and once per scenario second (1 s / speed
    of wall time) sends the scenario's point to every subscriber. Scenario time runs whether or
    not anyone listens, starting at `start(at_s)`. When the scenario says the wearable is out of
    range (`VitalsPoint.in_range` False) it vanishes and comes back by itself.
    """

    def __init__(
        self,
        radio: VirtualRadio,
        scenario: Scenario,
        *,
        name: str = DEFAULT_NAME,
        speed: float = 1.0,
        advertising_interval_ms: float = DEFAULT_ADVERTISING_INTERVAL_MS,
        address: str | None = None,
        manufacturer: str = "KAP Emulation",
        model: str = "PLX-EMU-1",
        serial: str = "EMU-0001",
        firmware: str = "0.1.0",
        demonstration: bool = False,
        silent_vanish: bool = False,
        history: int = 1000,
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
        self.demonstration = demonstration
        self.silent_vanish = silent_vanish
        self._address = (
            address.upper() if address else str(radio.allocate_address("peripheral")).split("/")[0]
        )
        self._device: Device | None = None
        self._plx: gatt.Characteristic[bytes] | None = None
        self._battery_char: gatt.Characteristic[bytes] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._unregister: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._present = False
        self._held_away = False  # vanish() was called: only come_back() returns
        self._presence_lock = asyncio.Lock()
        self._point: VitalsPoint | None = None
        self._battery = 100
        self.scenario_time = 0.0
        #: (scenario time or None for injected packets, bytes) of everything sent, newest last
        self.sent: deque[tuple[float | None, bytes]] = deque(maxlen=history)
        self.notifications_sent = 0

    # -- properties ------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return self._address

    @property
    def running(self) -> bool:
        return self._ticker is not None

    @property
    def present(self) -> bool:
        """On the air (advertising or connected), as opposed to vanished."""
        return self._present

    @property
    def connections(self) -> list[Connection]:
        return list(self._device.connections.values()) if self._device is not None else []

    @property
    def point(self) -> VitalsPoint | None:
        """The scenario point of the last tick."""
        return self._point

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, at_s: float = 0.0) -> None:
        """Join the radio, advertise, and run the scenario from scenario time `at_s`."""
        if self._ticker is not None:
            return
        await self._appear()
        self._ticker = asyncio.get_running_loop().create_task(self._run(at_s))
        self._unregister = self.radio.on_close(self.stop)

    async def stop(self) -> None:
        """Stop the scenario, disconnect everyone and leave the radio."""
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
                log.debug("emulator: disconnect of %s failed: %r", connection.peer_address, exc)
        await self.radio.settle()  # the centrals have seen it when this returns

    async def vanish(self, *, silent: bool | None = None) -> None:
        """Stop advertising and notifying and drop the link; the scenario clock keeps running.

        silent=False (default) disconnects explicitly, so the central hears of it at once.
        silent=True leaves the radio without a word, like a wearable out of range: the central's
        link goes quiet and only a data watchdog notices.
        """
        self._held_away = True
        await self._leave(silent=self.silent_vanish if silent is None else silent)

    async def come_back(self) -> None:
        """Rejoin the radio (if needed) and advertise again after vanish()."""
        self._held_away = False
        await self._appear()

    async def go_away(self, seconds: float, *, silent: bool | None = None) -> None:
        """vanish(), stay away `seconds` of scenario time (seconds / speed of wall time), come_back()."""
        await self.vanish(silent=silent)
        await asyncio.sleep(seconds / self.speed)
        await self.come_back()

    def inject(self, raw: bytes) -> asyncio.Task[None]:
        """Send `raw` (any bytes, malformed ones included) as a 0x2A5F notification to all subscribers.

        Returns the sending task; await it to know it has gone out.
        """
        task = asyncio.get_running_loop().create_task(self._notify(bytes(raw), None))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- internals -------------------------------------------------------------------------------
    async def _appear(self) -> None:
        async with self._presence_lock:
            if self._present:
                return
            if self._device is None:
                self._device = await self.radio.add_device(self.name, address=self._address)
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
                self._plx = self._battery_char = None
                await self.radio.remove_device(device, graceful=False)
                return
            # stop advertising first: with auto_restart a disconnection would start it again
            if device.legacy_advertising_set is not None or device.legacy_advertiser is not None:
                await device.stop_advertising()
            await self.disconnect_all()
            if for_good:
                self._device = None
                self._plx = self._battery_char = None
                await self.radio.remove_device(device)

    def _advertising_data(self) -> bytes:
        flags = (
            AdvertisingData.Flags.LE_GENERAL_DISCOVERABLE_MODE | AdvertisingData.Flags.BR_EDR_NOT_SUPPORTED
        )
        return bytes(
            AdvertisingData(
                [
                    data_types.Flags(flags),
                    data_types.CompleteListOf16BitServiceUUIDs([PLX_SERVICE]),
                    data_types.CompleteLocalName(self.name),
                ]
            )
        )

    def _build_gatt(self, device: Device) -> None:
        self._plx = gatt.Characteristic(
            PLX_CONTINUOUS_MEASUREMENT,
            gatt.Characteristic.Properties.NOTIFY,
            gatt.Characteristic.READABLE,
            b"",
        )
        features = gatt.Characteristic(
            PLX_FEATURES, gatt.Characteristic.Properties.READ, gatt.Characteristic.READABLE, encode_features()
        )
        self._battery_char = gatt.Characteristic(
            BATTERY_LEVEL,
            gatt.Characteristic.Properties.READ | gatt.Characteristic.Properties.NOTIFY,
            gatt.Characteristic.READABLE,
            gatt.CharacteristicValue(read=self._read_battery),
        )
        device.add_services(
            [
                gatt.Service(PLX_SERVICE, [self._plx, features]),
                gatt.Service(BATTERY_SERVICE, [self._battery_char]),
                DeviceInformationService(
                    manufacturer_name=self.manufacturer,
                    model_number=self.model,
                    serial_number=self.serial,
                    firmware_revision=self.firmware,
                ),
            ]
        )

    def _read_battery(self, _connection: Connection) -> bytes:
        return bytes([self._battery])

    async def _run(self, at_s: float) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.speed
        started = loop.time()
        tick = 0
        while True:
            t = at_s + tick
            try:
                await self._tick(t)
            except asyncio.CancelledError:
                raise
            except Exception:  # the emulator keeps going, like a device would
                log.exception("emulator: tick at t=%s failed", t)
            tick += 1
            await asyncio.sleep(max(0.0, started + tick * period - loop.time()))

    async def _tick(self, t: float) -> None:
        point = self.scenario.at(t)
        self._point = point
        self.scenario_time = t
        if not self._held_away:  # the scenario decides when the wearable is in range
            if not point.in_range and self._present:
                await self._leave(silent=self.silent_vanish)
            elif point.in_range and not self._present:
                await self._appear()
        if not self._present:
            return
        if point.battery != self._battery:
            self._battery = point.battery
            if self._device is not None and self._battery_char is not None:
                await self._device.notify_subscribers(self._battery_char, bytes([self._battery]))
        await self._notify(encode_continuous(point, demonstration=self.demonstration), t)

    async def _notify(self, value: bytes, t: float | None) -> None:
        device, plx = self._device, self._plx
        if device is None or plx is None or not self._present:
            return
        self.sent.append((t, value))
        for connection in list(device.connections.values()):
            if not _notifications_enabled(device, connection, plx):
                continue
            try:
                await device.notify_subscriber(connection, plx, value)
                self.notifications_sent += 1
            except Exception as exc:  # the link died under us
                log.debug("emulator: notify to %s failed: %r", connection.peer_address, exc)


def _notifications_enabled(
    device: Device, connection: Connection, characteristic: gatt.Characteristic[bytes]
) -> bool:
    cccd = device.gatt_server.subscribers.get(connection, {}).get(characteristic.handle)
    return cccd is not None and len(cccd) == 2 and bool(cccd[0] & 0x01)
