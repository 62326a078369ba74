"""A Parquet file that grows by whole row groups: valid before and after each append, read back by
pyarrow value by value, and put right after a kill -9 at every step of an append (a real SIGKILL of
a child process at that step), by the store's next start or by ``python -m
enrgdaq.daq.store.parquet_append OUT_DIR``: every row in the file exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from enrgdaq.daq.store.arrow_stream import StreamFile
from enrgdaq.daq.store.parquet_append import commit_path, convert_wal, recover, wal_path
from enrgdaq.daq.store.parquet_footer import split_file

SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("name", pa.string()),
        ("at", pa.timestamp("ms")),
        ("samples", pa.list_(pa.float32())),
        ("point", pa.struct([("x", pa.float64()), ("ok", pa.bool_())])),
    ]
)


def rows(first: int, count: int) -> pa.Table:
    seqs = list(range(first, first + count))
    return pa.table(
        {
            "seq": seqs,
            "name": [f"n{s}" if s % 3 else None for s in seqs],
            "at": pa.array([s * 1000 for s in seqs], pa.timestamp("ms")),
            "samples": [[float(s)] * (s % 4) for s in seqs],
            "point": [{"x": s / 2, "ok": s % 2 == 0} for s in seqs],
        },
        schema=SCHEMA,
    )


def to_wal(path: str, table: pa.Table) -> None:
    """Rows waiting in the write-ahead file of ``path``, as the store leaves them."""
    stream = StreamFile(wal_path(path), table.schema, overwrite=False)
    stream.add_table(table)
    stream.write_out()


def test_row_groups_appended_in_several_conversions_read_back_value_by_value(tmp_path: Any) -> None:
    path = str(tmp_path / "data.parquet")
    sizes = [7, 1, 12, 5]
    first = 0
    for size in sizes:
        to_wal(path, rows(first, size))
        assert convert_wal(path, "zstd", row_group_rows=4) == size
        first += size
        assert pq.read_table(path).equals(rows(0, first)), "the file is valid after every append"
        assert not os.path.exists(wal_path(path)) and not os.path.exists(commit_path(path))

    parquet = pq.ParquetFile(path)
    groups = [parquet.read_row_group(i) for i in range(parquet.metadata.num_row_groups)]
    assert [g.num_rows for g in groups] == [4, 3, 1, 4, 4, 4, 4, 1]
    assert pa.concat_tables(groups).equals(rows(0, first))
    assert pq.read_table(path, filters=[("seq", ">=", 20)]).column("seq").to_pylist() == [20, 21, 22, 23, 24]
    assert pq.read_table(path, columns=["point"]).column("point").to_pylist()[3] == {"x": 1.5, "ok": False}


def test_a_table_of_another_schema_is_refused_and_the_file_is_left_as_it_was(tmp_path: Any) -> None:
    from enrgdaq.daq.store.parquet_append import SchemaMismatchError

    path = str(tmp_path / "data.parquet")
    to_wal(path, rows(0, 3))
    convert_wal(path, "zstd", 10)
    with open(path, "rb") as f:
        before = f.read()
    to_wal(path, pa.table({"other": [1.0]}))
    with pytest.raises(SchemaMismatchError):
        convert_wal(path, "zstd", 10)
    with open(path, "rb") as f:
        assert f.read() == before
    assert os.path.exists(wal_path(path)), "the rows that do not fit stay where they are"


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import pyarrow as pa
    from enrgdaq.daq.store import append, parquet_append

    path, point = sys.argv[1], sys.argv[2]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    real_write_all, real_replace, real_unlink = append.write_all, append.replace_file, os.unlink

    def write_all(fd, data):
        if point == "mid-append":  # half of the new row groups on disk, no footer
            view = memoryview(data[0]).cast("B")
            real_write_all(fd, [view[: view.nbytes // 2]])
            die()
        real_write_all(fd, data)

    def replace_file(target, data, fsync):
        if point == "before-new-file" and target == path:
            die()
        real_replace(target, data, fsync)
        if point == "after-record" and target.endswith(".commit"):
            die()

    def unlink(target, *args, **kwargs):
        if point == "after-wal-removed" and target.endswith(".commit"):
            die()
        real_unlink(target, *args, **kwargs)

    parquet_append.write_all = write_all
    parquet_append.replace_file = replace_file
    os.unlink = unlink
    commits = {"after-commit": die}
    parquet_append.convert_wal(path, "zstd", 4, committed=commits.get(point))
    """
)

