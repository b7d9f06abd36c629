"""Progress reporting for long exports: a callback told the fraction done (0 to 1) and the stage."""

from __future__ import annotations

from collections.abc import Callable

#: Called as progress(fraction, stage): fraction rises from 0.0 to 1.0 (1.0 once, at the end).
Progress = Callable[[float, str], None]


def no_progress(fraction: float, stage: str) -> None:
    """The default: nobody is watching."""


class Stages:
    """Splits one export into weighted stages and reports the overall fraction as each advances."""

    def __init__(self, progress: Progress | None, weights: dict[str, float]) -> None:
        self._progress = progress or no_progress
        total = sum(weights.values())
        self._start: dict[str, float] = {}
        self._weight: dict[str, float] = {}
        acc = 0.0
        for name, w in weights.items():
            self._start[name] = acc / total
            self._weight[name] = w / total
            acc += w
        self._last = -1.0

    def report(self, stage: str, done: float = 0.0) -> None:
        """`done` (0 to 1) of `stage` is finished; never reports a fraction lower than before."""
        fraction = self._start[stage] + self._weight[stage] * min(max(done, 0.0), 1.0)
        fraction = min(fraction, 0.999)  # 1.0 means written: only finish() says that
        if fraction > self._last:
            self._last = fraction
            self._progress(fraction, stage)

    def finish(self) -> None:
        self._last = 1.0
        self._progress(1.0, "done")
