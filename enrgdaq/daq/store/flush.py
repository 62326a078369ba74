"""When a store writes what it buffered: the flush policy every store shares.

* at once when the store is idle (the last turn of its loop took nothing):
  a trickle of data is on disk within milliseconds;
* under load, every ``flush_interval`` seconds (one large write instead of
  many small ones);
* earlier when it holds a quarter of the slots of one of its rings: the
  producer must never wait for a flush timer (slots are given back only after
  the write);
* at a stop, and on a retry after a failed write.
"""

from __future__ import annotations

import time

HOLD_FRACTION = 0.25
"""Write once the store holds this share of the slots of its smallest ring."""


class FlushPolicy:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.hold_limit = 1 << 30  # slots; set from the rings the store reads (see watch_rings)
        self._last_write = time.monotonic()
        self._busy = False

    def watch_rings(self, slot_counts: list[int]) -> None:
        """The slot counts of the rings the store reads (after each scan for rings)."""
        if slot_counts:
            self.hold_limit = max(1, int(min(slot_counts) * HOLD_FRACTION))

    def turn(self, took: int) -> None:
        """One turn of the store's loop took ``took`` messages (0: idle)."""
        self._busy = took > 0

    def due(self, held: int) -> bool:
        """Whether to write now, holding ``held`` ring payloads not yet written."""
        return (
            not self._busy or held >= self.hold_limit or time.monotonic() - self._last_write >= self.interval
        )

    def wrote(self) -> None:
        self._last_write = time.monotonic()
