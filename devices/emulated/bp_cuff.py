"""An emulated Blood Pressure cuff (0x1810): a bumble GATT server on the VirtualRadio measuring a scenario."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from bumble import gatt
from bumble.core import UUID
from bumble.device import Connection

from devices.bp.parser import (
    MMHG_PER_KPA,
    BPFeature,
    BPMeasurementStatus,
    build_bp_feature,
    build_bp_measurement,
)
from devices.emulated.peripheral import DEFAULT_ADVERTISING_INTERVAL_MS, EmulatedPeripheral, cccd_bit
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import Scenario, VitalsPoint

log = logging.getLogger(__name__)

# UUIDs (gatt.md, "Blood Pressure Service 0x1810")
BP_SERVICE = UUID.from_16_bits(0x1810, "Blood Pressure")
BP_MEASUREMENT = UUID.from_16_bits(0x2A35, "Blood Pressure Measurement")
INTERMEDIATE_CUFF_PRESSURE = UUID.from_16_bits(0x2A36, "Intermediate Cuff Pressure")
BP_FEATURE = UUID.from_16_bits(0x2A49, "Blood Pressure Feature")

DEFAULT_NAME = "KAP-Emu BP"
#: UTC wall time at scenario time 0 unless told otherwise: 2026-01-01T09:00:00Z (a fixed morning, so
#: that runs are repeatable; the app passes its clock's wall time).
DEFAULT_EPOCH = 1_767_258_000.0
#: How many readings the cuff keeps while nobody listens (real cuffs keep ~60–100 per user);
#: the oldest is dropped first.
DEFAULT_MEMORY = 100
#: Pulse above / below these (/min) sets the pulse-rate range field to 1 / 2.
PULSE_UPPER_LIMIT = 120.0
PULSE_LOWER_LIMIT = 40.0
#: The features this emulator reports: it can set exactly these status bits.
FEATURES = BPFeature.BODY_MOVEMENT_DETECTION | BPFeature.PULSE_RATE_RANGE_DETECTION


def measurement_status(point: VitalsPoint) -> BPMeasurementStatus:
    """Status bits for a scenario point: body movement during artefact, the pulse-rate range field."""
    status = BPMeasurementStatus(0)
    if point.artefact:
        status |= BPMeasurementStatus.BODY_MOVEMENT
    if point.pulse is not None and point.pulse > PULSE_UPPER_LIMIT:
        status |= BPMeasurementStatus.PULSE_RATE_RANGE_LOW_BIT  # field value 1: above the upper limit
    elif point.pulse is not None and point.pulse < PULSE_LOWER_LIMIT:
        status |= BPMeasurementStatus.PULSE_RATE_RANGE_HIGH_BIT  # field value 2: below the lower limit
    return status


def _unit(value: float | None, kpa: bool) -> float | None:
    if value is None or not kpa:
        return value
    return round(value / MMHG_PER_KPA, 1)


def encode_reading(
    point: VitalsPoint, when: datetime, *, user_id: int | None = 1, kpa: bool = False
) -> bytes:
    """The 0x2A35 bytes of one reading: pressures, the cuff's local Date Time `when`, pulse, user, status.

    Built with devices.bp.parser.build_bp_measurement; a missing value is the SFLOAT NaN code (the
    cuff's "measurement failed"). With `kpa` the pressures are sent in kPa (0.1 kPa resolution).
    """
    return build_bp_measurement(
        systolic=_unit(point.systolic, kpa),
        diastolic=_unit(point.diastolic, kpa),
        mean=_unit(point.mean, kpa),
        kpa=kpa,
        timestamp=when,
        pulse_rate=point.pulse if point.pulse is not None else float("nan"),
        user_id=user_id,
        status=int(measurement_status(point)),
    )


def cuff_pressures(point: VitalsPoint, steps: int) -> list[float]:
    """Cuff pressures (mmHg) of one cycle: inflate 30 above systolic, deflate to 10 below diastolic."""
    if steps <= 0:
        return []
    top = (point.systolic or 120.0) + 30.0
    bottom = max(20.0, (point.diastolic or 80.0) - 10.0)
    if steps == 1:
        return [round(top)]
    return [float(round(top - (top - bottom) * i / (steps - 1))) for i in range(steps)]


def encode_intermediate(pressure: float, *, kpa: bool = False) -> bytes:
    """0x2A36: the cuff pressure in the systolic slot, diastolic and MAP NaN (gatt.md)."""
    return build_bp_measurement(systolic=_unit(pressure, kpa), diastolic=None, mean=None, kpa=kpa)


def encode_feature() -> bytes:
    """0x2A49: the features this emulator uses."""
    return build_bp_feature(int(FEATURES))


@dataclass(frozen=True)
class CuffReading:
    """One reading the cuff took: the scenario times its cycle started and ended, and its 0x2A35 bytes."""

    started: float  # the scenario point measured
    taken: float  # the cuff's time stamp (its clock at this scenario time)
    raw: bytes


class EmulatedBPCuff(EmulatedPeripheral):
    """A blood-pressure cuff on the virtual radio that measures the scenario when told or on a schedule.

    After `start()` it advertises 0x1810 and its name. `measure()` runs a cuff cycle: a few 0x2A36
    notifications (the cuff pressure while deflating, `cycle_step_s` scenario seconds apart), then
    one indicated 0x2A35 reading of the scenario's BP at the start of the cycle, stamped with the
    cuff's own clock at the end of it. With `interval_min` set, it measures by itself at scenario
    time at_s, at_s + interval, ...

    Stored readings: a reading taken while no central has indications of 0x2A35 enabled (nobody
    connected, or connected but not subscribed) is kept in memory (up to `memory` readings) and
    indicated, oldest first, as soon as a central subscribes, as real cuffs do (gatt.md).

    Its Battery Level (read-only) starts at `battery` and follows the scenario's battery down at
    each measurement (the `low_battery` scenario). With `requires_pairing` a central must pair
    before it may subscribe (as with the A&D UA-651BLE, gatt.md).

    The cuff's clock: scenario time t is UTC wall time `epoch + t` (`wall_at`); the cuff shows that
    as local time in `tz`, off by `clock_offset_s` (a cuff's hand-set clock is rarely exact).
    The presence lifecycle (start/stop/vanish/come_back/go_away) is devices.emulated.peripheral's.
    """

    service_uuids = (BP_SERVICE,)
    battery_notifies = False  # the cuff's Battery Level is read-only
    log_name = "cuff"

    def __init__(
        self,
        radio: VirtualRadio,
        scenario: Scenario,
        *,
        name: str = DEFAULT_NAME,
        speed: float = 1.0,
        epoch: float = DEFAULT_EPOCH,
        tz: tzinfo = UTC,
        clock_offset_s: float = 0.0,
        interval_min: float | None = None,
        cycle_steps: int = 4,
        cycle_step_s: float = 5.0,
        user_id: int | None = 1,
        kpa: bool = False,
        memory: int = DEFAULT_MEMORY,
        battery: int = 80,
        advertising_interval_ms: float = DEFAULT_ADVERTISING_INTERVAL_MS,
        address: str | None = None,
        manufacturer: str = "KAP Emulation",
        model: str = "BP-EMU-1",
        serial: str = "EMU-BP-0001",
        firmware: str = "0.1.0",
        history: int = 1000,
        requires_pairing: bool = False,
    ) -> None:
        if interval_min is not None and interval_min <= 0:
            raise ValueError("interval_min must be positive")
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
            battery=battery,
            requires_pairing=requires_pairing,
        )
        self.epoch = epoch
        self.tz = tz
        self.clock_offset_s = clock_offset_s
        self.interval_min = interval_min
        self.cycle_steps = cycle_steps
        self.cycle_step_s = cycle_step_s
        self.user_id = user_id
        self.kpa = kpa
        self._measurement: gatt.Characteristic[bytes] | None = None
        self._intermediate: gatt.Characteristic[bytes] | None = None
        self._deliver_lock = asyncio.Lock()  # stored readings go out before any newer one
        self._measure_lock = asyncio.Lock()  # one cuff cycle at a time
        self._started_at: float | None = None  # loop time of start()
        self._at_s = 0.0
        self._skipped_s = 0.0
        #: readings waiting for a subscriber, oldest first: (scenario time, 0x2A35 bytes)
        self.stored: deque[tuple[float, bytes]] = deque(maxlen=memory)
        #: (characteristic "2a35"/"2a36", scenario time or None for injected, bytes) of what went out
        self.sent: deque[tuple[str, float | None, bytes]] = deque(maxlen=history)
        #: every reading taken, delivered or stored, newest last
        self.readings: deque[CuffReading] = deque(maxlen=history)

    # -- properties ------------------------------------------------------------------------------
    @property
    def battery(self) -> int:
        """The battery level (%) the cuff reports."""
        return self._battery

    @battery.setter
    def battery(self, level: int) -> None:
        self._battery = level

    @property
    def scenario_time(self) -> float:
        """Scenario seconds now: `at_s` at start(), running at `speed`, plus any skip()."""
        if self._started_at is None:
            return self._at_s + self._skipped_s
        elapsed = asyncio.get_running_loop().time() - self._started_at
        return self._at_s + self._skipped_s + elapsed * self.speed

    def wall_at(self, t: float) -> float:
        """The true UTC wall time (POSIX seconds) at scenario time `t`."""
        return self.epoch + t

    def cuff_datetime(self, t: float) -> datetime:
        """What the cuff's clock shows at scenario time `t`: naive local time in `tz`, whole seconds."""
        shown = datetime.fromtimestamp(self.wall_at(t) + self.clock_offset_s, self.tz)
        return shown.replace(tzinfo=None, microsecond=0)

    @property
    def subscribed(self) -> bool:
        """Some central has indications of 0x2A35 enabled."""
        return bool(self._indication_targets())

    # -- lifecycle (start/stop/vanish/come_back/go_away: devices.emulated.peripheral) ------------
    def skip(self, seconds: float) -> None:
        """Move the scenario clock (and so the cuff's clock) forward `seconds` at once."""
        if seconds < 0:
            raise ValueError("the scenario clock does not go back")
        self._skipped_s += seconds

    def inject(self, raw: bytes, *, intermediate: bool = False) -> asyncio.Task[None]:
        """Send `raw` (any bytes) as a 0x2A35 indication, or a 0x2A36 notification when `intermediate`.

        Injected bytes are never stored: nobody subscribed means they are dropped. Returns the
        sending task; await it to know it has gone out (an indication: confirmed).
        """
        return self._spawn(self._send_injected(bytes(raw), intermediate))

    async def measure(self) -> bytes:
        """Run one cuff cycle and deliver (or store) its reading; returns the 0x2A35 bytes."""
        async with self._measure_lock:
            started = self.scenario_time
            point = self.scenario.at(started)
            # a cuff's battery drains with use: it follows the scenario's (never rising on its own)
            self._battery = min(self._battery, point.battery)
            for pressure in cuff_pressures(point, self.cycle_steps):
                await self._send_intermediate(encode_intermediate(pressure, kpa=self.kpa), self.scenario_time)
                await asyncio.sleep(self.cycle_step_s / self.speed)
            done = self.scenario_time
            raw = encode_reading(point, self.cuff_datetime(done), user_id=self.user_id, kpa=self.kpa)
            self.readings.append(CuffReading(started, done, raw))
            async with self._deliver_lock:
                if not await self._indicate(raw, done):  # nobody took it: keep it for later
                    self.stored.append((done, raw))
            return raw

    # -- internals -------------------------------------------------------------------------------
    async def _schedule(self) -> None:
        assert self.interval_min is not None
        period = self.interval_min * 60.0
        next_at = self.scenario_time
        while True:
            try:
                await self.measure()
            except asyncio.CancelledError:
                raise
            except Exception:  # the cuff keeps its schedule, like a device would
                log.exception("cuff: scheduled measurement failed")
            next_at += period
            now = self.scenario_time
            if next_at < now:  # a skip() jumped over some: measure next at the next slot
                next_at += period * ((now - next_at) // period + 1)
            await asyncio.sleep((next_at - now) / self.speed)

    async def _send_injected(self, raw: bytes, intermediate: bool) -> None:
        if intermediate:
            await self._send_intermediate(raw, None)
        else:
            await self._indicate(raw, None)

    def _indication_targets(self) -> list[Connection]:
        device, characteristic = self._device, self._measurement
        if device is None or characteristic is None:
            return []
        return [c for c in device.connections.values() if cccd_bit(device, c, characteristic, 0x02)]

    async def _indicate(self, value: bytes, t: float | None) -> bool:
        """Indicate `value` to every subscriber; True when at least one confirmed it."""
        device, characteristic = self._device, self._measurement
        if device is None or characteristic is None or not self._present:
            return False
        delivered = False
        for connection in self._indication_targets():
            try:
                await device.indicate_subscriber(connection, characteristic, value)
                delivered = True
            except Exception as exc:  # the link died under us
                log.debug("cuff: indication to %s failed: %r", connection.peer_address, exc)
        if delivered:
            self.sent.append(("2a35", t, value))
        return delivered

    async def _send_intermediate(self, value: bytes, t: float | None) -> None:
        device, characteristic = self._device, self._intermediate
        if device is None or characteristic is None or not self._present:
            return
        self.sent.append(("2a36", t, value))
        await self._notify_subscribers(characteristic, value)

    def _on_subscription(self, connection: object, _notify: bool, indicate: bool) -> None:
        # called by bumble while it handles the CCCD write: upload the memory in a task
        if indicate and self.stored:
            self._spawn(self._upload())

    async def _upload(self) -> None:
        """Indicate the stored readings, oldest first; one that cannot be delivered stays stored."""
        async with self._deliver_lock:
            while self.stored:
                t, raw = self.stored[0]
                if not await self._indicate(raw, t):
                    return
                self.stored.popleft()

    def _check_start(self, at_s: float) -> None:
        if at_s < 0:
            raise ValueError("scenario time must be >= 0")

    def _on_start(self, at_s: float) -> None:
        self._at_s = at_s
        self._started_at = asyncio.get_running_loop().time()

    def _on_stop(self) -> None:
        # freeze the scenario clock where it is (stored readings are kept)
        self._at_s = self.scenario_time - self._skipped_s
        self._started_at = None

    def _ticker_work(self, at_s: float) -> Coroutine[Any, Any, None] | None:
        return self._schedule() if self.interval_min is not None else None

    def _forget_gatt(self) -> None:
        super()._forget_gatt()
        self._measurement = self._intermediate = None

    def _gatt_services(self) -> list[gatt.Service]:
        self._measurement = gatt.Characteristic(
            BP_MEASUREMENT, gatt.Characteristic.Properties.INDICATE, gatt.Characteristic.READABLE, b""
        )
        self._measurement.on(self._measurement.EVENT_SUBSCRIPTION, self._on_subscription)
        self._intermediate = gatt.Characteristic(
            INTERMEDIATE_CUFF_PRESSURE,
            gatt.Characteristic.Properties.NOTIFY,
            gatt.Characteristic.READABLE,
            b"",
        )
        feature = gatt.Characteristic(
            BP_FEATURE, gatt.Characteristic.Properties.READ, gatt.Characteristic.READABLE, encode_feature()
        )
        return [gatt.Service(BP_SERVICE, [self._measurement, self._intermediate, feature])]
