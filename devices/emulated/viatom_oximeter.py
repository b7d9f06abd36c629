"""An emulated Viatom PC-60FW: Nordic UART GATT server on the VirtualRadio streaming `AA 55` frames."""

from __future__ import annotations

from bumble import gatt
from bumble.core import UUID
from bumble.device import Connection

from devices.emulated.peripheral import DEFAULT_ADVERTISING_INTERVAL_MS
from devices.emulated.pleth import PlethSynth
from devices.emulated.plx_oximeter import EmulatedPlxOximeter
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import Scenario, VitalsPoint
from devices.viatom.parser import (
    ENABLE_PARAMS,
    ENABLE_WAVE,
    PLETH_RATE_HZ,
    PLETH_SAMPLES_PER_FRAME,
    build_params,
    build_pleth,
)

# Nordic UART service (gatt.md, "Proprietary oximeters")
NUS_SERVICE = UUID("6e400001-b5a3-f393-e0a9-e50e24dcca9e", "Nordic UART")
NUS_WRITE = UUID("6e400002-b5a3-f393-e0a9-e50e24dcca9e", "NUS RX (write)")
NUS_NOTIFY = UUID("6e400003-b5a3-f393-e0a9-e50e24dcca9e", "NUS TX (notify)")

DEFAULT_NAME = "PC-60FW"
#: bytes per notification: the default ATT MTU of 23 leaves 20 (gatt.md)
DEFAULT_CHUNK = 20


class StreamingOximeter(EmulatedPlxOximeter):
    """Shared machinery of the proprietary emulators: the PLX emulator's lifecycle, a faster tick.

    Same API as EmulatedPlxOximeter (start/stop/vanish/come_back/go_away/inject/speed/sent), through
    the hooks of devices.emulated.peripheral.TickingPeripheral: subclasses return their GATT table
    from `_gatt_services` (with the streaming characteristic in `_stream_char`, so that inject() and
    the `sent` log work unchanged) and produce bytes in `_send_tick` once every `tick_s` scenario
    seconds. No Battery or Device Information service, as on the real units.
    """

    service_uuid: UUID = NUS_SERVICE
    standard_services = False

    def __init__(
        self,
        radio: VirtualRadio,
        scenario: Scenario,
        *,
        name: str,
        speed: float = 1.0,
        advertising_interval_ms: float = DEFAULT_ADVERTISING_INTERVAL_MS,
        address: str | None = None,
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
            history=history,
        )
        self.advertise_service = advertise_service

    def _advertised_uuids(self) -> list[UUID]:
        return [self.service_uuid] if self.advertise_service else []


def battery_level(percent: int) -> int:
    """Battery % → the 0–3 gauge of the PC-60 (quarters: <25 % → 0 … ≥75 % → 3)."""
    return max(0, min(3, percent * 4 // 100))


def params_frame(point: VitalsPoint) -> bytes:
    """The type 0x01 frame for a scenario point; sensor off → probe-off bit and SpO2/PR/PI 0."""
    if point.sensor_off or point.spo2 is None or point.pulse is None:
        return build_params(
            spo2=0, pulse_rate=0, pi_raw=0, probe_off=True, battery_level=battery_level(point.battery)
        )
    pi_raw = 0 if point.pi is None else max(0, min(255, round(point.pi * 10)))
    return build_params(
        spo2=int(point.spo2),
        pulse_rate=int(point.pulse),
        pi_raw=pi_raw,
        battery_level=battery_level(point.battery),
    )


#: ticks (pleth frames) per parameter frame: one parameter frame per scenario second
TICKS_PER_PARAMS = round(PLETH_RATE_HZ / PLETH_SAMPLES_PER_FRAME)


def tick_frames(synth: PlethSynth, point: VitalsPoint, tick: int, *, params: bool, wave: bool) -> bytes:
    """The frames one 0.1 s tick adds to the stream: a parameter frame every second, a pleth frame.

    The pleth synthesiser advances whether or not the wave is enabled (the finger keeps pulsing).
    """
    samples = synth.next(PLETH_SAMPLES_PER_FRAME, point.pulse, point.pi)
    out = bytearray()
    if params and tick % TICKS_PER_PARAMS == 0:
        out += params_frame(point)
    if wave:
        out += build_pleth([s.value for s in samples], [s.beat for s in samples])
    return bytes(out)


def take_chunks(buffer: bytearray, size: int) -> list[bytes]:
    """Cut whole `size`-byte notifications off the front of `buffer`; the rest waits for more bytes."""
    chunks: list[bytes] = []
    while len(buffer) >= size:
        chunks.append(bytes(buffer[:size]))
        del buffer[:size]
    return chunks


class EmulatedViatomOximeter(StreamingOximeter):
    """A PC-60FW on the virtual radio: writes of the enable commands start the stream.

    Every 0.1 scenario second it makes one pleth frame (5 samples, 50 Hz) and, once per scenario
    second, a parameter frame; the frames go into one byte stream that is sent in `chunk_size`
    pieces as soon as that many bytes wait, so frames share notifications and split across them.
    Streaming stops (and the enables are forgotten) when no central is connected.
    """

    tick_s = PLETH_SAMPLES_PER_FRAME / PLETH_RATE_HZ  # one 5-sample pleth frame per tick
    service_uuid = NUS_SERVICE

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
        chunk_size: int = DEFAULT_CHUNK,
        history: int = 1000,
    ) -> None:
        super().__init__(
            radio,
            scenario,
            name=name,
            speed=speed,
            advertising_interval_ms=advertising_interval_ms,
            address=address,
            history=history,
        )
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.chunk_size = chunk_size
        self.synth = PlethSynth(PLETH_RATE_HZ, seed=scenario.seed if seed is None else seed, full_scale=127)
        self.params_enabled = False
        self.wave_enabled = False
        self.writes: list[bytes] = []
        self._out = bytearray()

    def _gatt_services(self) -> list[gatt.Service]:
        self._stream_char = gatt.Characteristic(
            NUS_NOTIFY, gatt.Characteristic.Properties.NOTIFY, gatt.Characteristic.READABLE, b""
        )
        rx: gatt.Characteristic[bytes] = gatt.Characteristic(
            NUS_WRITE,
            gatt.Characteristic.Properties.WRITE | gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
            gatt.Characteristic.WRITEABLE,
            gatt.CharacteristicValue(write=self._on_write),
        )
        return [gatt.Service(NUS_SERVICE, [self._stream_char, rx])]

    def _on_write(self, _connection: Connection, value: bytes) -> None:
        data = bytes(value)
        self.writes.append(data)
        if ENABLE_PARAMS in data:
            self.params_enabled = True
        if ENABLE_WAVE in data:
            self.wave_enabled = True

    async def _send_tick(self, t: float, tick: int, point: VitalsPoint) -> None:
        if not self.connections:
            self.params_enabled = self.wave_enabled = False
            self._out.clear()
            return
        self._out += tick_frames(self.synth, point, tick, params=self.params_enabled, wave=self.wave_enabled)
        for chunk in take_chunks(self._out, self.chunk_size):
            await self._notify(chunk, t)


__all__ = [
    "DEFAULT_NAME",
    "EmulatedViatomOximeter",
    "StreamingOximeter",
    "battery_level",
    "params_frame",
    "take_chunks",
    "tick_frames",
]
