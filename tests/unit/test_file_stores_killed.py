"""A file store killed -9 (a real SIGKILL of the process it runs in) in the middle of a write, or
right after a write before its ring slots are given back: the next run writes every row exactly
once. With ``use_zstd`` the CSV file a kill cut short still decompresses up to its last whole write
(each write is its own zstd frame), and pyarrow reads the whole file once the next run cut the torn
frame away."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
import zstandard

from enrgdaq.daq.store.parquet_append import wal_path
from tests.harness.celery_proc import REPO
from tests.harness.waiting import stays
from tests.unit.file_store_rig import (
    moved_away,
    output_dir_replaced_by_a_file,
    recovered_after,
    released,
    ring,
    step,
    store,
)

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    import pyarrow as pa
    from enrgdaq.daq.store import file_store
    from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig
    from enrgdaq.data.settings import DataPlaneSettings
    from enrgdaq.data.writer import RingWriter
    from tests.unit.file_store_rig import STORE_ID, step, store

    job_type, run_dir, out, point, store_config = sys.argv[1:6]
    settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=16 * 16384, slot_bytes=16384)
    writer = RingWriter("producer", settings)
    writer.ensure_consumers([STORE_ID])
    job = store(job_type, settings, out_dir=out)
    config = DAQJobStoreConfig(**json.loads(store_config))

    def send(first):
        for n in range(first, first + 5):
            table = pa.table({"n": [n], "name": [f"row {n}"]})
            writer.write(DAQJobMessageStorePyArrow(store_config=config, table=table))

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    send(0)
    step(job)  # a whole write, its slots given back
    send(5)
    real_writev, real_write_dirty = os.writev, file_store.FileStore.write_dirty

    def writev(fd, buffers):
        data = b"".join(bytes(b) for b in buffers)
        os.write(fd, data[: len(data) // 2])
        die()

    def write_dirty(self):
        real_write_dirty(self)
        die()

    if point == "mid-write":
        os.writev = writev
    else:
        file_store.FileStore.write_dirty = write_dirty
    step(job)
    """
)

CASES = {
    "csv-zstd": ("DAQJobStoreCSV", {"csv": {"file_path": "rows.csv.zst", "use_zstd": True}}, "rows.csv.zst"),
    "raw": ("DAQJobStoreRaw", {"raw": {"file_path": "rows.arrows", "overwrite": False}}, "rows.arrows"),
    "parquet": ("DAQJobStoreParquet", {"parquet": {"file_path": "rows.parquet"}}, "rows.parquet"),
}


def killed(job_type: str, run_dir: str, out: str, point: str, store_config: dict[str, Any]) -> None:
    """Run CHILD: a store that writes 5 rows, takes 5 more and is killed -9 at ``point``."""
    child = subprocess.run(
        [sys.executable, "-c", CHILD, job_type, run_dir, out, point, json.dumps(store_config)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert child.returncode == -9, f"not killed: {child.stderr[-3000:]}"


def whole_zstd_frames(data: bytes) -> bytes:
    """What the whole frames of ``data`` hold (a torn last frame left out), frame by frame."""
    out = []
    while data:
        frame = zstandard.ZstdDecompressor().decompressobj()
        chunk = frame.decompress(data)
        if not frame.eof:
            break
        out.append(chunk)
        data = frame.unused_data
    return b"".join(out)


def numbers(case: str, path: str) -> list[int]:
    if case == "csv-zstd":
        table = pa_csv.read_csv(pa.input_stream(path, compression="zstd"))
    elif case == "raw":
        with open(path, "rb") as f:
            table = ipc.open_stream(f).read_all()
    else:
        table = pq.read_table(path)
    assert table.column("name").to_pylist() == [f"row {n}" for n in table.column("n").to_pylist()]
    return list(table.column("n").to_pylist())


def readable_after_the_kill(case: str, path: str) -> list[int]:
    """The rows a reader gets from what the kill left, before any recovery."""
    if case == "csv-zstd":
        with open(path, "rb") as f:
            text = whole_zstd_frames(f.read()).decode()
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["n", "name"], "the header is gone"
        return [int(r[0]) for r in rows[1:]]
    if case == "raw":
        got = []
        with open(path, "rb") as f:
            reader = ipc.open_stream(f)
            try:
                for batch in reader:
                    got += batch.column(0).to_pylist()
            except (pa.ArrowInvalid, OSError):
                pass  # a torn last batch
        return got
    return []


@pytest.mark.parametrize("point", ["mid-write", "after-write"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_during_or_right_after_a_write_the_next_run_writes_every_row_once(
    tmp_path: Any, case: str, point: str
) -> None:
    job_type, store_config, name = CASES[case]
    run_dir, out = str(tmp_path / "run"), str(tmp_path / "out")
    os.makedirs(run_dir)
    killed(job_type, run_dir, out, point, store_config)
    path = os.path.join(out, name)
    if case != "parquet":
        assert readable_after_the_kill(case, path)[:5] == [0, 1, 2, 3, 4]
    else:
        assert os.path.exists(wal_path(path)) and not os.path.exists(path)

    with ring(run_dir) as (settings, writer):  # the producer's ring, as the kill left it
        assert released(writer) == 5, "the slots of the write the kill interrupted were given back"
        again = store(job_type, settings, out_dir=out)
        try:
            again._skip = again._recovered()  # what the store's start does first
            step(again)
            assert released(writer) == 10
        finally:
            again.free()
    assert numbers(case, path) == list(range(10)), "a row missing or written twice"
    assert not [n for n in os.listdir(run_dir) if n.startswith("journal-")], "journal left after a clean stop"


@pytest.mark.parametrize("away", [output_dir_replaced_by_a_file, moved_away])
@pytest.mark.parametrize("case", sorted(CASES))
def test_restarted_while_its_directory_is_away_it_waits_then_writes_every_row_once(
    tmp_path: Any, case: str, away: Callable[[str], contextlib.AbstractContextManager[None]]
) -> None:
    """The kill's write went through; the next run starts while ``out`` is not a directory (moved,
    unmounted, replaced): it cannot tell what is on disk, so it shows stalled and takes nothing
    until the directory is back (it used to crash on a file in its place, and to take the files
    for changed when nothing was there and write the killed write's rows again)."""
    job_type, store_config, name = CASES[case]
    run_dir, out = str(tmp_path / "run"), str(tmp_path / "out")
    os.makedirs(run_dir)
    killed(job_type, run_dir, out, "after-write", store_config)

    with ring(run_dir) as (settings, writer):
        again = store(job_type, settings, out_dir=out)
        try:
            again._skip = recovered_after(
                again,
                away(out),
                f"{out} is not a directory now",
                lambda: stays(lambda: released(writer) == 5, 0.5, "nothing taken from the ring"),
            )
            step(again)
            assert released(writer) == 10
        finally:
            again.free()
    assert numbers(case, os.path.join(out, name)) == list(range(10)), "a row missing or written twice"
