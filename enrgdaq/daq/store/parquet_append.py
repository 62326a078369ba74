"""A Parquet file that grows by whole row groups and is a valid file before and after each step.

The Parquet store keeps the rows of a file's next row group in a write-ahead
file beside it, ``_<name>.wal.arrows`` (an Arrow IPC stream, appended at each
flush: :mod:`enrgdaq.daq.store.arrow_stream`). :func:`convert_wal` moves them
into the Parquet file as new row groups:

1. the rows are encoded as a standalone Parquet file in memory (pyarrow);
2. a commit record ``_<name>.commit`` is written beside the file (atomically):
   the file's size and its footer before, and how many rows it holds after;
3. the file is cut at its old footer, and the new row groups and a footer for
   all row groups are appended in one write (:mod:`enrgdaq.daq.store.parquet_footer`;
   a new file is written whole as ``.<name>.tmp`` and renamed into place instead);
4. the write-ahead file is removed, then the commit record.

A crash anywhere leaves what :func:`recover` puts right: a file whose footer
holds the recorded number of rows went through (its write-ahead file is
removed: its rows are in the file); any other is put back as it was before
step 3 (its rows are still in the write-ahead file). So every row is in the
file once. ``python -m enrgdaq.daq.store.parquet_append OUT_DIR`` does this for
every file below OUT_DIR and converts the rows still waiting, for a store
that will not run again.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from enrgdaq.daq.store.append import file_size, replace_file, sync_directory, write_all
from enrgdaq.daq.store.parquet_footer import (
    MAGIC,
    TAIL,
    footer_at,
    footer_of,
    metadata_of,
    shifted_footer,
    split_file,
)

logger = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter  # type: ignore[type-arg,unused-ignore]

WAL_SUFFIX = ".wal.arrows"
COMMIT_SUFFIX = ".commit"


class SchemaMismatchError(ValueError):
    """The rows to add do not have the file's schema."""


def wal_path(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f"_{name}{WAL_SUFFIX}")


def commit_path(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f"_{name}{COMMIT_SUFFIX}")


def convert_wal(
    path: str,
    compression: str,
    row_group_rows: int,
    fsync: bool = False,
    committed: Callable[[], None] | None = None,
    log: Logger = logger,
) -> int:
    """Move the rows of ``path``'s write-ahead file into it (see the module docstring); returns how
    many. ``committed`` is called once they are in the file, before the write-ahead file goes."""
    recover(path, log)
    wal = wal_path(path)
    if not os.path.exists(wal):
        return 0
    wal_size = file_size(wal)
    table = read_wal(wal, log)
    if table is None:
        log.error(
            "%s holds no Arrow stream (its schema torn by a crash before its first write): removed", wal
        )
        os.unlink(wal)
        return 0
    if table.num_rows:
        append_table(path, table, compression, row_group_rows, fsync, {"wal_size": wal_size})
    if committed is not None:
        committed()
    os.unlink(wal)
    _remove(commit_path(path), fsync)
    return int(table.num_rows)


