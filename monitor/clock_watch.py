"""Wall-clock jumps, told from the monotonic clock (RELIABILITY.md case 62).

Due times are wall-clock instants in the database, so they survive restarts; but a clock
stepped back a day would stall every feed and retry for a day, and a step forward would
make them all due at once. The daemon compares the two clocks at each tick and moves the
stored schedule by the jump, so every wait keeps its length.
"""

from __future__ import annotations

import time
from collections.abc import Callable

JUMP_TOLERANCE = 30.0  # seconds of disagreement that count as a jump, not as slewing


class ClockWatch:
    def __init__(
        self,
        wall: Callable[[], float],
        monotonic: Callable[[], float] = time.monotonic,
        tolerance: float = JUMP_TOLERANCE,
    ) -> None:
        self._wall, self._monotonic, self._tolerance = wall, monotonic, tolerance
        self._at = (wall(), monotonic())

    def jump(self) -> float:
        """Seconds the wall clock moved beyond the monotonic one since the last call, or
        0.0 within the tolerance (NTP slews the clock; it does not step it)."""
        now = (self._wall(), self._monotonic())
        moved = (now[0] - self._at[0]) - (now[1] - self._at[1])
        self._at = now
        return moved if abs(moved) > self._tolerance else 0.0
