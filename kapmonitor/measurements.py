"""Measurement types that flow from device drivers into the Session: plain frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag, StrEnum


class Param(StrEnum):
    """A physiological parameter; the value is its stable storage code."""

    SPO2 = "spo2"  # %
    PULSE_RATE = "pulse"  # /min, from the oximeter
    PERFUSION_INDEX = "pi"  # %, pulse amplitude index
    HEART_RATE = "hr"  # /min, from a heart-rate strap
    SYSTOLIC = "sys"  # mmHg
    DIASTOLIC = "dia"  # mmHg
    MAP = "map"  # mmHg
    BATTERY = "battery"  # %


UNITS: dict[Param, str] = {
    Param.SPO2: "%",
    Param.PULSE_RATE: "/min",
    Param.PERFUSION_INDEX: "%",
    Param.HEART_RATE: "/min",
    Param.SYSTOLIC: "mmHg",
    Param.DIASTOLIC: "mmHg",
    Param.MAP: "mmHg",
    Param.BATTERY: "%",
}


class Quality(IntFlag):
    """Signal-quality and provenance flags carried with a value (from device status bits)."""

    NONE = 0
    QUESTIONABLE = 1  # device says the value is questionable
    INVALID = 2  # device says the value is invalid
    LOW_PERFUSION = 4
    POOR_SIGNAL = 8  # inadequate, poor or erratic signal, nonpulsatile
    SENSOR_OFF = 16  # sensor unconnected, displaced or disconnected
    FROM_STORAGE = 32  # read from the device's memory, not live
    DEMO = 64  # device says it is in demonstration or test mode
    SEARCHING = 128  # signal analysis ongoing / searching for pulse


@dataclass(frozen=True, slots=True)
class Numeric:
    """One value of one parameter at one instant.

    `value` is None when the device reported "no valid value" (an IEEE-11073 special code or a
    proprietary invalid marker): such a sample is recorded as a gap, never plotted or alarmed on.
    `mono` orders and times the sample (monotonic seconds); `wall` is the UTC record time.
    """

    param: Param
    value: float | None
    mono: float
    wall: float
    device: str
    quality: Quality = Quality.NONE


@dataclass(frozen=True, slots=True)
class Waveform:
    """Consecutive samples of a waveform (e.g. pleth) at a fixed rate, first sample at `mono`."""

    name: str
    rate_hz: float
    samples: tuple[int, ...]
    mono: float
    wall: float
    device: str


class BPStatus(IntFlag):
    """Blood-pressure measurement status (0x2A35 status bits, gatt.md "Blood Pressure Service")."""

    NONE = 0
    BODY_MOVEMENT = 1
    CUFF_TOO_LOOSE = 2
    IRREGULAR_PULSE = 4
    PULSE_ABOVE_RANGE = 8
    PULSE_BELOW_RANGE = 16
    IMPROPER_POSITION = 32
    MEASUREMENT_ERROR = 64  # the cuff reported no valid systolic/diastolic (all NaN)


@dataclass(frozen=True, slots=True)
class BloodPressure:
    """One cuff reading, in mmHg (a kPa reading is converted by the parser's driver).

    `mono`/`wall` are when the console received it; `measured_wall` is the cuff's own timestamp
    (UTC) when it sent one. `stored` marks a reading uploaded from the cuff's memory after a
    reconnect: it is placed by `measured_wall`, recorded once, and never raises a fresh alarm.
    """

    systolic: float | None
    diastolic: float | None
    mean: float | None
    pulse_rate: float | None
    mono: float
    wall: float
    device: str
    measured_wall: float | None = None
    stored: bool = False
    status: BPStatus = BPStatus.NONE
    user_id: int | None = None


class DeviceState(StrEnum):
    """Connection state of a device as the console sees it."""

    SEARCHING = "searching"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"  # link dropped or data stopped; reconnecting
    DISCONNECTED = "disconnected"  # closed on purpose


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What a device is: its id (address), advertised name and kind.

    `streaming` devices (oximeters, HR straps) send data continuously, so silence means trouble
    (the staleness watchdog); a BP cuff sends a reading now and then and is not watched that way.
    A `placeholder` stands for a role still searching for its device: shown, never recorded.
    """

    device: str
    name: str
    kind: str  # e.g. "pulse-oximeter"
    streaming: bool = True
    placeholder: bool = False


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A change of device state, or a note about a device (malformed packet, battery...)."""

    device: str
    state: DeviceState | None
    detail: str
    mono: float
    wall: float


@dataclass(frozen=True, slots=True)
class MalformedPacket:
    """A packet a parser refused: counted and logged with its bytes, never plotted."""

    device: str
    characteristic: str
    data: bytes
    error: str
    mono: float
    wall: float


Measurement = Numeric | Waveform | BloodPressure


@dataclass(slots=True)
class DeviceCounters:
    """Per-device packet counters kept by the session."""

    packets: int = 0
    malformed: int = 0
    last_data_mono: float | None = None
    extra: dict[str, int] = field(default_factory=dict)
