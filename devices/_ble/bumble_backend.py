"""A bleak backend over bumble centrals on the VirtualRadio: unchanged bleak code drives emulated devices."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_str
from bumble import att, core, hci
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy

from devices.emulated.radio import VirtualRadio

log = logging.getLogger(__name__)

#: ATT MTU the client asks for after connecting; bumble stays at 23 until asked (gatt.md quirks:
#: "request ~247 as desktop stacks do").
REQUESTED_MTU = 247
#: The default ATT MTU of an unnegotiated link.
DEFAULT_MTU = 23
#: Connect timeout of a client built without one. (bleak's BleakClient always passes its own
#: `timeout`, 30 s by default in bleak 3; bleak-retry-connector passes 20 s to connect().)
DEFAULT_CONNECT_TIMEOUT_S = 10.0
#: Upper bound on a polite disconnect before the local side is torn down regardless.
DISCONNECT_TIMEOUT_S = 2.0
#: Upper bound on SMP pairing.
PAIR_TIMEOUT_S = 10.0

_GAP_DEVICE_NAME = core.UUID.from_16_bits(0x2A00)

# advertising data types (Core Supplement, Part A, section 1)
_AD_UUID16 = (0x02, 0x03)
_AD_UUID32 = (0x04, 0x05)
_AD_UUID128 = (0x06, 0x07)
_AD_NAME_SHORT = 0x08
_AD_NAME_COMPLETE = 0x09
_AD_TX_POWER = 0x0A
_AD_SERVICE_DATA16 = 0x16
_AD_SERVICE_DATA32 = 0x20
_AD_SERVICE_DATA128 = 0x21
_AD_MANUFACTURER = 0xFF

# tasks started from bumble callbacks, kept referenced until they finish
_background: set[asyncio.Task[None]] = set()


def _spawn(coro: Awaitable[None]) -> None:
    async def run() -> None:
        try:
            await coro
        except Exception:
            log.exception("bumble backend: background task failed")

    task = asyncio.get_running_loop().create_task(run())
    _background.add(task)
    task.add_done_callback(_background.discard)


class BleakConnectTimeoutError(BleakError, TimeoutError):
    """Connecting took longer than the client's timeout (a TimeoutError, as on BlueZ, and a BleakError)."""


@dataclass(frozen=True)
class BumbleDeviceDetails:
    """`BLEDevice.details` of a device found on the virtual radio (deliberately not a BlueZ dict)."""

    address: str
    address_type: int


def uuid_str(uuid: core.UUID) -> str:
    """A bumble UUID as bleak spells it: 128-bit, lower case."""
    return normalize_uuid_str(uuid.to_hex_str("-"))


@dataclass
class ParsedAdvertisement:
    """Advertising data with duplicate structures removed (bumble's scan response repeats them)."""

    local_name: str | None = None
    service_uuids: list[str] = field(default_factory=list)
    service_data: dict[str, bytes] = field(default_factory=dict)
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    tx_power: int | None = None

    def signature(self) -> tuple[object, ...]:
        return (
            self.local_name,
            tuple(self.service_uuids),
            tuple(sorted(self.service_data.items())),
            tuple(sorted(self.manufacturer_data.items())),
            self.tx_power,
        )


def _uuids(data: bytes, size: int) -> list[str]:
    return [
        uuid_str(core.UUID.from_bytes(data[i : i + size]))
        for i in range(0, len(data) - len(data) % size, size)
    ]