def append_table(
    path: str,
    table: pa.Table,
    compression: str,
    row_group_rows: int,
    fsync: bool,
    note: dict[str, Any] | None = None,
) -> None:
    """Add ``table`` to the Parquet file ``path`` (made if it does not exist) as new row groups,
    leaving a commit record (with ``note`` in it) for :func:`recover`. Raises OSError with the
    file as it was."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=compression, row_group_size=row_group_rows)
    standalone = sink.getvalue()
    size = file_size(path)
    if size == 0:
        _record(path, {**(note or {}), "size": 0, "rows": table.num_rows}, fsync)
        replace_file(path, [standalone], fsync)
        return
    with open(path, "rb") as f:
        f.seek(max(0, size - TAIL))
        start = footer_at(size, f.read(TAIL))
        f.seek(start)
        old_tail = f.read(size - start)
    old = metadata_of(old_tail[:-TAIL])
    groups, footer = split_file(standalone)
    new = metadata_of(shifted_footer(footer, start - len(MAGIC), old.num_row_groups))
    if not new.schema.equals(old.schema):
        raise SchemaMismatchError(f"{path}: the rows to add have another schema than the file's")
    rows = old.num_rows + table.num_rows
    old.append_row_groups(new)
    record = {
        **(note or {}),
        "size": size,
        "footer_at": start,
        "rows": rows,
        "footer": base64.b64encode(old_tail).decode(),
    }
    _record(path, record, fsync)
    _write_at(path, start, [groups, footer_of(old)], fsync, undo=old_tail)


def recover(path: str, log: Logger = logger) -> bool | None:
    """Finish or undo an append that a crash interrupted (see the module docstring): True when it
    went through, False when it was undone, None when there was none."""
    record_file = commit_path(path)
    try:
        with open(record_file) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    if _holds_rows(path, int(record["rows"])):
        _remove_converted_wal(path, record.get("wal_size"), log)
        os.unlink(record_file)
        log.warning("%s: the last append went through before a crash; its write-ahead rows removed", path)
        return True
    if int(record["size"]) == 0:
        if os.path.exists(path):
            os.unlink(path)
    elif os.path.exists(path):
        old_tail = base64.b64decode(record["footer"])
        _write_at(path, int(record["footer_at"]), [old_tail], fsync=True, undo=None)
    os.unlink(record_file)
    log.warning("%s: an append cut short by a crash was undone; its rows are converted again", path)
    return False


def read_wal(wal: str, log: Logger = logger) -> pa.Table | None:
    """The rows of a write-ahead file (memory-mapped); a torn last batch (a crash during a flush
    whose journal is gone, e.g. after a reboot) is left out, with a warning. None when not even
    its schema is whole."""
    source = pa.memory_map(wal)
    try:
        reader = ipc.open_stream(source)
    except (pa.ArrowInvalid, OSError):
        return None
    batches = []
    try:
        for batch in reader:
            batches.append(batch)
    except (pa.ArrowInvalid, OSError) as exc:
        log.warning("%s: a torn end after %d batches left out (%s)", wal, len(batches), exc)
    return pa.Table.from_batches(batches, schema=reader.schema)


def pending_files(out_dir: str) -> list[str]:
    """Parquet files below ``out_dir`` with rows waiting in a write-ahead file or an append to
    recover (found by their ``_<name>...`` companions)."""
    found = set()
    for directory, _dirs, names in os.walk(out_dir):
        for name in names:
            for suffix in (WAL_SUFFIX, COMMIT_SUFFIX):
                if name.startswith("_") and name.endswith(suffix):
                    found.add(os.path.join(directory, name[1 : -len(suffix)]))
    return sorted(found)


def _remove_converted_wal(path: str, converted_size: int | None, log: Logger) -> None:
    """Remove the write-ahead file whose rows went into ``path``: only if it is the one converted
    (its size then); one that changed since is left for the next conversion (a row read twice is
    better than a row removed)."""
    wal = wal_path(path)
    size = file_size(wal)
    if size == 0 or converted_size is None or size == converted_size:
        if os.path.exists(wal):
            os.unlink(wal)
        return
    log.error(
        "%s: changed after its rows were added to %s (%d bytes, %d converted): left",
        wal,
        path,
        size,
        converted_size,
    )


def _holds_rows(path: str, rows: int) -> bool:
    try:
        return int(pq.read_metadata(path).num_rows) == rows
    except (OSError, pa.ArrowInvalid):
        return False


def _record(path: str, record: dict[str, Any], fsync: bool) -> None:
    replace_file(commit_path(path), [json.dumps(record).encode()], fsync)


def _write_at(path: str, offset: int, data: list[Any], fsync: bool, undo: bytes | None) -> None:
    """Cut ``path`` at ``offset`` and write ``data`` there; on an error put ``undo`` back there."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        try:
            write_all(fd, data)
            if fsync:
                os.fsync(fd)
        except OSError:
            if undo is not None:
                os.ftruncate(fd, offset)
                os.lseek(fd, offset, os.SEEK_SET)
                write_all(fd, [undo])
            raise
    finally:
        os.close(fd)


def _remove(path: str, fsync: bool) -> None:
    os.unlink(path)
    if fsync:
        sync_directory(os.path.dirname(path))


def main(argv: list[str] | None = None) -> int:
    """Recover and convert every Parquet file below the directories given (a store's ``out_dir``)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    dirs = sys.argv[1:] if argv is None else argv
    if not dirs:
        logger.error("usage: python -m enrgdaq.daq.store.parquet_append OUT_DIR [OUT_DIR ...]")
        return 1
    for out_dir in dirs:
        for path in pending_files(out_dir):
            rows = convert_wal(path, "zstd", 1_000_000, fsync=True)
            logger.info("%s: %d waiting row(s) added; the file is complete", path, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
