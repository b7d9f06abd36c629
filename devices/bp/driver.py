"""Driver glue for the standard Blood Pressure profile (0x1810): subscriptions, decoding, stored readings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import tzinfo

from devices.bp.parser import parse_bp_measurement, parse_intermediate_cuff_pressure, to_blood_pressure
from devices.driver import Decoder, DriverSpec, Subscription, uuid16
from kapmonitor.measurements import Measurement

#: gatt.md, "Blood Pressure Service 0x1810"
BP_SERVICE = uuid16(0x1810)
BP_MEASUREMENT = uuid16(0x2A35)
INTERMEDIATE_CUFF_PRESSURE = uuid16(0x2A36)
BP_FEATURE = uuid16(0x2A49)

#: A reading whose cuff timestamp is more than this many seconds before it was received is one the
#: cuff kept in memory and uploads after a reconnect (gatt.md: "never treat an old reading as a new
#: one"). A cuff cycle takes ~30–60 s and indications arrive within seconds, so 120 s leaves room
#: for a cuff clock a minute off without calling a fresh reading stored.
DEFAULT_STORED_AFTER_S = 120.0


def bp_spec(tz: tzinfo, *, stored_after_s: float = DEFAULT_STORED_AFTER_S) -> DriverSpec:
    """The driver spec of a standard BP cuff whose clock shows local time in `tz`.

    0x2A35 (indicated) becomes a BloodPressure; see is_stored() for the `stored` flag. 0x2A36
    (notified during inflation) is parsed, so malformed packets are counted, but yields nothing:
    the core has no parameter for a live cuff pressure yet.
    """
    if stored_after_s < 0:
        raise ValueError("stored_after_s must not be negative")
    return DriverSpec(
        kind="blood-pressure",
        service_uuids=(BP_SERVICE,),
        subscriptions=(
            Subscription(BP_MEASUREMENT, measurement_decoder(tz, stored_after_s), "BP measurement 0x2A35"),
            Subscription(INTERMEDIATE_CUFF_PRESSURE, _decode_intermediate, "cuff pressure 0x2A36"),
        ),
        # a cuff reports a reading now and then: silence is normal, no data watchdog (a missed
        # scheduled reading is the BP schedule's "due" alert instead)
        streaming=False,
    )


def is_stored(measured_wall: float | None, wall: float, stored_after_s: float) -> bool:
    """Whether a reading measured at `measured_wall` and received at `wall` came from the cuff's memory.

    The 0x2A35 packet has no "from storage" bit, so the timestamp decides: older than
    `stored_after_s` before reception means stored. A reading without a (valid) timestamp, or one
    stamped in the future (a cuff clock running ahead), counts as live: there is nothing to place
    it by but its arrival.
    """
    return measured_wall is not None and wall - measured_wall > stored_after_s


def measurement_decoder(tz: tzinfo, stored_after_s: float = DEFAULT_STORED_AFTER_S) -> Decoder:
    """The 0x2A35 decoder: one BloodPressure per indication, `stored` set by is_stored()."""

    def decode(data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
        reading = to_blood_pressure(parse_bp_measurement(data), device=device, mono=mono, wall=wall, tz=tz)
        if is_stored(reading.measured_wall, wall, stored_after_s):
            reading = replace(reading, stored=True)
        return [reading]

    return decode


def _decode_intermediate(data: bytes, device: str, mono: float, wall: float) -> Sequence[Measurement]:
    parse_intermediate_cuff_pressure(data)  # raises ParseError on malformed bytes: counted by the link
    return []
