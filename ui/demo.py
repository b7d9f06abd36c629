"""Demo wiring: a virtual radio with emulated wearables, and the bleak backend that reaches them."""

from __future__ import annotations

import logging

import tzlocal

from devices._ble.bumble_backend import bumble_backends
from devices._ble.link import ClientBackend, ScannerBackend
from devices.emulated.berrymed_oximeter import EmulatedBerryMedOximeter
from devices.emulated.bp_cuff import EmulatedBPCuff
from devices.emulated.hr_strap import EmulatedHeartRateStrap
from devices.emulated.malformed import (
    BERRYMED_STRUCTURED,
    BP_STRUCTURED,
    HR_STRUCTURED,
    PLX_STRUCTURED,
    VIATOM_STRUCTURED,
    MalformedInjector,
    bp_is_malformed,
    hr_is_malformed,
    plx_is_malformed,
)
from devices.emulated.plx_oximeter import EmulatedPlxOximeter
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS, TRANSPORT_FAULTS
from devices.emulated.viatom_oximeter import EmulatedViatomOximeter
from kapmonitor.clock import Clock

log = logging.getLogger(__name__)

#: The emulated oximeters `--oximeter` chooses from (the Viatom by default: it streams a pleth).
OXIMETERS: dict[str, type[EmulatedPlxOximeter]] = {
    "viatom": EmulatedViatomOximeter,
    "berrymed": EmulatedBerryMedOximeter,
    "plx": EmulatedPlxOximeter,
}

#: The demo cuff measures on its own every this many scenario minutes (kap-session.md: BP at
#: intervals; procedural sedation uses 5-15 min).
DEMO_BP_INTERVAL_MIN = 10.0


class Demo:
    """Starts the emulated devices for `--demo`; the app then connects to them through bleak."""

    def __init__(
        self,
        clock: Clock,
        *,
        scenario: str = "normal",
        seed: int = 1,
        speed: float = 1.0,
        oximeter: str = "viatom",
    ) -> None:
        if scenario not in SCENARIOS:
            known = ", ".join(sorted(SCENARIOS))
            raise ValueError(f"unknown scenario {scenario!r}; choose one of: {known}")
        if oximeter not in OXIMETERS:
            raise ValueError(f"unknown oximeter {oximeter!r}; choose one of: {', '.join(OXIMETERS)}")
        self.oximeter_kind = oximeter
        self.clock = clock
        self.scenario_name = scenario
        self.seed = seed
        self.speed = speed
        self.radio: VirtualRadio | None = None
        self.oximeter: EmulatedPlxOximeter | None = None
        self.cuff: EmulatedBPCuff | None = None
        self.strap: EmulatedHeartRateStrap | None = None
        #: the oximeter's malformed-packet injector (`--scenario malformed`)
        self.injector: MalformedInjector | None = None
        #: every running injector: the oximeter's, the HR strap's and the BP cuff's
        self.injectors: list[MalformedInjector] = []

    async def start(self) -> tuple[ScannerBackend, ClientBackend]:
        """Power the virtual radio, start the wearables; return the bleak backend classes."""
        self.radio = VirtualRadio()
        await self.radio.start()
        scenario = SCENARIOS[self.scenario_name](self.seed)
        self.oximeter = OXIMETERS[self.oximeter_kind](self.radio, scenario, speed=self.speed)
        self.cuff = EmulatedBPCuff(
            self.radio,
            scenario,
            speed=self.speed,
            epoch=self.clock.wall(),  # scenario time 0 is now on the session's clock
            tz=tzlocal.get_localzone(),
            interval_min=DEMO_BP_INTERVAL_MIN,
        )
        self.strap = EmulatedHeartRateStrap(self.radio, scenario, speed=self.speed)
        await self.oximeter.start()
        await self.cuff.start()
        await self.strap.start()
        if self.scenario_name in TRANSPORT_FAULTS:
            # malformed packets every 5 scenario seconds into every wearable, each of its own protocol
            if self.oximeter_kind == "plx":
                self.injector = MalformedInjector(
                    self.oximeter, seed=self.seed, structured=PLX_STRUCTURED, keep=plx_is_malformed
                )
            else:
                structured = VIATOM_STRUCTURED if self.oximeter_kind == "viatom" else BERRYMED_STRUCTURED
                self.injector = MalformedInjector(self.oximeter, seed=self.seed, structured=structured)
            self.injectors = [
                self.injector,
                MalformedInjector(self.strap, seed=self.seed, structured=HR_STRUCTURED, keep=hr_is_malformed),
                MalformedInjector(self.cuff, seed=self.seed, structured=BP_STRUCTURED, keep=bp_is_malformed),
            ]
            for injector in self.injectors:
                injector.start()
        log.info(
            "demo: scenario %s (seed %d, speed %g): oximeter %s, BP cuff %s, HR strap %s",
            self.scenario_name,
            self.seed,
            self.speed,
            self.oximeter.address,
            self.cuff.address,
            self.strap.address,
        )
        return bumble_backends(self.radio)

    async def stop(self) -> None:
        """Stop the wearables and the radio."""
        for injector in self.injectors:
            await injector.stop()
        for device in (self.oximeter, self.cuff, self.strap):
            if device is not None:
                await device.stop()
        if self.radio is not None:
            await self.radio.close()
