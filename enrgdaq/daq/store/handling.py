"""How a store handles what it receives, writes it, and keeps it when a write fails.

A part of :class:`enrgdaq.daq.store.base.DAQJobStore` (a mixin). Messages come
one at a time (``handle_message``, the original's API) or, for a store that
overrides :meth:`StoreHandling.handle_batch`, everything that was ready in its
rings at once. ``store_loop`` writes what was handled when
:meth:`StoreHandling.write_due` says so (:mod:`enrgdaq.daq.store.flush`), and
ring slots are given back only after that.

A write that fails with ``OSError`` or ``StoreWriteError``, in handling or in
``store_loop``, loses nothing: the message is kept (the failed one first, then
whatever came after it, in order), the store takes nothing more from its rings
(the producers wait on the full ring) and tries again with backoff
(:mod:`enrgdaq.daq.store.retry`); ``enrgdaq status`` shows it ``stalled``.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.stats import JobCounters, worth_a_line
from enrgdaq.daq.store.flush import FlushPolicy
from enrgdaq.daq.store.models import DAQJobMessageStore
from enrgdaq.daq.store.retry import RETRYABLE_ERRORS, WriteRetry, keep_in_ring
from enrgdaq.data.reader import RingReader
from enrgdaq.data.runs import SlotRun
from enrgdaq.errors import DAQJobStopError, StoreWriteError
from enrgdaq.message.wire import MessageTypes

STORE_POLL_MILLISECONDS = 20
RING_POLL_SECONDS = 0.1
"""How often a store looks at its rings without a wake-up (and says it is alive)."""
HELD_INLINE_MAX = 100_000
"""While writes fail, inline messages (not in a ring) wait in memory up to this many; beyond it
they are counted as ``failed`` and logged (ring payloads wait in the ring, without limit)."""


class StoreHandling:
    # Provided by DAQJob / DAQJobStore.
    counters: JobCounters
    allowed_message_in_types: list[type[DAQJobMessage]]
    _logger: logging.LoggerAdapter  # type: ignore[type-arg,unused-ignore]
    _has_been_freed: bool
    _rings: RingReader | None
    _accepts: dict[type, bool]

    def _init_handling(self, flush_interval: float) -> None:
        self._unreleased: list[Any] = []  # handled (messages, runs); their slots go once written out
        self._held: deque[Any] = deque()  # not handled yet: a write failed (oldest first)
        self._held_inline = 0  # inline messages among them (bounded: HELD_INLINE_MAX)
        self._next_scan = 0.0  # while writes fail: when to look for new rings again
        self._writes = WriteRetry(self.counters, self._logger)
        self._flush = FlushPolicy(flush_interval)
        self._refused: set[tuple[str, str]] = set()  # (producer, message type) told once
        self._run_types: dict[str, bool] = {}  # message type name of a run -> this store takes it

    if TYPE_CHECKING:  # provided by DAQJob, which comes after this part in a store's MRO

        def _takes(self, message: DAQJobMessage) -> bool: ...
        def _process_inbound(self, timeout_ms: int) -> int: ...
        def request_stop(self) -> None: ...
        def handle_message(self, message: DAQJobMessage) -> bool: ...

    def _handle(self, message: DAQJobMessage) -> None:
        """``handle_message`` as :meth:`DAQJob._deliver` calls it, except that a write error
        (``OSError``, ``StoreWriteError``) goes to the caller, which keeps the message.

        Other exceptions stay what they were: retrying cannot help a bug or a message the store
        cannot take, so the message is counted (``failed``), logged, and its slot given back.
        """
        if not self._takes_store_message(message):
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
        """Hand the kept messages (and runs) again, oldest first, then write out; True when all of it went."""
        held = self._held
        try:
            while held:
                first = held[0]
                n = 1
                while n < len(held) and isinstance(held[n], SlotRun) == isinstance(first, SlotRun):
                    n += 1
                if isinstance(first, SlotRun):
                    runs = [held[k] for k in range(n)]
                    self.handle_runs(runs)
                    self.counters.processed += sum(run.count for run in runs)
                elif self._batched:
                    group = [held[k] for k in range(n)]
                    self.handle_batch(
                        [m for m in group if self._takes_store_message(m)]
                    )  # inline: unchecked yet
                else:
                    self._handle(first)
                    n = 1
                for _ in range(n):
                    self._unreleased.append(held.popleft())
            self.store_loop()
        except RETRYABLE_ERRORS as exc:
            self._writes.failed(exc)
            return False
        self._held_inline = 0
        self._writes.succeeded()
        self._release_flushed()
        return True

    def handle_batch(self, messages: list[DAQJobMessage]) -> None:
        """Everything that was ready in the store's rings at once, in ring order; a store that
        overrides it handles (buffers) the batch in one call, e.g. one concatenated table per
        file. The default hands each message to ``handle_message`` (the original's one-message
        path, which custom stores keep using).

        Only messages of the store's ``allowed_message_in_types`` come here. Raise ``OSError`` or
        ``StoreWriteError`` only having kept none of the batch: the whole batch is handed again
        after the backoff. Ring slots are given back after the next write (``store_loop``).
        """
        for message in messages:
            self.handle_message(message)

    def handle_runs(self, runs: list[SlotRun]) -> None:
        """Runs of table payloads that followed each other in a ring (see :mod:`enrgdaq.data.runs`),
        for a store that overrides this: no message object per payload; read them in place
        (``run.column(i)``: one 2-D numpy view per column, ``run.to_table()``, ``run.table(j)``,
        ``run.message(j)`` for a payload's header). Payloads that are no run still come through
        ``handle_batch`` / ``handle_message``, in ring order.

        The slots go back after the next write (``store_loop``), or earlier once ``run.release()``
        was called and no view into them is left. Raise ``OSError`` or ``StoreWriteError`` only
        having kept none of the runs: they are handed again after the backoff.
        """
        raise NotImplementedError

    @property
    def _takes_runs(self) -> bool:
        return type(self).handle_runs is not StoreHandling.handle_runs

    def _run_taken(self, run: SlotRun) -> bool:
        """Whether this store takes the messages of ``run``'s type (cached per type name)."""
        taken = self._run_types.get(run.type_name)
        if taken is None:
            cls = MessageTypes().get(run.type_name)
            taken = self._run_types[run.type_name] = any(
                issubclass(cls, t) for t in self.allowed_message_in_types
            )
        return taken

    def _take_items(self, items: list[Any]) -> None:
        """What one drain of the rings gave (runs and messages, in ring order): runs to
        ``handle_runs``, messages to ``handle_batch`` / ``handle_message``; after a write error
        the failed part and everything after it is kept, in order."""
        flat: list[Any] = []
        for item in items:  # a run of a type this store does not take: its messages, refused one by one
            if isinstance(item, SlotRun) and not self._run_taken(item):
                flat += item.messages()
                item.release()
            else:
                flat.append(item)
        i = 0
        while i < len(flat):
            j = i + 1
            is_run = isinstance(flat[i], SlotRun)
            while j < len(flat) and isinstance(flat[j], SlotRun) == is_run:
                j += 1
            group = flat[i:j]
            ok = self._handle_runs(group) if is_run else self._handle_messages(group)
            if not ok:
                self._held.extend(flat[j:])
                return
            i = j

    def _handle_runs(self, runs: list[SlotRun]) -> bool:
        try:
            self.handle_runs(runs)
            self.counters.processed += sum(run.count for run in runs)
        except RETRYABLE_ERRORS as exc:
            self._held.extend(runs)
            self._writes.failed(exc)
            return False
        except DAQJobStopError:
            self.request_stop()
        except Exception:
            self.counters.failed += sum(run.count for run in runs)
            self._logger.exception("handle_runs failed for %d run(s)", len(runs))
        self._unreleased += runs
        return True

    def _handle_messages(self, messages: list[DAQJobMessage]) -> bool:
        """Messages taken from the rings: ``handle_batch`` or one by one; False after a write error
        (the failed part kept)."""
        if self._batched:
            return self._handle_batch(messages)
        handle = self._handle
        for i, message in enumerate(messages):
            try:
                handle(message)
            except RETRYABLE_ERRORS as exc:
                self._unreleased += messages[:i]
                self._held.extend(messages[i:])  # the failed one first: the order is kept
                self._writes.failed(exc)
                return False
        self._unreleased += messages
        return True

    def _handle_batch(self, messages: list[DAQJobMessage]) -> bool:
        """``handle_batch`` of a store that overrides it: the accepted messages in one call."""
        accepted: list[DAQJobMessage] = []
        refused: list[DAQJobMessage] = []
        for message in messages:
            (accepted if self._takes_store_message(message) else refused).append(message)
        try:
            if accepted:
                self.counters.processed += len(accepted)
                self.handle_batch(accepted)
        except RETRYABLE_ERRORS as exc:
            self._unreleased += refused
            self._held.extend(accepted)
            self._writes.failed(exc)
            return False
        except DAQJobStopError:
            self.request_stop()
        except Exception:
            self.counters.failed += len(accepted)
            self._logger.exception("handle_batch failed for %d message(s)", len(accepted))
        self._unreleased += messages
        return True

    def _unreleased_slots(self) -> int:
        """Ring payloads handled and not given back yet (a run counts its slots)."""
        return sum(m.count if isinstance(m, SlotRun) else 1 for m in self._unreleased)

    def _takes_store_message(self, message: DAQJobMessage) -> bool:
        """Whether this store takes ``message``'s type; a store message of another kind is refused
        (counted ``unsupported``, said once per producer)."""
        if self._takes(message):
            return True
        if isinstance(message, DAQJobMessageStore):
            self.counters.rejected -= 1  # not a stray message: a kind this store cannot store
            kinds = ", ".join(t.__name__ for t in self.allowed_message_in_types)
            self.refuse(message, f"{type(self).__name__} stores {kinds}")
        return False

    @property
    def _batched(self) -> bool:
        return type(self).handle_batch is not StoreHandling.handle_batch

    def write_due(self) -> bool:
        """Whether ``store_loop`` should write what it buffered now (:mod:`enrgdaq.daq.store.flush`):
        at once when idle, at a stop or a retry, every ``flush_interval`` under load, and before
        the store holds a quarter of a ring."""
        if self._has_been_freed or self._writes.failing or self._held:
            return True
        return self._flush.due(self._unreleased_slots())

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

    def cleanup(self) -> None:
        """At ``free()`` (once): a last try to write what is still kept; what cannot be written is
        logged and raised as ``StoreWriteError`` (the run's error in ``enrgdaq status``), and its
        ring slots stay held for the store's next run (see :meth:`_close_data_plane`)."""
        super().cleanup()  # type: ignore[misc]  # DAQJob.cleanup: next in a store's MRO
        if self._writes.failing or self._held or self.has_unflushed_data():
            self._retry_writes()
        unwritten = len(self._held) + len(self._unreleased)
        if self._writes.failing and (unwritten or self.has_unflushed_data()):
            text = (
                f"stopped while it cannot write: {unwritten} "
                f"message(s) not written ({self.counters.last_error})"
            )
            self._logger.error("%s", text)
            raise StoreWriteError(text)

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

    def store_loop(self) -> None:
        """Called after each batch of messages, and at least every few ms: write out buffered data.

        Raise ``OSError`` or ``StoreWriteError`` when a write fails and may work later: what is
        buffered stays (do not drop it), and this is called again after the backoff. Data that
        ``handle_message`` buffers for this method must show in :meth:`has_unflushed_data`, or
        its ring slots are given back before it is written.
        """
