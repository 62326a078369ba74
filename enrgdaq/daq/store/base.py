"""``DAQJobStore``: the base of every store job.

A store subscribes to ``store.<ClassName>`` (and the supervisor-local form)
and handles messages and writes inside one loop on one thread: no message
is ever handled while ``store_loop`` is writing, which was a source of lost
rows in the original.

A write that fails with ``OSError`` or ``StoreWriteError``, in ``handle_message``
or in ``store_loop``, loses nothing: the message is kept (the failed one first,
then whatever came after it, in order), the store takes nothing more from its
rings (the producers wait on the full ring) and tries again with backoff
(:mod:`enrgdaq.daq.store.retry`); ``enrgdaq status`` shows it ``stalled`` with the
error. Ring slots are given back only once what they held is written.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any, ClassVar

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.models import DAQJobMessage, DAQJobMessageRingNotify, DAQJobMessageStoreReady
from enrgdaq.daq.stats import worth_a_line
from enrgdaq.daq.store.flush import FlushPolicy
from enrgdaq.daq.store.journal import RingPositions
from enrgdaq.daq.store.models import DAQJobMessageStore, DAQJobStoreConfigBase
from enrgdaq.daq.store.retry import RETRYABLE_ERRORS, WriteRetry, keep_in_ring
from enrgdaq.daq.topics import Topic, exact
from enrgdaq.data.reader import RingReader
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import DAQJobStopError, StoreWriteError

STORE_POLL_MILLISECONDS = 20
DRAIN_SECONDS = 1.0
"""On stop, how long a store keeps taking what is already queued for it."""
RING_POLL_SECONDS = 0.1
"""How often a store looks at its rings without a wake-up (and says it is alive)."""
BUSY_INBOUND_SECONDS = 0.001
"""While it takes payloads from rings, a store looks at the message plane at most this often."""
RING_NAPS_SECONDS = (100e-6, 200e-6, 400e-6, 800e-6)
"""After its last payload a store looks at its rings again after these naps (1.5 ms in all)
before it asks the producers for a wake-up: payloads that keep coming then need no wake-up
through the proxy at all, and wait at most a nap."""
HELD_INLINE_MAX = 100_000
"""While writes fail, inline messages (not in a ring) wait in memory up to this many; beyond it
they are counted as ``failed`` and logged (ring payloads wait in the ring, without limit)."""


class DAQJobStore(DAQJob):
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = []
    allowed_message_in_types: list[type[DAQJobMessage]] = [DAQJobMessageStore]
    queue: ClassVar[str] = "store"
    _receive_on_thread: ClassVar[bool] = False

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        self._rings: RingReader | None = None
        self._unreleased: list[DAQJobMessage] = []  # handled; their slots go once written out
        self._held: deque[DAQJobMessage] = deque()  # not handled yet: a write failed (oldest first)
        self._held_inline = 0  # inline messages among them (bounded: HELD_INLINE_MAX)
        self._next_scan = 0.0  # while writes fail: when to look for new rings again
        self._naps = len(RING_NAPS_SECONDS)  # naps taken since the last payload (all: ask for wake-ups)
        self._skip: RingPositions = {}  # ring payloads a crashed run wrote already (see recover_writes)
        super().__init__(config, *args, **kwargs)
        self._writes = WriteRetry(self.counters, self._logger)
        self._flush = FlushPolicy(float(getattr(config, "flush_interval", 1.0)))
        self._refused: set[tuple[str, str]] = set()  # (producer, message type) told once

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
        self._skip = self.recover_writes()
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
        self._drain()

    # -- writing, and what happens when it fails -------------------------------------
    def _handle(self, message: DAQJobMessage) -> None:
        """``handle_message`` as :meth:`DAQJob._deliver` calls it, except that a write error
        (``OSError``, ``StoreWriteError``) goes to the caller, which keeps the message.

        Other exceptions stay what they were: retrying cannot help a bug or a message the store
        cannot take, so the message is counted (``failed``), logged, and its slot given back.
        """
        if not self._takes(message):
            if isinstance(message, DAQJobMessageStore):
                self.counters.rejected -= 1  # not a stray message: a kind this store cannot store
                kinds = ", ".join(t.__name__ for t in self.allowed_message_in_types)
                self.refuse(message, f"{type(self).__name__} stores {kinds}")
            return
        try:
            self.handle_message(message)
        except RETRYABLE_ERRORS:
            raise
        except DAQJobStopError:
            self.request_stop()
        except Exception:
            self.counters.failed += 1
            self._logger.exception("handle_message failed for %s", type(message).__name__)

    def _deliver(self, message: DAQJobMessage) -> None:
        """An inline message (from the message plane): handled, or kept in order while writes fail."""
        if self._writes.failing:
            self._hold(message)
            return
        try:
            self._handle(message)
        except RETRYABLE_ERRORS as exc:
            self._held.append(message)
            self._writes.failed(exc)

    def _hold(self, message: DAQJobMessage) -> None:
        """Keep an inline message behind what waits already (memory is its only room)."""
        if self._held_inline < HELD_INLINE_MAX:
            self._held_inline += 1
            self._held.append(message)
            return
        self.counters.failed += 1
        if worth_a_line(self.counters.failed - 1, self.counters.failed):
            self._logger.error(
                "cannot write and already holds %d inline messages: %d dropped so far",
                self._held_inline,
                self.counters.failed,
            )

    def _write_out(self) -> None:
        """``store_loop``, then give back the slots of what it wrote; a write error keeps them."""
        try:
            self.store_loop()
        except RETRYABLE_ERRORS as exc:
            self._writes.failed(exc)
            return
        self._release_flushed()

    def _wait_to_retry(self) -> None:
        """While writes fail: answer the message plane (a stop, routes; store messages are kept in
        order), take nothing from the rings (producers wait), and retry once the backoff is over.
        The lease keeper says the store is alive in its rings meanwhile: it is never evicted."""
        left = self._writes.seconds_left()
        if left <= 0:
            self._retry_writes()
            return
        now = time.monotonic()
        if self._rings is not None and now >= self._next_scan:
            # A producer that starts meanwhile finds this store alive in its new ring too.
            self._rings.scan()
            self._next_scan = now + RING_POLL_SECONDS
        self._process_inbound(timeout_ms=max(1, min(STORE_POLL_MILLISECONDS, math.ceil(left * 1000))))

    def _retry_writes(self) -> bool:
        """Hand the kept messages again, oldest first, then write out; True when all of it went."""
        held = self._held
        try:
            while held:
                self._handle(held[0])
                self._unreleased.append(held.popleft())
            self.store_loop()
        except RETRYABLE_ERRORS as exc:
            self._writes.failed(exc)
            return False
        self._held_inline = 0
        self._writes.succeeded()
        self._release_flushed()
        return True

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
        messages = self._rings.drain(name)
        if not messages:
            return 0
        if self._skip:
            messages = self._without_written(messages)
        self._naps = 0  # (also after a wake-up) look again soon before asking for the next one
        handle = self._handle
        for i, message in enumerate(messages):
            try:
                handle(message)
            except RETRYABLE_ERRORS as exc:
                self._unreleased += messages[:i]
                self._held.extend(messages[i:])  # the failed one first: the order is kept
                self._writes.failed(exc)
                return len(messages)
        self._unreleased += messages
        return len(messages)

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

    def write_due(self) -> bool:
        """Whether ``store_loop`` should write what it buffered now (:mod:`enrgdaq.daq.store.flush`):
        at once when idle, at a stop or a retry, every ``flush_interval`` under load, and before
        the store holds a quarter of a ring."""
        if self._has_been_freed or self._writes.failing or self._held:
            return True
        return self._flush.due(len(self._unreleased))

    def refuse(self, message: DAQJobMessage, why: str) -> None:
        """A store message this store cannot store (e.g. raw bytes for a table store): counted as
        ``unsupported`` and logged once per producer and message type; nothing else is lost."""
        self.counters.unsupported += 1
        producer = message.daq_job_info.unique_id if message.daq_job_info is not None else "?"
        key = (producer, type(message).__name__)
        if key not in self._refused:
            self._refused.add(key)
            self._logger.error(
                "cannot store %s from %s: %s (counted as 'unsupported'; said once per producer)",
                key[1],
                producer,
                why,
            )

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

    def _release_flushed(self) -> None:
        """Give ring slots back once what they held is written out (a crash then loses nothing)."""
        if self._unreleased and not self._writes.failing and not self.has_unflushed_data():
            self._flush.wrote()
            for message in self._unreleased:
                release = getattr(message, "release", None)
                if release is not None:
                    release()
            self._unreleased.clear()

    def has_unflushed_data(self) -> bool:
        """Whether handled messages are still buffered in this process (not yet on disk / in the DB)."""
        return False

    def data_plane_stats(self) -> dict[str, int]:
        stats = super().data_plane_stats()
        if self._rings is not None:
            stats.update(
                ring_lost=self._rings.lost,
                ring_corrupted=self._rings.corrupted,
                ring_unreleased=len(self._unreleased) + len(self._held),
            )
        return stats

    def cleanup(self) -> None:
        """At ``free()`` (once): a last try to write what is still kept; what cannot be written is
        logged and raised as ``StoreWriteError`` (the run's error in ``enrgdaq status``), and its
        ring slots stay held for the store's next run (see :meth:`_close_data_plane`)."""
        super().cleanup()
        if self._writes.failing or self._held or self.has_unflushed_data():
            self._retry_writes()
        if self._writes.failing:
            text = (
                f"stopped while it cannot write: {len(self._held) + len(self._unreleased)} "
                f"message(s) not written ({self.counters.last_error})"
            )
            self._logger.error("%s", text)
            raise StoreWriteError(text)

    def _close_data_plane(self, for_good: bool) -> None:
        super()._close_data_plane(for_good)
        self._release_flushed()
        self._keep_unwritten(for_good)
        if self._rings is not None:
            if for_good:
                self._rings.detach()
            self._rings.close()
            self._rings = None

    def _keep_unwritten(self, for_good: bool) -> None:
        """What was not written is not given back: its slots stay for the store's next run (a
        stop for good detaches, and the next run counts them as missed); inline messages are lost,
        counted as ``failed``."""
        kept, lost = keep_in_ring([*self._unreleased, *self._held])
        self._unreleased.clear()
        self._held.clear()
        self._held_inline = 0
        if lost:
            self.counters.failed += lost
        if kept or lost:
            self._logger.error(
                "%d ring payload(s) not written %s; %d inline message(s) not written are lost",
                kept,
                "(the store stops for good: counted as missed if it runs again)"
                if for_good
                else "stay in the ring for the next run",
                lost,
            )

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

    def store_loop(self) -> None:
        """Called after each batch of messages, and at least every few ms: write out buffered data.

        Raise ``OSError`` or ``StoreWriteError`` when a write fails and may work later: what is
        buffered stays (do not drop it), and this is called again after the backoff. Data that
        ``handle_message`` buffers for this method must show in :meth:`has_unflushed_data`, or
        its ring slots are given back before it is written.
        """
