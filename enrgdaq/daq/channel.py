"""A producer's pre-routed way into its stores, for readout loops that send one kind of table at
a high rate.

``channel = self.store_channel(store_config)`` once, then ``channel.put(table)`` per readout:
the stores receive exactly what ``self._put_message_out(DAQJobMessageStorePyArrow(
store_config=store_config, table=table))`` gives them (a message with its own ``id`` and
``timestamp``), but the producer builds no message object and works out no topics, routes or
header per payload: those are made once per channel, and again when the routes change. At
10,000 values a payload this is about a third of the producer's time (docs/benchmarks.md).

The channel keeps the store config it was made with: change a copy and make a new channel
rather than changing it in place. A payload that cannot take the fast path (no ring, its stores
not known yet at a producer's start, larger than a slot, another node's stores) goes the
ordinary way, with the same counters.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from enrgdaq.daq.models import _new_id
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig
from enrgdaq.daq.store.slot_codec import SplicedHeader, spliced_header

if TYPE_CHECKING:
    from enrgdaq.daq.base import DAQJob

TYPE_NAME = DAQJobMessageStorePyArrow.__name__


class StoreChannel:
    """See the module. Made by :meth:`enrgdaq.daq.base.DAQJob.store_channel`; one producer thread."""

    def __init__(
        self,
        job: DAQJob,
        store_config: DAQJobStoreConfig,
        tag: str | None = None,
        topics: set[str] | None = None,
    ) -> None:
        self._job = job
        self._store_config = store_config
        self._tag = tag
        self._extra_topics = set(topics or ())
        template = self._message(None)
        job._prepare_message(template)
        template.pre_send()
        self._template = template
        self._header: SplicedHeader | None = spliced_header(template)
        self._routes_seen: tuple[object, object] = (object(), object())
        self._wanted: list[str] = []  # the stores of this node to write for; [] : the ordinary way

    def _message(self, table: pa.Table | None) -> DAQJobMessageStorePyArrow:
        return DAQJobMessageStorePyArrow(
            store_config=self._store_config, table=table, tag=self._tag, topics=set(self._extra_topics)
        )

    def put(self, table: pa.Table) -> None:
        """Send ``table`` to the channel's stores (as ``_put_message_out`` would)."""
        job = self._job
        if job.routes is not self._routes_seen[0] or job.stores_not_running is not self._routes_seen[1]:
            self._settle()
        header = self._header
        if not self._wanted or header is None or job._ring_writer is None:
            job._put_message_out(self._message(table))
            return
        parts = (TYPE_NAME, header.make(_new_id(), datetime.now()), table)
        if not job._write_to_ring(self._template, self._wanted, parts):
            message = self._message(table)
            job._prepare_message(message)
            message.pre_send()
            job._send_inline(message)

    def _settle(self) -> None:
        """Where payloads go under the routes of now: the fast path only when every store class
        has a wanted store here (else the ordinary path holds, or counts, as for any message)."""
        job = self._job
        self._routes_seen = (job.routes, job.stores_not_running)
        targets = job._store_targets(self._template.topics)
        fast = job._plane is not None and job._ring_takes(self._template) and not targets.unknown
        self._wanted = list(targets.wanted) if fast else []

    def __repr__(self) -> str:
        return f"StoreChannel({self._job.unique_id}, topics={sorted(self._template.topics)})"