def parse_advertising_data(structures: Iterable[tuple[int, bytes]]) -> ParsedAdvertisement:
    """Fold (type, payload) AD structures into bleak's fields, each UUID and key once, in order."""
    parsed = ParsedAdvertisement()
    short_name: str | None = None
    for raw_type, payload in structures:
        ad_type = int(raw_type)
        try:
            if ad_type in _AD_UUID16 or ad_type in _AD_UUID32 or ad_type in _AD_UUID128:
                size = 2 if ad_type in _AD_UUID16 else 4 if ad_type in _AD_UUID32 else 16
                for uuid in _uuids(payload, size):
                    if uuid not in parsed.service_uuids:
                        parsed.service_uuids.append(uuid)
            elif ad_type == _AD_NAME_COMPLETE:
                parsed.local_name = payload.decode("utf-8", errors="replace")
            elif ad_type == _AD_NAME_SHORT:
                short_name = payload.decode("utf-8", errors="replace")
            elif ad_type == _AD_TX_POWER and payload:
                parsed.tx_power = struct.unpack_from("<b", payload)[0]
            elif ad_type in (_AD_SERVICE_DATA16, _AD_SERVICE_DATA32, _AD_SERVICE_DATA128):
                size = {_AD_SERVICE_DATA16: 2, _AD_SERVICE_DATA32: 4, _AD_SERVICE_DATA128: 16}[ad_type]
                if len(payload) >= size:
                    key = uuid_str(core.UUID.from_bytes(payload[:size]))
                    parsed.service_data[key] = bytes(payload[size:])
            elif ad_type == _AD_MANUFACTURER and len(payload) >= 2:
                (company,) = struct.unpack_from("<H", payload)
                parsed.manufacturer_data[company] = bytes(payload[2:])
        except (ValueError, struct.error, core.InvalidArgumentError):
            log.debug("bumble backend: malformed AD structure 0x%02X %s", ad_type, payload.hex())
    if parsed.local_name is None:
        parsed.local_name = short_name
    return parsed


def _address_string(address: hci.Address) -> str:
    return str(address).split("/")[0].upper()


def _to_bleak_error(what: str, exc: BaseException) -> BleakError:
    if isinstance(exc, BleakError):
        return exc
    if isinstance(exc, att.ATT_Error):
        return BleakGATTProtocolError(exc.error_code)
    if isinstance(exc, core.TimeoutError):
        return BleakError(f"{what}: GATT request timed out")
    return BleakError(f"{what}: {exc}")


async def _gatt[T](what: str, awaitable: Awaitable[T]) -> T:
    """Await a bumble GATT operation and translate its failures into bleak's exceptions."""
    try:
        return await awaitable
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we are being cancelled
        # bumble cancels the pending ATT response when the link drops under it
        raise BleakError(f"{what}: disconnected") from None
    except (core.BaseBumbleError, att.ATT_Error) as exc:
        raise _to_bleak_error(what, exc) from exc


# ---------------------------------------------------------------------------------------------- scanner
class BumbleBleakScanner(BaseBleakScanner):
    """bleak scanner backend listening on the VirtualRadio's shared central.

    Use a subclass bound to a radio (see `bumble_backends`). One detection per advertising event:
    bumble reports each event twice (advertisement + scan response repeating the same data), the
    repeat is dropped. Service-UUID filters may be 16-bit ("1822"); they are expanded to 128-bit.
    RSSI is whatever the virtual controller says (always −50).
    """

    radio: ClassVar[VirtualRadio | None] = None

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None = None,
        service_uuids: list[str] | None = None,
        scanning_mode: Literal["active", "passive"] = "active",
        **kwargs: Any,  # bluez=, cb=, adapter= ... are accepted and ignored
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        if service_uuids is not None:
            # bleak only lower-cases the filter (gatt.md, "bleak with a custom backend")
            self._service_uuids = [normalize_uuid_str(u) for u in service_uuids]
        self._scanning_mode = scanning_mode
        self._remove_listener: Callable[[], None] | None = None
        self._last_seen: dict[str, tuple[tuple[object, ...], bool]] = {}

    def _bound_radio(self) -> VirtualRadio:
        radio = type(self).radio
        if radio is None:
            raise BleakError("this scanner class is not bound to a VirtualRadio; use bumble_backends()")
        return radio

    async def start(self) -> None:
        radio = self._bound_radio()
        try:
            radio.check_loop()
        except RuntimeError as exc:
            raise BleakError(str(exc)) from exc
        if self._remove_listener is not None:
            return
        self.seen_devices = {}
        self._last_seen = {}
        self._remove_listener = radio.add_advertisement_listener(self._on_advertisement)
        try:
            await radio.start_scanning()
        except BaseException:
            self._remove_listener()
            self._remove_listener = None
            raise

    async def stop(self) -> None:
        if self._remove_listener is None:
            return
        self._remove_listener()
        self._remove_listener = None
        await self._bound_radio().stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        structures = [(int(t), bytes(d)) for t, d in advertisement.data.ad_structures]
        parsed = parse_advertising_data(structures)
        address = _address_string(advertisement.address)
        signature = parsed.signature()
        previous = self._last_seen.get(address)
        self._last_seen[address] = (signature, advertisement.is_scan_response)
        if (
            advertisement.is_scan_response
            and previous is not None
            and not previous[1]
            and previous[0] == signature
        ):
            return  # the scan response only repeated the advertisement (gatt.md quirks)
        if not self.is_allowed_uuid(parsed.service_uuids):
            return
        data = AdvertisementData(
            local_name=parsed.local_name,
            manufacturer_data=parsed.manufacturer_data,
            service_data=parsed.service_data,
            service_uuids=parsed.service_uuids,
            tx_power=parsed.tx_power,
            rssi=advertisement.rssi,
            platform_data=(advertisement,),
        )
        details = BumbleDeviceDetails(address, int(advertisement.address.address_type))
        device = self.create_or_update_device(address, address, parsed.local_name, details, data)
        try:
            self.call_detection_callbacks(device, data)
        except Exception:
            log.exception("bumble backend: a detection callback raised")


