"""A consumer's end of the rings it reads: drain from its cursor, release when done.

A consumer keeps two positions per ring: the next sequence number to hand to
the job (in this process) and its cursor in the ring (shared: every slot
below it may be reused). A slot is released when the last zero-copy buffer
of its message is gone: a table kept by a store holds its slot (backpressure),
it is never overwritten underneath. After a crash, a consumer resumes from its
cursor: what it had not released is delivered again (at least once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any

from enrgdaq.data import layout as L
from enrgdaq.data.codec import SlotCodec
from enrgdaq.data.decoder import SlotDecoder
from enrgdaq.data.ring import Ring, fence
from enrgdaq.data.runs import SlotRun, start_run
from enrgdaq.data.settings import RING_PREFIX, ring_file
from enrgdaq.data.slot import LENGTHS, align
from enrgdaq.data.tracker import DISOWNED, RingTracker, SlotGuard
from enrgdaq.errors import DAQError, MessageError

logger = logging.getLogger(__name__)


REJOIN_COPY_SECONDS = 2.0
"""How long a rejoined consumer copies what it reads (the producer re-reads its table every 0.5 s)."""


def _worth_a_line(count: int) -> bool:
    """Log the 1st, 10th, 100th, then every 1000th time (as ``enrgdaq.daq.stats.worth_a_line``)."""
    return count in (1, 10, 100) or count % 1000 == 0


class RingReader:
    """Every ring one consumer is registered in, below one run directory.

    ``codec`` builds the messages from slot parts (default: the installed one, see
    :mod:`enrgdaq.data.codec`); a message holds its slot until it is released.
    """

    def __init__(self, consumer: str, run_dir: str, codec: SlotCodec | None = None) -> None:
        self.consumer = consumer
        self.run_dir = run_dir
        self.trackers: dict[str, RingTracker] = {}
        self.decoder = SlotDecoder(codec)
        self.lost = 0
        self.corrupted = 0
        self.bytes_read = 0  # payload bytes of the slots taken (a store's bytes in)
        self.bad_names = 0  # ring names that are no plain ring file of run_dir: refused, never opened

    def scan(self) -> None:
        """Attach to every ring file of the run directory that has an entry for this consumer.

        A ring file that was replaced (its producer came back with another geometry) or
        removed is retired: read to its end, then unmapped.
        """
        try:
            names = [n for n in os.listdir(self.run_dir) if n.startswith(RING_PREFIX)]
        except FileNotFoundError:
            return
        for name, tracker in list(self.trackers.items()):
            if not tracker.retired and not self._same_file(name, tracker):
                tracker.retired = True
                del self.trackers[name]
                self.trackers[f"{name}#retired-{tracker.ring.inode}"] = tracker
                logger.info(
                    "[%s] ring %s was replaced or removed; reading the old one to its end",
                    self.consumer,
                    name,
                )
        for name in names:
            if name not in self.trackers:
                self.track(name)

    def _refuse(self, name: object) -> None:
        self.bad_names += 1
        if _worth_a_line(self.bad_names):
            logger.warning(
                "[%s] refused a ring name that is no ring file of %s: %.80r (%d in all)",
                self.consumer,
                self.run_dir,
                name,
                self.bad_names,
            )

    def _same_file(self, name: str, tracker: RingTracker) -> bool:
        try:
            return os.stat(os.path.join(self.run_dir, name)).st_ino == tracker.ring.inode
        except FileNotFoundError:
            return False

    def track(self, name: str) -> RingTracker | None:
        """The ring ``name`` of the run directory, attached if this consumer has an entry in it.

        ``name`` may come from the wire (a notify): one that is not a plain ring file name
        of the run directory is counted in ``bad_names`` and never opened.
        """
        tracker = self.trackers.get(name)
        if tracker is not None:
            return tracker
        path = ring_file(self.run_dir, name)
        if path is None:
            self._refuse(name)
            return None
        try:
            ring = Ring.attach(path)
        except (OSError, DAQError):
            return None
        index = ring.find_consumer(self.consumer)
        if index is None:
            ring.close()
            return None
        state = ring.state(index)
        if state in (L.EVICTED, L.DETACHED):
            missed_before = ring.entry(index, L.C_MISSED)
            found = ring.reactivate(self.consumer)
            if found is None:
                ring.close()
                return None
            index = found
            missed = ring.entry(index, L.C_MISSED) - missed_before
            if state == L.EVICTED:
                logger.error(
                    "[%s] was evicted from ring %s for being away too long; %d payload(s) missed",
                    self.consumer,
                    name,
                    missed,
                )
            elif missed:
                logger.warning(
                    "[%s] reads ring %s again after being stopped; %d payload(s) went by meanwhile",
                    self.consumer,
                    name,
                    missed,
                )
        tracker = self.trackers[name] = RingTracker(ring, index)
        return tracker

    def drain(self, name: str | None = None, limit: int = 1_000_000, runs: bool = False) -> list[Any]:
        """Messages waiting in one ring (or in all), in order; each holds its slot until it is freed.

        ``runs``: payloads that follow each other with one record-batch layout come as one
        :class:`~enrgdaq.data.runs.SlotRun` each instead (see :mod:`enrgdaq.data.runs`).
        """
        out: list[Any] = []
        trackers = [self.track(name)] if name is not None else list(self.trackers.values())
        for tracker in trackers:
            if tracker is not None:
                self._drain_one(tracker, out, limit, runs)
        return out

    def _drain_one(self, tracker: RingTracker, out: list[Any], limit: int, runs: bool = False) -> None:
        ring = tracker.ring
        index = tracker.index
        if ring.state(index) != L.ACTIVE:
            self._rejoin(tracker)
            index = tracker.index
        seq = tracker.read_pos
        end = min(ring.write_seq, seq + limit)
        if seq >= end:
            if tracker.retired:  # read to its end: its producer writes into the new file
                self._forget(tracker)
                return
            ring.heartbeat(index)
            return
        copying = bool(tracker.copy_until) and time.monotonic() < tracker.copy_until
        decode, view, address = self.decoder.decode, ring.mm_view, tracker.address
        words, table, count = ring.words, L.SLOT_TABLE_WORD, ring.slot_count
        size, data = ring.slot_size, ring.data_offset
        with tracker._lock:
            tracker.outstanding += end - seq  # one guard per slot; a slot read as lost gives its back
        unguarded = 0
        runs = runs and not copying
        run: SlotRun | None = None  # the run being built, and what each of its slots must match:
        next_slot = layout_len = nbytes_run = area_off = meta_off = meta_len = -1
        layout, meta = b"", b""
        unpack, mm = LENGTHS.unpack_from, ring.mm
        while seq < end:
            slot = seq % count
            row = table + slot * L.SLOT_WORDS
            nbytes = words[row + L.S_NBYTES]
            if words[row + L.S_SEQ] != seq:
                self.lost += 1  # reused before it was read: only after an eviction
                unguarded += 1
                seq += 1
                run = None
                continue
            committed_ns = words[row + L.S_COMMIT_NS]
            start = data + slot * size
            if runs:
                lengths = unpack(mm, start)
                head = start + 8 + lengths[0]
                if not (
                    run is not None
                    and slot == next_slot
                    and nbytes == nbytes_run
                    and lengths[0] == layout_len
                    and align(8 + lengths[0] + lengths[1]) == area_off
                    and mm[start + 8 : head] == layout
                    and mm[start + meta_off : start + meta_off + meta_len] == meta
                ):
                    run = start_run(self.decoder, tracker, view, start, nbytes, size, seq, committed_ns)
                    if run is not None:
                        layout_len, nbytes_run = lengths[0], nbytes
                        area_off, layout = align(8 + lengths[0] + lengths[1]), mm[start + 8 : head]
                        meta_off, meta = run._meta_at, run._shape.meta
                        meta_len = len(meta)
                if run is not None:
                    if words[row + L.S_SEQ] != seq:  # overwritten while it was read (only after an eviction)
                        self.lost += 1
                        if run.first_seq != seq:
                            unguarded += 1  # (a run that starts here gives its one slot back as it goes)
                        run = None
                    elif run.first_seq == seq:
                        out.append(run)
                        self.bytes_read += nbytes
                    else:
                        run._add(committed_ns, (head, lengths[1]))
                        self.bytes_read += nbytes
                    next_slot = slot + 1
                    seq += 1
                    continue
            guard = SlotGuard(tracker, seq, committed_ns)
            try:
                message = decode(view[start : start + nbytes], address + start, guard, copying)
            except MessageError as exc:
                self.corrupted += 1
                # Given back here, and logged as text: a traceback kept by a log handler would keep
                # this frame's guards alive, and a slot never given back stops the cursor for good.
                guard.tracker = DISOWNED  # type: ignore[assignment]
                tracker.release(seq)
                logger.error(
                    "[%s] corrupt slot %d in ring %s; skipped: %s", self.consumer, seq, ring.name, str(exc)
                )
                seq += 1
                continue
            if words[row + L.S_SEQ] != seq:  # overwritten while it was read (only after an eviction)
                self.lost += 1
                seq += 1
                continue
            out.append(message)
            self.bytes_read += nbytes
            seq += 1
        if unguarded:
            with tracker._lock:
                tracker.outstanding -= unguarded
        tracker.read_pos = seq
        ring.heartbeat(index)

    def _forget(self, tracker: RingTracker) -> None:
        for key, found in list(self.trackers.items()):
            if found is tracker:
                del self.trackers[key]
        with contextlib.suppress(BufferError):
            tracker.close()

    def arm(self) -> bool:
        """Before waiting for a wake-up: ask every producer for one; True if data came meanwhile.

        While a consumer is busy its wake-up flags stay set and producers send no
        wake-ups at all; only a consumer about to wait clears them (then looks once
        more, so that a payload committed just before cannot be missed).
        """
        pending = False
        for tracker in self.trackers.values():
            tracker.ring.set_entry(tracker.index, L.C_WAKEUP, 0)
        fence()
        for tracker in self.trackers.values():
            if tracker.ring.write_seq > tracker.read_pos:
                pending = True
        return pending

    def _rejoin(self, tracker: RingTracker) -> None:
        """This consumer was evicted (gone too long) while it still runs: active again, the gap counted."""
        index = tracker.ring.rejoin(self.consumer)
        missed = tracker.ring.entry(index, L.C_MISSED)
        self.lost += tracker.restart_at(index)
        tracker.copy_until = time.monotonic() + REJOIN_COPY_SECONDS
        logger.error(
            "[%s] was evicted from ring %s for being away too long; %d payload(s) missed in all",
            self.consumer,
            tracker.ring.name,
            missed,
        )

    def heartbeat(self) -> None:
        """Safe from another thread (the lease keeper) while the store's thread reads."""
        for tracker in list(self.trackers.values()):
            with contextlib.suppress(ValueError, AttributeError):  # unmapped meanwhile (closing)
                tracker.ring.heartbeat(tracker.index)

    def detach(self) -> None:
        """Stop holding producers back (a person stopped this consumer, or it was removed)."""
        for tracker in self.trackers.values():
            tracker.ring.detach(self.consumer)

    def close(self) -> None:
        for tracker in self.trackers.values():
            with contextlib.suppress(BufferError):
                tracker.close()
        self.trackers.clear()
