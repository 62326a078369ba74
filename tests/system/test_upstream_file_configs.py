"""The original's example configs of the file stores, unchanged, run under ``enrgdaq up`` as a user
runs them (their ``out/`` relative to the directory ``up`` runs in): a producer sends to both; the
CSV file and the Raw store's Arrow stream hold the same rows, read back with pyarrow."""

from __future__ import annotations

import glob
import os
import shutil
import uuid
from collections.abc import Callable

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as ipc
import pytest

from tests.harness.system import csv_rows
from tests.harness.up import enrgdaq, start_up, stop_up
from tests.harness.waiting import wait_for

# One at a time (xdist group "up"): these run `enrgdaq up` with the examples' supervisor id or
# the default API port 8000, which two at once would share.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("up")]

UPSTREAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")


def read_all(pattern: str, read: Callable[[str], pa.Table]) -> pa.Table:
    """Every day's file of ``pattern`` (a run may cross midnight), oldest first, as one table."""
    paths = sorted(glob.glob(pattern))
    assert paths, f"no file {pattern}"
    return pa.concat_tables([read(path) for path in paths])


def read_stream(path: str) -> pa.Table:
    with open(path, "rb") as f:
        return ipc.open_stream(f).read_all()


def test_the_original_csv_and_raw_example_configs_run_unchanged(tmp_path) -> None:
    workdir = str(tmp_path)
    configs = os.path.join(workdir, "configs")
    os.makedirs(configs)
    for name in ("store_csv.toml", "store_raw.toml"):
        shutil.copy(os.path.join(UPSTREAM, name), os.path.join(configs, name))
    with open(os.path.join(configs, "supervisor.toml"), "w") as f:
        f.write(f'[info]\nsupervisor_id = "files-{uuid.uuid4().hex[:8]}"\n')
    with open(os.path.join(configs, "test_producer.toml"), "w") as f:
        f.write(
            'daq_job_type = "DAQJobTest"\nrand_min = 1\nrand_max = 100\nrate_hz = 20\n'
            '[store_config.csv]\nfile_path = "test_data.csv"\nadd_date = true\n'
            '[store_config.raw]\nfile_path = "test_data.arrows"\nadd_date = true\noverwrite = false\n'
        )
    check = enrgdaq(workdir, "check", "configs/")
    assert check.returncode == 0, check.stderr

    up = start_up(workdir, "--quiet")
    try:
        wait_for(lambda: len(csv_rows(os.path.join(workdir, "out"))) >= 20, 60, "rows in out/")
    finally:
        code = stop_up(up, timeout=60)
    assert code == 0

    out = os.path.join(workdir, "out")
    from_csv = read_all(f"{out}/*_test_data.csv", pa_csv.read_csv)
    from_raw = read_all(f"{out}/*_test_data.arrows", read_stream)
    assert from_csv.column_names == from_raw.column_names == ["timestamp", "A", "B", "C"]
    assert from_csv.num_rows >= 20
    for name in from_csv.column_names:
        assert from_csv.column(name).to_pylist() == from_raw.column(name).to_pylist(), name
