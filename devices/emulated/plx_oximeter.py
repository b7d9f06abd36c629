"""An emulated PLX pulse oximeter (0x1822): a bumble GATT server on the VirtualRadio fed by a scenario."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from bumble import gatt
from bumble.core import UUID
from bumble.device import Connection

from devices.emulated.peripheral import DEFAULT_ADVERTISING_INTERVAL_MS, TickingPeripheral, cccd_bit
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import Scenario, VitalsPoint
from devices.plx.parser import (
    DeviceSensorStatus,
    MeasurementStatus,
    PlxContinuousFlags,
    PlxSupportedFeatures,
    RacpOpCode,
    RacpOperator,
    RacpResponseCode,
    build_plx_continuous,
    build_plx_features,
    build_plx_spot_check,
)

# UUIDs (gatt.md, "Pulse Oximeter Service 0x1822")
PLX_SERVICE = UUID.from_16_bits(0x1822, "Pulse Oximeter")
PLX_CONTINUOUS_MEASUREMENT = UUID.from_16_bits(0x2A5F, "PLX Continuous Measurement")
PLX_SPOT_CHECK_MEASUREMENT = UUID.from_16_bits(0x2A5E, "PLX Spot-check Measurement")
PLX_FEATURES = UUID.from_16_bits(0x2A60, "PLX Features")
RECORD_ACCESS_CONTROL_POINT = UUID.from_16_bits(0x2A52, "Record Access Control Point")

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


def encode_features(*, storage: bool = False) -> bytes:
    """0x2A60: measurement status, device/sensor status and PAI supported, with their support masks.

    With `storage` also spot-check storage and timestamps (bits 2, 3), and status bit 9 in the mask.
    """
    supported = (
        PlxSupportedFeatures.MEASUREMENT_STATUS_SUPPORT
        | PlxSupportedFeatures.DEVICE_SENSOR_STATUS_SUPPORT
        | PlxSupportedFeatures.PULSE_AMPLITUDE_INDEX
    )
    status = STATUS_USED
    if storage:
        supported |= (
            PlxSupportedFeatures.SPOT_CHECK_MEASUREMENT_STORAGE | PlxSupportedFeatures.SPOT_CHECK_TIMESTAMP
        )
        status |= MeasurementStatus.DATA_FROM_MEASUREMENT_STORAGE
    return build_plx_features(
        int(supported),
        measurement_status_support=int(status),
        device_sensor_status_support=int(SENSOR_STATUS_USED),
    )


def racp_response(request_op: int, code: RacpResponseCode) -> bytes:
    """`06 00 <request op> <code>`: the RACP response code indication (gatt.md "RACP")."""
    return bytes([RacpOpCode.RESPONSE_CODE, RacpOperator.NULL, request_op & 0xFF, code])


def racp_number_of_records(count: int) -> bytes:
    """`05 00 <u16 count>`: the answer to `04 01` (gatt.md "RACP")."""
    return bytes([RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, RacpOperator.NULL]) + count.to_bytes(
        2, "little"
    )


@dataclass(frozen=True)
class StoredSpotCheck:
    """A spot-check the oximeter kept: scenario time, the point measured, its clock's Date Time."""

    t: float
    point: VitalsPoint
    when: datetime

    @property
    def raw(self) -> bytes:
        """The 0x2A5E bytes it is uploaded as: timestamp flag and status bit 9 "from storage"."""
        return encode_spot_check(self.point, self.when, stored=True)


