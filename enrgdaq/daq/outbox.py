"""How a job's store messages reach their stores: routes, the hold for a new producer, the ring.

``StoreOutbox`` is a part of :class:`enrgdaq.daq.base.DAQJob` (a mixin): a
store message waits, at a new producer's start, until its stores are known;
it then goes into the producer's ring when its stores run on this node (a
small wake-up crosses the proxy only when a store may be idle) and inline
over ZMQ otherwise.

The routes name every store that is wanted, also while it restarts (or waits
for a worker): a ring payload for it waits in the ring until it is back (the
``block`` policy holds the producer once the ring is full; ``drop`` counts).
The stores among them that do not run now are in ``stores_not_running``
(from the same routes message): an inline message would reach nobody, so it
is counted (``unrouted``) and logged, never lost silently.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, NamedTuple

import msgspec

from enrgdaq.daq.models import DAQJobInfo, DAQJobMessage, DAQJobMessageRingNotify, DAQJobMessageStoreQuery
from enrgdaq.daq.stats import JobCounters, worth_a_line
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
)
from enrgdaq.daq.store.routing import store_names_of_topics
from enrgdaq.daq.topics import Topic
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import MessageError
from enrgdaq.models import SupervisorInfo

_RING_PAYLOADS = (DAQJobMessageStorePyArrow, DAQJobMessageStoreRaw, DAQJobMessageStoreTabular)
"""Store messages that wait in the ring for a store of this node (a tabular one as its header alone)."""

ANY_STORE = "*"
"""The routes' key of the bridges to other nodes (see :func:`enrgdaq.control.reconcile.routes_of`)."""
LOCAL_STORE_PREFIX = "store.supervisor."
"""Topics of messages for this node's stores only (``target_local_supervisor``): never bridged."""

ROUTES_GRACE_SECONDS = 5.0
"""How long a new producer holds a store message whose store is not known (or, for an inline
message, not running) yet."""


class StoreTargets(NamedTuple):
    """Where a store message with a given set of topics can go, by the routes of the moment."""

    unknown: bool
    """A store class it names has no wanted store (a new producer's first messages wait)."""
    silent: bool
    """A store class it names has no running store (a new producer's inline messages wait)."""
    wanted: list[str]
    """Ids of its wanted stores: the consumers of its ring payloads."""
    listening: bool
    """Some store of its classes runs now (an inline message reaches someone)."""


