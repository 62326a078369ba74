"""``DAQJobStore``: the base of every store job.

A store subscribes to ``store.<ClassName>`` (and the supervisor-local form)
and handles messages and writes inside one loop on one thread: no message
is ever handled while ``store_loop`` is writing, which was a source of lost
rows in the original.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.models import DAQJobMessage, DAQJobMessageRingNotify, DAQJobMessageStoreReady
from enrgdaq.daq.store.models import DAQJobMessageStore, DAQJobStoreConfigBase
from enrgdaq.daq.topics import Topic, exact
from enrgdaq.data.reader import RingReader
from enrgdaq.data.settings import DataPlaneSettings

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


class DAQJobStore(DAQJob):
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = []
    allowed_message_in_types: list[type[DAQJobMessage]] = [DAQJobMessageStore]
    queue: ClassVar[str] = "store"
    _receive_on_thread: ClassVar[bool] = False

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        self._rings: RingReader | None = None
        self._unreleased: list[DAQJobMessage] = []
        self._naps = len(RING_NAPS_SECONDS)  # naps taken since the last payload (all: ask for wake-ups)
        super().__init__(config, *args, **kwargs)

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
        self._poll_rings()  # resume: what producers left in the rings since this store last ran
        now = time.monotonic()
        next_poll, next_inbound = now + RING_POLL_SECONDS, now
        rings = self._rings
        while not self._has_been_freed:
            timeout = 0
            if not self._drain_ring(None):
                if rings is not None and rings.trackers and self._naps < len(RING_NAPS_SECONDS):
                    time.sleep(RING_NAPS_SECONDS[self._naps])
                    self._naps += 1
                elif rings is None or not rings.arm():
                    timeout = STORE_POLL_MILLISECONDS
            now = time.monotonic()
            if timeout or now >= next_inbound:  # busy with rings: the message plane every millisecond
                self._process_inbound(timeout_ms=timeout)
                next_inbound = now + BUSY_INBOUND_SECONDS
            if now >= next_poll:
                self._poll_rings()
                next_poll = now + RING_POLL_SECONDS
            self.store_loop()
            self._release_flushed()
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
        if self._rings is None:
            return 0
        messages = self._rings.drain(name)
        if messages:
            self._naps = 0  # (also after a wake-up) look again soon before asking for the next one
        deliver = self._deliver
        for message in messages:
            deliver(message)
        self._unreleased += messages
        return len(messages)

    def _poll_rings(self) -> None:
        """Find new rings, say this store is alive, take what waits (covers lost wake-ups)."""
        if self._rings is None:
            return
        self._rings.scan()
        self._rings.heartbeat()
        self._drain_ring(None)

    def ring_heartbeat(self) -> None:
        rings = self._rings
        if rings is not None:
            rings.heartbeat()

    def _release_flushed(self) -> None:
        """Give ring slots back once what they held is written out (a crash then loses nothing)."""
        if self._unreleased and not self.has_unflushed_data():
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
                ring_unreleased=len(self._unreleased),
            )
        return stats

    def _close_data_plane(self, for_good: bool) -> None:
        super()._close_data_plane(for_good)
        if self._rings is not None:
            self._release_flushed()
            if for_good:
                self._rings.detach()
            self._unreleased.clear()
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
        """Take what the proxy and the rings already hold, so that a stop loses nothing in flight."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and (self._process_inbound(timeout_ms=0) or self._drain_ring(None)):
            pass
        self.store_loop()
        self._release_flushed()

    def store_loop(self) -> None:
        """Called after each batch of messages, and at least every few ms: write out buffered data."""
