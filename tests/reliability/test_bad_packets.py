"""Bad packets (fast variant of stress/fuzz_parsers.py): no parser crashes, every refused packet counted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devices._ble.link import DeviceLink
from devices.viatom.driver import viatom_spec
from devices.viatom.parser import build_params, build_pleth
from kapmonitor.clock import FakeClock
from kapmonitor.measurements import DeviceInfo, Param
from kapmonitor.session import Session
from kapmonitor.storage import Recorder, malformed_packets, open_database
from stress.fuzz_parsers import DEFAULT_SEED, TARGET_NAMES, TARGETS, fuzz_target, run

#: Packets per parser here; the full variant sends 10^6 (stress/fuzz_parsers.py --count).
FAST_COUNT = 20_000
#: Settable like the full variant's --seed; printed with every failure.
SEED = int(os.environ.get("KAPMONITOR_FUZZ_SEED", DEFAULT_SEED))


@pytest.mark.slow
@pytest.mark.parametrize("name", TARGET_NAMES)
def test_no_crash_and_every_refused_packet_counted(name: str) -> None:
    (result,) = run(FAST_COUNT, SEED, [name])
    assert result.packets >= FAST_COUNT
    assert result.ok, f"seed {SEED}: " + "; ".join(result.problems())
    # the run exercised both sides: the emulator's packets went through, bad ones were refused
    assert result.known_bad >= FAST_COUNT // 60
    if result.countable:
        assert 0 < result.refused < result.packets, f"seed {SEED}"
    else:  # Device Information: shown as UTF-8 with replacement (checked), nothing refused or counted
        assert result.refused == result.counted_link == result.counted_session == 0


#: one of each path: a notification, an indication to the RACP client, a stream framer, a read
RECORDED = [
    "plx-continuous",
    "plx-spot-check",
    "racp",
    "heart-rate",
    "viatom-stream",
    "berrymed-stream",
    "battery",
]


@pytest.mark.parametrize("name", RECORDED)
def test_refused_packets_are_recorded_with_their_bytes(name: str, tmp_path: Path) -> None:
    """Through a Recorder on a real SQLite file: one malformed_packets row per refused packet."""
    db = open_database(tmp_path / "fuzz.sqlite")
    try:
        recorder = Recorder(db, FakeClock())
        sid = recorder.begin_session()
        (target,) = [t for t in TARGETS if t.name == name]
        result = fuzz_target(target, 2_000, SEED, recorder)
        recorder.flush()
        rows = malformed_packets(db, sid)
        assert result.ok, f"seed {SEED}: " + "; ".join(result.problems())
        assert result.refused > 0
        assert len(rows) == result.refused
        assert {r.characteristic for r in rows} == {target.label}
        assert all(r.error for r in rows)
    finally:
        db.close()


def test_garbage_shaped_like_an_unknown_viatom_frame_is_counted(tmp_path: Path) -> None:
    """`AA 55 <token> <len>` garbage is counted once by the link and once by the session, and recorded
    with its bytes, as soon as the span it claims has passed; the real frames inside it are kept."""
    db = open_database(tmp_path / "viatom.sqlite")
    try:
        clock = FakeClock()
        recorder = Recorder(db, clock)
        sid = recorder.begin_session()
        session = Session(clock, recorder)
        spec = viatom_spec()
        link = DeviceLink(spec, session, clock)
        link.device_id = "PC:60:FW:00:00:01"
        session.register_device(DeviceInfo(link.device_id, "PC-60FW", spec.kind))
        on_notify = link._callback(spec.subscriptions[0])
        garbage = bytes.fromhex("aa 55 00 1e 01") + b"junkjunk"  # token 0x00: not a stream frame, len 30
        on_notify(None, bytearray(garbage))  # type: ignore[arg-type]
        assert link.malformed == 0  # its claimed span (34 bytes) has not passed: a real frame could end it
        frames = build_params(spo2=97, pulse_rate=72, pi_raw=34) + build_pleth([10, 20, 30, 40, 50]) * 2
        clock.advance(0.1)
        on_notify(None, bytearray(frames))  # type: ignore[arg-type]
        assert link.malformed == session.devices[link.device_id].counters.malformed == 1
        assert session.latest[Param.SPO2].value == 97.0  # the frames of that notification are kept
        recorder.flush()
        (row,) = malformed_packets(db, sid)
        assert row.characteristic == spec.subscriptions[0].label and row.data == frames
        assert "unknown frame (token 00, type 01, len 30)" in row.error
        assert garbage.hex(" ") in row.error  # the dropped bytes themselves
        clock.advance(0.1)
        on_notify(None, bytearray(frames))  # type: ignore[arg-type]
        assert link.malformed == 1  # counted once
    finally:
        db.close()
