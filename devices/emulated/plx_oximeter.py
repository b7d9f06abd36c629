"""An emulated PLX pulse oximeter (0x1822): a bumble GATT server on the VirtualRadio fed by a scenario."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bumble import gatt
from bumble.core import UUID

from devices.emulated.peripheral import DEFAULT_ADVERTISING_INTERVAL_MS, TickingPeripheral, cccd_bit
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import Scenario, VitalsPoint
from devices.plx.parser import (
    DeviceSensorStatus,
    MeasurementStatus,
    PlxContinuousFlags,
    PlxSupportedFeatures,
    build_plx_continuous,
    build_plx_features,
    build_plx_spot_check,
)

# UUIDs (gatt.md, "Pulse Oximeter Service 0x1822")
PLX_SERVICE = UUID.from_16_bits(0x1822, "Pulse Oximeter")
PLX_CONTINUOUS_MEASUREMENT = UUID.from_16_bits(0x2A5F, "PLX Continuous Measurement")
PLX_SPOT_CHECK_MEASUREMENT = UUID.from_16_bits(0x2A5E, "PLX Spot-check Measurement")
PLX_FEATURES = UUID.from_16_bits(0x2A60, "PLX Features")

DEFAULT_NAME = "KAP-Emu PLX"
#: The oximeter's clock at scenario time 0 (UTC 2026-01-01T09:00:00, the emulated cuff's epoch).
SPOT_CHECK_EPOCH = 1_767_258_000.0

log = logging.getLogger(__name__)


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


def point_status(
    point: VitalsPoint, *, demonstration: bool = False
) -> tuple[MeasurementStatus, DeviceSensorStatus]:
    """Measurement Status and Device/Sensor Status of one scenario point (gatt.md bit numbers)."""
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
    return status, sensor


def encode_continuous(point: VitalsPoint, *, demonstration: bool = False) -> bytes:
    """The 0x2A5F bytes for one scenario point (12 bytes: flags, SpO2, PR, status u16, u24, PAI).

    Built with the same encoder the parser tests use (devices.plx.parser.build_plx_continuous);
    missing values are the SFLOAT NaN code. Sensor off sets device/sensor status bit 11 and
    measurement status "unavailable" (gatt.md bit numbers).
    """
    status, sensor = point_status(point, demonstration=demonstration)
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


def encode_spot_check(point: VitalsPoint, when: datetime | None = None, *, stored: bool = False) -> bytes:
    """The 0x2A5E bytes of a spot-check of one scenario point, stamped `when` (the device's clock).

    The same statuses as the continuous measurement; `stored` sets Measurement Status bit 9 (from
    storage), as records read back through RACP carry it (gatt.md, "RACP").
    """
    status, sensor = point_status(point)
    if stored:
        status |= MeasurementStatus.DATA_FROM_MEASUREMENT_STORAGE
    return build_plx_spot_check(
        spo2=point.spo2,
        pulse_rate=point.pulse,
        timestamp=when,
        measurement_status=int(status),
        device_sensor_status=int(sensor),
        pulse_amplitude_index=point.pi,
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


class EmulatedPlxOximeter(TickingPeripheral):
    """A pulse oximeter on the virtual radio that streams a scenario as 0x2A5F notifications.

    After `start()` it advertises 0x1822 and its name, and once per scenario second (1 s / speed
    of wall time) sends the scenario's point to every subscriber. Scenario time runs whether or
    not anyone listens, starting at `start(at_s)`. When the scenario says the wearable is out of
    range (`VitalsPoint.in_range` False) it vanishes and comes back by itself. The lifecycle
    (start/stop/vanish/come_back/go_away/inject) is devices.emulated.peripheral's.

    `spot_check_every_s` adds the Spot-check Measurement 0x2A5E: every that many scenario seconds
    the point is indicated (timestamped by the oximeter's clock, `SPOT_CHECK_EPOCH` + t) and each
    confirmed one is logged in `spot_checks`. `continuous=False` leaves 0x2A5F out: a spot-check-only
    oximeter, which the profile allows.
    """

    service_uuids = (PLX_SERVICE,)

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
        continuous: bool = True,
        spot_check_every_s: float | None = None,
    ) -> None:
        if not continuous and spot_check_every_s is None:
            raise ValueError("a PLX oximeter offers continuous measurements, spot-checks or both")
        if spot_check_every_s is not None and spot_check_every_s < self.tick_s:
            raise ValueError(f"spot_check_every_s must be at least {self.tick_s} s")
        super().__init__(
            radio,
            scenario,
            name=name,
            speed=speed,
            advertising_interval_ms=advertising_interval_ms,
            address=address,
            manufacturer=manufacturer,
            model=model,
            serial=serial,
            firmware=firmware,
            silent_vanish=silent_vanish,
            history=history,
        )
        self.demonstration = demonstration
        self.continuous = continuous
        self.spot_check_every_s = spot_check_every_s
        self._spot_char: gatt.Characteristic[bytes] | None = None
        #: (scenario time, bytes) of the spot-checks a central confirmed, oldest first
        self.spot_checks: list[tuple[float, bytes]] = []

    def _gatt_services(self) -> list[gatt.Service]:
        chars: list[gatt.Characteristic[bytes]] = []
        if self.continuous:
            self._stream_char = gatt.Characteristic(
                PLX_CONTINUOUS_MEASUREMENT,
                gatt.Characteristic.Properties.NOTIFY,
                gatt.Characteristic.READABLE,
                b"",
            )
            chars.append(self._stream_char)
        if self.spot_check_every_s is not None:
            self._spot_char = gatt.Characteristic(
                PLX_SPOT_CHECK_MEASUREMENT,
                gatt.Characteristic.Properties.INDICATE,
                gatt.Characteristic.READABLE,
                b"",
            )
            chars.append(self._spot_char)
        features = gatt.Characteristic(
            PLX_FEATURES, gatt.Characteristic.Properties.READ, gatt.Characteristic.READABLE, encode_features()
        )
        return [gatt.Service(PLX_SERVICE, [*chars, features])]

    def _forget_gatt(self) -> None:
        super()._forget_gatt()
        self._spot_char = None

    async def _send_tick(self, t: float, tick: int, point: VitalsPoint) -> None:
        if self.continuous:
            await self._notify(encode_continuous(point, demonstration=self.demonstration), t)
        every = self.spot_check_every_s
        if every is not None and tick % max(1, round(every / self.tick_s)) == 0:
            when = datetime.fromtimestamp(SPOT_CHECK_EPOCH + t, UTC).replace(tzinfo=None)
            self._spawn(self._indicate_spot_check(t, encode_spot_check(point, when)))

    async def _indicate_spot_check(self, t: float, value: bytes) -> None:
        """Indicate a spot-check to every central that enabled indications (each confirms it)."""
        device, characteristic = self._device, self._spot_char
        if device is None or characteristic is None:
            return
        for connection in list(device.connections.values()):
            if not cccd_bit(device, connection, characteristic, 0x02):
                continue
            try:
                await device.indicate_subscriber(connection, characteristic, value)
            except Exception as exc:  # the link died under us
                log.debug("oximeter: spot-check indication to %s failed: %r", connection.peer_address, exc)
                continue
            self.spot_checks.append((t, value))
