"""The HDF5 and ROOT stores in a whole system (supervisor, beat, workers), fed by a producer of
sequence numbers: a store killed -9 right after a write (before its ring slots are given back),
then its output directory replaced by a regular file (writes fail, also for root) and put back;
every row is in the file exactly once, read back with h5py and uproot. The original's example
configs run unchanged under ``enrgdaq up``, both stores fed by one producer.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from typing import Any

import h5py
import numpy as np
import pytest
import uproot

from tests.harness.system import DAQSystem
from tests.harness.up import start_up, stop_up
from tests.harness.waiting import wait_for
from tests.system.test_policies import enrgdaq
from tests.system.test_store_losses import output_dir_replaced_by_a_file, status_of

# One at a time (xdist group "up"): these run `enrgdaq up` with the examples' supervisor id or
# the default API port 8000, which two at once would share.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("up")]

UPSTREAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")
STORES = {
    "hdf5": (
        "DAQJobStoreHDF5KilledAfterWrite",
        'file_path = "seq.h5"\nadd_date = false\ndataset_name = "adc"',
    ),
    "root": (
        "DAQJobStoreROOTKilledAfterWrite",
        'file_path = "seq.root"\nadd_date = false\ntree_name = "adc"',
    ),
}


def read_hdf5(path: str) -> dict[str, np.ndarray] | None:
    """The columns as a reader sees them while the store writes (SWMR); None before the file is, or
    while the store reopens it. Without HDF5's file lock, as the store opens it: a reader that
    locks would keep the restarted store from checking the file a killed writer left."""
    if not os.path.exists(path):
        return None
    try:
        with h5py.File(path, "r", libver="latest", swmr=True, locking=False) as f:
            if "adc/seq" not in f or "adc/value" not in f:
                return None
            n = min(f["adc/seq"].shape[0], f["adc/value"].shape[0])
            return {"seq": f["adc/seq"][:n], "value": f["adc/value"][:n]}
    except OSError:
        return None


def read_root(path: str) -> dict[str, np.ndarray] | None:
    """The branches; None before the file is, or while a write is under way (ROOT has no SWMR)."""
    try:
        with uproot.open(path) as f:
            return f["adc"].arrays(["seq", "value"], library="np") if "adc" in f else None
    except (OSError, ValueError, KeyError):
        return None


def rows_of(kind: str, out_dir: str) -> dict[str, np.ndarray] | None:
    return (
        read_hdf5(os.path.join(out_dir, "seq.h5"))
        if kind == "hdf5"
        else read_root(os.path.join(out_dir, "seq.root"))
    )


def seq_count(kind: str, out_dir: str) -> int:
    found = rows_of(kind, out_dir)
    return 0 if found is None else len(found["seq"])


def store_story(system: DAQSystem) -> str:
    """The store's runs as its worker logged them (starts, recoveries, kills, failed writes): what a
    failure of exactly once needs to be understood."""
    lines = []
    for name in sorted(os.listdir(system.log_dir)):
        with open(os.path.join(system.log_dir, name), errors="replace") as f:
            lines += [f"{name}: {line.rstrip()}" for line in f if "[store]" in line and "DEBUG" not in line]
    return "\n".join(lines[-60:])


@pytest.mark.parametrize("kind", ["hdf5", "root"])
def test_killed_right_after_a_write_then_unable_to_write_every_row_is_in_the_file_once(
    system: DAQSystem, tmp_path: Any, kind: str
) -> None:
    job_type, target = STORES[kind]
    marker = tmp_path / "killed"
    system.write(
        "supervisor.toml",
        f"""
        plugins = ["enrgdaq_testjobs", "enrgdaq_testjobs_files"]
        ring_buffer_size_mb = 8
        ring_buffer_slot_size_kb = 16
        [info]
        supervisor_id = "{system.supervisor_id}"
        """,
    )
    system.write(
        "seq.toml", f'daq_job_type = "DAQJobSequence"\nrate_hz = 200\n[store_config.{kind}]\n{target}\n'
    )
    system.write(
        "store.toml",
        f"""
        daq_job_type = "{job_type}"
        out_dir = "{system.out_dir}/"
        flush_interval = 0.2
        kill_after_rows = 150
        marker = "{marker}"
        """,
    )
    system.start_all()
    wait_for(marker.exists, 30, f"the store to kill itself after a write (logs in {system.log_dir})")
    wait_for(
        lambda: system.job("store").restarts >= 1 and system.job("store").state.value == "running",
        30,
        "the store to run again",
    )
    written = wait_for(
        lambda: seq_count(kind, system.out_dir) >= 400 and seq_count(kind, system.out_dir), 30, "rows"
    )

    with output_dir_replaced_by_a_file(system.out_dir):
        store = wait_for(
            lambda: (job := status_of(system)["store"])["state"] == "stalled" and job, 30, "the store stalled"
        )
        # NotADirectoryError, or FileExistsError for the directory it tries to make again
        assert system.out_dir in store["error"] and store["data"]["write_failing"] == 1, store
        assert store["restarts"] == 1, "the store crashed instead of holding its data"
    wait_for(lambda: status_of(system)["store"]["state"] == "running", 30, "the store to write again")
    wait_for(lambda: seq_count(kind, system.out_dir) >= written + 200, 30, "rows after the repair")

    assert enrgdaq(system, "stop", "seq").returncode == 0
    system.wait_state("seq", "stopped", timeout=15)
    sent = int(system.job("seq").stats_dict["sent"])
    found = wait_for(
        lambda: (
            (got := rows_of(kind, system.out_dir)) is not None
            and len(set(got["seq"].tolist())) >= sent
            and got
        ),
        30,
        f"the {sent} rows sent to be in the file",
    )
    seqs = found["seq"].tolist()
    twice = sorted(seq for seq, count in Counter(seqs).items() if count > 1)
    story = store_story(system)
    assert not twice, f"{len(twice)} row(s) written twice, from {twice[:5]}; the store's log:\n{story}"
    assert seqs == list(range(sent)), "a row missing or out of order"
    assert found["value"].tolist() == [float(s) for s in range(sent)]
    assert system.job("seq").stats_dict.get("ring_dropped", 0) == 0


PRODUCER = """
daq_job_type = "DAQJobTest"
rand_min = 1
rand_max = 1000
rate_hz = 50
rows_per_message = 3

