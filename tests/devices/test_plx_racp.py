"""RACP 0x2A52: the emulated oximeter through bleak, the stored-record decoder, the session's handling."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bumble.device import Connection

from devices._ble.bumble_backend import bumble_backends
from devices._ble.link import DeviceLink
from devices._ble.racp import LABEL as RACP_LABEL
from devices._ble.racp import RacpError, RecordAccessClient
from devices.emulated.plx_oximeter import (
    EmulatedPlxOximeter,
    StoredSpotCheck,
    encode_features,
    racp_number_of_records,
    racp_response,
)
from devices.emulated.radio import VirtualRadio
from devices.emulated.scenario import SCENARIOS, VitalsPoint
from devices.plx.driver import (
    PLX_RACP,
    PLX_SPOT_CHECK,
    UnplacedRecordError,
    plx_spec,
    record_wall,
    spot_check_decoder,
)
from devices.plx.parser import (
    ParseError,
    PlxSupportedFeatures,
    RacpOpCode,
    RacpResponse,
    RacpResponseCode,
    build_plx_spot_check,
    parse_plx_features,
    parse_plx_spot_check,
)
from kapmonitor.alarms import AlarmEngine, kap_defaults
from kapmonitor.clock import FakeClock, SystemClock
from kapmonitor.measurements import DeviceInfo, DeviceState, Numeric, Param, Quality
from kapmonitor.session import Session
from kapmonitor.storage import Recorder, malformed_packets, open_database

SPEED = 20.0
ADV_MS = 20.0
WAIT_S = 3.0
#: a +02:00 zone: the oximeter's clock shows local time, the record is UTC (gatt.md Date Time has no zone)
PLUS2 = timezone(timedelta(hours=2))


def naive(text: str) -> datetime:
    """A device's naive Date Time from ISO text (the profile carries no zone)."""
    return datetime.fromisoformat(text + "+00:00").replace(tzinfo=None)


async def _direct[T](operation: Callable[[], Awaitable[T]]) -> T:
    """What DeviceLink._secured does for a device that needs no pairing: just run it."""
    return await operation()


# -- the decoder: stored records placed by their own time ----------------------------------------
def test_a_stored_spot_check_is_placed_at_its_own_time_and_flagged() -> None:
    when = naive("2026-01-01T11:00:00")  # the oximeter's local clock (+02:00): 09:00 UTC
    raw = build_plx_spot_check(spo2=82, pulse_rate=88, timestamp=when, measurement_status=1 << 9)
    own = datetime(2026, 1, 1, 9, 0, 0, tzinfo=UTC).timestamp()
    arrival_wall, arrival_mono = own + 600.0, 5000.0
    got = spot_check_decoder(PLUS2)(raw, "ox", arrival_mono, arrival_wall)
    assert [(n.param, n.value) for n in got if isinstance(n, Numeric)] == [
        (Param.SPO2, 82.0),
        (Param.PULSE_RATE, 88.0),
    ]
    assert all(isinstance(n, Numeric) and n.quality & Quality.FROM_STORAGE for n in got)
    assert {n.wall for n in got} == {own}
    assert {n.mono for n in got} == {arrival_mono - 600.0}  # moved back by its age


def test_a_live_spot_check_stays_at_its_arrival() -> None:
    raw = build_plx_spot_check(spo2=97, pulse_rate=70, timestamp=naive("2020-01-01T00:00:00"))
    got = spot_check_decoder(UTC)(raw, "ox", 10.0, 2_000_000_000.0)
    assert {(n.mono, n.wall) for n in got} == {(10.0, 2_000_000_000.0)}
    assert not any(isinstance(n, Numeric) and n.quality & Quality.FROM_STORAGE for n in got)


