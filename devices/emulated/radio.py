"""An in-process Bluetooth LE radio: one bumble LocalLink with a controller + host + device per party."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from bumble import hci, ll
from bumble.controller import Controller
from bumble.device import Advertisement, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

log = logging.getLogger(__name__)

#: First byte of the addresses handed out. Random *static* addresses must have the two top bits
#: set (Core spec Vol 6, Part B, 1.3.2.1), so every prefix here is 0xC0 or above.
CENTRAL_PREFIX = 0xC0
PERIPHERAL_PREFIX = 0xC1

#: How long a polite disconnect may take before a device is torn down without one.
DISCONNECT_GRACE_S = 1.0


#: Receives every advertisement the shared central hears while scanning.
AdvertisementListener = Callable[[Advertisement], None]


class RadioError(RuntimeError):
    """The radio was used before start(), after close(), or from another event loop."""


class _LinkController(Controller):
    """bumble's virtual controller, tolerant of a peer that has left the link, and detachable.

    The stock controller raises inside its HCI handler when asked to disconnect from a peer that
    is no longer on the link; the host then waits for a command status that never comes and every
    later command of that device times out. Here the disconnection simply completes locally.
    Once detached it no longer puts its host's data on the link.
    """

    detached = False

    def detach(self) -> None:
        """Leave the air: no more data, and the advertising timers stop.

        The stock controller keeps its own `link` reference after `LocalLink.remove_controller`,
        so without this a device that left silently went on advertising as a ghost: the central
        found it while it was away and its connection to the ghost hung until the connect timeout.
        """
        self.detached = True
        self.le_legacy_advertiser.stop()
        for advertising_set in self.advertising_sets.values():
            advertising_set.stop()

    def on_hci_acl_data_packet(self, packet: hci.HCI_AclDataPacket) -> None:
        if not self.detached:
            super().on_hci_acl_data_packet(packet)

    def send_advertising_pdu(self, packet: ll.AdvertisingPdu) -> None:
        if not self.detached:  # a late timer or a command after detach(): nobody hears it
            super().send_advertising_pdu(packet)

    def on_hci_disconnect_command(self, command: hci.HCI_Disconnect_Command) -> None:
        connection = self.find_le_connection_by_handle(command.connection_handle)
        if connection is not None and self.link.find_le_controller(connection.peer_address) is None:
            self._send_hci_command_status(hci.HCI_COMMAND_STATUS_PENDING, command.op_code)
            self.on_le_disconnected(connection, command.reason)
            return None
        return super().on_hci_disconnect_command(command)


#: HCI event packets that answer a command: indicator 0x04, event code Command Complete/Status.
_COMMAND_ANSWERS = (b"\x04\x0e", b"\x04\x0f")


class _Gate:
    """Controller → host sink that, once the device has left the link, passes only command answers.

    The controller queues events with call_soon; without the gate, events queued just before a
    device is removed would reach a host that has already been flushed. Command answers still
    pass so that late commands of the dead device (an advertising auto-restart, say) end at once
    instead of timing out ten seconds later.
    """

    def __init__(self, host: Host) -> None:
        self.host = host
        self.open = True

    def on_packet(self, packet: bytes) -> None:
        answer = packet[:2] in _COMMAND_ANSWERS
        if answer and self.host.pending_response is not None and self.host.pending_response.done():
            # the command was cancelled (a connect timeout, say) and its waiter is unwinding:
            # bumble's host would try to set the result of the cancelled future and fail
            return
        if self.open or answer:
            self.host.on_packet(packet)


@dataclass(eq=False)
class _Node:
    """One party on the link: its virtual controller, the host that drives it and the device."""

    controller: _LinkController
    host: Host
    device: Device
    gate: _Gate


class VirtualRadio:
    """Owns one bumble `LocalLink` on the running asyncio loop and every device attached to it.

    Each party (the bleak backend's centrals, each emulated wearable) gets its own
    Controller + Host + Device on the link with a distinct random static address. Everything on
    one link must run on one asyncio loop (gatt.md, "bumble as the virtual radio"): create the
    radio inside the loop that will run the app (a qasync loop in the GUI) and use it only there.

    `central` is the shared central the scanner uses. A controller that was asked to connect to a
    device that never advertises stays wedged (gatt.md quirks), so connections are made from
    short-lived centrals (`add_device(role="central")`) that are simply removed after a timeout,
    and the shared central can be rebuilt with `rebuild_central()`.
    """

    def __init__(self) -> None:
        self._link: LocalLink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nodes: dict[Device, _Node] = {}
        self._central: Device | None = None
        self._counter = itertools.count(1)
        self._connect_locks: dict[str, asyncio.Lock] = {}
        self._listeners: dict[object, AdvertisementListener] = {}
        self._scan_users = 0
        self._closers: dict[object, Callable[[], Awaitable[None]]] = {}
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the link on the running loop and power on the shared central."""
        if self._link is not None:
            return
        if self._closed:
            raise RadioError("a closed radio cannot be started again; make a new one")
        self._loop = asyncio.get_running_loop()
        self._link = LocalLink()  # type: ignore[no-untyped-call]
        self._central = await self._new_central()

    async def close(self) -> None:
        """Stop what registered with on_close(), remove every device, forget the link. Idempotent."""
        if self._closed:
            return
        for closer in list(self._closers.values()):
            try:
                await closer()
            except Exception:
                log.exception("radio: a close hook failed")
        self._closers.clear()
        self._closed = True
        for device in list(self._nodes):
            await self.remove_device(device)
        self._central = None
        self._link = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- properties ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._link is not None and not self._closed

    @property
    def link(self) -> LocalLink:
        if self._link is None:
            raise RadioError("the radio is not running (call start() first)")
        return self._link

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RadioError("the radio is not running (call start() first)")
        return self._loop

    @property
    def central(self) -> Device:
        """The shared central (used for scanning)."""
        if self._central is None:
            raise RadioError("the radio is not running (call start() first)")
        return self._central

    @property
    def devices(self) -> list[Device]:
        return list(self._nodes)

    def check_loop(self) -> None:
        """Raise RadioError unless called on the loop the radio runs on."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self.loop:
            raise RadioError("the virtual radio must be used from the event loop it was started on")

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        """Have close() await `closer` first (emulators stop themselves); returns the remover."""
        token = object()
        self._closers[token] = closer

        def remove() -> None:
            self._closers.pop(token, None)

        return remove

    # -- devices ---------------------------------------------------------------------------------
    def allocate_address(self, role: str = "peripheral") -> hci.Address:
        """A fresh random static address, distinct from every other one this radio handed out."""
        prefix = CENTRAL_PREFIX if role == "central" else PERIPHERAL_PREFIX
        n = next(self._counter)
        octets = [prefix, 0x4B, 0x41, 0x50, (n >> 8) & 0xFF, n & 0xFF]  # "KAP" in the middle
        return hci.Address(":".join(f"{o:02X}" for o in octets), hci.Address.RANDOM_DEVICE_ADDRESS)

    async def add_device(
        self,
        name: str,
        *,
        address: hci.Address | str | None = None,
        role: str = "peripheral",
    ) -> Device:
        """Attach a new powered-on bumble Device (own Controller + Host) to the link."""
        self.check_loop()
        if self._closed:
            raise RadioError("the radio is closed")
        if address is None:
            address = self.allocate_address(role)
        elif isinstance(address, str):
            address = hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS)
        if any(node.device.random_address == address for node in self._nodes.values()):
            raise RadioError(f"address {address} is already on the link")
        controller = _LinkController(name, link=self.link)
        host = Host(None, AsyncPipeSink(controller))
        gate = _Gate(host)
        controller.host = gate
        device = Device(name=name, address=address, host=host)
        self._nodes[device] = _Node(controller, host, device, gate)
        try:
            await device.power_on()
        except BaseException:
            self._detach(device)
            raise
        log.debug("radio: %s (%s) joined the link", name, address)
        return device

    def is_reachable(self, address: hci.Address | str) -> bool:
        """True when a device with this address is on the link (so a packet to it arrives)."""
        if self._link is None:
            return False
        if isinstance(address, str):
            address = hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS)
        return any(bytes(node.device.random_address) == bytes(address) for node in self._nodes.values())

    async def remove_device(self, device: Device, *, graceful: bool = True) -> None:
        """Take a device off the link.

        graceful=True disconnects each of its connections first, so the peers see a disconnection
        (a bumble peer that simply vanishes produces no event: gatt.md quirks). graceful=False
        detaches it silently, like a wearable walking out of range: its peers keep a dead link
        until they give up on it.
        """
        node = self._nodes.get(device)
        if node is None:
            return
        if graceful:
            await self._disconnect_everything(node)
        self._detach(device)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(device.power_off(), DISCONNECT_GRACE_S)

    async def rebuild_central(self) -> Device:
        """Replace the shared central by a fresh one (new controller, host, device and address)."""
        old = self._central
        self._central = None
        if old is not None:
            await self.remove_device(old)
        self._central = await self._new_central()
        if self._scan_users:
            await self._central.start_scanning(filter_duplicates=False)
        return self._central

    # -- scanning (shared by every scanner of the bleak backend) --------------------------------
    def add_advertisement_listener(self, listener: AdvertisementListener) -> Callable[[], None]:
        """Call `listener` with each advertisement heard while scanning; returns the remover.

        A listener that raises is logged and does not disturb the radio or other listeners.
        """
        token = object()
        self._listeners[token] = listener

        def remove() -> None:
            self._listeners.pop(token, None)

        return remove

    async def start_scanning(self) -> None:
        """Scan on the shared central (reference counted: each start needs one stop)."""
        self.check_loop()
        self._scan_users += 1
        if self._scan_users == 1:
            try:
                await self.central.start_scanning(filter_duplicates=False)
            except BaseException:
                self._scan_users -= 1
                raise

    async def stop_scanning(self) -> None:
        """Undo one start_scanning(); the central stops when the last user has stopped."""
        if self._scan_users == 0:
            return
        self._scan_users -= 1
        if self._scan_users == 0 and self._central is not None and self._central.is_scanning:
            await self._central.stop_scanning()

    async def settle(self, rounds: int = 5) -> None:
        """Let packets already queued on the link arrive (each hop is one loop iteration).

        Used after a disconnection so that both ends have seen it before the caller goes on.
        """
        for _ in range(rounds):
            await asyncio.sleep(0)

    def connect_lock(self, address: str) -> asyncio.Lock:
        """The lock that serialises connection attempts to one peer address.

        Two centrals that wait for the same advertisement would both complete a connection in
        the virtual controllers, but the peripheral accepts only the first: the other would hold
        a phantom link. One pending connection per peer at a time avoids that (gatt.md quirks).
        """
        key = address.upper()
        lock = self._connect_locks.get(key)
        if lock is None:
            lock = self._connect_locks[key] = asyncio.Lock()
        return lock

    # -- internals -------------------------------------------------------------------------------
    async def _new_central(self) -> Device:
        central = await self.add_device("kap-central", role="central")
        central.on(central.EVENT_ADVERTISEMENT, self._forward_advertisement)
        return central

    def _forward_advertisement(self, advertisement: Advertisement) -> None:
        # called by bumble: nothing may raise back into it
        for listener in list(self._listeners.values()):
            try:
                listener(advertisement)
            except Exception:
                log.exception("radio: advertisement listener failed")

    async def _disconnect_everything(self, node: _Node) -> None:
        # connections the host knows about: disconnect them through the normal HCI path
        for connection in list(node.device.connections.values()):
            if not self.is_reachable(connection.peer_address):
                continue  # the peer is gone: there is nobody to tell
            try:
                await asyncio.wait_for(connection.disconnect(), DISCONNECT_GRACE_S)
            except Exception as exc:  # a dying link must not stop the teardown
                log.debug("radio: disconnect of %s failed: %r", connection.peer_address, exc)
        # connections the controller completed but the host never heard of (a connect that was
        # cancelled by a timeout just as the peer appeared): terminate them at the link layer
        for peer, link_connection in list(node.controller.le_connections.items()):
            if not self.is_reachable(peer):
                continue
            with contextlib.suppress(Exception):
                node.controller.on_hci_disconnect_command(
                    hci.HCI_Disconnect_Command(
                        connection_handle=link_connection.handle,
                        reason=hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR,
                    )
                )

    def _detach(self, device: Device) -> None:
        node = self._nodes.pop(device, None)
        if node is None:
            return
        node.gate.open = False  # events still in flight are dropped, not delivered
        node.controller.detach()
        if self._link is not None and node.controller in self._link.controllers:
            self._link.remove_controller(node.controller)
        log.debug("radio: %s left the link", device.random_address)
