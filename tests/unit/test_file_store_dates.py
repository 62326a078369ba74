"""``add_date``: the file of a message is named after the day the store handles it, so files roll over
at midnight (the store's clock, ``store.today``, is steered here); rows handled before midnight stay in
that day's file even when they are written after it; the Parquet store closes the past day's row
group at once."""

from __future__ import annotations

import csv
import os
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobStoreConfig,
    DAQJobStoreConfigCSV,
    DAQJobStoreConfigParquet,
    DAQJobStoreConfigRaw,
)
from tests.unit.file_store_rig import store

BEFORE, AFTER = date(2025, 3, 1), date(2025, 3, 2)
STORES = {
    "DAQJobStoreCSV": DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="d/x.csv", add_date=True)),
    "DAQJobStoreRaw": DAQJobStoreConfig(
        raw=DAQJobStoreConfigRaw(file_path="d/x.arrows", add_date=True, overwrite=False)
    ),
    "DAQJobStoreParquet": DAQJobStoreConfig(
        parquet=DAQJobStoreConfigParquet(file_path="d/x.parquet", add_date=True)
    ),
}
EXTENSIONS = {"DAQJobStoreCSV": "csv", "DAQJobStoreRaw": "arrows", "DAQJobStoreParquet": "parquet"}


def values(path: str) -> list[int]:
    if path.endswith(".csv"):
        with open(path, newline="") as f:
            return [int(r[0]) for r in list(csv.reader(f))[1:]]
    if path.endswith(".arrows"):
        with open(path, "rb") as f:
            return list(ipc.open_stream(f).read_all().column("n").to_pylist())
    return list(pq.read_table(path).column("n").to_pylist())


@pytest.mark.parametrize("job_type", sorted(STORES))
def test_files_roll_over_at_midnight_by_the_day_a_message_is_handled(tmp_path: Any, job_type: str) -> None:
    out = str(tmp_path / "out")
    config = STORES[job_type]
    ext = EXTENSIONS[job_type]
    job = store(job_type, None, out_dir=out, **({"row_group_seconds": 3600} if ext == "parquet" else {}))
    clock = [BEFORE]
    job.today = lambda: clock[0]
    try:
        for n in range(3):
            job._handle(DAQJobMessageStorePyArrow(store_config=config, table=pa.table({"n": [n]})))
        job.store_loop()
        job._handle(DAQJobMessageStorePyArrow(store_config=config, table=pa.table({"n": [3]})))
        clock[0] = AFTER  # midnight between handling row 3 and writing it
        job.store_loop()
        for n in (4, 5):
            job._handle(DAQJobMessageStorePyArrow(store_config=config, table=pa.table({"n": [n]})))
        job.store_loop()
        if ext == "parquet":
            first = os.path.join(out, "d", f"2025-03-01_x.{ext}")
            assert values(first) == [0, 1, 2, 3], "the past day's row group waits for row_group_seconds"
    finally:
        job.free()
    assert values(os.path.join(out, "d", f"2025-03-01_x.{ext}")) == [0, 1, 2, 3]
    assert values(os.path.join(out, "d", f"2025-03-02_x.{ext}")) == [4, 5]
