"""One ROOT file of the ROOT store: TTrees extended with uproot, through the store's undo log.

uproot (5.6 and later) can open a file it wrote in an earlier session (``uproot.update``) and
extend its TTree, so a restarted store goes on in the same file and tree. It cannot add
branches to a tree, nor extend trees whose branches it did not write itself (split objects,
branches with different basket counts); when the tree in an existing file has other branches
or types than the rows to store, or uproot cannot extend it, the store writes to the next free
``<name>_1.root``, ``<name>_2.root``, ... instead, and says so (:func:`free_path`).

Every write goes through :class:`~enrgdaq.daq.store.undo.UndoFile`, so a kill in the middle of
one leaves the file as it was before it (once the store's next run has rolled its undo log back).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import uproot

from enrgdaq.daq.store.columns import Columns
from enrgdaq.daq.store.undo import UndoFile, UndoLog

COMPRESSIONS = {"ZSTD": uproot.ZSTD, "LZ4": uproot.LZ4, "ZLIB": uproot.ZLIB, "LZMA": uproot.LZMA}

Schema = dict[str, str]
"""Branch name -> numpy type string (``"<f8"``), or ``"string"`` for text."""


def compression(kind: str, level: int) -> Any:
    """The original's settings as uproot's compression (LZ4 and ZLIB levels stop at 9/12)."""
    if kind == "LZ4":
        level = min(level, 12)
    elif kind in ("ZLIB", "LZMA"):
        level = min(level, 9)
    return COMPRESSIONS[kind](level)


def schema_of(columns: Columns) -> Schema:
    return {name: "string" if v.dtype.kind == "O" else v.dtype.str for name, v in columns.items()}


def fits_schema(columns: Columns, schema: Schema) -> str | None:
    """Why ``columns`` cannot extend a tree of ``schema`` (None: they can)."""
    if set(columns) != set(schema):
        return f"columns {sorted(columns)} are not the tree's branches {sorted(schema)}"
    for name, values in columns.items():
        want = schema[name]
        if (want == "string") != (values.dtype.kind == "O"):
            return f"column '{name}' is {values.dtype}, the branch holds {want}"
        if want != "string" and not np.can_cast(values.dtype, np.dtype(want), "safe"):
            return f"column '{name}' is {values.dtype}, the branch holds {np.dtype(want)}"
    return None


def tree_schema(path: str, tree: str) -> Schema | None:
    """The branches of ``tree`` in an existing file (None: no file, or no such tree); a tree that
    uproot cannot extend has the schema ``{"": "unusable"}``."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    with uproot.open(path) as f:
        if tree not in f:
            return None
        found = f[tree]
        schema: Schema = {}
        for name, branch in found.items(recursive=False):
            interpretation = branch.interpretation
            if isinstance(interpretation, uproot.AsStrings):
                schema[name] = "string"
            elif isinstance(interpretation, uproot.AsDtype) and interpretation.from_dtype.shape == ():
                schema[name] = interpretation.to_dtype.newbyteorder("=").str
            else:
                return {"": "unusable"}
        return schema


class CannotExtend(Exception):
    """uproot cannot extend the tree in this file (it did not write it, or this uproot is too old)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path


def free_path(
    path: str,
    tree: str,
    schema: Schema,
    log: logging.LoggerAdapter,  # type: ignore[type-arg,unused-ignore]
    unusable: set[str] | frozenset[str] = frozenset(),
) -> str:
    """``path``, or the first ``<stem>_<n><ext>`` whose ``tree`` is missing or takes ``schema``
    (and that is not among the files found ``unusable``)."""
    stem, ext = os.path.splitext(path)
    candidate, n = path, 0
    while True:
        found = tree_schema(candidate, tree) if candidate not in unusable else {"": "unusable"}
        if found is None or found == schema:
            if candidate != path:
                log.warning(
                    "%s holds a tree '%s' this store cannot extend: writing to %s", path, tree, candidate
                )
            return candidate
        n += 1
        candidate = f"{stem}_{n}{ext}"


class RootFile:
    """A ROOT file open for writing between the store's writes."""

    def __init__(self, path: str, undo: UndoLog, compression: Any) -> None:
        self.path = path
        self.last_write = 0.0
        self._undo = undo
        self._compression = compression
        self._raw: UndoFile | None = None
        self._dir: Any = None  # uproot's WritableDirectory
        self._trees: dict[str, Any] = {}
        self._ident: tuple[int, int] | None = None

    def open(self) -> None:
        """Open the file (within a store write): ``uproot.update`` when it exists, else a new one.
        A path that no longer leads to the open file is opened again (OSError while it is gone)."""
        if self._dir is not None:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._ident:
                return
            self.drop()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        raw = UndoFile(self.path, self._undo)
        try:
            if exists:
                self._dir = uproot.update(raw)
            else:
                self._dir = uproot.recreate(raw, compression=self._compression)
        except BaseException:
            raw.close()
            raise
        # uproot loads an existing TTree for extending only from a file it knows by path (it
        # names the file in its errors): the path of the file object it writes through.
        self._dir.file._file_path = self.path
        st = os.fstat(raw.fileno())
        self._raw, self._ident = raw, (st.st_dev, st.st_ino)

    def entries(self, tree: str) -> int:
        found = self._tree(tree)
        return int(found.num_entries) if found is not None else 0

    def extend(self, tree: str, columns: Columns, schema: Schema) -> None:
        found = self._tree(tree)
        if found is None:
            found = self._dir.mktree(
                tree, {n: "string" if t == "string" else np.dtype(t) for n, t in schema.items()}
            )
            found.compression = self._compression
            self._trees[tree] = found
        try:
            found.extend({name: _branch_values(values, schema[name]) for name, values in columns.items()})
        except NotImplementedError as exc:  # checked before anything is written
            raise CannotExtend(self.path, str(exc)) from exc

    def _tree(self, tree: str) -> Any:
        assert self._dir is not None, "open() first"
        found = self._trees.get(tree)
        if found is None and tree in self._dir:
            try:
                found = self._dir[tree]
                found.compression = self._compression
            except Exception as exc:
                raise CannotExtend(self.path, f"uproot cannot extend its tree '{tree}': {exc}") from exc
            self._trees[tree] = found
        return found

    def sync(self) -> None:
        if self._raw is not None:
            self._raw.sync()

    def drop(self) -> None:
        """Forget the open file (after a rollback its state in memory is wrong; closing writes nothing)."""
        raw, self._raw, self._dir = self._raw, None, None
        self._trees.clear()
        if raw is not None:
            raw.close()


def _branch_values(values: np.ndarray, kind: str) -> Any:
    if kind == "string":
        import awkward

        return awkward.Array(list(values))
    return values.astype(np.dtype(kind), copy=False)


class RootEntries:
    """The write journal's medium for ROOT (:class:`enrgdaq.daq.store.journal.Medium`): a target
    is ``<file>\\0<tree>``, its length the tree's entries. A TTree cannot be cut; the undo log
    has put every file back to a whole write before the journal is read, so none needs to be."""

    def __init__(self, log: logging.LoggerAdapter) -> None:  # type: ignore[type-arg,unused-ignore]
        self._log = log

    def length(self, name: str) -> int:
        path, _, tree = name.partition("\0")
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            return 0
        with uproot.open(path) as f:
            return int(f[tree].num_entries) if tree in f else 0

    def cut(self, name: str, length: int) -> None:
        self._log.error(
            "cannot cut the TTree %s back to %d entries: its last rows may be there twice", name, length
        )
