"""Fixed-capacity numpy ring buffers of (time, value) pairs for live display."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class RingBuffer:
    """Keeps the newest `capacity` (t, v) pairs; appends are O(1), reads return ordered copies.

    A value of NaN marks a gap ("no valid value"): plots break the line there.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._t = np.empty(capacity, dtype=np.float64)
        self._v = np.empty(capacity, dtype=np.float64)
        self._capacity = capacity
        self._start = 0  # index of the oldest element
        self._size = 0
        self._version = 0  # bumps on every change; lets a plot redraw only when needed

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def version(self) -> int:
        return self._version

    def __len__(self) -> int:
        return self._size

    def append(self, t: float, v: float | None) -> None:
        """Add one pair; None becomes NaN (a gap). The oldest pair falls out when full."""
        end = (self._start + self._size) % self._capacity
        self._t[end] = t
        self._v[end] = np.nan if v is None else v
        if self._size < self._capacity:
            self._size += 1
        else:
            self._start = (self._start + 1) % self._capacity
        self._version += 1

    def extend(self, t: FloatArray, v: FloatArray) -> None:
        """Add many pairs at once (vectorised; used for waveforms)."""
        n = len(t)
        if n != len(v):
            raise ValueError("t and v differ in length")
        if n == 0:
            return
        if n >= self._capacity:
            self._t[:] = t[-self._capacity :]
            self._v[:] = v[-self._capacity :]
            self._start = 0
            self._size = self._capacity
            self._version += 1
            return
        end = (self._start + self._size) % self._capacity
        first = min(n, self._capacity - end)
        self._t[end : end + first] = t[:first]
        self._v[end : end + first] = v[:first]
        if first < n:
            self._t[: n - first] = t[first:]
            self._v[: n - first] = v[first:]
        overflow = self._size + n - self._capacity
        if overflow > 0:
            self._start = (self._start + overflow) % self._capacity
            self._size = self._capacity
        else:
            self._size += n
        self._version += 1

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        """Ordered copies (oldest first) of the times and values."""
        idx = (self._start + np.arange(self._size)) % self._capacity
        return self._t[idx], self._v[idx]

    def last(self) -> tuple[float, float] | None:
        """The newest pair, or None when empty."""
        if self._size == 0:
            return None
        i = (self._start + self._size - 1) % self._capacity
        return float(self._t[i]), float(self._v[i])

    def clear(self) -> None:
        self._start = 0
        self._size = 0
        self._version += 1
