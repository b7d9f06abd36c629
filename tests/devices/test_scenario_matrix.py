"""Every scenario on every emulated device kind where it makes sense: the episode reaches the wire.

Each kind's own encoder (what the emulator sends) is decoded with the app's own driver decoder, so
a scenario that a kind ignored, or encoded wrongly, fails here. The cases that make no sense are
listed with the reason (NOT_APPLICABLE); the radio-level behaviour (leaving range, pairing,
stored readings) is tested in tests/devices/test_emulated_*.py and tests/integration.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from devices.berrymed.driver import berrymed_spec
from devices.berrymed.parser import parse_packet
from devices.bp.driver import bp_spec
from devices.bp.parser import ParseError as BPParseError
from devices.driver import DriverSpec
from devices.emulated.berrymed_oximeter import packet_for
from devices.emulated.bp_cuff import encode_reading
from devices.emulated.hr_strap import encode_measurement
from devices.emulated.malformed import (
    BERRYMED_STRUCTURED,
    BP_STRUCTURED,
    HR_STRUCTURED,
    PLX_STRUCTURED,
    VIATOM_STRUCTURED,
)
from devices.emulated.pleth import PlethSample
from devices.emulated.plx_oximeter import encode_continuous
from devices.emulated.scenario import SCENARIOS, TRANSPORT_FAULTS, VitalsPoint
from devices.emulated.viatom_oximeter import params_frame
from devices.hr.driver import hr_spec
from devices.hr.parser import ParseError as HRParseError
from devices.plx.driver import plx_spec
from devices.plx.parser import ParseError
from devices.viatom.driver import viatom_spec
from kapmonitor.measurements import BloodPressure, BPStatus, Measurement, Numeric, Param, Quality

KINDS = ("plx", "viatom", "berrymed", "hr", "bp")
OXIMETERS = ("plx", "viatom", "berrymed")

#: (scenario, kind) pairs that make no sense, and why.
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    **{("desaturation", k): "measures no SpO2" for k in ("hr", "bp")},
    **{("hypertensive_peak", k): "measures no blood pressure" for k in (*OXIMETERS, "hr")},
    ("artefact", "viatom"): "the PC-60 protocol has no artefact or signal-quality field",
    ("artefact", "hr"): "0x2A37 has no signal-quality field (the values are erratic, nothing flags them)",
    ("sensor_off", "bp"): "the oximeter's finger-out episode: the cuff is a separate device",
    ("low_battery", "berrymed"): "the BCI protocol carries no battery level",
    ("disconnect_return", "bp"): "the cuff is tested leaving and returning with vanish() (stored readings)",
}

#: Scenario time inside each scenario's episode (scenario.py's catalogue).
EPISODE_AT = {
    "normal": 100.0,
    "desaturation": 215.0,
    "bradycardia": 180.0,
    "tachycardia": 180.0,
    "hypertensive_peak": 30.0 + 40 * 60.0,
    "artefact": 70.0,
    "sensor_off": 70.0,
    "low_battery": 300.0,
    "disconnect_return": 70.0,
    "malformed": 100.0,
}


def _wire(kind: str, point: VitalsPoint) -> list[Measurement]:
    """What the app decodes from the kind's encoding of `point` (its own decoder, fresh state)."""
    match kind:
        case "plx":
            raw, decode = encode_continuous(point), plx_spec().subscriptions[0].decode
        case "viatom":
            raw, decode = params_frame(point), viatom_spec().subscriptions[0].decode
        case "berrymed":
            raw, decode = packet_for(point, PlethSample(50, False)), berrymed_spec().subscriptions[0].decode
        case "hr":
            raw, decode = encode_measurement(point, [0.8]), hr_spec().subscriptions[0].decode
        case _:
            when = datetime(2026, 1, 1, 9, 0, tzinfo=UTC).replace(tzinfo=None)
            raw, decode = encode_reading(point, when), bp_spec(UTC).subscriptions[0].decode
    return list(decode(raw, "dev", 1.0, 2.0))


def _numeric(out: list[Measurement], param: Param) -> Numeric:
    return next(m for m in out if isinstance(m, Numeric) and m.param == param)


def _bp(out: list[Measurement]) -> BloodPressure:
    (reading,) = out
    assert isinstance(reading, BloodPressure)
    return reading


def _pulse(kind: str, out: list[Measurement]) -> float | None:
    if kind == "bp":
        return _bp(out).pulse_rate
    return _numeric(out, Param.HEART_RATE if kind == "hr" else Param.PULSE_RATE).value


Check = Callable[[str, VitalsPoint, list[Measurement]], None]


def _normal(kind: str, point: VitalsPoint, out: list[Measurement]) -> None:
    pulse = _pulse(kind, out)
    assert pulse is not None and 55 <= pulse <= 100
    if kind in OXIMETERS:
        spo2 = _numeric(out, Param.SPO2).value
        assert spo2 is not None and spo2 >= 94
    if kind == "bp":
        reading = _bp(out)
        assert reading.systolic is not None and 100 <= reading.systolic <= 140