# ---------------------------------------------------------------------------------------------- client
class BumbleBleakClient(BaseBleakClient):
    """bleak client backend: each connection gets its own short-lived central on the VirtualRadio.

    Use a subclass bound to a radio (see `bumble_backends`). Behaviour, following the platform
    backends where the base class leaves room:

    - connect() is bounded by the client's `timeout` (or a `timeout=` passed to connect). On expiry
      the pending connection's central is removed from the link and a fresh one is used next time
      (a bumble controller asked to connect to a silent device stays wedged: gatt.md quirks); the
      error is `BleakConnectTimeoutError`, both a `TimeoutError` (as BlueZ raises) and a `BleakError`.
    - Connection attempts to one peer are serialised; the MTU is raised to 247 after connecting.
    - The disconnected callback runs once per connection on any disconnection, including one we
      asked for, as BlueZ and CoreBluetooth do; `services` is reset to None then.
    - ATT error responses raise `BleakGATTProtocolError`; a link lost under a request raises
      `BleakError`.
    """

    radio: ClassVar[VirtualRadio | None] = None

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        services: set[str] | None = None,
        **kwargs: Any,  # pair=, bluez=, winrt=, _is_retry_client= ... are accepted and ignored
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self.address = self.address.upper()
        self._device_name: str | None = None
        self._address_type = hci.AddressType.RANDOM_DEVICE
        if isinstance(address_or_ble_device, BLEDevice):
            self._device_name = address_or_ble_device.name
            details = address_or_ble_device.details
            if isinstance(details, BumbleDeviceDetails):
                self._address_type = hci.AddressType(details.address_type)
        self._service_filter = {normalize_uuid_str(u) for u in services} if services else None
        self._central: Device | None = None
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        self._connect_lock = asyncio.Lock()
        self._established = False  # connect() returned: disconnections are reported from then on
        self._disconnecting = False

    # -- helpers ---------------------------------------------------------------------------------
    def _bound_radio(self) -> VirtualRadio:
        radio = type(self).radio
        if radio is None:
            raise BleakError("this client class is not bound to a VirtualRadio; use bumble_backends()")
        return radio

    def _require_peer(self) -> Peer:
        if self._peer is None or self._connection is None:
            raise BleakError("Not connected")
        return self._peer

    @property
    def name(self) -> str:
        return self._device_name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and self._established

    # -- connection ------------------------------------------------------------------------------
    async def connect(self, pair: bool, **kwargs: Any) -> None:
        radio = self._bound_radio()
        try:
            radio.check_loop()
        except RuntimeError as exc:
            raise BleakError(str(exc)) from exc
        timeout = float(kwargs.get("timeout", self._timeout))
        try:
            # the whole call is bounded, waiting for another attempt to the same peer included
            async with asyncio.timeout(timeout), self._connect_lock:
                if self.is_connected:
                    return
                async with radio.connect_lock(self.address):
                    await self._connect_once(radio, pair)
        except TimeoutError as exc:
            raise BleakConnectTimeoutError(
                f"could not connect to {self.address} within {timeout:g} s"
            ) from exc

    async def _connect_once(self, radio: VirtualRadio, pair: bool) -> None:
        peer_address = hci.Address(self.address, self._address_type)
        central = await radio.add_device(f"kap-link-{self.address}", role="central")
        self._central = central
        try:
            connection = await _gatt(
                "connect", central.connect(peer_address, transport=core.PhysicalTransport.LE, timeout=None)
            )
            self._attach(connection)
            peer = self._require_peer()
            with contextlib.suppress(BleakError):
                await _gatt("mtu", peer.request_mtu(REQUESTED_MTU))
            if pair:
                await self._pair(connection)
            self.services = await self._discover(peer)
            if self._device_name is None:
                self._device_name = await self._read_gap_name(peer)
            if self._connection is None:
                raise BleakError(f"{self.address} disconnected while connecting")
            self._established = True
        except BaseException:
            # a timeout arrives here as a cancellation: the pending connection's controller is
            # thrown away with its central (gatt.md quirks: it would stay wedged otherwise)
            await self._abandon(central)
            raise

    def _attach(self, connection: Connection) -> None:
        self._connection = connection
        self._peer = Peer(connection)
        connection.on(connection.EVENT_DISCONNECTION, functools.partial(self._on_disconnection, connection))

    async def _abandon(self, central: Device) -> None:
        """Throw away a central whose connection attempt failed (this is the controller rebuild)."""
        connection = self._connection
        self._connection = None
        self._peer = None
        self.services = None
        self._subscribers.clear()
        if self._central is central:
            self._central = None
        radio = self._bound_radio()
        graceful = connection is None or radio.is_reachable(connection.peer_address)
        await radio.remove_device(central, graceful=graceful)

    def _on_disconnection(self, connection: Connection, reason: int) -> None:
        # called by bumble (and by disconnect()): must never raise into it
        try:
            if connection is not self._connection:
                return
            log.debug("bumble backend: %s disconnected (reason 0x%02X)", self.address, reason)
            self._connection = None
            self._peer = None
            self.services = None
            self._subscribers.clear()
            established, self._established = self._established, False
            central = self._central
            self._central = None
            if central is not None and not self._disconnecting:
                _spawn(self._bound_radio().remove_device(central, graceful=False))
            callback = self._disconnected_callback
            if callback is not None and established:
                callback()
        except Exception:
            log.exception("bumble backend: disconnected callback raised")

    async def disconnect(self) -> None:
        connection = self._connection
        central = self._central
        if connection is None:
            if central is not None:
                self._central = None
                await self._bound_radio().remove_device(central, graceful=False)
            return
        radio = self._bound_radio()
        self._disconnecting = True
        try:
            if radio.is_reachable(connection.peer_address):
                try:
                    await asyncio.wait_for(connection.disconnect(), DISCONNECT_TIMEOUT_S)
                except (TimeoutError, core.BaseBumbleError) as exc:
                    log.debug("bumble backend: disconnect of %s failed: %r", self.address, exc)
            # a peer that is gone cannot answer: tear the local side down regardless
            self._on_disconnection(connection, hci.HCI_CONNECTION_TERMINATED_BY_LOCAL_HOST_ERROR)
            if central is not None:
                await radio.remove_device(central, graceful=False)
            await radio.settle()  # the peer has seen the disconnection when this returns
        finally:
            self._disconnecting = False

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        if self._connection is None:
            raise BleakError("Not connected")
        await self._pair(self._connection)

    async def _pair(self, connection: Connection) -> None:
        """LE pairing through bumble's SMP ("just works"; keys are not kept across connections)."""
        if connection.is_encrypted:
            return
        try:
            await asyncio.wait_for(connection.pair(), PAIR_TIMEOUT_S)
        except TimeoutError as exc:
            raise BleakError(f"pairing with {self.address} timed out") from exc
        except core.BaseBumbleError as exc:
            raise BleakError(f"pairing with {self.address} failed: {exc}") from exc

    async def unpair(self) -> None:
        """Nothing to forget: bonds are not stored on the virtual radio."""

    # -- discovery -------------------------------------------------------------------------------
    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        await _gatt("discover services", peer.discover_services())
        collection = BleakGATTServiceCollection()
        for service in peer.services:
            uuid = uuid_str(service.uuid)
            if self._service_filter is not None and uuid not in self._service_filter:
                continue
            await _gatt("discover characteristics", peer.discover_characteristics(service=service))
            bleak_service = BleakGATTService(service, service.handle, uuid)
            collection.add_service(bleak_service)
            for characteristic in service.characteristics:
                await _gatt("discover descriptors", peer.discover_descriptors(characteristic))
                bleak_char = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle,
                    uuid_str(characteristic.uuid),
                    _properties(int(characteristic.properties)),
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_char)
                for descriptor in characteristic.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor, descriptor.handle, uuid_str(descriptor.type), bleak_char
                        )
                    )
        return collection

    async def _read_gap_name(self, peer: Peer) -> str | None:
        for service in peer.services:
            for characteristic in service.characteristics:
                if characteristic.uuid == _GAP_DEVICE_NAME:
                    with contextlib.suppress(BleakError):
                        raw = await _gatt("read name", peer.read_value(characteristic))
                        return bytes(raw).decode("utf-8", errors="replace") or None
        return None

    # -- I/O -------------------------------------------------------------------------------------
    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(characteristic.handle, use_cached, "read characteristic")

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(descriptor.handle, use_cached, "read descriptor")

    async def _read(self, handle: int, use_cached: bool, what: str) -> bytearray:
        peer = self._require_peer()
        if use_cached and handle in peer.gatt_client.cached_values:
            return bytearray(peer.gatt_client.cached_values[handle][1])
        return bytearray(await _gatt(what, peer.read_value(handle)))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        peer = self._require_peer()
        await _gatt("write characteristic", peer.write_value(characteristic.handle, bytes(data), response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        peer = self._require_peer()
        await _gatt("write descriptor", peer.write_value(descriptor.handle, bytes(data), True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Notifications, or indications when the characteristic only indicates (as bleak prefers)."""
        peer = self._require_peer()
        proxy = characteristic.obj
        if not isinstance(proxy, CharacteristicProxy):
            raise BleakError(f"{characteristic} was not discovered by this backend")
        if not {"notify", "indicate"} & set(characteristic.properties):
            raise BleakError(f"{characteristic} supports neither notifications nor indications")
        handle = characteristic.handle
        previous = self._subscribers.pop(handle, None)
        if previous is not None:
            await _gatt("unsubscribe", peer.unsubscribe(proxy, previous))

        def on_value(value: bytes) -> None:
            # called by bumble: must never raise into it
            try:
                callback(bytearray(value))
            except Exception:
                log.exception("bumble backend: notification callback for %s raised", characteristic)

        self._subscribers[handle] = on_value
        try:
            await _gatt("start notify", peer.subscribe(proxy, on_value, prefer_notify=True))
        except BaseException:
            self._subscribers.pop(handle, None)
            raise

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._require_peer()
        proxy = characteristic.obj
        subscriber = self._subscribers.pop(characteristic.handle, None)
        if isinstance(proxy, CharacteristicProxy):
            await _gatt("stop notify", peer.unsubscribe(proxy, subscriber))


def _properties(bits: int) -> list[CharacteristicPropertyName]:
    return [name for bit, name in CHARACTERISTIC_PROPERTIES.items() if bits & bit]


# ---------------------------------------------------------------------------------------------- binding
def bumble_backends(radio: VirtualRadio) -> tuple[type[BaseBleakScanner], type[BaseBleakClient]]:
    """Scanner and client backend classes bound to `radio`, for bleak's `backend=` parameter.

    >>> scanner_cls, client_cls = bumble_backends(radio)
    >>> device = await BleakScanner.find_device_by_name("KAP-Emu PLX", backend=scanner_cls)
    >>> async with BleakClient(device, backend=client_cls) as client: ...
    """

    class Scanner(BumbleBleakScanner):
        pass

    class Client(BumbleBleakClient):
        pass

    Scanner.radio = radio
    Client.radio = radio
    # bleak reports backend.__name__ as the backend id
    Scanner.__name__ = Scanner.__qualname__ = "BumbleBleakScanner"
    Client.__name__ = Client.__qualname__ = "BumbleBleakClient"
    return Scanner, Client
