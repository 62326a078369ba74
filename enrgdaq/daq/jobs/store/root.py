"""ROOT store: the columns of Arrow tables and tabular rows, as the branches of a TTree (uproot).

Each producer's ``[store_config.root]`` names a file (``file_path`` below ``out_dir``, with
``add_date``'s prefix and the message's tag) and a tree (``tree_name``), compressed with
``compression_type`` / ``compression_level``. Numbers, booleans, times (int64) and text are
stored; nested columns and raw bytes are refused (counted ``unsupported``, said once per
producer), and so are rows whose columns are not the tree's branches.

Rows are buffered and written as one basket per branch when ``buffer_size_bytes`` are held or
the oldest row waited ``flush_interval`` seconds (the original's ``flush_interval_seconds``),
at a retry and at stop; ring slots are given back only after that. Each write is all or
nothing across every file it touches (an undo log, :mod:`enrgdaq.daq.store.undo`) and is
journaled (:mod:`enrgdaq.daq.store.journal`): after a kill -9 the files are as they were after
the last complete write, and every row arrives once. A restarted store extends its trees.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import msgspec
import numpy as np
import uproot  # noqa: F401  (imported here: a missing uproot is a config error naming the extra)

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.columns import Columns, UnsupportedColumn, message_table, numpy_columns
from enrgdaq.daq.store.config import FileStoreJobConfig, FlushSeconds
from enrgdaq.daq.store.journal import RingPositions, WriteJournal
from enrgdaq.daq.store.models import (
    DAQJobMessageStore,
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfigBase,
    DAQJobStoreConfigROOT,
)
from enrgdaq.daq.store.paths import modify_file_path
from enrgdaq.daq.store.root_file import (
    CannotExtend,
    RootEntries,
    RootFile,
    Schema,
    compression,
    fits_schema,
    free_path,
    schema_of,
)
from enrgdaq.daq.store.undo import UndoLog
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import JournalUnreachableError, StoreWriteError

IDLE_CLOSE_SECONDS = 60.0
"""A file not written for this long is let go (yesterday's file after midnight)."""


class DAQJobStoreROOTConfig(FileStoreJobConfig, kw_only=True):
    """``out_dir``, ``flush_interval``, ``fsync`` (see FileStoreJobConfig), and the original's:

    buffer_size_bytes: write once this many bytes of rows are buffered (one basket per branch).
    flush_interval_seconds: the original's name for ``flush_interval``; when given, it wins.
    """

    buffer_size_bytes: Annotated[int, msgspec.Meta(ge=1, le=1 << 30)] = 5_000_000
    flush_interval_seconds: FlushSeconds | None = None

    def __post_init__(self) -> None:
        if self.flush_interval_seconds is not None:
            self.flush_interval = self.flush_interval_seconds


@dataclass
class Piece:
    """The rows of one message, waiting for the next write."""

    message: DAQJobMessage
    columns: Columns
    rows: int


@dataclass
class Plan:
    """What one write adds to one tree."""

    file: RootFile
    tree: str
    columns: Columns
    schema: Schema
    rows: int


class DAQJobStoreROOT(DAQJobStore):
    config_type = DAQJobStoreROOTConfig
    config: DAQJobStoreROOTConfig
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = [DAQJobStoreConfigROOT]
    allowed_message_in_types: list[type[DAQJobMessage]] = [
        DAQJobMessageStorePyArrow,
        DAQJobMessageStoreTabular,
    ]

    def __init__(self, config: DAQJobStoreROOTConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._files: dict[str, RootFile] = {}  # by the path asked for (the file may be <name>_1.root)
        self._schemas: dict[tuple[str, str], Schema] = {}  # (path asked for, tree) -> its branches
        self._pending: dict[tuple[str, str], list[Piece]] = {}  # (path asked for, tree) -> rows
        self._codecs: dict[str, tuple[str, int]] = {}  # a file's compression: its first producer's
        self._buffered = 0  # bytes of rows buffered
        self._since = 0.0  # when the oldest buffered row came
        self._write_failed = False
        self._journal: WriteJournal | None = None
        self._unusable: set[str] = set()  # files whose tree uproot cannot extend
        undo_name = f".enrgdaq-undo-{self.unique_id}"
        self._undo = UndoLog(os.path.join(config.out_dir, undo_name), config.fsync)

    # -- taking messages (no I/O: store_loop writes) ------------------------------------
    def handle_message(self, message: DAQJobMessage) -> bool:
        super().handle_message(message)
        self._buffer(message)
        return True

    def _buffer(self, message: DAQJobMessage) -> None:
        assert isinstance(message, DAQJobMessageStore)
        target = message.store_config.root
        if target is None:
            return
        path = os.path.join(
            self.config.out_dir, modify_file_path(target.file_path, target.add_date, message.tag)
        )
        table = message_table(message)
        try:
            columns = numpy_columns(table, text=True)
        except UnsupportedColumn as exc:
            self.refuse(message, f"{exc}; ROOT stores numbers, booleans, times and text")
            return
        known = self._schemas.setdefault((path, target.tree_name), schema_of(columns))
        misfit = fits_schema(columns, known)
        if misfit:
            self.refuse(message, f"{path}, tree '{target.tree_name}': {misfit}")
            return
        if not self._pending:
            self._since = time.monotonic()
        self._codecs.setdefault(path, (target.compression_type, target.compression_level))
        self._pending.setdefault((path, target.tree_name), []).append(Piece(message, columns, table.num_rows))
        self._buffered += table.nbytes

    def has_unflushed_data(self) -> bool:
        return bool(self._pending)

    # -- writing -----------------------------------------------------------------------
    def _due(self) -> bool:
        """By size (``buffer_size_bytes``) or by time (``flush_interval``), not at every idle
        moment: each write is one basket per branch, and small baskets make slow files."""
        if self._write_failed or self._has_been_freed or self._writes.failing or self._held:
            return True
        return (
            self._buffered >= self.config.buffer_size_bytes
            or len(self._unreleased) >= self._flush.hold_limit
            or time.monotonic() - self._since >= self.config.flush_interval
        )

    def store_loop(self) -> None:
        """Write what is buffered when due; all of it or (after a rollback) none of it, raised
        with everything still buffered (the base class retries with backoff)."""
        if not self._pending or not self._due():
            return
        self._write_failed = True
        self._undo.begin()
        try:
            plans = [self._plan(*key, pieces) for key, pieces in sorted(self._pending.items())]
            self._record(plans)
            for plan in plans:
                plan.file.extend(plan.tree, plan.columns, plan.schema)
                plan.file.last_write = time.monotonic()
            if self.config.fsync:
                for plan in plans:
                    plan.file.sync()
            self._undo.commit()
        except CannotExtend as exc:
            self._abandon()
            self._unusable.add(exc.path)
            raise StoreWriteError(f"{exc}; writing to the next free name") from exc
        except BaseException:
            self._abandon()
            raise
        self._pending.clear()
        self._buffered = 0
        self._write_failed = False
        self._close_idle()

    def _plan(self, path: str, tree: str, pieces: list[Piece]) -> Plan:
        schema = self._schemas[(path, tree)]
        file = self._files.get(path)
        if file is None:
            actual = free_path(path, tree, schema, self._logger, self._unusable)
            file = self._files[path] = RootFile(actual, self._undo, compression(*self._codecs[path]))
        file.open()
        columns = {n: _joined([p.columns[n] for p in pieces]) for n in schema}
        return Plan(file, tree, columns, schema, sum(p.rows for p in pieces))

    def _record(self, plans: list[Plan]) -> None:
        if self._journal is None:
            return
        lengths = {}
        for plan in plans:
            before = plan.file.entries(plan.tree)
            lengths[f"{plan.file.path}\0{plan.tree}"] = (before, before + plan.rows)
        self._journal.record(lengths, self.pending_ring_positions())

    def _abandon(self) -> None:
        """A write failed: put the files back as they were and forget them (uproot's state in
        memory no longer matches them); opened again at the retry."""
        try:
            self._undo.rollback()
        except OSError as exc:
            self._logger.error("cannot undo the failed write yet (%s): undone before the next one", exc)
        for file in self._files.values():
            file.drop()
        self._files.clear()

    def _close_idle(self) -> None:
        now = time.monotonic()
        for path, file in list(self._files.items()):
            if now - file.last_write > IDLE_CLOSE_SECONDS:
                file.drop()
                del self._files[path]

    # -- the journal, recovery, stop -----------------------------------------------------------
    def configure_data_plane(self, settings: DataPlaneSettings) -> None:
        super().configure_data_plane(settings)
        if settings.enabled:
            self._journal = WriteJournal(settings.run_dir, self.unique_id)

    def recover_writes(self) -> RingPositions:
        """Undo the write a kill cut short (undo log), then skip what the last complete write covered."""
        try:
            restored = self._undo.rollback()
        except OSError as exc:
            # Its directory away or unwritable: what is on disk is not known until the undo is done,
            # so nothing is taken from the rings meanwhile (see DAQJobStore._recovered).
            raise JournalUnreachableError(
                f"cannot undo the write the crash cut short ({exc}); the data waits in the ring until it can"
            ) from exc
        if restored:
            self._logger.warning("a write cut short by a crash was undone in %s", restored)
        if self._journal is None:
            return {}
        try:
            recovery = self._journal.recover(RootEntries(self._logger))
        except JournalUnreachableError:
            raise  # waited for by the store's loop (see DAQJobStore._recovered)
        except Exception as exc:
            self._logger.error(
                "cannot check the last write before the crash (%s): its rows are written again", exc
            )
            return {}
        if recovery.skip:
            self._logger.info("rows of %s are on disk already: not written again", sorted(recovery.skip))
        return recovery.skip

    def cleanup(self) -> None:
        try:
            super().cleanup()
        finally:
            for file in self._files.values():
                file.drop()
            self._files.clear()

    def _close_data_plane(self, for_good: bool) -> None:
        super()._close_data_plane(for_good)
        if self._journal is not None and not self._pending and self._checked_last_write:
            self._journal.remove()  # a clean stop: nothing half done


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
