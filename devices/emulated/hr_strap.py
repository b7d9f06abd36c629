"""An emulated heart-rate chest strap (0x180D): a bumble GATT server on the VirtualRadio fed by a scenario."""

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

from devices.battery import build_battery_level
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import Scenario, VitalsPoint
from devices.hr.parser import MAX_ENERGY_KJ, BodySensorLocation, SensorContact, build_heart_rate, rr_units

log = logging.getLogger(__name__)

# UUIDs (gatt.md, "Heart Rate 0x180D, Battery 0x180F, Device Information 0x180A")
HR_SERVICE = UUID.from_16_bits(0x180D, "Heart Rate")
HR_MEASUREMENT = UUID.from_16_bits(0x2A37, "Heart Rate Measurement")
BODY_SENSOR_LOCATION = UUID.from_16_bits(0x2A38, "Body Sensor Location")
BATTERY_SERVICE = UUID.from_16_bits(0x180F, "Battery")
BATTERY_LEVEL = UUID.from_16_bits(0x2A19, "Battery Level")

DEFAULT_NAME = "KAP-Emu HRM"
#: As the emulated oximeter: 100 ms keeps a demo scan snappy; tests use ~20 ms (gatt.md quirks).
DEFAULT_ADVERTISING_INTERVAL_MS = 100.0
#: How long an explicit disconnect may take before it is abandoned.
DISCONNECT_TIMEOUT_S = 1.0
#: Energy Expended goes out in every this-many-th notification (straps send it now and then).
ENERGY_EVERY = 10
#: kJ per heart beat: ~5 kJ/min at 72 /min, a resting adult's energy use.
ENERGY_KJ_PER_BEAT = 0.07


class BeatClock:
    """Beat times that follow the scenario's heart rate: each RR interval is 60 / HR at its start.

    `beats_until(t, hr_at)` returns the RR intervals (seconds) of the beats in (previous t, t],
    oldest first. The first beat is timed from an assumed beat one interval before it. Without a
    rate (sensor off) the beats stop; after contact returns, the first beat has no interval (there
    is no previous beat to time it from), the next ones do. `beats` counts every beat.
    """

    def __init__(self, start_s: float) -> None:
        self._last_beat: float | None = None
        self._next_beat = start_s
        self._fresh = True
        self.beats = 0

    def beats_until(self, t: float, hr_at: Callable[[float], float | None]) -> list[float]:
        intervals: list[float] = []
        while self._next_beat <= t:
            beat = self._next_beat
            hr = hr_at(beat)
            if hr is None or hr <= 0:  # no contact or no pulse: nothing to time until the next tick
                self._last_beat = None
                self._next_beat = t + 1.0
                break
            if self._fresh:
                self._last_beat = beat - 60.0 / hr
                self._fresh = False
            if self._last_beat is not None:
                intervals.append(beat - self._last_beat)
            self.beats += 1
            self._last_beat = beat
            self._next_beat = beat + 60.0 / hr
        return intervals


def encode_measurement(point: VitalsPoint, rr_seconds: list[float], *, energy_kj: int | None = None) -> bytes:
    """The 0x2A37 bytes for one scenario point with the RR intervals of the beats since the last one.

    Contact is always "supported": CONTACT with a pulse, NO_CONTACT (value 0, no RR) when the
    scenario says the sensor is off. Built with devices.hr.parser.build_heart_rate, the encoder the
    parser tests check.
    """
    if point.sensor_off or point.pulse is None:
        return build_heart_rate(0, contact=SensorContact.NO_CONTACT, energy_expended=energy_kj)
    rr = [rr_units(s) for s in rr_seconds]
    return build_heart_rate(
        round(point.pulse), contact=SensorContact.CONTACT, energy_expended=energy_kj, rr_intervals=rr
    )


