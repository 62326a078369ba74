"""Memory store: keeps what producers send in the store's process, bounded, to be read back.

Every message sent to ``[store_config.memory]`` is one **entry**: an Arrow table
(tabular rows made a table) or raw bytes, with its time, producer and tag.
Tables are copied out of the ring, so the store never holds a producer back.

* **Bounds**: at most ``dispose_after_n_entries`` entries (default 10,000) and
  ``max_mb`` megabytes of data (default 256); beyond either, the **oldest** entries
  are evicted first (counted as ``memory_evicted``, logged at the first and then
  at 10, 100, 1000 ...). An entry larger than ``max_mb`` on its own is not kept
  (counted as evicted).
* **Reading back** (in the store's process: a custom store subclass, a test):
  :meth:`DAQJobStoreMemory.entries`, :meth:`~DAQJobStoreMemory.table` (the
  tables of a tag as one table), :meth:`~DAQJobStoreMemory.get_all` (the
  original's: the newest table per tag), :meth:`~DAQJobStoreMemory.clear`. Its
  stats show ``memory_entries``, ``memory_bytes``, ``memory_evicted``.
* ``void_data = true``: entries are counted and dropped (throughput tests).

Nothing is on disk: a stop or a crash loses the entries (by design).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar

import msgspec
import pyarrow as pa

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.stats import worth_a_line
from enrgdaq.daq.store.arrow_stream import table_of_rows
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.config import StoreJobConfig
from enrgdaq.daq.store.models import (
    DAQJobMessageStore,
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreRaw,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfigBase,
    DAQJobStoreConfigMemory,
)

DEFAULT_MAX_ENTRIES = 10_000


class DAQJobStoreMemoryConfig(StoreJobConfig, kw_only=True):
    """Attributes:
    dispose_after_n_entries: keep at most this many entries, evicting the oldest (the original's
        field, which it ignored); unset: 10,000.
    max_mb: keep at most this much data (MB of table buffers and bytes), evicting the oldest.
    void_data: count what arrives and keep nothing (the original's, for throughput tests).
    """

    dispose_after_n_entries: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)] | None = None
    max_mb: Annotated[float, msgspec.Meta(gt=0, le=1_048_576)] = 256.0
    void_data: bool | None = False


@dataclass(frozen=True)
class MemoryEntry:
    """One stored message: ``table`` (tables and tabular rows) or ``data`` (raw bytes)."""

    timestamp: datetime | None
    producer: str | None
    tag: str | None
    table: pa.Table | None
    data: bytes | None
    nbytes: int


class DAQJobStoreMemory(DAQJobStore):
    config_type = DAQJobStoreMemoryConfig
    config: DAQJobStoreMemoryConfig
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = [DAQJobStoreConfigMemory]
    allowed_message_in_types: list[type[DAQJobMessage]] = [
        DAQJobMessageStorePyArrow,
        DAQJobMessageStoreRaw,
        DAQJobMessageStoreTabular,
    ]

    def __init__(self, config: DAQJobStoreMemoryConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.max_entries = config.dispose_after_n_entries or DEFAULT_MAX_ENTRIES
        self.max_bytes = int(config.max_mb * 1e6)
        self._entries: deque[MemoryEntry] = deque()
        self._bytes = 0
        self._evicted = 0
        self._lock = threading.Lock()  # readers may be on another thread of the process

    def handle_message(self, message: DAQJobMessage) -> bool:
        super().handle_message(message)
        assert isinstance(message, DAQJobMessageStore)
        if message.store_config.memory is None or self.config.void_data:
            return True
        table: pa.Table | None = None
        data: bytes | None = None
        if isinstance(message, DAQJobMessageStoreRaw):
            data = bytes(message.data)
        elif isinstance(message, DAQJobMessageStorePyArrow):
            table = message.copy_table()  # the ring slot goes back at once (see module docstring)
        else:
            assert isinstance(message, DAQJobMessageStoreTabular)
            try:
                table = table_of_rows(message)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
                self.refuse(message, f"its rows make no Arrow table ({exc})")
                return True
        info = message.daq_job_info
        size = len(data) if data is not None else int(table.nbytes) if table is not None else 0
        self._add(
            MemoryEntry(message.timestamp, info.unique_id if info else None, message.tag, table, data, size)
        )
        return True

    def _add(self, entry: MemoryEntry) -> None:
        with self._lock:
            self._entries.append(entry)
            self._bytes += entry.nbytes
            evicted = 0
            while self._entries and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
                self._bytes -= self._entries.popleft().nbytes
                evicted += 1
        if evicted:
            before, self._evicted = self._evicted, self._evicted + evicted
            if worth_a_line(before, self._evicted):
                self._logger.warning(
                    "%d entr%s evicted so far (the oldest first: at most %d entries and %.0f MB are kept)",
                    self._evicted,
                    "y" if self._evicted == 1 else "ies",
                    self.max_entries,
                    self.max_bytes / 1e6,
                )

    def entries(self, tag: str | None = None) -> list[MemoryEntry]:
        """The kept entries, oldest first (only those of ``tag`` when it is given)."""
        with self._lock:
            return [e for e in self._entries if tag is None or e.tag == tag]

    def table(self, tag: str | None = None) -> pa.Table | None:
        """The kept tables (of ``tag``, when given) as one table, oldest rows first; None if none."""
        tables = [e.table for e in self.entries(tag) if e.table is not None]
        if not tables:
            return None
        return pa.concat_tables(tables, promote_options="default")

    def get_all(self) -> dict[str | None, dict[str, Any]]:
        """The original's view: per tag, the newest table with its time and column names."""
        latest: dict[str | None, dict[str, Any]] = {}
        for entry in self.entries():
            if entry.table is not None:
                latest[entry.tag] = {
                    "timestamp": entry.timestamp,
                    "keys": entry.table.column_names,
                    "table": entry.table,
                }
        return latest

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def data_plane_stats(self) -> dict[str, int]:
        stats = super().data_plane_stats()
        with self._lock:
            stats.update(
                memory_entries=len(self._entries), memory_bytes=self._bytes, memory_evicted=self._evicted
            )
        return stats
