"""Driver glue for Viatom/Lepu PC-60FW/NW oximeters: Nordic UART service, enable commands, decoder."""

from __future__ import annotations

from devices.driver import DriverSpec, Subscription
from devices.viatom.parser import ENABLE_PARAMS, ENABLE_WAVE, ViatomDecoder

#: Nordic UART service and its characteristics (gatt.md, "Proprietary oximeters").
NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_WRITE = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_NOTIFY = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"

#: Advertised names of the family. The Nordic UART service is generic (many gadgets use it), so a
#: device is taken as a Viatom when its name starts with one of these OR it advertises the service.
NAME_PREFIXES = ("PC-60F", "PC-60N", "PC60F", "PC60N", "OXIMETER")


def viatom_spec() -> DriverSpec:
    """The driver spec of a PC-60FW/NW; a fresh decoder (framer state) on every call."""
    return DriverSpec(
        kind="pulse-oximeter",
        service_uuids=(NUS_SERVICE,),
        subscriptions=(Subscription(NUS_NOTIFY, ViatomDecoder(), "Viatom NUS notify 6e400003"),),
        name_prefixes=NAME_PREFIXES,
        start_commands=((NUS_WRITE, ENABLE_PARAMS), (NUS_WRITE, ENABLE_WAVE)),
        # many gadgets use the Nordic UART service: only a Viatom name makes it a Viatom
        name_required=True,
    )
