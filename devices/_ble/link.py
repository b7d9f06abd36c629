"""One device's Bluetooth link through bleak's public API: scan, connect, subscribe, watch, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError, BleakGATTProtocolError, BleakGATTProtocolErrorCode

from devices._ble.racp import RESPONSE_TIMEOUT_S as RACP_TIMEOUT_S
from devices._ble.racp import RacpError, RecordAccessClient
from devices.battery import ParseError as BatteryParseError
from devices.battery import parse_battery_level
from devices.driver import (
    BATTERY_LEVEL,
    DEVICE_INFO_STRINGS,
    DeviceSink,
    DriverSpec,
    Subscription,
    reset_decoder,
)
from kapmonitor.clock import Clock
from kapmonitor.measurements import DeviceInfo, DeviceState, MalformedPacket, Numeric, Param

log = logging.getLogger(__name__)

#: How often (seconds) the link checks for silence, unless told otherwise.
WATCHDOG_PERIOD_S = 1.0
#: A connected device that sends nothing for this long is treated as gone and reconnected: the
#: link's own disconnect is slow or absent (design.md, "Measured facts"; gatt.md, bumble quirks).
#: A vanished device must be reported within 15 s (alarms.md, "no data from a device for 15 s"):
#: silence is noticed at most one watchdog period late, plus the loop's own lateness in waking the
#: watchdog, so the threshold leaves that period and WATCHDOG_SLACK_S free. (With the period alone
#: the disconnect storm measured alarms 15.01 s after the last sample: no room for any lateness.)
WATCHDOG_SLACK_S = 0.5
STALE_AFTER_S = 15.0 - WATCHDOG_PERIOD_S - WATCHDOG_SLACK_S
#: A bleak backend pair; None in a slot means the platform's own backend (hardware).
ScannerBackend = type[BaseBleakScanner]
ClientBackend = type[BaseBleakClient]

#: Reconnection back-off in seconds; the last value repeats.
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)
#: ATT errors that mean "pair first": a device that needs it (e.g. the A&D UA-651BLE cuff, gatt.md
#: "Blood Pressure Service") refuses its data until the link is encrypted.
NEEDS_PAIRING = frozenset(
    {
        BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION,
        BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION,
    }
)


class DeviceLink:
    """Keeps one device of one role connected and streaming into a DeviceSink, for as long as it runs.

    `specs` are the driver specs that can fill the role (e.g. every supported oximeter protocol);
    the first one that matches an advertisement drives the connection. `address` pins the role to
    one device (the one remembered from the last session). `scanner_backend`/`client_backend` are
    bleak backend classes; None means the platform backend (hardware). The emulated devices pass
    the bumble backend: nothing else differs.

    Each connection reads Device Information and the battery (then follows a notified battery),
    pairs if the device refuses data until paired, resets stream decoders and subscribes; silence
    on a streaming subscription for `stale_after_s` counts as a vanished device. A device with the
    spec's Record Access Control Point is then asked for its stored records (`_upload_stored`).
    """

    def __init__(
        self,
        specs: DriverSpec | Sequence[DriverSpec],
        sink: DeviceSink,
        clock: Clock,
        *,
        scanner_backend: type[BaseBleakScanner] | None = None,
        client_backend: type[BaseBleakClient] | None = None,
        address: str | None = None,
        role: str | None = None,
        on_chosen: Callable[[str, str, str], None] | None = None,
        scan_timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        stale_after_s: float = STALE_AFTER_S,
        backoff_s: Sequence[float] = BACKOFF_S,
        watchdog_period_s: float = WATCHDOG_PERIOD_S,
        racp_timeout_s: float = RACP_TIMEOUT_S,
    ) -> None:
        self.specs: tuple[DriverSpec, ...] = (specs,) if isinstance(specs, DriverSpec) else tuple(specs)
        if not self.specs:
            raise ValueError("a link needs at least one driver spec")
        #: the spec of the device found (the first spec until then)
        self.spec = self.specs[0]
        self.role = role or self.spec.kind
        #: told (role, address, name) when a device first connects in this role, to remember it
        self._on_chosen = on_chosen
        self._sink = sink
        self._clock = clock
        self._scanner_backend = scanner_backend
        self._client_backend = client_backend
        self._address = address.upper() if address else None
        self._scan_timeout = scan_timeout_s
        self._connect_timeout = connect_timeout_s
        self._stale_after = stale_after_s
        self._backoff = tuple(backoff_s) or (1.0,)
        self._watchdog_period = watchdog_period_s
        self._racp_timeout = racp_timeout_s
        #: how the last stored-records request (RACP) went; None until one was made
        self.stored_upload: str | None = None
        #: stored-records requests that got their final answer (one per connection at most)
        self.stored_uploads = 0
        self._stop = asyncio.Event()
        self._last_data_mono: float | None = None
        #: until a device is found, the link reports under a placeholder id for its kind
        self._placeholder = f"{self.role}:searching"
        self.device_id: str = self._placeholder
        self.device_name: str = ""
        self.connections = 0
        self.malformed = 0
        self.packets = 0
        self.device_information: dict[str, str] = {}
        #: pairings this link started (a device that refused data until the link was encrypted)
        self.pairings = 0
        self._paired = False
        self._streaming = self.spec.streaming
        self._unavailable_logged = False
        self.rssi: int | None = None

    # -- public ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Scan, connect, stream; on any loss report it and try again with back-off until stop()."""
        failures = 0
        while not self._stop.is_set():
            ok = False
            try:
                ok = await self._one_connection()
            except asyncio.CancelledError:
                raise
            except (BleakError, OSError) as exc:
                # no adapter, no BlueZ/D-Bus, adapter switched off: say so plainly, keep trying
                if not self._unavailable_logged:
                    log.warning("%s: Bluetooth unavailable: %r (retrying quietly)", self.role, exc)
                    self._unavailable_logged = True
                self._report(DeviceState.LOST, f"Bluetooth unavailable ({type(exc).__name__}: {exc})")
            except Exception as exc:  # never let a link error end monitoring
                log.exception("%s: link error", self.device_id)
                self._report(DeviceState.LOST, f"link error: {exc}")
            if self._stop.is_set():
                break
            failures = 0 if ok else failures + 1
            delay = self._backoff[min(failures, len(self._backoff) - 1)]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        self._report(DeviceState.DISCONNECTED, "stopped")

    def stop(self) -> None:
        """Ask run() to disconnect and return."""
        self._stop.set()

    # -- one connection --------------------------------------------------------------------
    def _report(self, state: DeviceState, detail: str = "") -> None:
        try:
            self._sink.device_state(self.device_id, state, detail)
        except Exception:
            log.exception("sink failed on a device state")

    def _spec_for(self, device: BLEDevice, adv: AdvertisementData) -> DriverSpec | None:
        name = adv.local_name or device.name
        return next((s for s in self.specs if s.matches(name, adv.service_uuids)), None)

    async def _one_connection(self) -> bool:
        """One scan-connect-stream cycle. Returns True when data flowed (resets the back-off)."""
        if self.device_id == self._placeholder:
            self._sink.register_device(DeviceInfo(self._placeholder, self.role, self.role, placeholder=True))
        self._report(DeviceState.SEARCHING, "scanning")
        # Devices matched by name may not advertise their service: scan unfiltered for those.
        args: BleakScanner.ExtraArgs = {}
        if not any(s.name_prefixes for s in self.specs):
            args["service_uuids"] = sorted({u for s in self.specs for u in s.service_uuids})
        found: dict[str, DriverSpec] = {}
        rssi: dict[str, int] = {}

        def matches(device: BLEDevice, adv: AdvertisementData) -> bool:
            if self._address is not None and device.address.upper() != self._address:
                return False
            spec = self._spec_for(device, adv)
            if spec is not None:
                found[device.address] = spec
                rssi[device.address] = adv.rssi
            return spec is not None

        if self._scanner_backend is not None:
            args["backend"] = self._scanner_backend
        device = await BleakScanner.find_device_by_filter(matches, timeout=self._scan_timeout, **args)
        if device is None or self._stop.is_set():
            return False
        self.spec = found.get(device.address, self.spec)
        #: signal strength when last seen advertising (dBm), shown with the device's state
        self.rssi = rssi.get(device.address)
        if self.device_id == self._placeholder:
            self._sink.forget_device(self._placeholder)
        self.device_id = device.address
        self.device_name = device.name or self.spec.kind
        self._streaming = self.spec.streaming
        self._sink.register_device(
            DeviceInfo(device.address, self.device_name, self.spec.kind, streaming=self._streaming)
        )
        self._report(DeviceState.CONNECTING, self.device_name)

        gone = asyncio.Event()

        def on_disconnect(_client: BleakClient) -> None:
            gone.set()

        client = BleakClient(
            device,
            disconnected_callback=on_disconnect,
            timeout=self._connect_timeout,
            backend=self._client_backend,
        )
        try:
            await client.connect()
        except (BleakError, TimeoutError, OSError) as exc:
            self._report(DeviceState.LOST, f"connect failed: {exc or type(exc).__name__}")
            return False
        self.connections += 1
        if self._address is None:
            # from now on this role means this device: a drop reconnects to it, never to another
            # oximeter that happens to be in range
            self._address = device.address.upper()
            if self._on_chosen is not None:
                try:
                    self._on_chosen(self.role, device.address, self.device_name)
                except Exception:
                    log.exception("could not remember the device of role %s", self.role)
        got_data = False
        reason = "disconnected"
        self._paired = False
        upload: asyncio.Task[None] | None = None
        try:
            await self._read_device_information(client)
            subscriptions = [
                sub
                for sub in self.spec.subscriptions
                if not sub.optional or client.services.get_characteristic(sub.characteristic) is not None
            ]
            if not subscriptions:
                raise BleakError(f"{self.device_name} offers none of the characteristics its profile needs")
            # Connected before the first value can arrive (the battery read, a notification): a
            # sample stamped before the 'connected' event would lie inside the gap that the
            # device events lost → connected mark in the record.
            self._report(DeviceState.CONNECTED, self._describe())
            await self._read_battery(client)
            self._last_data_mono = self._clock.monotonic()
            packets_before = self.packets
            for sub in subscriptions:
                reset_decoder(sub.decode)  # a new connection starts a new byte stream
                callback = self._callback(sub)
                await self._secured(
                    client, functools.partial(client.start_notify, sub.characteristic, callback)
                )
            self._streaming_now(self.spec.streaming and any(sub.streams for sub in subscriptions))
            for char, payload in self.spec.start_commands:
                await self._secured(
                    client, functools.partial(client.write_gatt_char, char, payload, response=False)
                )
            racp = self.spec.record_access
            if racp is not None and client.services.get_characteristic(racp) is not None:
                # stored records come in while the link watches, like any other data
                upload = asyncio.create_task(self._upload_stored(client, racp))
            reason = await self._watch(gone)
            got_data = self.packets > packets_before
        except (BleakError, TimeoutError, OSError) as exc:
            reason = f"link error: {exc or type(exc).__name__}"
        finally:
            if upload is not None and not upload.done():
                upload.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await upload
            if client.is_connected:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(), 5.0)
        if self._stop.is_set():
            return got_data
        self._report(DeviceState.LOST, reason)
        return got_data

    async def _upload_stored(self, client: BleakClient, characteristic: str) -> None:
        """Ask the device for the records it stored while disconnected (gatt.md "RACP").

        The records arrive through their own subscription (PLX: 0x2A5E with status bit 9) and are
        placed, flagged and de-duplicated there and in the session. A failure or a missing answer
        is logged and changes nothing else: the link keeps streaming.
        """
        racp = self._record_access(client, characteristic)
        secured = functools.partial(self._secured, client)
        try:
            await racp.enable(secured)
            result = await racp.upload_all(secured)
        except asyncio.CancelledError:
            raise
        except (BleakError, TimeoutError, RacpError, OSError) as exc:
            self.stored_upload = f"failed: {type(exc).__name__}: {exc}"
            log.warning("%s: stored records not uploaded: %s", self.device_id, self.stored_upload)
            return
        except Exception:  # never let the stored-records request end the link
            self.stored_upload = "failed: unexpected error"
            log.exception("%s: stored records request failed", self.device_id)
            return
        self.stored_uploads += 1
        self.stored_upload = f"{result.announced} record(s)" + (
            "" if result.response is None else f", response {result.response.code!r}"
        )
        log.info("%s: stored records uploaded: %s", self.device_id, self.stored_upload)

    def _record_access(self, client: BleakClient, characteristic: str) -> RecordAccessClient:
        """This connection's RACP client: an indication it cannot parse is a malformed packet."""
        return RecordAccessClient(
            client, characteristic, timeout_s=self._racp_timeout, on_refused=self._refused
        )

    def _refused(self, label: str, raw: bytes, error: str) -> None:
        """Count a packet refused outside a subscription's decoder and hand it to the sink."""
        self.malformed += 1
        mono, wall = self._clock.monotonic(), self._clock.wall()
        packet = MalformedPacket(self.device_id, label, raw, error, mono, wall)
        try:
            self._sink.malformed(packet)
        except Exception:
            log.exception("sink failed on a malformed packet")

    async def _watch(self, gone: asyncio.Event) -> str:
        """Wait for a disconnect, a stop, or data staleness; say which."""
        while True:
            waiters = {asyncio.ensure_future(gone.wait()), asyncio.ensure_future(self._stop.wait())}
            done, pending = await asyncio.wait(
                waiters, timeout=self._watchdog_period, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            if self._stop.is_set():
                return "stopped"
            if gone.is_set():
                return "link lost (disconnected)"
            last = self._last_data_mono
            now = self._clock.monotonic()
            if self._streaming and last is not None and now - last >= self._stale_after:
                return f"no data for {now - last:.0f} s; reconnecting"
            del done

    def _streaming_now(self, streaming: bool) -> None:
        """Whether silence means trouble for this connection (not for a spot-check-only oximeter)."""
        if streaming != self._streaming:
            # tell the session too: its no-data watchdog follows DeviceInfo.streaming
            self._sink.register_device(
                DeviceInfo(self.device_id, self.device_name, self.spec.kind, streaming=streaming)
            )
        self._streaming = streaming

    async def _secured[T](self, client: BleakClient, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a GATT operation; if the device refuses it until paired, pair (once) and run it again.

        Pairing is "just works" where the platform allows it; a platform that pairs by itself on
        such an error (CoreBluetooth prompts the user) or cannot pair from code lets the error through.
        """
        try:
            return await operation()
        except BleakGATTProtocolError as exc:
            if exc.code not in NEEDS_PAIRING or self._paired:
                raise
            log.info("%s: %s until paired; pairing", self.device_id, exc)
        try:
            await client.pair()
        except NotImplementedError as exc:
            raise BleakError(f"{self.device_name} needs pairing, which this platform does not offer") from exc
        self._paired = True
        self.pairings += 1
        return await operation()

    async def _read_static(self, client: BleakClient) -> None:
        """Device Information strings, then the battery level (followed, if the device notifies it)."""
        await self._read_device_information(client)
        await self._read_battery(client)

    async def _read_device_information(self, client: BleakClient) -> None:
        """The Device Information strings (read before 'connected', which names the model)."""
        services = client.services
        info: dict[str, str] = {}
        for key, uuid in DEVICE_INFO_STRINGS.items():
            if services.get_characteristic(uuid) is None:
                continue
            try:
                raw = await self._secured(client, functools.partial(client.read_gatt_char, uuid))
                info[key] = bytes(raw).decode("utf-8", errors="replace").strip("\x00 ")
            except (BleakError, TimeoutError) as exc:
                log.info("%s: could not read %s: %s", self.device_id, key, exc)
        self.device_information = info

    async def _read_battery(self, client: BleakClient) -> None:
        """The battery level, then its notifications if the device sends them (after 'connected')."""
        battery = client.services.get_characteristic(BATTERY_LEVEL)
        if battery is None:
            return
        try:
            level_bytes = bytes(
                await self._secured(client, functools.partial(client.read_gatt_char, BATTERY_LEVEL))
            )
        except (BleakError, TimeoutError) as exc:
            log.info("%s: could not read the battery level: %s", self.device_id, exc)
            return
        self._take_battery(level_bytes)
        if isinstance(battery, BleakGATTCharacteristic) and "notify" in battery.properties:
            # a wearable that notifies its battery: follow it, so a low battery shows during the
            # session and not only at the next connection
            try:
                await self._secured(client, functools.partial(client.start_notify, battery, self._on_battery))
            except (BleakError, TimeoutError) as exc:
                log.info("%s: no battery notifications: %s", self.device_id, exc)

    def _on_battery(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        # not data for the staleness watchdog: a stream that stopped is stale whatever the battery does
        try:
            self._take_battery(bytes(data))
        except Exception:
            log.exception("%s: battery notification %s", self.device_id, bytes(data).hex(" "))

    def _take_battery(self, level_bytes: bytes) -> None:
        """Battery Level bytes → a BATTERY numeric; a malformed value is counted and logged, not shown."""
        mono, wall = self._clock.monotonic(), self._clock.wall()
        try:
            level = parse_battery_level(level_bytes)
        except BatteryParseError as exc:
            self.malformed += 1
            self._sink.malformed(
                MalformedPacket(self.device_id, "Battery Level 0x2A19", level_bytes, str(exc), mono, wall)
            )
            return
        self._sink.ingest([Numeric(Param.BATTERY, float(level), mono, wall, self.device_id)])

    def _describe(self) -> str:
        parts = [self.device_name]
        model = " ".join(v for k in ("manufacturer", "model") if (v := self.device_information.get(k)))
        if model:
            parts.append(model)
        if self.rssi is not None:
            parts.append(f"signal {self.rssi} dBm")
        return " · ".join(parts)

    def _callback(self, sub: Subscription) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        """A notification handler that parses, stamps and hands over, and never raises into bleak."""

        def on_notify(_char: BleakGATTCharacteristic, data: bytearray) -> None:
            mono, wall = self._clock.monotonic(), self._clock.wall()
            self._last_data_mono = mono
            raw = bytes(data)
            try:
                measurements = sub.decode(raw, self.device_id, mono, wall)
            except Exception as exc:  # a parser error: count, log with bytes, drop
                self.malformed += 1
                packet = MalformedPacket(
                    self.device_id, sub.label, raw, f"{type(exc).__name__}: {exc}", mono, wall
                )
                try:
                    self._sink.malformed(packet)
                except Exception:
                    log.exception("sink failed on a malformed packet")
                # a stream decoder (Viatom, BerryMed) raises once per notification with a bad frame
                # but hands over the good frames of the same notification: they are not lost
                salvaged = getattr(exc, "measurements", None)
                if not salvaged:
                    return
                measurements = salvaged
            self.packets += 1
            try:
                self._sink.ingest(measurements)
            except Exception:
                log.exception("sink failed on ingest of %s", raw.hex(" "))

        return on_notify