@pytest.mark.parametrize(
    "raw",
    [
        build_plx_spot_check(spo2=90, pulse_rate=70, measurement_status=1 << 9),  # no timestamp
        build_plx_spot_check(spo2=90, pulse_rate=70, timestamp=None, measurement_status=1 << 9, flags=0x03),
        build_plx_spot_check(
            spo2=90,
            pulse_rate=70,
            timestamp=naive("2000-01-01T00:05:00"),
            measurement_status=1 << 9,
            device_clock_not_set=True,
        ),
    ],
    ids=["no-timestamp", "unknown-timestamp", "clock-not-set"],
)
def test_a_stored_spot_check_that_cannot_be_placed_is_refused(raw: bytes) -> None:
    """Not placed, not taken for live: refused like a malformed packet (the link counts it)."""
    m = parse_plx_spot_check(raw)
    assert m.from_storage and record_wall(m, UTC) is None
    with pytest.raises(UnplacedRecordError, match=r"^stored spot-check .*: not placed, not live$"):
        spot_check_decoder(UTC)(raw, "ox", 1.0, 2.0)
    assert issubclass(UnplacedRecordError, ParseError)  # the decoder's declared error: not a crash


def test_the_plx_spec_asks_for_stored_records() -> None:
    spec = plx_spec(UTC)
    assert spec.record_access == PLX_RACP == "00002a52-0000-1000-8000-00805f9b34fb"
    assert PLX_SPOT_CHECK in {s.characteristic for s in spec.subscriptions}


def test_the_features_of_a_storing_oximeter_announce_storage_and_bit_9() -> None:
    features = parse_plx_features(encode_features(storage=True))
    assert features.supported & PlxSupportedFeatures.SPOT_CHECK_MEASUREMENT_STORAGE
    assert features.supported & PlxSupportedFeatures.SPOT_CHECK_TIMESTAMP
    assert features.measurement_status_support is not None and features.measurement_status_support & (1 << 9)
    plain = parse_plx_features(encode_features())
    assert not plain.supported & PlxSupportedFeatures.SPOT_CHECK_MEASUREMENT_STORAGE


# -- the session: recorded once, never live, never alarmed ----------------------------------------
def _low_spo2(quality: Quality, mono: float) -> Numeric:
    return Numeric(Param.SPO2, 80.0, mono, 1_000_000.0 + mono, "ox", quality)


