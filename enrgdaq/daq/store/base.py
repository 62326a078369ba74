"""``DAQJobStore``: the base of every store job.

A store subscribes to ``store.<ClassName>`` (and the supervisor-local form)
and handles messages and writes inside one loop on one thread: no message
is ever handled while ``store_loop`` is writing, which was a source of lost
rows in the original.

This module is the loop and the rings: what a store reads, from where, and
when it says it is alive. How it handles, writes and keeps what it read when a
write fails is :mod:`enrgdaq.daq.store.handling`; ring slots are given back
only once what they held is written.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.models import DAQJobMessage, DAQJobMessageRingNotify, DAQJobMessageStoreReady
from enrgdaq.daq.store.handling import RING_POLL_SECONDS, STORE_POLL_MILLISECONDS, StoreHandling
from enrgdaq.daq.store.journal import RingPositions
from enrgdaq.daq.store.models import DAQJobMessageStore, DAQJobStoreConfigBase
from enrgdaq.daq.topics import Topic, exact
from enrgdaq.data.reader import RingReader
from enrgdaq.data.runs import SlotRun
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import JournalUnreachableError

DRAIN_SECONDS = 1.0
"""On stop, how long a store keeps taking what is already queued for it."""
BUSY_INBOUND_SECONDS = 0.001
"""While it takes payloads from rings, a store looks at the message plane at most this often."""
SMALL_TAKE = 4
SMALL_TAKE_NAP_SECONDS = 50e-6
"""A turn of the loop that took fewer than ``SMALL_TAKE`` payloads from the rings is followed by a
nap this long (50-100 us with the kernel's timer slack): a store that keeps up with a fast producer
otherwise takes one payload per turn and pays the turn's fixed cost for each; after the nap it
takes a few at once (the producer never waits for it: it holds no more slots meanwhile)."""
RING_NAPS_SECONDS = (100e-6, 200e-6, 400e-6, 800e-6)
"""After its last payload a store looks at its rings again after these naps (1.5 ms in all)
before it asks the producers for a wake-up: payloads that keep coming then need no wake-up
through the proxy at all, and wait at most a nap."""


class DAQJobStore(StoreHandling, DAQJob):
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = []
    allowed_message_in_types: list[type[DAQJobMessage]] = [DAQJobMessageStore]
    queue: ClassVar[str] = "store"
    _receive_on_thread: ClassVar[bool] = False

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        self._rings: RingReader | None = None
        self._naps = len(RING_NAPS_SECONDS)  # naps taken since the last payload (all: ask for wake-ups)
        self._skip: RingPositions = {}  # ring payloads a crashed run wrote already (see recover_writes)
        self._checked_last_write = False  # recover_writes went through (the journal may go at stop)
        super().__init__(config, *args, **kwargs)
        self._init_handling(float(getattr(config, "flush_interval", 1.0)))

    def _subscriptions(self) -> list[bytes]:
        name = type(self).__name__
        sid = self.supervisor_info.supervisor_id
        return [
            *super()._subscriptions(),
            exact(Topic.store(name)),
            exact(Topic.store_supervisor(sid, name)),
        ]

    def can_store(self, message: DAQJobMessageStore) -> bool:
        return any(message.store_config.has_store_config(t) for t in self.allowed_store_config_types)

    def start(self) -> None:
        """Take from the rings while they hold data; wait on the message plane only when idle.

        A busy store (or one that took a payload less than ``RING_NAPS_SECONDS``
        ago) never clears its wake-up flags, so producers send it no wake-ups
        (nothing crosses the proxy per payload); see :meth:`RingReader.arm`.
        """
        self._announce()
        self._skip = self._recovered()
        self._poll_rings()  # resume: what producers left in the rings since this store last ran
        now = time.monotonic()
        next_poll, next_inbound = now + RING_POLL_SECONDS, now
        rings = self._rings
        while not self._has_been_freed:
            if self._writes.failing:
                self._wait_to_retry()
                continue
            timeout = 0
            took = self._drain_ring(None)
            if not took:
                if rings is not None and rings.trackers and self._naps < len(RING_NAPS_SECONDS):
                    time.sleep(RING_NAPS_SECONDS[self._naps])
                    self._naps += 1
                elif rings is None or not rings.arm():
                    timeout = STORE_POLL_MILLISECONDS
            now = time.monotonic()
            if timeout or now >= next_inbound:  # busy with rings: the message plane every millisecond
                took += self._process_inbound(timeout_ms=timeout)
                next_inbound = now + BUSY_INBOUND_SECONDS
            self._flush.turn(took)
            if now >= next_poll:
                self._poll_rings()
                next_poll = now + RING_POLL_SECONDS
            self._write_out()
            if 0 < took < SMALL_TAKE:
                time.sleep(SMALL_TAKE_NAP_SECONDS)
        self._drain()

    # -- the data plane ------------------------------------------------------------
    def configure_data_plane(self, settings: DataPlaneSettings) -> None:
        super().configure_data_plane(settings)
        if settings.enabled:
            self._rings = RingReader(self.unique_id, settings.run_dir)

    def _dispatch(self, message: DAQJobMessage) -> None:
        if isinstance(message, DAQJobMessageRingNotify):
            self._drain_ring(message.ring)
            return
        super()._dispatch(message)

    def _drain_ring(self, name: str | None) -> int:
        """Take and handle what waits in one ring (or all); nothing while writes fail."""
        if self._rings is None or self._writes.failing:
            return 0
        runs = self._takes_runs and not self._skip  # (after a crash: per message, to skip what was written)
        messages = self._rings.drain(name, runs=runs)
        if not messages:
            return 0
        if self._skip:
            messages = self._without_written(messages)
        self._naps = 0  # (also after a wake-up) look again soon before asking for the next one
        if runs:
            self._take_items(messages)
            return sum(m.count if isinstance(m, SlotRun) else 1 for m in messages)
        self._handle_messages(messages)
        return len(messages)

    def _recovered(self) -> RingPositions:
        """:meth:`recover_writes`, waited for while the files it must look at cannot be reached (an
        ``out_dir`` moved away, unmounted or replaced): the store shows as stalled with the reason,
        looks again with the write backoff and takes nothing from its rings meanwhile (which of
        their payloads are on disk already is not known yet). A stop ends the wait."""
        while not self._has_been_freed:
            try:
                skip = self.recover_writes()
            except JournalUnreachableError as exc:
                self._writes.failed(exc)
                while not self._has_been_freed and (left := self._writes.seconds_left()) > 0:
                    self._process_inbound(
                        timeout_ms=max(1, min(STORE_POLL_MILLISECONDS, math.ceil(left * 1000)))
                    )
                continue
            self._writes.succeeded()
            self._checked_last_write = True
            return skip
        return {}

    def recover_writes(self) -> RingPositions:
        """Called once at start, before any ring payload is read: a store that keeps a
        :class:`~enrgdaq.daq.store.journal.WriteJournal` finishes or undoes the write a crash cut
        short, and returns the ring positions that write covered (their payloads are given back
        unread). Stores without a journal return nothing: they may write a payload twice after a
        kill -9 that falls between their write and its release."""
        return {}

    def pending_ring_positions(self) -> RingPositions:
        """The ring positions that the next write covers: per ring, one past the last payload
        handled and not given back yet (for a write journal)."""
        positions: RingPositions = {}
        for message in self._unreleased:
            guard = message.__dict__.get("_ring_guard")
            if guard is not None and guard.seq >= 0:
                ring = guard.tracker.ring
                reached = positions.get(ring.name, (ring.inode, 0))[1]
                positions[ring.name] = (ring.inode, max(reached, guard.seq + 1))
        return positions

    def _without_written(self, messages: list[DAQJobMessage]) -> list[DAQJobMessage]:
        """Give back unread what a crashed run wrote already; keep the rest, in order."""
        kept = []
        for message in messages:
            guard = message.__dict__.get("_ring_guard")
            if guard is not None:
                ring = guard.tracker.ring
                position = self._skip.get(ring.name)
                if position is not None and position[0] == ring.inode:
                    if guard.seq < position[1]:
                        message.release()  # type: ignore[attr-defined]
                        continue
                    del self._skip[ring.name]  # past it: nothing more to skip in this ring
            kept.append(message)
        return kept

    def _poll_rings(self) -> None:
        """Find new rings, say this store is alive, take what waits (covers lost wake-ups)."""
        if self._rings is None:
            return
        self._rings.scan()
        self._flush.watch_rings([t.ring.slot_count for t in self._rings.trackers.values()])
        self._rings.heartbeat()
        self._drain_ring(None)

    def ring_heartbeat(self) -> None:
        rings = self._rings
        if rings is not None:
            rings.heartbeat()

    def data_plane_stats(self) -> dict[str, int]:
        stats = super().data_plane_stats()
        if self._rings is not None:
            stats.update(
                # Ring payloads are counted here: the message path above sees no sizes.
                processed_bytes=self.counters.processed_bytes + self._rings.bytes_read,
                ring_lost=self._rings.lost,
                ring_corrupted=self._rings.corrupted,
                ring_unreleased=self._unreleased_slots() + len(self._held),
            )
        return stats

    def _close_data_plane(self, for_good: bool) -> None:
        super()._close_data_plane(for_good)
        self._release_flushed()
        self._keep_unwritten(for_good)
        if self._rings is not None:
            if for_good:
                self._rings.detach()
            self._rings.close()
            self._rings = None

    def _on_store_query(self) -> None:
        self._announce()

    def _announce(self) -> None:
        if self.message_plane is None:
            return
        sid = self.supervisor_info.supervisor_id
        self._put_message_out(
            DAQJobMessageStoreReady(
                store_type=type(self).__name__,
                unique_id=self.unique_id,
                topics={Topic.supervisor_broadcast(sid)},
            )
        )

    def _drain(self) -> None:
        """Take what the proxy and the rings already hold and write it, so that a stop loses nothing
        in flight (while writes fail, one more try; :meth:`cleanup` tries once more)."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and (self._process_inbound(timeout_ms=0) or self._drain_ring(None)):
            pass
        if self._writes.failing:
            self._retry_writes()
        else:
            self._write_out()
