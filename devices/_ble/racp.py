"""The central's side of a Record Access Control Point (0x2A52): ask a device for its stored records."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic

from devices.plx.parser import (
    ParseError,
    RacpNumberOfRecords,
    RacpOpCode,
    RacpOperator,
    RacpResponse,
    RacpResponseCode,
    build_racp,
    parse_racp_response,
)

log = logging.getLogger(__name__)

#: How long (seconds) a device may take to answer an RACP request before it has sent any record.
RESPONSE_TIMEOUT_S = 10.0
#: Extra time allowed per announced record for the upload (each is an indication + confirmation).
PER_RECORD_S = 0.5

#: Runs one GATT operation, pairing first if the device asks for it (DeviceLink._secured).
Secured = Callable[[Callable[[], Awaitable[object]]], Awaitable[object]]
#: Told (characteristic label, bytes, error) of an indication that is no response we know: the link
#: counts it as a malformed packet and hands it to its sink (DeviceLink._refused).
Refused = Callable[[str, bytes, str], None]
#: The label a refused RACP indication is counted and recorded under.
LABEL = "RACP 0x2A52"


class RacpError(Exception):
    """The device did not answer an RACP request as the procedure says (logged; the link goes on)."""


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What a stored-records request achieved: records announced, and the final response code."""

    announced: int
    response: RacpResponse | None  # None when there was nothing to ask for (0 records)


class RecordAccessClient:
    """Write RACP requests and wait for their indicated responses (gatt.md "RACP").

    `04 01` (report number of stored records, all) → `05 00 <u16 count>`; `01 01` (report stored
    records, all) → the records as indications of their own characteristic (0x2A5E for PLX, with
    Measurement Status bit 9 "from storage"), then `06 00 01 01` (response code: success).
    The records themselves go through the link's normal subscription; this class only sees 0x2A52.
    An indication that is no response we know is kept in `unparsed` and handed to `on_refused`
    (the link's malformed-packet count and its sink, which logs and records it with its bytes);
    without `on_refused` it is logged here.
    """

    def __init__(
        self,
        client: BleakClient,
        characteristic: str,
        *,
        timeout_s: float = RESPONSE_TIMEOUT_S,
        on_refused: Refused | None = None,
    ) -> None:
        self._client = client
        self._characteristic = characteristic
        self._timeout = timeout_s
        self._on_refused = on_refused
        self._responses: asyncio.Queue[RacpNumberOfRecords | RacpResponse] = asyncio.Queue()
        #: RACP indications that were not a response we know (refused, never taken for an answer)
        self.unparsed: list[bytes] = []

    def on_indication(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        """The 0x2A52 indication handler: queue a parsed response; never raise into bleak."""
        raw = bytes(data)
        try:
            self._responses.put_nowait(parse_racp_response(raw))
        except ParseError as exc:
            self.unparsed.append(raw)
            if self._on_refused is None:
                log.warning("RACP: unexpected indication %s: %s", raw.hex(" "), exc)
                return
            try:
                self._on_refused(LABEL, raw, f"{type(exc).__name__}: {exc}")
            except Exception:
                log.exception("RACP: reporting the unexpected indication %s failed", raw.hex(" "))

    async def enable(self, secured: Secured) -> None:
        """Turn on the RACP indications (before any request: the answer comes as one)."""
        await secured(lambda: self._client.start_notify(self._characteristic, self.on_indication))

    async def request(
        self, secured: Secured, op: RacpOpCode, *, timeout_s: float | None = None
    ) -> RacpNumberOfRecords | RacpResponse:
        """Write `op` with operator "all records" and return the device's answer (TimeoutError if none)."""
        payload = build_racp(op, RacpOperator.ALL_RECORDS)
        # RACP is written with response (the profile requires a write request, not a command)
        await secured(lambda: self._client.write_gatt_char(self._characteristic, payload, response=True))
        async with asyncio.timeout(self._timeout if timeout_s is None else timeout_s):
            return await self._responses.get()

    async def number_of_records(self, secured: Secured) -> int:
        """`04 01` → `05 00 <count>`: how many records the device holds."""
        answer = await self.request(secured, RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS)
        if isinstance(answer, RacpNumberOfRecords):
            return answer.count
        raise RacpError(f"number of stored records: response code {answer.code!r} to {answer.request_op!r}")

    async def upload_all(self, secured: Secured) -> UploadResult:
        """Ask how many records there are, then (if any) for all of them; return the outcome.

        "No records found" is a normal answer; any other failure code or a missing answer raises
        (RacpError / TimeoutError) for the caller to log.
        """
        count = await self.number_of_records(secured)
        if count == 0:
            return UploadResult(0, None)
        answer = await self.request(
            secured,
            RacpOpCode.REPORT_STORED_RECORDS,
            timeout_s=self._timeout + count * PER_RECORD_S,
        )
        if not isinstance(answer, RacpResponse) or answer.request_op is not RacpOpCode.REPORT_STORED_RECORDS:
            raise RacpError(f"report stored records: unexpected answer {answer!r}")
        if not answer.success and answer.code != RacpResponseCode.NO_RECORDS_FOUND:
            raise RacpError(f"report stored records: response code {answer.code!r}")
        return UploadResult(count, answer)
