"""HDF5 store: the columns of Arrow tables and tabular rows, appended to HDF5 datasets.

Each producer's ``[store_config.hdf5]`` names a file (``file_path`` below ``out_dir``, with
``add_date``'s ``YYYY-MM-DD_`` prefix and the message's tag) and a group (``dataset_name``);
every column is a chunked, resizable 1-D dataset ``<dataset_name>/<column>``, all of a group
equally long. Files stay open in SWMR mode so that other processes can read them while they
grow (:mod:`enrgdaq.daq.store.hdf5_file`). Numbers, booleans and times (int64, with their
Arrow type in the ``arrow_type`` attribute) are stored; text, nested columns and raw bytes are
refused (counted ``unsupported``, said once per producer).

Rows are buffered and appended at a flush (the shared flush policy); ring slots are given back
only after that. A write journal with the datasets' lengths makes every row land once across a
kill -9 (:mod:`enrgdaq.daq.store.journal`); a file the killed store left open is repaired when
the store starts (:mod:`enrgdaq.daq.store.hdf5_repair`).
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from typing import Any, ClassVar

import h5py  # noqa: F401  (imported here: a missing h5py is a config error naming the extra)
import numpy as np

from enrgdaq.daq.models import DAQJobMessage
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.daq.store.columns import (
    Columns,
    UnsupportedColumn,
    arrow_type_text,
    fill_value,
    fits,
    message_table,
    numpy_columns,
)
from enrgdaq.daq.store.config import FileStoreJobConfig
from enrgdaq.daq.store.hdf5_file import DatasetSpec, H5File, H5Rows, target_name
from enrgdaq.daq.store.journal import RingPositions, WriteJournal
from enrgdaq.daq.store.models import (
    DAQJobMessageStore,
    DAQJobMessageStorePyArrow,
    DAQJobMessageStoreTabular,
    DAQJobStoreConfigBase,
    DAQJobStoreConfigHDF5,
)
from enrgdaq.daq.store.paths import modify_file_path
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import JournalUnreachableError, StoreWriteError

IDLE_CLOSE_SECONDS = 60.0
"""A file not written for this long is closed (a clean close: yesterday's file after midnight)."""


RECOVERY_ATTEMPTS = 5
RECOVERY_PAUSE_SECONDS = 0.2
"""A file a killed writer left open can stay locked for a moment: look again a few times."""


class DAQJobStoreHDF5Config(FileStoreJobConfig, kw_only=True):
    """The HDF5 store's TOML: ``out_dir``, ``flush_interval``, ``fsync`` (see FileStoreJobConfig)."""


@dataclass
class Piece:
    """The rows of one message, waiting for the next write."""

    message: DAQJobMessage
    columns: Columns
    rows: int
    types: dict[str, str]  # Arrow types of time columns (kept as an attribute)


@dataclass
class Plan:
    """What one write appends to one group of one file."""

    file: H5File
    group: str
    columns: dict[str, list[np.ndarray]]
    rows: int


class DAQJobStoreHDF5(DAQJobStore):
    config_type = DAQJobStoreHDF5Config
    config: DAQJobStoreHDF5Config
    allowed_store_config_types: ClassVar[list[type[DAQJobStoreConfigBase]]] = [DAQJobStoreConfigHDF5]
    allowed_message_in_types: list[type[DAQJobMessage]] = [
        DAQJobMessageStorePyArrow,
        DAQJobMessageStoreTabular,
    ]

    def __init__(self, config: DAQJobStoreHDF5Config, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._files: dict[str, H5File] = {}
        self._pending: dict[tuple[str, str], list[Piece]] = {}  # (file, group) -> rows to append
        self._write_failed = False  # the last write failed: the next store_loop writes at once
        self._journal: WriteJournal | None = None

    # -- taking messages (no I/O: store_loop writes) ------------------------------------
    def handle_message(self, message: DAQJobMessage) -> bool:
        super().handle_message(message)
        self._buffer(message)
        return True

    def _buffer(self, message: DAQJobMessage) -> None:
        assert isinstance(message, DAQJobMessageStore)
        target = message.store_config.hdf5
        if target is None:
            return
        path = os.path.join(
            self.config.out_dir, modify_file_path(target.file_path, target.add_date, message.tag)
        )
        table = message_table(message)
        try:
            columns = numpy_columns(table)
        except UnsupportedColumn as exc:
            self.refuse(message, f"{exc}; HDF5 stores numbers, booleans and times")
            return
        types = {n: t for n in table.column_names if (t := arrow_type_text(table, n)) is not None}
        group = target.dataset_name.strip("/") or "data"
        self._pending.setdefault((path, group), []).append(Piece(message, columns, table.num_rows, types))

    def has_unflushed_data(self) -> bool:
        return bool(self._pending)

    # -- writing -----------------------------------------------------------------------
    def store_loop(self) -> None:
        """Append what is buffered when the flush policy says so (at once when idle, every
        ``flush_interval`` under load, at a retry and at stop). A failed write is cut back and
        raised with everything still buffered (the base class retries with backoff)."""
        if not self._pending or not (self._write_failed or self.write_due()):
            return
        self._write_failed = True
        plans = [p for key, pieces in sorted(self._pending.items()) if (p := self._plan(*key, pieces))]
        self._record(plans)
        self._write(plans)
        self._pending.clear()
        self._write_failed = False
        self._close_idle()

    def _plan(self, path: str, group: str, pieces: list[Piece]) -> Plan | None:
        """Open the file, refuse rows whose columns do not fit its datasets, create missing ones."""
        file = self._files.get(path)
        if file is None:
            file = self._files[path] = H5File(path, self.config.fsync, self._logger)
        file.open()
        specs: dict[str, DatasetSpec] = {}
        kept = []
        for piece in pieces:
            misfit = self._misfit(file, group, piece, specs)
            if misfit:
                self.refuse(piece.message, f"{path}: {misfit}")
                continue
            for name, values in piece.columns.items():
                dataset = f"{group}/{name}"
                if dataset not in specs and file.dtype_of(dataset) is None:
                    attrs = {"arrow_type": piece.types[name]} if name in piece.types else {}
                    specs[dataset] = DatasetSpec(values.dtype, attrs)
            kept.append(piece)
        file.adopt(group)
        file.add_datasets(specs)
        if not kept:
            return None
        return Plan(file, group, _parts(file, group, kept), sum(p.rows for p in kept))

    @staticmethod
    def _misfit(file: H5File, group: str, piece: Piece, specs: dict[str, DatasetSpec]) -> str | None:
        for name, values in piece.columns.items():
            dataset = f"{group}/{name}"
            if file.blocked(dataset):
                return f"'{dataset}' exists and is not a resizable 1-D dataset"
            known = file.dtype_of(dataset)
            if known is None and dataset in specs:
                known = specs[dataset].dtype
            if known is not None and not fits(values, known):
                return f"column '{name}' is {values.dtype}, the dataset '{dataset}' holds {known}"
        return None

    def _record(self, plans: list[Plan]) -> None:
        """Journal every dataset of every open file: before and after for those this write grows,
        unchanged for the others (so that the next start repairs every file this run left open)."""
        if self._journal is None:
            return
        lengths: dict[str, tuple[int, int]] = {}
        for file in self._files.values():
            for dataset, n in file.lengths().items():
                lengths[target_name(file.path, dataset)] = (n, n)
        for plan in plans:
            group = {d: n for d, n in plan.file.lengths().items() if d.rpartition("/")[0] == plan.group}
            start = max(group.values(), default=0)
            for dataset, n in group.items():
                lengths[target_name(plan.file.path, dataset)] = (n, start + plan.rows)
        self._journal.record(lengths, self.pending_ring_positions())

    def _write(self, plans: list[Plan]) -> None:
        files = {id(p.file): p.file for p in plans}
        before = {key: file.lengths() for key, file in files.items()}
        try:
            for plan in plans:
                plan.file.append(plan.group, plan.columns, plan.rows)
            for file in files.values():
                file.flush()
        except BaseException as exc:
            # The failed write's frames hold HDF5 objects of the files: they go before the files
            # are closed (freed after it, h5py crashes the process).
            traceback.clear_frames(exc.__traceback__)
            for key, file in files.items():
                file.failed(before[key])  # cut back when opened again (the retry)
            if isinstance(exc, RuntimeError):  # h5py's word for HDF5's own errors (a full disk)
                raise StoreWriteError(str(exc)) from None  # (its frames hold HDF5 objects)
            raise

    def _close_idle(self) -> None:
        now = time.monotonic()
        for path, file in list(self._files.items()):
            if now - file.last_write > IDLE_CLOSE_SECONDS:
                file.close()
                del self._files[path]

    # -- the journal, recovery, stop -----------------------------------------------------------
    def configure_data_plane(self, settings: DataPlaneSettings) -> None:
        super().configure_data_plane(settings)
        if settings.enabled:
            self._journal = WriteJournal(settings.run_dir, self.unique_id)

    def recover_writes(self) -> RingPositions:
        """Repair the files a kill left open, and finish or undo the write it cut short."""
        if self._journal is None:
            return {}
        for attempt in range(RECOVERY_ATTEMPTS):
            try:
                recovery = self._journal.recover(H5Rows(self._logger))
                break
            except JournalUnreachableError:
                raise  # waited for by the store's loop (see DAQJobStore._recovered)
            except Exception as exc:  # h5py raises OSError and others (a lock still held, ...)
                if attempt + 1 == RECOVERY_ATTEMPTS:
                    # Writing on without knowing would write the last write's rows twice: this run
                    # ends instead, and the restarted one looks again.
                    raise StoreWriteError(
                        f"cannot check the last write before the crash ({exc}); trying again at restart"
                    ) from exc
                self._logger.warning("cannot check the last write before the crash yet (%s)", exc)
                time.sleep(RECOVERY_PAUSE_SECONDS)
        if recovery.skip:
            self._logger.info("rows of %s are on disk already: not written again", sorted(recovery.skip))
        return recovery.skip

    def cleanup(self) -> None:
        try:
            super().cleanup()
        finally:
            for file in self._files.values():
                file.close()
            self._files.clear()

    def _close_data_plane(self, for_good: bool) -> None:
        super()._close_data_plane(for_good)
        if self._journal is not None and not self._pending and self._checked_last_write:
            self._journal.remove()  # a clean stop: nothing half done


def _parts(file: H5File, group: str, pieces: list[Piece]) -> dict[str, list[np.ndarray]]:
    """Each column's arrays, one a piece (fill values where a piece lacks the column); written one
    after the other, not joined first (a copy of every row)."""
    names = list(dict.fromkeys(name for piece in pieces for name in piece.columns))
    parts: dict[str, list[np.ndarray]] = {}
    for name in names:
        dtype = file.dtype_of(f"{group}/{name}")
        assert dtype is not None
        parts[name] = [
            p.columns[name] if name in p.columns else np.full(p.rows, fill_value(dtype), dtype)
            for p in pieces
        ]
    return parts
