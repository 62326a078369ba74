"""How a job's store messages reach their stores: routes, the hold for a new producer, the ring.

``StoreOutbox`` is a part of :class:`enrgdaq.daq.base.DAQJob` (a mixin): a
store message waits, at a new producer's start, until its stores have
subscribed; it then goes into the producer's ring when its stores run on
this node (a small wake-up crosses the proxy only when a store may be idle)
and inline over ZMQ otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import msgspec

from enrgdaq.daq.models import DAQJobInfo, DAQJobMessage, DAQJobMessageRingNotify, DAQJobMessageStoreQuery
from enrgdaq.daq.stats import JobCounters, worth_a_line
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobMessageStoreRaw
from enrgdaq.daq.store.routing import store_names_of_topics
from enrgdaq.daq.topics import Topic
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import MessageError
from enrgdaq.models import SupervisorInfo

_RING_PAYLOADS = (DAQJobMessageStorePyArrow, DAQJobMessageStoreRaw)

ROUTES_GRACE_SECONDS = 5.0
"""How long a new producer holds a store message whose store has not subscribed yet."""


class StoreOutbox:
    # Provided by DAQJob.
    unique_id: str
    info: DAQJobInfo
    supervisor_info: SupervisorInfo
    counters: JobCounters
    routes: dict[str, list[str]] | None
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
        self._targets: dict[frozenset[str], tuple[bool, list[str]]] = {}
        self._targets_routes: dict[str, list[str]] | None = None
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
        """Hold a new producer's message until its stores run, then put it in the ring if it can go
        there; False: send it inline."""
        missing, consumers = self._store_targets(message.topics)
        if missing:
            self._hold_for_stores(message)
            consumers = self._store_targets(message.topics)[1]
        return self._send_through_ring(message, consumers)

    def _send_through_ring(self, message: DAQJobMessage, consumers: list[str]) -> bool:
        """Put a store payload for ``consumers`` (stores of this node) in the ring; False: send it inline."""
        settings = self._data_plane
        if settings is None or not settings.enabled or not self._use_shm:
            return False
        if not isinstance(message, _RING_PAYLOADS):
            return False
        if not consumers:
            return False
        writer = self._ring_writer
        if writer is None:
            from enrgdaq.data.writer import RingWriter

            writer = self._ring_writer = RingWriter(self.unique_id, settings)
        writer.ensure_consumers(consumers)
        try:
            seq = writer.write(message)
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
        self.counters.record_out(0)
        if writer.needs_wakeup():
            self._send_notify(writer.name, message.topics)
        return True

    def _send_notify(self, ring: str, topics: set[str]) -> None:
        """Wake the consumers of ``ring`` (one notify message per set of topics, reused)."""
        key = frozenset(topics)
        notify = self._notify.get(key)
        if notify is None:
            notify = DAQJobMessageRingNotify(ring=ring, seq=0, topics=set(topics))
            notify.daq_job_info = self.info
            self._notify[key] = notify
        self._plane.publisher().send(notify)

    def _store_targets(self, topics: set[str]) -> tuple[bool, list[str]]:
        """(whether a store class that ``topics`` name has no running store, the running stores' ids).

        Cached per set of topics until the routes change (at most every 0.1 s).
        """
        routes = self.routes
        if routes is not self._targets_routes:
            self._targets.clear()
            self._targets_routes = routes
        key = frozenset(topics)
        found = self._targets.get(key)
        if found is None:
            wanted = store_names_of_topics(topics)
            known = routes or {}
            found = (
                routes is None or not all(known.get(name) for name in wanted),
                [uid for name in wanted for uid in known.get(name, [])],
            )
            self._targets[key] = found
        return found

    def _hold_for_stores(self, message: DAQJobMessage) -> None:
        """Hold a new producer's first store messages until all their stores subscribe (up to
        ``ROUTES_GRACE_SECONDS`` from its start); count a message that no store at all takes."""
        wanted = store_names_of_topics(message.topics)
        self._ask_for_stores()
        deadline = self._started_monotonic + ROUTES_GRACE_SECONDS
        while True:
            routes = self.routes or {}
            missing = [name for name in wanted if not routes.get(name)]
            if not missing:
                return
            if time.monotonic() >= deadline or self._has_been_freed:
                if len(missing) < len(wanted):
                    return  # a store of another class that takes this config has it
                self.counters.unrouted += 1
                if worth_a_line(self.counters.unrouted - 1, self.counters.unrouted):
                    self._logger.warning(
                        "no running store for %s: %d message(s) sent with nobody listening",
                        ", ".join(missing),
                        self.counters.unrouted,
                    )
                return
            if self._receive_thread is None:
                self._process_inbound(timeout_ms=20)
            else:
                time.sleep(0.01)

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