def _desaturation(kind: str, point: VitalsPoint, out: list[Measurement]) -> None:
    spo2 = _numeric(out, Param.SPO2).value
    assert spo2 is not None and spo2 <= 86


def _bradycardia(kind: str, point: VitalsPoint, out: list[Measurement]) -> None:
    pulse = _pulse(kind, out)
    assert pulse is not None and pulse < 50


def _tachycardia(kind: str, point: VitalsPoint, out: list[Measurement]) -> None:
    pulse = _pulse(kind, out)
    assert pulse is not None and pulse > 120
    if kind == "bp":
        assert _bp(out).status & BPStatus.PULSE_ABOVE_RANGE


def _hypertensive_peak(kind: str, point: VitalsPoint, out: list[Measurement]) -> None:
    reading = _bp(out)
    assert reading.systolic is not None and reading.systolic >= 165
    assert reading.diastolic is not None and reading.diastolic >= 95


def _artefact(kind: str, point: VitalsPoint, out: list[Measurement]) -> None:
    if kind == "plx":
        assert _numeric(out, Param.SPO2).quality & (Quality.QUESTIONABLE | Quality.POOR_SIGNAL)
    elif kind == "berrymed":
        assert parse_packet(packet_for(point, PlethSample(50, False))).signal_strength == 1
    else:
        assert _bp(out).status & BPStatus.BODY_MOVEMENT


def _sensor_off(kind: str, point: VitalsPoint, out: list[Measurement]) -> None:
    param = Param.HEART_RATE if kind == "hr" else Param.SPO2
    value = _numeric(out, param)
    assert value.value is None
    if kind != "hr":
        assert value.quality & Quality.SENSOR_OFF


def _low_battery(kind: str, point: VitalsPoint, out: list[Measurement]) -> None:
    assert point.battery < 10
    if kind == "viatom":  # the PC-60's own four-step gauge, decoded
        level = _numeric(out, Param.BATTERY).value
        assert level is not None and level <= 25
    # PLX, HR and the cuff serve the scenario's level on Battery 0x2A19 (tests/devices/test_emulated_*)


def _disconnect_return(kind: str, point: VitalsPoint, out: list[Measurement]) -> None:
    # the ticking emulators leave the radio while the scenario says so (tests/devices/test_emulated_*,
    # tests/integration/test_device_kinds.py); the point they would send is still a valid one
    assert not point.in_range
    assert _pulse(kind, out) is not None


#: each kind's hand-made malformed packets, its decoder, and its own error (the proprietary
#: parsers share the PLX one)
MALFORMED: dict[str, tuple[tuple[bytes, ...], Callable[[], DriverSpec], type[ValueError]]] = {
    "plx": (PLX_STRUCTURED, plx_spec, ParseError),
    "viatom": (VIATOM_STRUCTURED, viatom_spec, ParseError),
    "berrymed": (BERRYMED_STRUCTURED, berrymed_spec, ParseError),
    "hr": (HR_STRUCTURED, hr_spec, HRParseError),
    "bp": (BP_STRUCTURED, lambda: bp_spec(UTC), BPParseError),
}


def _malformed(kind: str, point: VitalsPoint, out: list[Measurement]) -> None:
    assert "malformed" in TRANSPORT_FAULTS
    packets, spec, error = MALFORMED[kind]
    decode = spec().subscriptions[0].decode
    for raw in packets:
        with pytest.raises(error):
            decode(raw, "dev", 1.0, 2.0)


CHECKS: dict[str, Check] = {
    "normal": _normal,
    "desaturation": _desaturation,
    "bradycardia": _bradycardia,
    "tachycardia": _tachycardia,
    "hypertensive_peak": _hypertensive_peak,
    "artefact": _artefact,
    "sensor_off": _sensor_off,
    "low_battery": _low_battery,
    "disconnect_return": _disconnect_return,
    "malformed": _malformed,
}

CASES = [
    pytest.param(name, kind, id=f"{name}-{kind}")
    for name in SCENARIOS
    for kind in KINDS
    if (name, kind) not in NOT_APPLICABLE
]


def test_every_scenario_of_the_issue_exists_and_has_checks() -> None:
    issue = {
        "normal",
        "desaturation",
        "bradycardia",
        "tachycardia",
        "hypertensive_peak",
        "artefact",
        "sensor_off",
        "low_battery",
        "disconnect_return",
        "malformed",
    }
    assert set(SCENARIOS) == issue == set(CHECKS) == set(EPISODE_AT)
    assert all(name in SCENARIOS and kind in KINDS for name, kind in NOT_APPLICABLE)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_the_scenario_reaches_the_wire_of_the_device_kind(name: str, kind: str) -> None:
    point = SCENARIOS[name](3).at(EPISODE_AT[name])
    CHECKS[name](kind, point, _wire(kind, point))