class StoreOutbox:
    # Provided by DAQJob.
    unique_id: str
    info: DAQJobInfo
    supervisor_info: SupervisorInfo
    counters: JobCounters
    routes: dict[str, list[str]] | None
    stores_not_running: frozenset[str]
    _plane: Any
    _logger: logging.LoggerAdapter  # type: ignore[type-arg,unused-ignore]
    _has_been_freed: bool
    _receive_thread: threading.Thread | None

    def _init_outbox(self, use_shm: bool) -> None:
        self._started_monotonic = time.monotonic()
        self._asked_for_stores = False
        self._data_plane: DataPlaneSettings | None = None
        self._ring_writer: Any = None
        self._notify: dict[frozenset[str], DAQJobMessageRingNotify] = {}
        self._targets: dict[frozenset[str], StoreTargets] = {}
        self._targets_routes: tuple[object, object] = (None, None)
        self._use_shm = use_shm

    def _process_inbound(self, timeout_ms: int) -> int:
        raise NotImplementedError

    def _ask_for_stores(self) -> None:
        if self._plane is None or self._asked_for_stores:
            return
        self._asked_for_stores = True
        sid = self.supervisor_info.supervisor_id
        query = DAQJobMessageStoreQuery(topics={Topic.supervisor_broadcast(sid)})
        query.daq_job_info = self.info
        self._plane.publisher().send(query)

    def ring_heartbeat(self) -> None:
        """Say that this job is alive in the rings it reads (stores); called by the lease keeper."""

    def configure_data_plane(self, settings: DataPlaneSettings) -> None:
        """Called by the runner before ``start()``: where rings live, how big, which policy.

        A job's own ``ring_policy`` / ``ring_block_timeout_seconds`` override the supervisor's.
        """
        config = getattr(self, "config", None)
        policy = getattr(config, "ring_policy", None)
        timeout = getattr(config, "ring_block_timeout_seconds", None)
        if policy is not None or timeout is not None:
            settings = msgspec.structs.replace(
                settings,
                policy=policy or settings.policy,
                block_timeout_s=settings.block_timeout_s if timeout is None else timeout,
            )
        self._data_plane = settings

    def _route_store_message(self, message: DAQJobMessage) -> bool:
        """Hold a new producer's message until its stores are known, then put it in the ring if it
        can go there (it waits there for a store that restarts); False: send it inline (counted as
        ``unrouted`` when no store of its classes runs to receive it)."""
        ring = self._ring_takes(message)
        targets = self._store_targets(message.topics)
        if targets.unknown if ring else targets.silent:
            self._hold_for_stores(message, ring)
            targets = self._store_targets(message.topics)
        if ring and targets.wanted and self._write_to_ring(message, targets.wanted):
            return True
        if not targets.listening:
            self._count_unrouted(message)
        return False

    def _ring_takes(self, message: DAQJobMessage) -> bool:
        """Whether ``message`` goes through the ring (unless it is larger than a slot)."""
        settings = self._data_plane
        return (
            settings is not None
            and settings.enabled
            and self._use_shm
            and isinstance(message, _RING_PAYLOADS)
        )

    def _send_through_ring(self, message: DAQJobMessage, consumers: list[str]) -> bool:
        """Put a store payload for ``consumers`` (stores of this node) in the ring; False: send it inline."""
        if not self._ring_takes(message) or not consumers:
            return False
        return self._write_to_ring(message, consumers)

    def _write_to_ring(
        self, message: DAQJobMessage, consumers: list[str], parts: tuple[str, bytes, Any] | None = None
    ) -> bool:
        """:meth:`_send_through_ring` once it is known that the message may go there (once per
        message: lean). ``parts``: the message already split into its slot parts (a
        :class:`~enrgdaq.daq.channel.StoreChannel`; ``message`` is then its template)."""
        writer = self._writer()
        writer.ensure_consumers(consumers)
        try:
            seq = writer.write(message) if parts is None else writer.write_parts(*parts)
        except MessageError:
            self.counters.inline_large += 1
            return False  # larger than a slot: inline, never dropped
        if seq is None:
            self.counters.dropped += 1
            dropped = self.counters.dropped
            if worth_a_line(dropped - 1, dropped):
                self._logger.warning(
                    "ring_policy drop: %d payload(s) dropped so far, the stores were too slow (%s)",
                    dropped,
                    writer.slowest(),
                )
            return True
        self.counters.record_out(writer.last_nbytes)
        if writer.needs_wakeup():
            self._send_notify(writer.name, message.topics)
        return True

    def _writer(self) -> Any:
        """This job's :class:`~enrgdaq.data.writer.RingWriter` (its ring is made at the first use)."""
        writer = self._ring_writer
        if writer is None:
            from enrgdaq.data.writer import RingWriter

            assert self._data_plane is not None
            writer = self._ring_writer = RingWriter(self.unique_id, self._data_plane)
        return writer

    def _send_notify(self, ring: str, topics: set[str]) -> None:
        """Wake the consumers of ``ring`` (one notify message per set of topics, reused)."""
        key = frozenset(topics)
        notify = self._notify.get(key)
        if notify is None:
            notify = DAQJobMessageRingNotify(ring=ring, seq=0, topics=set(topics))
            notify.daq_job_info = self.info
            self._notify[key] = notify
        self._plane.publisher().send(notify)

    def _store_targets(self, topics: set[str]) -> StoreTargets:
        """Where a message for ``topics`` can go (see :class:`StoreTargets`).

        Cached per set of topics until the routes change (at most every 0.1 s).
        """
        routes, idle = self.routes, self.stores_not_running
        cached_routes, cached_idle = self._targets_routes
        if routes is not cached_routes or idle is not cached_idle:
            self._targets.clear()
            self._targets_routes = (routes, idle)
        key = frozenset(topics)
        found = self._targets.get(key)
        if found is None:
            local_only = all(t.startswith(LOCAL_STORE_PREFIX) for t in topics)
            found = self._targets[key] = targets_of(store_names_of_topics(topics), routes, idle, local_only)
        return found

    def _hold_for_stores(self, message: DAQJobMessage, ring: bool) -> None:
        """Hold a new producer's first store messages (up to ``ROUTES_GRACE_SECONDS`` from its
        start) until each of their store classes has a wanted store (a ring payload) or a running
        one (an inline message)."""
        self._ask_for_stores()
        deadline = self._started_monotonic + ROUTES_GRACE_SECONDS
        while not self._has_been_freed and time.monotonic() < deadline:
            targets = self._store_targets(message.topics)
            if not (targets.unknown if ring else targets.silent):
                return
            if self._receive_thread is None:
                self._process_inbound(timeout_ms=20)
            else:
                time.sleep(0.01)

    def _count_unrouted(self, message: DAQJobMessage) -> None:
        """A message that no store receives: counted and logged (1, 10, 100, then every 1000)."""
        self.counters.unrouted += 1
        if worth_a_line(self.counters.unrouted - 1, self.counters.unrouted):
            self._logger.warning(
                "no running store for %s: %d message(s) sent with nobody listening",
                ", ".join(store_names_of_topics(message.topics)),
                self.counters.unrouted,
            )

    def data_plane_stats(self) -> dict[str, int]:
        """The producer's ring: sequence, occupancy, time blocked on slow consumers, drops."""
        if self._ring_writer is None:
            return {}
        stats = self._ring_writer.stats()
        return {
            "ring_write_seq": stats["write_seq"],
            "ring_occupancy": stats["occupancy"],
            "ring_slots": stats["slots"],
            "ring_blocked_ms": stats["blocked_ns"] // 1_000_000,
            "ring_dropped": stats["dropped"],
        }

    def _close_data_plane(self, for_good: bool) -> None:
        if self._ring_writer is not None:
            self._ring_writer.close()
            self._ring_writer = None


def targets_of(
    names: list[str], routes: dict[str, list[str]] | None, idle: frozenset[str], local_only: bool = False
) -> StoreTargets:
    """:class:`StoreTargets` of the store classes ``names`` under ``routes`` (None: not known yet),
    ``idle`` being the wanted stores that do not run now. The bridges to other nodes (routes'
    ``"*"``) take every payload that may leave the node (not ``local_only`` ones)."""
    known = routes or {}
    bridges = [] if local_only else known.get(ANY_STORE, [])
    wanted = [uid for name in names for uid in known.get(name, [])] + bridges
    running_bridges = [uid for uid in bridges if uid not in idle]
    running = {name: [uid for uid in known.get(name, []) if uid not in idle] for name in names}
    return StoreTargets(
        unknown=routes is None or not all(known.get(name) or bridges for name in names),
        silent=routes is None or not all(v or running_bridges for v in running.values()),
        wanted=wanted,
        listening=any(running.values()) or bool(running_bridges),
    )