CRASH_POINTS = ["after-record", "mid-append", "after-commit", "after-wal-removed"]
NEW_FILE_CRASH_POINTS = ["after-record", "before-new-file", "after-commit", "after-wal-removed"]


def killed_during_conversion(path: str, point: str) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, path, point], capture_output=True, text=True)
    assert done.returncode == -9, f"the child was not killed at {point}: {done.stderr[-2000:]}"


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_kill_9_during_an_append_is_finished_or_undone_at_the_next_start(tmp_path: Any, point: str) -> None:
    path = str(tmp_path / "data.parquet")
    to_wal(path, rows(0, 10))
    convert_wal(path, "zstd", 4)
    to_wal(path, rows(10, 9))

    killed_during_conversion(path, point)

    recover(path)  # what the restarted store does first
    assert pq.read_table(path).num_rows in (10, 19), "not a valid Parquet file after recovery"
    convert_wal(path, "zstd", 4)  # the rows still waiting, as the store converts them
    assert pq.read_table(path).equals(rows(0, 19)), f"{point}: a row missing or twice"
    assert os.listdir(tmp_path) == ["data.parquet"]


@pytest.mark.parametrize("point", NEW_FILE_CRASH_POINTS)
def test_a_kill_9_while_the_file_is_made_leaves_every_row_once_after_the_command_line_recovery(
    tmp_path: Any, point: str
) -> None:
    out = tmp_path / "out"
    path = str(out / "day" / "data.parquet")
    os.makedirs(os.path.dirname(path))
    to_wal(path, rows(0, 6))

    killed_during_conversion(path, point)

    done = subprocess.run(
        [sys.executable, "-m", "enrgdaq.daq.store.parquet_append", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert pq.read_table(path).equals(rows(0, 6)), f"{point}: a row missing or twice"
    assert os.listdir(os.path.dirname(path)) == ["data.parquet"]


def test_every_row_group_keeps_its_place_after_a_large_append(tmp_path: Any) -> None:
    """Offsets of several megabytes (multi-byte varints in the footer) move correctly."""
    import numpy as np

    path = str(tmp_path / "big.parquet")
    first = pa.table({"x": np.arange(10, dtype=np.float64), "y": np.arange(10, dtype=np.int64)})
    second = pa.table({"x": np.random.default_rng(1).random(600_000), "y": np.arange(10, 600_010)})
    to_wal(path, first)
    convert_wal(path, "none", 1000)
    to_wal(path, second)
    convert_wal(path, "none", 250_000)
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_row_groups == 4
    assert parquet.read_row_group(3).equals(second.slice(500_000).combine_chunks())
    assert pq.read_table(path).equals(pa.concat_tables([first, second]))


def test_split_file_gives_the_row_groups_and_the_footer_of_a_standalone_file() -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(rows(0, 3), sink)
    data = sink.getvalue().to_pybytes()
    groups, footer = split_file(data)
    assert data == b"PAR1" + bytes(groups) + footer + len(footer).to_bytes(4, "little") + b"PAR1"


def test_a_write_ahead_file_whose_schema_a_crash_tore_is_removed_and_the_file_left_alone(
    tmp_path: Any,
) -> None:
    path = str(tmp_path / "data.parquet")
    to_wal(path, rows(0, 3))
    convert_wal(path, "zstd", 10)
    with open(wal_path(path), "wb") as f:
        f.write(SCHEMA.serialize().to_pybytes()[:-9])  # killed within its first write, journal lost
    assert convert_wal(path, "zstd", 10) == 0
    assert pq.read_table(path).equals(rows(0, 3)) and not os.path.exists(wal_path(path))
