"""The producer's end of its ring: wait for a free slot, copy the payload in, commit."""

from __future__ import annotations

import logging
import time
from time import monotonic_ns
from typing import Any

from enrgdaq.data import layout as L
from enrgdaq.data.codec import SlotCodec
from enrgdaq.data.encoder import SlotEncoder
from enrgdaq.data.membership import name_hash
from enrgdaq.data.ring import FENCE, Ring, RingFullError, check_geometry
from enrgdaq.data.settings import RING_PREFIX, DataPlaneSettings, ring_file
from enrgdaq.errors import ConfigError

logger = logging.getLogger(__name__)

SLEEP_MIN_SECONDS = 50e-6
SLEEP_MAX_SECONDS = 500e-6
"""A waiting producer sleeps (never spins: on two cores that steals the consumer's CPU), a
little longer each time while the wait lasts."""


class RingWriter:
    """Writes a producing job's messages into its ring. Used from one thread.

    ``codec`` turns messages into slot parts (default: the installed one, see
    :mod:`enrgdaq.data.codec`).
    """

    def __init__(self, producer_id: str, settings: DataPlaneSettings, codec: SlotCodec | None = None) -> None:
        self.settings = settings
        slot_count = check_geometry(settings.ring_bytes, settings.slot_bytes, settings.run_dir)
        path = ring_file(settings.run_dir, RING_PREFIX + producer_id)
        if path is None:  # consumers would refuse the name
            raise ConfigError(f"{producer_id!r} cannot name a ring file in {settings.run_dir}")
        self.ring = Ring.create(path, slot_count, settings.slot_bytes)
        self.encoder = SlotEncoder(codec)
        self.last_nbytes = 0  # bytes of the last payload written (the producer's bytes out)
        self._known: dict[str, int] = {}  # consumer name -> its entry
        self._hashes: dict[str, int] = {}
        self._active: list[int] = []
        self._floor = 0  # a lower bound of every active consumer's cursor
        self._gen = -1  # the consumer table's generation that _active was read at
        self._ensured: tuple[list[str] | None, int] = (None, -1)  # names checked, at generation
        self.refresh()

    @property
    def name(self) -> str:
        return self.ring.name

    def refresh(self) -> None:
        """Re-read the consumer table (entries come and go: registrations, evictions, detaches)."""
        self._gen = self.ring.consumers_gen
        self._active = self.ring.active_consumers()
        self._update_floor()

    def _update_floor(self) -> None:
        """Re-read the cursors of the known active consumers (cheap: a few words)."""
        floor = self.ring.min_cursor(self._active)
        self._floor = self.ring.write_seq if floor is None else floor

    def ensure_consumers(self, names: list[str]) -> None:
        """Every consumer in ``names`` has an entry; a new one starts at the current write_seq.

        Cheap when neither ``names`` nor the consumer table changed since the last call.
        """
        ring = self.ring
        gen = ring.consumers_gen
        if self._ensured[1] == gen and self._ensured[0] == names:
            return
        changed = False
        for name in names:
            index = self._known.get(name)
            if (
                index is not None
                and ring.entry(index, L.C_STATE) != L.FREE
                and ring.entry(index, L.C_NAME_HASH) == self._hash(name)
            ):
                continue
            # New, or its entry was taken by another consumer meanwhile. An entry that is
            # evicted or detached stays so: only the consumer itself comes back (reactivate).
            self._known[name] = ring.register(name)
            changed = True
        if changed:
            self.refresh()
            gen = -1  # check again next time: the table may have changed again meanwhile
        self._ensured = (list(names), gen)

    def _hash(self, name: str) -> int:
        found = self._hashes.get(name)
        if found is None:
            found = self._hashes[name] = name_hash(name)
        return found

    def write(self, message: Any) -> int | None:
        """Put ``message`` in the next slot; its sequence number, or None if dropped (``drop`` policy).

        Raises MessageError when the payload does not fit a slot (the caller sends it inline).
        """
        return self.write_parts(*self.encoder.split(message))

    def write_parts(self, type_name: str, header: bytes, payload: Any) -> int | None:
        """:meth:`write` of a message already split by the codec (type name, header, payload).

        The commit protocol (:mod:`enrgdaq.data.layout`) is written out here rather than through
        ``Ring.begin`` / ``Ring.commit``: this runs once per message, tens of thousands of times a second.
        """
        ring = self.ring
        words = ring.words
        seq = words[L.WRITE_SEQ_W]
        if words[L.CONSUMERS_GEN_W] != self._gen:
            self.refresh()
        slots = ring.slot_count
        if seq >= self._floor + slots:
            self._wait_for_slot(seq)
            if seq >= self._floor + slots:
                ring.add_dropped()
                return None
        slot = seq % slots
        row = L.SLOT_TABLE_WORD + slot * L.SLOT_WORDS
        words[row + L.S_SEQ] = L.EMPTY_SEQ  # being rewritten (see Ring.begin)
        start = slot * ring.slot_size
        area = ring.data[start : start + ring.slot_size]
        nbytes = self.encoder.encode_parts(type_name, header, payload, area)
        words[row + L.S_NBYTES] = nbytes
        words[row + L.S_COMMIT_NS] = monotonic_ns()
        words[row + L.S_SEQ] = seq
        words[L.WRITE_SEQ_W] = seq + 1
        words[L.WRITTEN_BYTES_W] += nbytes
        self.last_nbytes = nbytes
        return seq

    def _wait_for_slot(self, seq: int) -> None:
        ring = self.ring
        self._update_floor()
        if seq < self._floor + ring.slot_count:
            return
        started = time.monotonic_ns()
        deadline = time.monotonic() + self.settings.block_timeout_s
        pause = SLEEP_MIN_SECONDS
        warned = False
        while True:
            self._update_floor()
            if seq < self._floor + ring.slot_count:
                break
            if ring.consumers_gen != self._gen:
                self.refresh()  # a consumer was detached, evicted or added meanwhile
            now = time.monotonic()
            if now > deadline:
                self.refresh()  # a consumer may have detached: never drop on a stale view
                if seq < self._floor + ring.slot_count:
                    break
                if self.settings.policy == "drop":
                    break
                if not warned:
                    warned = True
                    logger.warning(
                        "ring %s: waited %.1f s for consumers (%s); holding the producer",
                        ring.name,
                        self.settings.block_timeout_s,
                        self.slowest(),
                    )
                evicted = ring.evict_stale(int(self.settings.consumer_timeout_s * 1e9))
                if evicted:
                    logger.error(
                        "ring %s: evicted consumers gone for over %.0f s: %s; what they miss is counted",
                        ring.name,
                        self.settings.consumer_timeout_s,
                        ", ".join(evicted),
                    )
            time.sleep(pause)
            pause = min(pause * 2, SLEEP_MAX_SECONDS)
        ring.add_blocked(time.monotonic_ns() - started)

    def slowest(self) -> str:
        if not self._active:
            return "none"
        index = min(self._active, key=self.ring.cursor)
        return f"{self.ring.consumer_name(index)} at {self.ring.cursor(index)} of {self.ring.write_seq}"

    def needs_wakeup(self) -> bool:
        """Whether a consumer may be idle: set their wake-up flags and say so (then send one notify)."""
        words = self.ring.words
        with FENCE:  # a full barrier between the commit above and the loads of the flags
            pass
        wake = False
        for index in self._active:
            flag = L.CONSUMER_WORD + index * L.CONSUMER_WORDS + L.C_WAKEUP
            if words[flag] == 0:
                words[flag] = 1
                wake = True
        return wake

    def stats(self) -> dict[str, int]:
        """The ring's counters, and how many slots the slowest consumer has not released yet.

        Called from the stats thread: reads the cursors afresh (the writer's own floor is
        only a lower bound, refreshed when the ring looks full) and changes nothing.
        """
        stats = self.ring.stats()
        floor = self.ring.min_cursor(list(self._active))
        stats["occupancy"] = stats["write_seq"] - (stats["write_seq"] if floor is None else floor)
        return stats

    def close(self) -> None:
        self.ring.close()


__all__ = ["RingFullError", "RingWriter"]
