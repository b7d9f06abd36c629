"""Demo wiring: a virtual radio with emulated wearables, and the bleak backend that reaches them."""

from __future__ import annotations

import logging

from devices._ble.bumble_backend import bumble_backends
from devices._ble.link import ClientBackend, ScannerBackend
from devices.emulated.plx_oximeter import EmulatedPlxOximeter
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS

log = logging.getLogger(__name__)


class Demo:
    """Starts the emulated devices for `--demo`; the app then connects to them through bleak."""

    def __init__(self, *, scenario: str = "normal", seed: int = 1, speed: float = 1.0) -> None:
        if scenario not in SCENARIOS:
            known = ", ".join(sorted(SCENARIOS))
            raise ValueError(f"unknown scenario {scenario!r}; choose one of: {known}")
        self.scenario_name = scenario
        self.seed = seed
        self.speed = speed
        self.radio: VirtualRadio | None = None
        self.oximeter: EmulatedPlxOximeter | None = None

    async def start(self) -> tuple[ScannerBackend, ClientBackend]:
        """Power the virtual radio, start the wearables; return the bleak backend classes."""
        self.radio = VirtualRadio()
        await self.radio.start()
        self.oximeter = EmulatedPlxOximeter(
            self.radio, SCENARIOS[self.scenario_name](self.seed), speed=self.speed
        )
        await self.oximeter.start()
        log.info("demo: emulated PLX oximeter %s, scenario %s", self.oximeter.address, self.scenario_name)
        return bumble_backends(self.radio)

    async def stop(self) -> None:
        """Stop the wearables and the radio."""
        if self.oximeter is not None:
            await self.oximeter.stop()
        if self.radio is not None:
            await self.radio.close()