[store_config.hdf5]
file_path = "test.h5"
add_date = false
dataset_name = "random"

[store_config.root]
file_path = "test.root"
add_date = false
tree_name = "random"
"""


def test_the_original_example_configs_run_unchanged_both_fed_by_one_producer(tmp_path: Any) -> None:
    workdir = str(tmp_path)
    configs = os.path.join(workdir, "configs")
    os.makedirs(configs)
    for name in ("store_hdf5.toml", "store_root.toml"):
        shutil.copy(os.path.join(UPSTREAM, name), configs)
    with open(os.path.join(configs, "producer.toml"), "w") as f:
        f.write(PRODUCER)
    with open(os.path.join(configs, "supervisor.toml"), "w") as f:  # its own run directory
        f.write(f'[info]\nsupervisor_id = "files-{os.getpid()}"\n')
    h5_path, root_path = os.path.join(workdir, "out", "test.h5"), os.path.join(workdir, "out", "test.root")

    def h5_rows() -> int:
        try:
            with h5py.File(h5_path, "r", libver="latest", swmr=True) as f:
                return int(f["random/A"].shape[0])
        except (OSError, KeyError):
            return 0

    up = start_up(workdir)
    try:
        wait_for(lambda: h5_rows() >= 30, 60, f"rows in {h5_path} (log: {workdir}/up.out)")
        wait_for(lambda: os.path.exists(root_path), 10, "the ROOT store's timed write")
    finally:
        stopped = stop_up(up)
    with open(os.path.join(workdir, "up.out")) as log:
        assert stopped == 0, log.read()[-3000:]

    with h5py.File(h5_path, "r") as f:
        hdf5 = {name: f[f"random/{name}"][:] for name in ("timestamp", "A", "B", "C")}
    with uproot.open(root_path) as f:
        root = f["random"].arrays(["timestamp", "A", "B", "C"], library="np")
    assert len(hdf5["A"]) >= 30 and len(hdf5["A"]) % 3 == 0
    for name in ("timestamp", "A", "B", "C"):
        assert hdf5[name].tolist() == root[name].tolist(), f"{name}: the two stores disagree"
    assert ((hdf5["A"] >= 1) & (hdf5["A"] <= 1000)).all()
