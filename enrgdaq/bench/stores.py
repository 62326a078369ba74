"""Stores at ring speed: each file store through the whole pipeline against its library's own writer.

For every store kind: a producer job sends ``count`` tables of N rows (the
benchmark's two float64 columns) through its ring to the store job, which
writes them to a file; the time runs from the first send to the store's last
write at its stop. In the same run the library's own writer (pyarrow's CSV and
Parquet writers, h5py, uproot) writes the same tables to a file directly, in
one process, and the ratio of the two is the number that matters: what the
store costs on top of the library.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from enrgdaq.bench.jobs import BenchSourceConfig, DAQJobBenchSource
from enrgdaq.bench.runner import INFO, reap, ring_geometry
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import DAQError
from enrgdaq.message.proxy import MessageProxy

STORE_ID = "bench_store"


@dataclass(frozen=True)
class StoreCase:
    """One store kind: its job type, its ``[store_config.<kind>]``, the library writer, and how many
    rows a file holds (read back with the library, so that a run that lost rows does not count)."""

    kind: str
    job_type: str
    store_config: dict[str, Any]
    file_name: str
    direct: Callable[[str, list[pa.Table]], None]
    rows: Callable[[str], int]


def _direct_csv(path: str, tables: list[pa.Table]) -> None:
    import pyarrow.csv as pa_csv

    with pa_csv.CSVWriter(path, tables[0].schema) as writer:
        for table in tables:
            writer.write_table(table)


def _direct_parquet(path: str, tables: list[pa.Table]) -> None:
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, tables[0].schema, compression="zstd") as writer:
        for table in tables:
            writer.write_table(table)


def _direct_hdf5(path: str, tables: list[pa.Table]) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        columns = {
            name: f.create_dataset(f"bench/{name}", shape=(0,), maxshape=(None,), dtype="f8", chunks=True)
            for name in tables[0].column_names
        }
        for table in tables:
            for name, dataset in columns.items():
                values = table.column(name).to_numpy()
                start = dataset.shape[0]
                dataset.resize((start + len(values),))
                dataset[start:] = values


def _direct_root(path: str, tables: list[pa.Table]) -> None:
    import uproot

    with uproot.recreate(path, compression=uproot.ZSTD(5)) as f:
        tree = f.mktree("bench", {name: "f8" for name in tables[0].column_names})
        for table in tables:
            tree.extend({name: table.column(name).to_numpy() for name in table.column_names})


def _rows_csv(path: str) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b"")) - 1


def _rows_parquet(path: str) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _rows_hdf5(path: str) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        return int(f["bench/a"].shape[0])


def _rows_root(path: str) -> int:
    import uproot

    with uproot.open(path) as f:
        return int(f["bench"].num_entries)


CASES: dict[str, StoreCase] = {
    case.kind: case
    for case in (
        StoreCase("csv", "DAQJobStoreCSV", {"file_path": "bench.csv"}, "bench.csv", _direct_csv, _rows_csv),
        StoreCase(
            "parquet",
            "DAQJobStoreParquet",
            {"file_path": "bench.parquet"},
            "bench.parquet",
            _direct_parquet,
            _rows_parquet,
        ),
        StoreCase(
            "hdf5",
            "DAQJobStoreHDF5",
            {"file_path": "bench.h5", "add_date": False, "dataset_name": "bench"},
            "bench.h5",
            _direct_hdf5,
            _rows_hdf5,
        ),
        StoreCase(
            "root",
            "DAQJobStoreROOT",
            {"file_path": "bench.root", "add_date": False, "tree_name": "bench"},
            "bench.root",
            _direct_root,
            _rows_root,
        ),
    )
}


class StoreRun(msgspec.Struct):
    kind: str
    values: int
    count: int
    pipeline_s: float
    direct_s: float
    file_bytes: int

    @property
    def ratio(self) -> float:
        """Pipeline speed as a share of the library writer's (1.0: as fast)."""
        return self.direct_s / self.pipeline_s if self.pipeline_s else 0.0

    def rows_per_s(self, seconds: float) -> float:
        return self.values * self.count / seconds if seconds else 0.0


