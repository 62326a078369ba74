"""``free()`` cleans up through ``cleanup()``, once: never again at garbage collection."""

from __future__ import annotations

import gc
import os
from typing import Any

import pyarrow as pa

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs.store.csv import DAQJobStoreCSV, DAQJobStoreCSVConfig
from enrgdaq.daq.models import DAQJobConfig
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig, DAQJobStoreConfigCSV


def test_the_csv_store_writes_its_rows_in_the_hook_once_not_again_at_garbage_collection(
    tmp_path: Any,
) -> None:
    assert "__del__" not in vars(DAQJobStoreCSV), "a built-in store cleans up in __del__"
    assert "cleanup" in vars(DAQJob)
    out_dir = str(tmp_path / "out")
    store = DAQJobStoreCSV(
        DAQJobStoreCSVConfig(daq_job_type="DAQJobStoreCSV", daq_job_unique_id="store_csv", out_dir=out_dir)
    )
    config = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="rows.csv"))
    for n in range(3):
        store.handle_message(DAQJobMessageStorePyArrow(store_config=config, table=pa.table({"n": [n]})))
    assert store.has_unflushed_data()

    store.free()  # the rows it buffered are written here
    store.free()
    del store
    gc.collect()

    with open(os.path.join(out_dir, "rows.csv")) as f:
        assert f.read().split() == ["n", "0", "1", "2"]


class Calls:
    cleanup = 0
    legacy_del = 0


class DAQJobWithHook(DAQJob):
    config_type = DAQJobConfig

    def cleanup(self) -> None:
        super().cleanup()
        Calls.cleanup += 1


class DAQJobOfTheOriginalAPI(DAQJob):
    """A custom job written for the original, which cleaned up in ``__del__``."""

    config_type = DAQJobConfig

    def __del__(self) -> None:
        Calls.legacy_del += 1


def test_cleanup_runs_once_and_a_custom_del_runs_once_though_python_calls_it_again() -> None:
    Calls.cleanup = Calls.legacy_del = 0
    hooked = DAQJobWithHook(DAQJobConfig(daq_job_type="DAQJobWithHook"))
    hooked.free()
    hooked.free()
    del hooked
    gc.collect()
    assert Calls.cleanup == 1

    legacy = DAQJobOfTheOriginalAPI(DAQJobConfig(daq_job_type="DAQJobOfTheOriginalAPI"))
    legacy.free()
    assert Calls.legacy_del == 1, "free() no longer calls a custom job's __del__"
    legacy.free()
    del legacy
    gc.collect()
    assert Calls.legacy_del == 1, "__del__ ran again at garbage collection"

    never_freed = DAQJobOfTheOriginalAPI(DAQJobConfig(daq_job_type="DAQJobOfTheOriginalAPI"))
    del never_freed
    gc.collect()
    assert Calls.legacy_del == 2, "a job that was never freed still cleans up when collected"
