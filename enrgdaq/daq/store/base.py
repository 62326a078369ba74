"""``DAQJobStore``: the base of every store job.

A store subscribes to ``store.<ClassName>`` (and the supervisor-local form)
and handles messages and writes inside one loop on one thread: no message
is ever handled while ``store_loop`` is writing, which was a source of lost
rows in the original.
"""

from __future__ import annotations

from typing import ClassVar

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.models import DAQJobMessage, DAQJobMessageStoreReady
from enrgdaq.daq.store.models import DAQJobMessageStore, DAQJobStoreConfigBase
from enrgdaq.daq.topics import Topic, exact

STORE_POLL_MILLISECONDS = 20
DRAIN_SECONDS = 1.0
"""On stop, how long a store keeps taking what is already queued for it."""


class DAQJobStore(DAQJob):
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = []
    allowed_message_in_types: list[type[DAQJobMessage]] = [DAQJobMessageStore]
    queue: ClassVar[str] = "store"
    _receive_on_thread: ClassVar[bool] = False

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
        self._announce()
        while not self._has_been_freed:
            self._process_inbound(timeout_ms=STORE_POLL_MILLISECONDS)
            self.store_loop()
        self._drain()

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
        """Take what the proxy already delivered, so that a stop loses nothing in flight."""
        import time

        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and self._process_inbound(timeout_ms=0):
            pass
        self.store_loop()

    def store_loop(self) -> None:
        """Called after each batch of messages, and at least every few ms: write out buffered data."""