def test_a_stored_low_spo2_is_recorded_once_never_live_never_alarmed_but_a_live_one_alarms(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    engine = AlarmEngine(clock, kap_defaults(), hold_off_s=0.0)
    db = open_database(tmp_path / "kap.sqlite")
    recorder = Recorder(db, clock)
    recorder.begin_session(kind="demo")
    session = Session(clock, recorder, alarms=engine)
    stored = _low_spo2(Quality.FROM_STORAGE, 1.0)
    session.ingest([stored])
    session.ingest([stored])  # a second connection uploads it again
    clock.advance(1.0)
    session.tick()
    recorder.flush()
    sid = recorder.session_id
    assert sid is not None
    rows = db.execute(
        "SELECT mono, t_utc, value, quality FROM numerics WHERE session_id = ?", (sid,)
    ).fetchall()
    assert [tuple(r) for r in rows] == [(1.0, stored.wall, 80.0, int(Quality.FROM_STORAGE))]
    assert Param.SPO2 not in session.latest and Param.SPO2 not in session.trends
    assert engine.active_alarms() == [] and engine.history() == []
    # the same value live raises the high-priority low-SpO2 alarm at once (kap_defaults: < 85, 0 s)
    session.ingest([_low_spo2(Quality.NONE, clock.monotonic())])
    clock.advance(1.0)
    session.tick()
    assert [a.param for a in engine.active_alarms()] == [Param.SPO2]
    assert session.latest[Param.SPO2].quality == Quality.NONE
    recorder.end_session()
    db.close()


# -- the emulator's RACP through bleak ------------------------------------------------------------
@pytest_asyncio.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    async with VirtualRadio() as r:
        yield r


async def _connect(radio: VirtualRadio, emu: EmulatedPlxOximeter) -> BleakClient:
    scanner_cls, client_cls = bumble_backends(radio)
    device = await BleakScanner.find_device_by_address(emu.address, timeout=WAIT_S, backend=scanner_cls)
    assert device is not None
    client = BleakClient(device, timeout=WAIT_S, backend=client_cls)
    await client.connect()
    return client


@pytest.mark.asyncio
async def test_racp_reports_the_stored_records_then_success_and_keeps_them(radio: VirtualRadio) -> None:
    scenario = SCENARIOS["desaturation"](3)
    emu = EmulatedPlxOximeter(radio, scenario, speed=SPEED, advertising_interval_ms=ADV_MS, record_memory=5)
    expected = [emu.store_spot_check(t) for t in (100.0, 200.0, 240.0)]
    await emu.start(600.0)
    client = await _connect(radio, emu)
    try:
        records: asyncio.Queue[bytes] = asyncio.Queue()

        def on_record(_c: BleakGATTCharacteristic, data: bytearray) -> None:
            records.put_nowait(bytes(data))

        await client.start_notify(PLX_SPOT_CHECK, on_record)
        racp = RecordAccessClient(client, PLX_RACP, timeout_s=WAIT_S)
        await racp.enable(_direct)
        assert await racp.number_of_records(_direct) == 3
        result = await racp.upload_all(_direct)
        assert result.announced == 3 and result.response == RacpResponse(
            RacpOpCode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS
        )
        got = [records.get_nowait() for _ in range(3)]
        assert got == expected == emu.uploaded  # oldest first, each confirmed
        for raw, t in zip(got, (100.0, 200.0, 240.0), strict=True):
            m = parse_plx_spot_check(raw)
            assert m.from_storage and m.has_timestamp and m.timestamp == emu.clock_datetime(t)
            assert m.spo2 == scenario.at(t).spo2
        assert emu.racp_writes == [b"\x04\x01", b"\x04\x01", b"\x01\x01"]
        assert len(emu.records) == 3  # a device keeps its records until deleted
        # "delete stored records" is not in gatt.md: refused as an unsupported op code
        answer = await racp.request(_direct, RacpOpCode.DELETE_STORED_RECORDS)
        assert answer == RacpResponse(
            RacpOpCode.DELETE_STORED_RECORDS, RacpResponseCode.OP_CODE_NOT_SUPPORTED
        )
        assert len(emu.records) == 3 and racp.unparsed == []
    finally:
        await client.disconnect()
        await emu.stop()


@pytest.mark.asyncio
async def test_racp_with_no_records_says_so_and_nothing_is_uploaded(radio: VirtualRadio) -> None:
    emu = EmulatedPlxOximeter(
        radio, SCENARIOS["normal"](1), speed=SPEED, advertising_interval_ms=ADV_MS, record_memory=5
    )
    await emu.start()
    client = await _connect(radio, emu)
    try:
        racp = RecordAccessClient(client, PLX_RACP, timeout_s=WAIT_S)
        await racp.enable(_direct)
        result = await racp.upload_all(_direct)
        assert result.announced == 0 and result.response is None
        answer = await racp.request(_direct, RacpOpCode.REPORT_STORED_RECORDS)
        assert answer == RacpResponse(RacpOpCode.REPORT_STORED_RECORDS, RacpResponseCode.NO_RECORDS_FOUND)
        assert emu.uploaded == []
    finally:
        await client.disconnect()
        await emu.stop()


@pytest.mark.asyncio
async def test_a_scheduled_spot_check_nobody_listens_to_is_kept(radio: VirtualRadio) -> None:
    emu = EmulatedPlxOximeter(
        radio,
        SCENARIOS["normal"](2),
        speed=SPEED,
        advertising_interval_ms=ADV_MS,
        continuous=False,
        spot_check_every_s=2.0,
        record_memory=3,
    )
    await emu.start()
    try:
        async with asyncio.timeout(WAIT_S):
            while len(emu.records) < 3 or emu.ticks < 9:
                await asyncio.sleep(0.05)
        # memory of 3: the oldest dropped first (t = 0 and 2 are gone); one every 2 scenario s
        times = [r.t for r in emu.records]
        assert times[0] > 2.0 and [b - a for a, b in itertools.pairwise(times)] == [2.0, 2.0]
        assert all(r.when == emu.clock_datetime(r.t) for r in emu.records)
        assert emu.spot_checks == []  # nobody confirmed any
    finally:
        await emu.stop()


def test_store_spot_check_needs_memory() -> None:
    radio = VirtualRadio()
    emu = EmulatedPlxOximeter(radio, SCENARIOS["normal"](1), spot_check_every_s=2.0)
    with pytest.raises(RuntimeError, match="keeps no records"):
        emu.store_spot_check(1.0)
    with pytest.raises(ValueError, match="record_memory"):
        EmulatedPlxOximeter(radio, SCENARIOS["normal"](1), record_memory=-1)


def test_a_storing_oximeter_clock_shows_local_time() -> None:
    emu = EmulatedPlxOximeter(VirtualRadio(), SCENARIOS["normal"](1), record_memory=2, epoch=0.0, tz=PLUS2)
    assert emu.clock_datetime(3600.5) == naive("1970-01-01T03:00:00")
    raw = emu.store_spot_check(60.0)
    assert parse_plx_spot_check(raw).timestamp == naive("1970-01-01T02:01:00")
    assert parse_plx_spot_check(raw).spo2 == SCENARIOS["normal"](1).at(60.0).spo2
    assert isinstance(emu.records[0].point, VitalsPoint)


def test_the_racp_example_of_docs_devices_plx_md() -> None:
    """Rows F1-F7 of docs/devices/plx.md, byte for byte."""
    emu = EmulatedPlxOximeter(VirtualRadio(), SCENARIOS["desaturation"](3), record_memory=5)
    records = [emu.store_spot_check(t).hex(" ").upper() for t in (100.0, 200.0, 240.0)]
    assert records == [
        "0F 61 00 4D 00 EA 07 01 01 09 01 28 20 02 00 00 00 2A F0",
        "0F 52 00 56 00 EA 07 01 01 09 03 14 20 02 00 00 00 18 F0",
        "0F 52 00 58 00 EA 07 01 01 09 04 00 20 02 00 00 00 25 F0",
    ]
    assert racp_number_of_records(3) == bytes.fromhex("05 00 03 00")
    assert racp_response(1, RacpResponseCode.SUCCESS) == bytes.fromhex("06 00 01 01")
    assert racp_response(2, RacpResponseCode.OP_CODE_NOT_SUPPORTED) == bytes.fromhex("06 00 02 02")
    stored = parse_plx_spot_check(bytes.fromhex(records[1]))
    assert (stored.spo2, stored.pulse_rate, stored.pulse_amplitude_index) == (82.0, 86.0, 2.4)
    assert stored.timestamp == naive("2026-01-01T09:03:20") and stored.measurement_status == 0x0220


def test_a_stored_value_is_not_taken_for_the_devices_latest_data_by_the_stale_watchdog() -> None:
    clock = FakeClock()
    session = Session(clock, stale_after_s=15.0)
    session.register_device(DeviceInfo("ox", "PLX", "pulse-oximeter", streaming=True))
    session.device_state("ox", DeviceState.CONNECTED)
    now = clock.monotonic()
    session.ingest([Numeric(Param.SPO2, 97.0, now, clock.wall(), "ox")])
    # a record taken 400 s ago arrives (mono moved back by its age, as the PLX driver places it)
    session.ingest([Numeric(Param.SPO2, 82.0, now - 400.0, clock.wall() - 400.0, "ox", Quality.FROM_STORAGE)])
    clock.advance(1.0)
    session.tick()
    assert not session.is_stale("ox")
    assert session.devices["ox"].counters.last_data_mono == now
    clock.advance(15.0)  # and real silence is still noticed
    session.tick()
    assert session.is_stale("ox")


@pytest.mark.asyncio
async def test_an_upload_the_device_cannot_complete_is_an_error_for_the_caller(radio: VirtualRadio) -> None:
    emu = EmulatedPlxOximeter(
        radio, SCENARIOS["normal"](1), speed=SPEED, advertising_interval_ms=ADV_MS, record_memory=5
    )
    emu.store_spot_check(5.0)
    await emu.start(60.0)
    client = await _connect(radio, emu)
    try:
        racp = RecordAccessClient(client, PLX_RACP, timeout_s=WAIT_S)
        await racp.enable(_direct)
        # 0x2A5E indications are off: the oximeter cannot send the record ("procedure not completed")
        with pytest.raises(RacpError, match="PROCEDURE_NOT_COMPLETED"):
            await racp.upload_all(_direct)
        assert emu.uploaded == [] and emu.racp_writes == [b"\x04\x01", b"\x01\x01"]
    finally:
        await client.disconnect()
        await emu.stop()


# -- refused through the link's malformed path: counted by link and session, recorded with bytes ------
#: the SpO2 of the record without a time: low enough to alarm if it were ever taken for live
UNTIMED_SPO2 = 71
#: a response code indication cut short (4 bytes needed): no RACP response we know
STRAY_RACP = b"\x06\x00\x01"


@dataclass(frozen=True)
class _UntimedRecord(StoredSpotCheck):
    """A record the oximeter kept without a Timestamp field (flagged from storage all the same)."""

    @property
    def raw(self) -> bytes:
        return build_plx_spot_check(spo2=UNTIMED_SPO2, pulse_rate=88, measurement_status=1 << 9)


class _StrayRacpOximeter(EmulatedPlxOximeter):
    """A firmware that indicates a malformed RACP response before each real answer."""

    async def _answer_racp(self, connection: Connection, data: bytes) -> None:
        await self._racp_indicate(connection, STRAY_RACP)
        await super()._answer_racp(connection, data)


@pytest.mark.asyncio
async def test_stray_racp_indications_and_an_untimed_record_are_counted_recorded_and_never_live(
    radio: VirtualRadio, tmp_path: Path
) -> None:
    emu = _StrayRacpOximeter(
        radio, SCENARIOS["normal"](1), speed=SPEED, advertising_interval_ms=ADV_MS, record_memory=5
    )
    timed = emu.store_spot_check(100.0)
    emu.records.append(_UntimedRecord(110.0, emu.scenario.at(110.0), emu.clock_datetime(110.0)))
    untimed = emu.records[-1].raw
    await emu.start(200.0)
    clock = SystemClock()
    db = open_database(tmp_path / "kap.sqlite")
    recorder = Recorder(db, clock)
    sid = recorder.begin_session(kind="demo")
    engine = AlarmEngine(clock, kap_defaults(), hold_off_s=0.0)
    session = Session(clock, recorder, alarms=engine)
    scanner_cls, client_cls = bumble_backends(radio)
    link = DeviceLink(
        plx_spec(UTC),
        session,
        clock,
        scanner_backend=scanner_cls,
        client_backend=client_cls,
        backoff_s=(0.1,),
    )
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(WAIT_S * 3):
            while link.stored_uploads < 1 or link.malformed < 3:
                await asyncio.sleep(0.02)
        # the stray answers were refused, not taken for the device's answer: the upload went through
        assert link.stored_upload is not None and link.stored_upload.startswith("2 record(s)")
        assert emu.uploaded == [timed, untimed]
        assert link.malformed == session.devices[link.device_id].counters.malformed == 3
        recorder.flush()
        rows = sorted((r.characteristic, r.data, r.error) for r in malformed_packets(db, sid))
        assert [(c, d) for c, d, _ in rows] == [
            ("PLX spot-check 0x2A5E", untimed),
            (RACP_LABEL, STRAY_RACP),
            (RACP_LABEL, STRAY_RACP),
        ]
        assert "without a timestamp" in rows[0][2] and "ParseError" in rows[1][2]
        # the untimed record is nowhere: not recorded as a value, not live, not alarmed on
        values = [r[0] for r in db.execute("SELECT value FROM numerics WHERE session_id = ?", (sid,))]
        assert UNTIMED_SPO2 not in values and len(values) > 0
        latest = session.latest.get(Param.SPO2)
        assert latest is None or latest.value != UNTIMED_SPO2
        assert not any("spo2" in str(a).lower() for a in engine.active_alarms())
    finally:
        link.stop()
        await asyncio.wait_for(task, WAIT_S)
        await emu.stop()
        db.close()
