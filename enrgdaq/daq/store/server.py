"""The part every store that writes to a database server shares (Redis, MySQL).

Such a store buffers what ``handle_message`` converts (no I/O there) and writes it in
``store_loop`` when :meth:`~enrgdaq.daq.store.base.DAQJobStore.write_due` says so, in one
transaction per write. A server that is down, restarting or refusing the write raises the
driver's error; it becomes :class:`~enrgdaq.errors.StoreWriteError`: the rows stay buffered, the
ring slots stay held, the store shows ``stalled`` and the base class retries with backoff. An idle
store connects too (at its start), so that a server that is away or refuses the login shows from
the start, not at the first row.

**Exactly once across a kill -9.** The transaction that writes the rows also records, in the
server, the ring positions the write covers (:meth:`DAQJobStore.pending_ring_positions`). Each
new connection (the first one of a run, and the one after any failed write, whose outcome may
be unknown: the commit may have gone through before the connection broke) reads those positions
back, and buffered payloads below them are not written again (their slots are given back after
the next write as usual). Inline messages hold no ring position: they are the documented
exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.journal import RingPositions
from enrgdaq.daq.store.models import DAQJobMessageStoreTabular
from enrgdaq.errors import MessageError, StoreWriteError

T = TypeVar("T")

RingPosition = tuple[str, int, int]
"""Where a payload sat: (ring file name, the ring file's inode, sequence number)."""


def ring_position(message: DAQJobMessage) -> RingPosition | None:
    """The ring position of a message read from a ring (None: an inline message)."""
    guard = message.__dict__.get("_ring_guard")
    if guard is None or guard.seq < 0:
        return None
    ring = guard.tracker.ring
    return str(ring.name), int(ring.inode), int(guard.seq)


def covered(position: RingPosition | None, written: RingPositions) -> bool:
    """Whether the server already holds the payload at ``position`` (a previous run wrote it)."""
    if position is None:
        return False
    name, inode, seq = position
    reached = written.get(name)
    return reached is not None and reached[0] == inode and seq < reached[1]


def tabular_columns(message: DAQJobMessageStoreTabular) -> dict[str, list[Any]]:
    """A tabular message's values by column, in ``keys`` order (from ``data`` rows or
    ``data_columns``). Raises MessageError when the columns are not all of one length or a key
    repeats: the message cannot be stored as a table."""
    keys = list(message.keys)
    if len(set(keys)) != len(keys):
        raise MessageError(f"keys repeat: {keys}")
    if message.data is not None:
        if any(len(row) != len(keys) for row in message.data):
            raise MessageError(f"a row has not {len(keys)} values (one per key)")
        return {k: [row[i] for row in message.data] for i, k in enumerate(keys)}
    given = message.data_columns or {}
    columns = {k: list(given.get(k, [])) for k in keys}
    if len({len(v) for v in columns.values()}) > 1:
        raise MessageError("data_columns are not all of one length")
    return columns


@dataclass
class Pending(Generic[T]):
    """One handled message's data, converted for the server, waiting for the next write."""

    message: DAQJobMessage
    position: RingPosition | None
    item: T


class DAQJobServerStore(DAQJobStore, Generic[T]):
    """A store whose writes go to a server in transactions (subclasses: Redis, MySQL).

    Subclasses implement :meth:`_read_written` (connect if needed; the positions this store
    recorded), :meth:`_write` (one transaction: the items and the positions) and
    :meth:`_disconnect`, and list their driver's exceptions in ``server_errors``.
    """

    server_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._pending: list[Pending[T]] = []
        self._written: RingPositions | None = None  # None: read it at the next connection
        self._write_failed = False
        self.rows_written = 0
        """Rows (or values) this run has committed to the server (for tests and the kill test)."""

    @property
    def store_key(self) -> str:
        """Names this store's progress in the server: unique per supervisor and store."""
        return f"{self.supervisor_info.supervisor_id}/{self.unique_id}"

    def server_name(self) -> str:
        """The server as log lines and errors name it (never with a password)."""
        raise NotImplementedError

    def _buffer(self, message: DAQJobMessage, item: T) -> None:
        """Keep converted data for the next write (the message's slot is held until then)."""
        self._pending.append(Pending(message, ring_position(message), item))

    def store_loop(self) -> None:
        """Write what is buffered when it is due, in one transaction with the ring positions;
        a failure raises ``StoreWriteError`` with everything still buffered."""
        if not self._pending:
            if self._written is None:
                self._reach()
            return
        if not self._write_failed and not self.write_due():
            return
        self._write_failed = True
        try:
            if self._written is None:
                self._written = self._read_written()
            written = self._written
            todo = [p for p in self._pending if not covered(p.position, written)]
            if len(todo) < len(self._pending):
                self._logger.info(
                    "%d payload(s) are in %s already (written before a crash): not written again",
                    len(self._pending) - len(todo),
                    self.server_name(),
                )
            if todo:
                self.rows_written += self._write(todo, self.pending_ring_positions())
        except self.server_errors as exc:
            raise self._broken(exc) from exc
        self._pending.clear()
        self._write_failed = False

    def _reach(self) -> None:
        """Connect while idle when there is no connection yet, so that a server that is down or
        refuses the login shows in ``enrgdaq status`` (``stalled``, with the server's error) from
        the store's start, not only once data comes; it is retried with the write backoff."""
        try:
            self._written = self._read_written()
        except self.server_errors as exc:
            raise self._broken(exc) from exc

    def _broken(self, exc: BaseException) -> StoreWriteError:
        """After a driver error: drop the connection; the outcome of a write may be unknown, so
        the next connection reads the positions again."""
        self._written = None
        self._disconnect()
        return StoreWriteError(f"{self.server_name()}: {type(exc).__name__}: {exc}")

    def has_unflushed_data(self) -> bool:
        return bool(self._pending)

    def cleanup(self) -> None:
        """Write what is left (the base class), then close the connection whatever happened."""
        try:
            super().cleanup()
        finally:
            self._disconnect()

    # -- what a server store implements ----------------------------------------------
    def _read_written(self) -> RingPositions:
        """Connect (if not connected) and read the ring positions this store recorded."""
        raise NotImplementedError

    def _write(self, pending: list[Pending[T]], positions: RingPositions) -> int:
        """Write ``pending`` and record ``positions`` in one transaction; returns rows written.
        Raises one of ``server_errors`` when it did not go through."""
        raise NotImplementedError

    def _disconnect(self) -> None:
        """Drop the connection (the next write connects again); never raises."""
        raise NotImplementedError
