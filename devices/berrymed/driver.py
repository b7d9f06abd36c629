"""Driver glue for BerryMed BCI oximeters: service, notify characteristic, names, decoder."""

from __future__ import annotations

from devices.berrymed.parser import BerryMedDecoder
from devices.driver import DriverSpec, Subscription

#: gatt.md, "Proprietary oximeters" (BerryMed BM1000 family).
BCI_SERVICE = "49535343-fe7d-4ae5-8fa9-9fafd205e455"
BCI_NOTIFY = "49535343-1e4d-4bd9-ba61-23c647249616"

#: Some units do not advertise the service (gatt.md): match these names too.
NAME_PREFIXES = ("BerryMed", "BM1000")


def berrymed_spec() -> DriverSpec:
    """The driver spec of a BerryMed oximeter; a fresh decoder (framer and decimation state) per call."""
    return DriverSpec(
        kind="pulse-oximeter",
        service_uuids=(BCI_SERVICE,),
        subscriptions=(Subscription(BCI_NOTIFY, BerryMedDecoder(), "BerryMed BCI notify 49535343-1e4d"),),
        name_prefixes=NAME_PREFIXES,
    )