def bench_tables(values: int, count: int) -> list[pa.Table]:
    """The tables the producer sends (column ``a`` carries the sequence number, ``b`` is arange)."""
    b = np.arange(values, dtype=np.float64)
    tables = []
    for seq in range(count):
        a = np.zeros(values, dtype=np.float64)
        a[0] = seq
        tables.append(pa.table({"a": a, "b": b}))
    return tables


def _store_main(case: StoreCase, urls: tuple[str, str], settings: DataPlaneSettings, out_dir: str,
                count: int, ready: Any, out: Any) -> None:  # fmt: skip
    from enrgdaq.daq.types import get_daq_job_class

    cls = get_daq_job_class(case.job_type)
    config = msgspec.convert(
        {"daq_job_type": case.job_type, "daq_job_unique_id": STORE_ID, "out_dir": out_dir},
        cls.config_type,
    )
    store = cls(config, supervisor_info=INFO, zmq_xpub_url=urls[0], zmq_xsub_url=urls[1])
    store.configure_data_plane(settings)
    runner = threading.Thread(target=store.start, daemon=True)
    runner.start()
    ready.set()
    while runner.is_alive() and store.counters.processed < count:
        time.sleep(0.001)
    store.request_stop()  # the stop writes what is left: the last write is part of the time
    runner.join(60)
    store.free()
    out.put(("store", time.monotonic(), store.counters.processed))


def run_pipeline(case: StoreCase, values: int, count: int, directory: str) -> float:
    """Seconds from the first send to the store's last write, ``count`` tables of ``values`` rows."""
    ctx = mp.get_context("spawn")
    run_dir = tempfile.mkdtemp(prefix="edq-stores-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    urls = (f"ipc://{run_dir}/xpub.sock", f"ipc://{run_dir}/xsub.sock")
    proxy = MessageProxy(urls[1], urls[0])
    proxy.start()
    ring_bytes, slot_bytes = ring_geometry(values)
    settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=ring_bytes, slot_bytes=slot_bytes)
    out: Any = ctx.Queue()
    ready, go = ctx.Event(), ctx.Event()
    source = BenchSourceConfig(
        daq_job_type="DAQJobBenchSource",
        daq_job_unique_id="source0",
        values=values,
        count=count,
        store_kind=case.kind,
        store_config=case.store_config,
    )
    store_args = (case, urls, settings, directory, count, ready, out)
    procs = [
        ctx.Process(target=_store_main, args=store_args, daemon=True),
        ctx.Process(target=_source_main, args=(urls, settings, source, go, out), daemon=True),
    ]
    try:
        for proc in procs:
            proc.start()
        ready.wait(60)
        go.set()
        done: dict[str, tuple[Any, ...]] = {}
        while len(done) < 2:
            item = out.get(timeout=600)
            done[item[0]] = item
        _, started = done["source"][:2]
        _, ended, processed = done["store"]
        if processed < count:
            raise DAQError(f"{case.kind}: the store took {processed} of {count} messages")
        return float(ended - started)
    finally:
        reap(procs)
        proxy.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def _source_main(urls: tuple[str, str], settings: DataPlaneSettings, config: BenchSourceConfig,
                 go: Any, out: Any) -> None:  # fmt: skip
    source = DAQJobBenchSource(config, supervisor_info=INFO, zmq_xpub_url=urls[0], zmq_xsub_url=urls[1])
    source.configure_data_plane(settings)
    go.wait(60)
    started = time.monotonic()
    source.start()
    out.put(("source", started))
    source.free()


def run_direct(case: StoreCase, values: int, count: int, directory: str) -> float:
    tables = bench_tables(values, count)
    path = os.path.join(directory, f"direct-{case.file_name}")
    started = time.monotonic()
    case.direct(path, tables)
    return time.monotonic() - started


def run_case(case: StoreCase, values: int, count: int) -> StoreRun:
    directory = tempfile.mkdtemp(prefix="edq-stores-out-")
    try:
        direct = run_direct(case, values, count, directory)
        pipeline = run_pipeline(case, values, count, directory)
        path = os.path.join(directory, case.file_name)
        rows = case.rows(path)
        if rows != values * count:
            raise DAQError(f"{case.kind}: {rows} rows in the file, {values * count} sent")
        return StoreRun(case.kind, values, count, pipeline, direct, os.path.getsize(path))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
