"""One HDF5 file of the HDF5 store: chunked, resizable 1-D datasets, appended in SWMR mode.

Between writes the file stays open in SWMR mode (``libver="latest"``, ``swmr_mode = True``),
so that another process can read it while it grows (``h5py.File(path, "r", libver="latest",
swmr=True)``, then ``dataset.refresh()``). In SWMR mode HDF5 can only append to datasets that
exist; a new dataset (a new column, a new ``dataset_name``) is created with the file closed and
opened again outside SWMR for that moment. The store opens files without HDF5's file locks
(``locking=False``): with them, one SWMR reader would keep the store from opening the file
again to add a dataset, and data acquisition would stop for a reader.

A new file is made under a temporary name with its first datasets and renamed into place, so
that a crash never leaves a file half made. A write that fails half-way (a full disk) is cut
back to the datasets' lengths before it (``resize``) before anything else is written.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from enrgdaq.daq.store.columns import fill_value
from enrgdaq.daq.store.hdf5_repair import left_open, repair
from enrgdaq.errors import StoreWriteError

CHUNK_BYTES = 64 * 1024
"""Target size of one chunk of a dataset (rows = this / item size)."""


@dataclass
class DatasetSpec:
    """A dataset to create: its type, and the attributes it keeps (e.g. the Arrow type of a time)."""

    dtype: np.dtype
    attrs: dict[str, str] = field(default_factory=dict)


def open_h5(path: str, mode: str) -> h5py.File:
    """Open ``path`` as the store does: newest file format, no HDF5 file locks (see above)."""
    return h5py.File(path, mode, libver="latest", locking=False)


class H5File:
    def __init__(self, path: str, fsync: bool, log: logging.LoggerAdapter) -> None:  # type: ignore[type-arg,unused-ignore]
        self.path = path
        self.fsync = fsync
        self.last_write = time.monotonic()
        self.datasets: set[str] = set()  # the datasets this store appends to, in this file
        self._log = log
        self._file: h5py.File | None = None
        self._ident: tuple[int, int] | None = None
        self._fresh = False  # no file yet: made with its first datasets (add_datasets)
        self._cut_to: dict[str, int] = {}  # a failed write not undone yet: dataset -> length
        self._unclosed: list[h5py.File] = []  # closes that failed: HDF5 still has the file open
        self._nodes: dict[str, Any] = {}  # objects of the open file, by name (see _node)
        self._adopted: set[str] = set()  # groups whose datasets were looked for (see adopt)

    @property
    def is_open(self) -> bool:
        return self._file is not None or self._fresh

    def open(self) -> None:
        """Have the file open for appending (created by :meth:`add_datasets` if it does not exist).

        A path that no longer leads to the open file (the file moved away, its directory
        replaced) closes it and opens the path again, which raises OSError while it is gone."""
        if self._file is not None:
            try:
                st = os.stat(self.path)
            except OSError:
                self.close()
                raise
            if (st.st_dev, st.st_ino) == self._ident:
                return
            self._log.warning("%s is not the file it was: closed it, opening the path again", self.path)
            self.close()
        failed = self.close()
        if failed is not None:
            raise StoreWriteError(f"{self.path}: an earlier close failed and fails again: {failed}")
        if not os.path.exists(self.path):
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._fresh = True
            return
        if left_open(self.path):
            self._log.warning("%s was left open by a writer that died: clearing its marks", self.path)
            repair(self.path)
        self._open_existing()

    def _open_existing(self) -> None:
        self._nodes.clear()
        self._adopted.clear()
        f = open_h5(self.path, "a")
        try:
            st = os.fstat(f.id.get_vfd_handle())
            self._ident = (st.st_dev, st.st_ino)
            for name, length in sorted(self._cut_to.items()):
                if name in f and f[name].shape[0] > length:
                    f[name].resize((length,))  # (a handle let go at once, before any close)
            self._cut_to.clear()
            f.flush()
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        self._file = f
        self._fresh = False

    def _node(self, name: str) -> Any:
        """The file's object at ``name`` (None: none), kept while the file is open (looking an
        object up in h5py costs about 0.1 ms)."""
        f = self._file
        if f is None:
            return None
        if name not in self._nodes:
            self._nodes[name] = f.get(name)
        return self._nodes[name]

    def dtype_of(self, name: str) -> np.dtype | None:
        """The type of an existing dataset this store can append to (None: none such)."""
        node = self._node(name)
        return node.dtype if _appendable(node) else None

    def blocked(self, name: str) -> bool:
        """Whether ``name`` exists in the file as something the store cannot append to."""
        node = self._node(name)
        return node is not None and not _appendable(node)

    def adopt(self, group: str) -> None:
        """Append to the datasets ``group`` already has in the file too (a file of an earlier run)."""
        node = self._node(group)
        if group not in self._adopted and isinstance(node, h5py.Group):
            self._adopted.add(group)
            for name, child in node.items():
                if _appendable(child):
                    self.datasets.add(f"{group}/{name}")

    def add_datasets(self, specs: dict[str, DatasetSpec]) -> None:
        """Create datasets, each as long as the longest dataset of its group (rows it did not
        have hold the fill value). SWMR cannot create datasets: the file is closed and opened
        outside SWMR for this; a new file is made with them under a temporary name, then renamed."""
        if not specs:
            return
        if self._fresh:
            temporary = os.path.join(os.path.dirname(self.path), f".{os.path.basename(self.path)}.new")
            with open_h5(temporary, "w") as f:
                _create(f, specs)
            try:
                os.link(temporary, self.path)  # never over a file that appeared meanwhile
            except FileExistsError:
                self._fresh = False
                raise StoreWriteError(f"{self.path} appeared while it was made; appended to next") from None
            finally:
                os.unlink(temporary)
        else:
            self.close()
            with open_h5(self.path, "a") as f:
                _create(f, specs)
        self.datasets.update(specs)
        self._open_existing()

    def lengths(self) -> dict[str, int]:
        """The length of every dataset this store appends to in the file."""
        return {name: _length(self._node(name)) for name in self.datasets}

    def append(self, group: str, columns: dict[str, list[np.ndarray]], rows: int) -> None:
        """Add ``rows`` rows to every dataset of ``group`` this store appends to, each column's
        parts one after the other (the group's datasets stay equally long: a column missing from
        ``columns`` gets fill values)."""
        assert self._file is not None, "open() and add_datasets() come first"
        names = [n for n in self.datasets if n.rpartition("/")[0] == group]
        start = max(_length(self._node(n)) for n in names)
        for name in names:
            dataset = self._node(name)
            dataset.resize((start + rows,))
            at = start
            for part in columns.get(name.rpartition("/")[2], []):
                dataset[at : at + len(part)] = part
                at += len(part)
            # Now, with the dataset still open: a chunk that cannot be written (a full disk) fails
            # here, raised; HDF5 would otherwise write it when the handle closes, and only print
            # the error.
            dataset.flush()
        self.last_write = time.monotonic()

    def flush(self) -> None:
        f = self._file
        if f is None:
            return
        f.flush()
        if self.fsync:
            os.fsync(f.id.get_vfd_handle())

    def failed(self, lengths: dict[str, int]) -> None:
        """A write failed half-way: close the file; it is cut back to ``lengths`` when opened again."""
        self._cut_to = {**lengths, **self._cut_to}
        self.close()

    def close(self) -> Exception | None:
        """Close the file (a clean close clears its "open for writing" marks). A close that fails
        (HDF5 could not write what it still held: a full disk) leaves the file open inside HDF5;
        it is closed again before the file is next opened."""
        f, self._file, self._fresh = self._file, None, False
        self._nodes.clear()  # the handles go first: freed after the file is closed, h5py crashes
        self._adopted.clear()
        if f is not None:
            self._unclosed.append(f)
        while self._unclosed:
            try:
                self._unclosed[0].close()
            except Exception as exc:
                self._log.error(
                    "closing %s failed (tried again before it is next opened): %s", self.path, str(exc)
                )
                return exc
            self._unclosed.pop(0)
        return None


def _length(node: Any) -> int:
    return int(node.shape[0]) if node is not None else 0


def _appendable(node: object) -> bool:
    return isinstance(node, h5py.Dataset) and node.ndim == 1 and node.maxshape == (None,)


def _create(f: h5py.File, specs: dict[str, DatasetSpec]) -> None:
    for name, spec in sorted(specs.items()):
        group = name.rpartition("/")[0]
        lengths = [n.shape[0] for n in f[group].values() if isinstance(n, h5py.Dataset)] if group in f else []
        rows = max(CHUNK_BYTES // max(1, spec.dtype.itemsize), 1)
        dataset = f.create_dataset(
            name,
            shape=(max(lengths, default=0),),
            maxshape=(None,),
            dtype=spec.dtype,
            chunks=(rows,),
            fillvalue=fill_value(spec.dtype),
        )
        for key, value in spec.attrs.items():
            dataset.attrs[key] = value


class H5Rows:
    """The write journal's medium for HDF5 (:class:`enrgdaq.daq.store.journal.Medium`): a target
    is ``<file>\\0<dataset>``, its length the dataset's rows, and cutting it a ``resize``. A file
    a killed writer left open is repaired first."""

    def __init__(self, log: logging.LoggerAdapter) -> None:  # type: ignore[type-arg,unused-ignore]
        self._log = log
        self._checked: set[str] = set()

    def length(self, name: str) -> int:
        path, dataset = split_target(name)
        if not self._usable(path):
            return 0
        with open_h5(path, "r") as f:
            return int(f[dataset].shape[0]) if dataset in f else 0

    def cut(self, name: str, length: int) -> None:
        path, dataset = split_target(name)
        with open_h5(path, "a") as f:
            f[dataset].resize((length,))

    def _usable(self, path: str) -> bool:
        if not os.path.exists(path):
            return False
        if path not in self._checked and left_open(path):
            self._log.warning("%s was left open by a writer that died: clearing its marks", path)
            repair(path)
        self._checked.add(path)
        return True


def target_name(path: str, dataset: str) -> str:
    return f"{path}\0{dataset}"


def split_target(name: str) -> tuple[str, str]:
    path, _, dataset = name.partition("\0")
    return path, dataset
