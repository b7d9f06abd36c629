"""An emulated BerryMed BM1000 oximeter: BCI GATT server on the VirtualRadio streaming 5-byte packets."""

from __future__ import annotations

from bumble import gatt
from bumble.core import UUID

from devices.berrymed.parser import PACKETS_PER_NOTIFICATION, PLETH_RATE_HZ, build_packet
from devices.emulated.peripheral import DEFAULT_ADVERTISING_INTERVAL_MS
from devices.emulated.pleth import PlethSample, PlethSynth
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import Scenario, VitalsPoint
from devices.emulated.viatom_oximeter import StreamingOximeter

# gatt.md, "Proprietary oximeters" (BerryMed BM1000 family)
BCI_SERVICE = UUID("49535343-fe7d-4ae5-8fa9-9fafd205e455", "BerryMed BCI")
BCI_NOTIFY = UUID("49535343-1e4d-4bd9-ba61-23c647249616", "BCI notify")

DEFAULT_NAME = "BerryMed"


def packet_for(point: VitalsPoint, sample: PlethSample) -> bytes:
    """One BCI packet for a scenario point and one pleth sample.

    Sensor off → "no finger" (byte 2 bit 4) with the invalid markers SpO2 127, PR 255 and a flat
    pleth. Signal strength follows PI (2 steps per %, capped at 15); motion artefact drops it to 1.
    """
    if point.sensor_off or point.spo2 is None or point.pulse is None:
        return build_packet(spo2=None, pulse_rate=None, pleth=0, no_finger=True)
    strength = 1 if point.artefact else max(0, min(15, round((point.pi or 0.0) * 2)))
    pleth = max(0, min(100, sample.value))
    return build_packet(
        spo2=int(point.spo2),
        pulse_rate=min(254, int(point.pulse)),
        pleth=pleth,
        signal_strength=strength,
        bar_graph=pleth * 15 // 100,
        beat=sample.beat,
    )


def notification_for(synth: PlethSynth, point: VitalsPoint) -> bytes:
    """One notification: the next four pleth samples of `synth` as four packets (0.04 s at 100 Hz)."""
    samples = synth.next(PACKETS_PER_NOTIFICATION, point.pulse, point.pi)
    return b"".join(packet_for(point, s) for s in samples)


class EmulatedBerryMedOximeter(StreamingOximeter):
    """A BerryMed oximeter on the virtual radio: streams as soon as notifications are on.

    Every 0.04 scenario second it sends one notification of four packets (100 packets per scenario
    second, gatt.md), so 25 × speed notifications per wall second. `advertise_service=False` mimics
    the units that advertise only their name.
    """

    tick_s = PACKETS_PER_NOTIFICATION / PLETH_RATE_HZ
    service_uuid = BCI_SERVICE

    def __init__(
        self,
        radio: VirtualRadio,
        scenario: Scenario,
        *,
        name: str = DEFAULT_NAME,
        speed: float = 1.0,
        advertising_interval_ms: float = DEFAULT_ADVERTISING_INTERVAL_MS,
        address: str | None = None,
        seed: int | None = None,
        advertise_service: bool = True,
        history: int = 1000,
    ) -> None:
        super().__init__(
            radio,
            scenario,
            name=name,
            speed=speed,
            advertising_interval_ms=advertising_interval_ms,
            address=address,
            advertise_service=advertise_service,
            history=history,
        )
        self.synth = PlethSynth(PLETH_RATE_HZ, seed=scenario.seed if seed is None else seed, full_scale=100)

    def _gatt_services(self) -> list[gatt.Service]:
        self._stream_char = gatt.Characteristic(
            BCI_NOTIFY, gatt.Characteristic.Properties.NOTIFY, gatt.Characteristic.READABLE, b""
        )
        return [gatt.Service(BCI_SERVICE, [self._stream_char])]

    async def _send_tick(self, t: float, tick: int, point: VitalsPoint) -> None:
        if not self.connections:
            return
        await self._notify(notification_for(self.synth, point), t)


__all__ = ["DEFAULT_NAME", "EmulatedBerryMedOximeter", "notification_for", "packet_for"]