class EmulatedPlxOximeter(TickingPeripheral):
    """A pulse oximeter on the virtual radio that streams a scenario as 0x2A5F notifications.

    After `start()` it advertises 0x1822 and its name, and once per scenario second (1 s / speed
    of wall time) sends the scenario's point to every subscriber. Scenario time runs whether or
    not anyone listens, starting at `start(at_s)`. When the scenario says the wearable is out of
    range (`VitalsPoint.in_range` False) it vanishes and comes back by itself. The lifecycle
    (start/stop/vanish/come_back/go_away/inject) is devices.emulated.peripheral's.

    `spot_check_every_s` adds the Spot-check Measurement 0x2A5E: every that many scenario seconds
    the point is indicated (timestamped by the oximeter's clock, `clock_datetime(t)`) and each
    confirmed one is logged in `spot_checks`. `continuous=False` leaves 0x2A5F out: a spot-check-only
    oximeter, which the profile allows.

    `record_memory` > 0 makes it keep spot-checks (up to that many, oldest dropped first) and adds
    0x2A5E and the Record Access Control Point 0x2A52 (write + indicate, gatt.md "RACP"): a spot-check
    taken while no central has 0x2A5E indications on (`store_spot_check`, or a scheduled one) goes
    to `records`. `04 01` is answered `05 00 <count>`; `01 01` indicates every record on 0x2A5E
    (timestamp flag, status bit 9) and then `06 00 01 01`. Records stay until the oximeter stops
    (gatt.md does not describe "delete stored records": any other request gets "op code not
    supported"). `racp_mute` ignores RACP writes (a firmware that never answers).
    The clock: scenario time t is UTC `epoch + t`, shown as naive local time in `tz`.
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
        record_memory: int = 0,
        racp_mute: bool = False,
        epoch: float = SPOT_CHECK_EPOCH,
        tz: tzinfo = UTC,
    ) -> None:
        if record_memory < 0:
            raise ValueError("record_memory must not be negative")
        if not continuous and spot_check_every_s is None and not record_memory:
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
        self._racp_char: gatt.Characteristic[bytes] | None = None
        #: (scenario time, bytes) of the spot-checks a central confirmed, oldest first
        self.spot_checks: list[tuple[float, bytes]] = []
        self.record_memory = record_memory
        self.racp_mute = racp_mute
        self.epoch = epoch
        self.tz = tz
        #: the spot-checks kept in memory, oldest first (RACP reports them)
        self.records: deque[StoredSpotCheck] = deque(maxlen=record_memory or None)
        #: every RACP write received, in order
        self.racp_writes: list[bytes] = []
        #: (0x2A5E bytes) of the records a central confirmed during RACP uploads, in order
        self.uploaded: list[bytes] = []

    def clock_datetime(self, t: float) -> datetime:
        """What the oximeter's clock shows at scenario time `t`: naive local time in `tz`, whole seconds."""
        return datetime.fromtimestamp(self.epoch + t, self.tz).replace(tzinfo=None, microsecond=0)

    def store_spot_check(self, t: float) -> bytes:
        """Keep a spot-check of the scenario at time `t` (taken with nobody listening); its upload bytes."""
        if not self.record_memory:
            raise RuntimeError("this oximeter keeps no records (record_memory=0)")
        record = StoredSpotCheck(t, self.scenario.at(t), self.clock_datetime(t))
        self.records.append(record)
        return record.raw

    def _spot_listeners(self) -> list[Connection]:
        device, characteristic = self._device, self._spot_char
        if device is None or characteristic is None or not self._present:
            return []
        return [c for c in device.connections.values() if cccd_bit(device, c, characteristic, 0x02)]

    def _spot_check_due(self, tick: int) -> bool:
        every = self.spot_check_every_s
        return every is not None and tick % max(1, round(every / self.tick_s)) == 0

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
        if self.spot_check_every_s is not None or self.record_memory:
            self._spot_char = gatt.Characteristic(
                PLX_SPOT_CHECK_MEASUREMENT,
                gatt.Characteristic.Properties.INDICATE,
                gatt.Characteristic.READABLE,
                b"",
            )
            chars.append(self._spot_char)
        if self.record_memory:
            self._racp_char = gatt.Characteristic(
                RECORD_ACCESS_CONTROL_POINT,
                gatt.Characteristic.Properties.WRITE | gatt.Characteristic.Properties.INDICATE,
                gatt.Characteristic.WRITEABLE,
                gatt.CharacteristicValue(write=self._on_racp_write),
            )
            chars.append(self._racp_char)
        features = gatt.Characteristic(
            PLX_FEATURES,
            gatt.Characteristic.Properties.READ,
            gatt.Characteristic.READABLE,
            encode_features(storage=bool(self.record_memory)),
        )
        return [gatt.Service(PLX_SERVICE, [*chars, features])]

    def _forget_gatt(self) -> None:
        super()._forget_gatt()
        self._spot_char = self._racp_char = None

    def _observe(self, t: float, point: VitalsPoint) -> None:
        # a scheduled spot-check nobody listens to (out of range, or not subscribed) is kept
        if self.record_memory and self._spot_check_due(round(t / self.tick_s)) and not self._spot_listeners():
            self.store_spot_check(t)

    async def _send_tick(self, t: float, tick: int, point: VitalsPoint) -> None:
        if self.continuous:
            await self._notify(encode_continuous(point, demonstration=self.demonstration), t)
        if self._spot_check_due(round(t / self.tick_s)) and (
            not self.record_memory or self._spot_listeners()
        ):
            self._spawn(self._indicate_spot_check(t, encode_spot_check(point, self.clock_datetime(t))))

    def _on_racp_write(self, connection: Connection, value: bytes) -> None:
        # called by bumble inside the ATT write: answer in a task, after the write response
        data = bytes(value)
        self.racp_writes.append(data)
        if self.racp_mute:
            log.debug("oximeter: RACP write %s ignored (racp_mute)", data.hex(" "))
            return
        self._spawn(self._answer_racp(connection, data))

    async def _answer_racp(self, connection: Connection, data: bytes) -> None:
        """Carry out one RACP request (gatt.md "RACP") and indicate its answer on 0x2A52."""
        if not data:
            return
        op = data[0]
        operator = data[1] if len(data) > 1 else None
        if op not in (RacpOpCode.REPORT_STORED_RECORDS, RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS):
            await self._racp_indicate(connection, racp_response(op, RacpResponseCode.OP_CODE_NOT_SUPPORTED))
        elif operator is None:
            await self._racp_indicate(connection, racp_response(op, RacpResponseCode.INVALID_OPERATOR))
        elif operator != RacpOperator.ALL_RECORDS or len(data) != 2:
            await self._racp_indicate(connection, racp_response(op, RacpResponseCode.OPERATOR_NOT_SUPPORTED))
        elif op == RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS:
            await self._racp_indicate(connection, racp_number_of_records(len(self.records)))
        elif not self.records:
            await self._racp_indicate(connection, racp_response(op, RacpResponseCode.NO_RECORDS_FOUND))
        else:
            code = RacpResponseCode.SUCCESS
            for record in list(self.records):  # oldest first
                if not await self._upload_record(connection, record.raw):
                    code = RacpResponseCode.PROCEDURE_NOT_COMPLETED
                    break
            await self._racp_indicate(connection, racp_response(op, code))

    async def _upload_record(self, connection: Connection, raw: bytes) -> bool:
        device, characteristic = self._device, self._spot_char
        if device is None or characteristic is None or not cccd_bit(device, connection, characteristic, 0x02):
            return False
        try:
            await device.indicate_subscriber(connection, characteristic, raw)
        except Exception as exc:  # the link died under us
            log.debug("oximeter: stored record to %s failed: %r", connection.peer_address, exc)
            return False
        self.uploaded.append(raw)
        return True

    async def _racp_indicate(self, connection: Connection, value: bytes) -> None:
        device, characteristic = self._device, self._racp_char
        if device is None or characteristic is None or not cccd_bit(device, connection, characteristic, 0x02):
            log.debug("oximeter: RACP answer %s not sent: indications of 0x2A52 are off", value.hex(" "))
            return
        try:
            await device.indicate_subscriber(connection, characteristic, value)
        except Exception as exc:  # the link died under us
            log.debug("oximeter: RACP answer to %s failed: %r", connection.peer_address, exc)

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
