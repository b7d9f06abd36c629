"""Bad packets (fast variant of stress/fuzz_parsers.py): no parser crashes, every refused packet counted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kapmonitor.clock import FakeClock
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


@pytest.mark.parametrize("name", ["plx-continuous", "heart-rate", "viatom-stream", "battery"])
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


@pytest.mark.xfail(
    strict=True,
    reason="gap: the Viatom framer drops the span of an unknown, incomplete frame silently "
    "(devices/viatom/parser.py StreamFramer, by design against 8-bit CRC false matches), so "
    "garbage shaped like `AA 55 <token> <len>` is neither counted nor logged - see the issue 7 report",
)
def test_garbage_shaped_like_an_unknown_viatom_frame_is_counted() -> None:
    (target,) = [t for t in TARGETS if t.name == "viatom-stream"]
    decoder = target.make_decoder()
    garbage = bytes.fromhex("aa 55 00 1e 01") + b"junkjunk"  # token 0x00: not a stream frame
    with pytest.raises(target.declared):
        decoder(garbage, "OX", 1.0, 1.0)