class EmulatedHeartRateStrap:
    """A heart-rate chest strap on the virtual radio that streams a scenario as 0x2A37 notifications.

    After `start()` it advertises 0x180D and its name, and once per scenario second (1 s / speed of
    wall time) sends the scenario's pulse with the RR intervals of the beats in that second and the
    contact status; every 10th notification carries the energy expended. Body Sensor Location reads
    "chest"; Battery and Device Information are there as on a real strap. Scenario time runs whether
    or not anyone listens, starting at `start(at_s)`; out of range (`VitalsPoint.in_range` False) it
    vanishes and comes back by itself. Same lifecycle API as EmulatedPlxOximeter.
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
        model: str = "HRM-EMU-1",
        serial: str = "EMU-0002",
        firmware: str = "0.1.0",
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
        self.silent_vanish = silent_vanish
        self._address = (
            address.upper() if address else str(radio.allocate_address("peripheral")).split("/")[0]
        )
        self._device: Device | None = None
        self._hr: gatt.Characteristic[bytes] | None = None
        self._battery_char: gatt.Characteristic[bytes] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._unregister: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._present = False
        self._held_away = False  # vanish() was called: only come_back() returns
        self._presence_lock = asyncio.Lock()
        self._point: VitalsPoint | None = None
        self._battery = 100
        self._energy_kj = 0.0
        self._measurements = 0
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

    @property
    def energy_expended(self) -> int:
        """Energy expended so far (kJ, saturating at 0xFFFF as the profile says)."""
        return min(MAX_ENERGY_KJ, int(self._energy_kj))

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

        silent=False (default) disconnects explicitly; silent=True leaves the radio without a word,
        like a strap out of range: only the central's data watchdog notices.
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
        """Send `raw` (any bytes, malformed ones included) as a 0x2A37 notification to all subscribers.

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
                self._hr = self._battery_char = None
                await self.radio.remove_device(device, graceful=False)
                return
            # stop advertising first: with auto_restart a disconnection would start it again
            if device.legacy_advertising_set is not None or device.legacy_advertiser is not None:
                await device.stop_advertising()
            await self.disconnect_all()
            if for_good:
                self._device = None
                self._hr = self._battery_char = None
                await self.radio.remove_device(device)

    def _advertising_data(self) -> bytes:
        flags = (
            AdvertisingData.Flags.LE_GENERAL_DISCOVERABLE_MODE | AdvertisingData.Flags.BR_EDR_NOT_SUPPORTED
        )
        return bytes(
            AdvertisingData(
                [
                    data_types.Flags(flags),
                    data_types.CompleteListOf16BitServiceUUIDs([HR_SERVICE]),
                    data_types.CompleteLocalName(self.name),
                ]
            )
        )

    def _build_gatt(self, device: Device) -> None:
        # The HR service is built by hand, not with bumble.profiles.heart_rate_service: that profile
        # serialises its own measurement objects (truncating RR intervals), while this strap must
        # send the bytes of our encoder and, through inject(), any raw bytes at all.
        self._hr = gatt.Characteristic(
            HR_MEASUREMENT, gatt.Characteristic.Properties.NOTIFY, gatt.Characteristic.READABLE, b""
        )
        location = gatt.Characteristic(
            BODY_SENSOR_LOCATION,
            gatt.Characteristic.Properties.READ,
            gatt.Characteristic.READABLE,
            bytes([BodySensorLocation.CHEST]),
        )
        self._battery_char = gatt.Characteristic(
            BATTERY_LEVEL,
            gatt.Characteristic.Properties.READ | gatt.Characteristic.Properties.NOTIFY,
            gatt.Characteristic.READABLE,
            gatt.CharacteristicValue(read=self._read_battery),
        )
        device.add_services(
            [
                gatt.Service(HR_SERVICE, [self._hr, location]),
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
        return build_battery_level(self._battery)

    def _pulse_at(self, t: float) -> float | None:
        point = self.scenario.at(max(0.0, t))
        return None if point.sensor_off else point.pulse

    async def _run(self, at_s: float) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.speed
        started = loop.time()
        beats = BeatClock(at_s)
        tick = 0
        while True:
            t = at_s + tick
            try:
                await self._tick(t, beats)
            except asyncio.CancelledError:
                raise
            except Exception:  # the emulator keeps going, like a device would
                log.exception("emulator: tick at t=%s failed", t)
            tick += 1
            await asyncio.sleep(max(0.0, started + tick * period - loop.time()))

    async def _tick(self, t: float, beats: BeatClock) -> None:
        point = self.scenario.at(t)
        self._point = point
        self.scenario_time = t
        before = beats.beats
        rr = beats.beats_until(t, self._pulse_at)  # the heart beats whether or not the strap is heard
        self._energy_kj += ENERGY_KJ_PER_BEAT * (beats.beats - before)
        if not self._held_away:  # the scenario decides when the strap is in range
            if not point.in_range and self._present:
                await self._leave(silent=self.silent_vanish)
            elif point.in_range and not self._present:
                await self._appear()
        if not self._present:
            return
        if point.battery != self._battery:
            self._battery = point.battery
            if self._device is not None and self._battery_char is not None:
                await self._device.notify_subscribers(self._battery_char, build_battery_level(self._battery))
        energy = self.energy_expended if self._measurements % ENERGY_EVERY == 0 else None
        self._measurements += 1
        await self._notify(encode_measurement(point, rr, energy_kj=energy), t)

    async def _notify(self, value: bytes, t: float | None) -> None:
        device, hr = self._device, self._hr
        if device is None or hr is None or not self._present:
            return
        self.sent.append((t, value))
        for connection in list(device.connections.values()):
            if not _notifications_enabled(device, connection, hr):
                continue
            try:
                await device.notify_subscriber(connection, hr, value)
                self.notifications_sent += 1
            except Exception as exc:  # the link died under us
                log.debug("emulator: notify to %s failed: %r", connection.peer_address, exc)


def _notifications_enabled(
    device: Device, connection: Connection, characteristic: gatt.Characteristic[bytes]
) -> bool:
    cccd = device.gatt_server.subscribers.get(connection, {}).get(characteristic.handle)
    return cccd is not None and len(cccd) == 2 and bool(cccd[0] & 0x01)
