"""What a device driver is: how to find a device, what to subscribe to, how to turn bytes into values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kapmonitor.measurements import DeviceEvent, DeviceInfo, DeviceState, MalformedPacket, Measurement

#: Decodes one notification: (bytes, device id, mono, wall) -> measurements; raises the parser's
#: error when the bytes are malformed (the link catches it, counts and logs the packet).
#: A stateful decoder (a stream framer) also has `reset()`: the link calls it at each new connection,
#: so the partial frame a dropped link left behind is never glued to the new connection's bytes.
Decoder = Callable[[bytes, str, float, float], Sequence[Measurement]]


def reset_decoder(decode: Decoder) -> None:
    """Call the decoder's `reset()` if it has one (stream decoders); stateless ones have nothing to forget."""
    reset = getattr(decode, "reset", None)
    if callable(reset):
        reset()


def uuid16(short: int) -> str:
    """The 128-bit text form of a Bluetooth SIG 16-bit UUID (bleak compares lower-case 128-bit)."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


BATTERY_SERVICE = uuid16(0x180F)
BATTERY_LEVEL = uuid16(0x2A19)
DEVICE_INFORMATION = uuid16(0x180A)
#: Device Information strings (gatt.md, "Heart Rate 0x180D, Battery 0x180F, Device Information 0x180A")
DEVICE_INFO_STRINGS = {
    "manufacturer": uuid16(0x2A29),
    "model": uuid16(0x2A24),
    "serial": uuid16(0x2A25),
    "hardware": uuid16(0x2A27),
    "firmware": uuid16(0x2A26),
    "software": uuid16(0x2A28),
}


@dataclass(frozen=True)
class Subscription:
    """One characteristic to subscribe to (notify or indicate) and its decoder."""

    characteristic: str
    decode: Decoder
    label: str
    #: subscribe only if the device has it (e.g. PLX spot-check next to continuous measurement)
    optional: bool = False
    #: a continuous stream (silence = trouble); False for values sent now and then (spot-checks)
    streams: bool = True


@dataclass(frozen=True)
class DriverSpec:
    """How the link finds and talks to one kind of device."""

    kind: str
    service_uuids: tuple[str, ...]
    subscriptions: tuple[Subscription, ...]
    name_prefixes: tuple[str, ...] = ()
    #: characteristic -> bytes to write after subscribing (e.g. "start streaming" commands)
    start_commands: tuple[tuple[str, bytes], ...] = field(default=())
    #: sends data continuously (silence = trouble); False for devices that report now and then (cuffs)
    streaming: bool = True
    #: the service alone is not enough (a generic one, like the Nordic UART service): a name must match
    name_required: bool = False
    #: a Record Access Control Point (0x2A52) to ask, after subscribing, for the records the device
    #: stored while disconnected (PLX spot-checks, gatt.md "RACP"); used only if the device has it
    record_access: str | None = None

    def matches(self, name: str | None, service_uuids: Sequence[str]) -> bool:
        """Whether an advertisement belongs to this kind of device."""
        named = bool(name) and any((name or "").startswith(p) for p in self.name_prefixes)
        if self.name_required:
            return named
        advertised = {u.lower() for u in service_uuids}
        return named or any(u in advertised for u in self.service_uuids)


class DeviceSink(Protocol):
    """What a link reports to (kapmonitor.session.Session implements it)."""

    def register_device(self, info: DeviceInfo) -> None: ...
    def forget_device(self, device: str) -> None: ...
    def device_state(self, device: str, state: DeviceState, detail: str = "") -> None: ...
    def ingest(self, measurements: Sequence[Measurement]) -> None: ...
    def malformed(self, packet: MalformedPacket) -> None: ...


__all__ = [
    "BATTERY_LEVEL",
    "BATTERY_SERVICE",
    "DEVICE_INFORMATION",
    "DEVICE_INFO_STRINGS",
    "Decoder",
    "DeviceEvent",
    "DeviceSink",
    "DriverSpec",
    "Subscription",
    "reset_decoder",
    "uuid16",
]
