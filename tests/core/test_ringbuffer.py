"""Tests of the numpy ring buffers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kapmonitor.ringbuffer import RingBuffer


def test_append_keeps_order_and_drops_oldest() -> None:
    buf = RingBuffer(3)
    for i in range(5):
        buf.append(float(i), float(i * 10))
    t, v = buf.arrays()
    assert t.tolist() == [2.0, 3.0, 4.0]
    assert v.tolist() == [20.0, 30.0, 40.0]
    assert buf.last() == (4.0, 40.0)


def test_none_is_a_gap() -> None:
    buf = RingBuffer(4)
    buf.append(0.0, None)
    assert np.isnan(buf.arrays()[1][0])


def test_version_bumps_on_change_only() -> None:
    buf = RingBuffer(4)
    v0 = buf.version
    buf.arrays()
    assert buf.version == v0
    buf.append(1.0, 2.0)
    assert buf.version == v0 + 1


def test_empty() -> None:
    buf = RingBuffer(2)
    assert len(buf) == 0
    assert buf.last() is None
    with pytest.raises(ValueError):
        RingBuffer(0)
    with pytest.raises(ValueError):
        buf.extend(np.zeros(2), np.zeros(3))


@given(
    capacity=st.integers(1, 50),
    chunks=st.lists(st.integers(0, 120), max_size=12),
)
def test_extend_matches_a_plain_list(capacity: int, chunks: list[int]) -> None:
    buf = RingBuffer(capacity)
    reference: list[float] = []
    counter = 0
    for n in chunks:
        values = np.arange(counter, counter + n, dtype=np.float64)
        counter += n
        if n % 2:
            buf.extend(values, values * 2)
        else:
            for x in values:
                buf.append(float(x), float(x * 2))
        reference.extend(values.tolist())
    t, v = buf.arrays()
    expected = reference[-capacity:] if reference else []
    assert t.tolist() == expected
    assert v.tolist() == [x * 2 for x in expected]
    assert len(buf) == len(expected)
