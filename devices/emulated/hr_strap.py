"""An emulated heart-rate chest strap (0x180D): a bumble GATT server on the VirtualRadio fed by a scenario."""

from __future__ import annotations

from collections.abc import Callable

from bumble import gatt
from bumble.core import UUID

from devices.battery import build_battery_level
from devices.emulated.peripheral import DEFAULT_ADVERTISING_INTERVAL_MS, TickingPeripheral
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import Scenario, VitalsPoint
from devices.hr.parser import MAX_ENERGY_KJ, BodySensorLocation, SensorContact, build_heart_rate, rr_units

# UUIDs (gatt.md, "Heart Rate 0x180D, Battery 0x180F, Device Information 0x180A")
HR_SERVICE = UUID.from_16_bits(0x180D, "Heart Rate")
HR_MEASUREMENT = UUID.from_16_bits(0x2A37, "Heart Rate Measurement")
BODY_SENSOR_LOCATION = UUID.from_16_bits(0x2A38, "Body Sensor Location")

DEFAULT_NAME = "KAP-Emu HRM"
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


class EmulatedHeartRateStrap(TickingPeripheral):
    """A heart-rate chest strap on the virtual radio that streams a scenario as 0x2A37 notifications.

    After `start()` it advertises 0x180D and its name, and once per scenario second (1 s / speed of
    wall time) sends the scenario's pulse with the RR intervals of the beats in that second and the
    contact status; every 10th notification carries the energy expended. Body Sensor Location reads
    "chest"; Battery and Device Information are there as on a real strap. Scenario time runs whether
    or not anyone listens, starting at `start(at_s)`; out of range (`VitalsPoint.in_range` False) it
    vanishes and comes back by itself. Same lifecycle API as EmulatedPlxOximeter (both are
    devices.emulated.peripheral.TickingPeripheral).
    """

    service_uuids = (HR_SERVICE,)

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
        self._beats = BeatClock(0.0)
        self._rr: list[float] = []
        self._energy_kj = 0.0
        self._measurements = 0

    @property
    def energy_expended(self) -> int:
        """Energy expended so far (kJ, saturating at 0xFFFF as the profile says)."""
        return min(MAX_ENERGY_KJ, int(self._energy_kj))

    def _gatt_services(self) -> list[gatt.Service]:
        # The HR service is built by hand, not with bumble.profiles.heart_rate_service: that profile
        # serialises its own measurement objects (truncating RR intervals), while this strap must
        # send the bytes of our encoder and, through inject(), any raw bytes at all.
        self._stream_char = gatt.Characteristic(
            HR_MEASUREMENT, gatt.Characteristic.Properties.NOTIFY, gatt.Characteristic.READABLE, b""
        )
        location = gatt.Characteristic(
            BODY_SENSOR_LOCATION,
            gatt.Characteristic.Properties.READ,
            gatt.Characteristic.READABLE,
            bytes([BodySensorLocation.CHEST]),
        )
        return [gatt.Service(HR_SERVICE, [self._stream_char, location])]

    def _battery_bytes(self) -> bytes:
        return build_battery_level(self._battery)

    def _pulse_at(self, t: float) -> float | None:
        point = self.scenario.at(max(0.0, t))
        return None if point.sensor_off else point.pulse

    def _on_start(self, at_s: float) -> None:
        self._beats = BeatClock(at_s)

    def _observe(self, t: float, point: VitalsPoint) -> None:
        before = self._beats.beats
        self._rr = self._beats.beats_until(
            t, self._pulse_at
        )  # the heart beats whether or not the strap is heard
        self._energy_kj += ENERGY_KJ_PER_BEAT * (self._beats.beats - before)

    async def _send_tick(self, t: float, tick: int, point: VitalsPoint) -> None:
        energy = self.energy_expended if self._measurements % ENERGY_EVERY == 0 else None
        self._measurements += 1
        await self._notify(encode_measurement(point, self._rr, energy_kj=energy), t)
