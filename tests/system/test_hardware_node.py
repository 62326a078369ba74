"""A device on another machine (issue 11, with issue 12's nodes and bridges): the machine that
holds the HV crate runs a node of its own, and a bridge brings the crate's readings to the main
node's store.

Two nodes share one real redis-server, each a separate process group with its own supervisor
id, config and run directory. ``lab-daq`` (the main node: supervisor, beat, a ``-Q default``
worker) runs ``DAQJobRemoteProxy`` and the CSV store. ``lab-hv`` (the machine with the crate)
runs the shipped example ``configs/hardware/caen_hv.toml`` (simulated crate, faster polls) and
``DAQJobRemote`` connecting to ``lab-daq``, with the processes a person starts there: the
supervisor worker, beat, a ``-Q caen`` and a ``-Q default`` worker. The bridge speaks CURVE
with keys made by ``enrgdaq keys generate``, as docs/hardware.md tells. The test looks where a
user would: which process runs the job, the CSV files of the main node, ``enrgdaq status``.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import psutil
import pytest

from enrgdaq.data.settings import ring_path
from tests.harness.celery_proc import REPO, CeleryProcess
from tests.harness.nodes import Node
from tests.harness.ports import free_port
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.system

MAIN = "lab-daq"
DEVICE = "lab-hv"
NODE_IDS = (MAIN, DEVICE)  # the `nodes` fixture's two nodes (tests/system/conftest.py)
EXAMPLE = os.path.join(REPO, "configs", "hardware", "caen_hv.toml")
CHANNELS = {"0", "1", "2", "3"}  # the example's simulated board: one slot, four channels


def enrgdaq(node: Node, *args: str) -> str:
    """The ``enrgdaq`` command as a person on ``node`` runs it (its Redis and config directory)."""
    done = subprocess.run(
        [sys.executable, "-m", "enrgdaq.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=node.env,
        cwd=node.base,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def keys(main: Node, device: Node) -> dict[str, str]:
    """Each node makes its key pair; the device's public key goes into the main node's allow-list,
    the main node's public key to the device (the only files that are copied)."""
    enrgdaq(main, "keys", "generate", MAIN, "--dir", "keys")
    enrgdaq(device, "keys", "generate", DEVICE, "--dir", "keys")
    allowed = os.path.join(main.base, "keys", "allowed")
    os.makedirs(allowed)
    shutil.copy(os.path.join(device.base, "keys", f"{DEVICE}.key"), allowed)
    shutil.copy(os.path.join(main.base, "keys", f"{MAIN}.key"), os.path.join(device.base, "keys"))
    return {
        "main_secret": os.path.join(main.base, "keys", f"{MAIN}.key_secret"),
        "allowed": allowed,
        "device_secret": os.path.join(device.base, "keys", f"{DEVICE}.key_secret"),
        "main_public": os.path.join(device.base, "keys", f"{MAIN}.key"),
    }


def hv_example() -> str:
    """The shipped example, polled every 0.2 s instead of every second."""
    with open(EXAMPLE) as f:
        text = f.read()
    assert "poll_interval_seconds = 1\n" in text, f"{EXAMPLE} changed: adjust this test"
    return text.replace("poll_interval_seconds = 1\n", "poll_interval_seconds = 0.2\n")


def configure(main: Node, device: Node) -> None:
    """The two config directories: main = proxy + CSV store; device = HV job + the bridge."""
    into_main, out_of_main = free_port(), free_port()
    k = keys(main, device)
    main.write(
        "remote_proxy.toml",
        f"""
        daq_job_type = "DAQJobRemoteProxy"
        zmq_xsub_url = "tcp://127.0.0.1:{into_main}"
        zmq_xpub_url = "tcp://127.0.0.1:{out_of_main}"
        secret_key_file = "{k["main_secret"]}"
        authorized_keys_dir = "{k["allowed"]}"
    """,
    )
    main.csv_store(queue="default")
    with open(os.path.join(device.config_dir, "caen_hv.toml"), "w") as f:
        f.write(hv_example())
    device.write(
        "remote.toml",
        f"""
        daq_job_type = "DAQJobRemote"
        zmq_proxy_pub_url = "tcp://127.0.0.1:{into_main}"
        zmq_proxy_sub_urls = ["tcp://127.0.0.1:{out_of_main}"]
        secret_key_file = "{k["device_secret"]}"
        server_public_key_file = "{k["main_public"]}"
    """,
    )


def start_both(main: Node, device: Node) -> None:
    """Every process of both nodes at once, as people start them on their two machines: on the
    main node supervisor, beat and ``-Q default``; on the device's machine supervisor, beat,
    ``-Q caen`` (the HV job's queue) and ``-Q default`` (the bridge's)."""
    procs = [
        main.start_supervisor(),
        main.start_worker("default", concurrency=2),
        device.start_supervisor(),
        device.start_worker("caen", concurrency=1),
        device.start_worker("default", concurrency=1),
    ]
    main.start_beat()
    device.start_beat()
    for proc in procs:
        proc.wait_ready()


def process(node: Node, name: str) -> CeleryProcess:
    return next(p for p in node.procs if p.name == name)


def descendants(node: Node) -> set[int]:
    """Every process the node's commands started, and their children."""
    pids: set[int] = set()
    for proc in node.procs:
        if proc.alive():
            root = psutil.Process(proc.pid)
            pids |= {root.pid, *(c.pid for c in root.children(recursive=True))}
    return pids


def hv_rows(node: Node) -> list[dict[str, str]]:
    """The ``ch_param`` rows in the node's CSV out_dir (``<date>_caen_hv_ch_param.csv``)."""
    rows: list[dict[str, str]] = []
    for path in glob.glob(os.path.join(node.out_dir, "*caen_hv_ch_param.csv")):
        with open(path, newline="") as f:
            rows.extend(csv.DictReader(f))
    return rows


def every_channel_read(node: Node, polls: int) -> list[dict[str, str]] | None:
    rows = hv_rows(node)
    per_channel = [sum(1 for r in rows if r["channel"] == ch) for ch in CHANNELS]
    return rows if min(per_channel) >= polls else None


def status_json(node: Node, supervisor_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(enrgdaq(node, "status", "--json", "--supervisor", supervisor_id))
    return doc


def test_a_device_on_its_own_node_runs_there_and_its_rows_reach_the_main_nodes_store(
    nodes: tuple[Node, Node],
) -> None:
    main, device = nodes
    configure(main, device)
    start_both(main, device)

    # The job runs next to the device, in the `caen` worker of its machine.
    hv = device.wait_state("caen_hv", "running", timeout=30)
    caen_worker = process(device, "w-caen")
    assert hv.pid is not None and psutil.Process(hv.pid).ppid() == caen_worker.pid, (
        f"caen_hv runs in pid {hv.pid}, not in {DEVICE}'s caen worker {caen_worker.pid}"
    )
    assert hv.queue == "caen"
    # Nothing of it on the main node: not in its registry nor among its processes.
    assert main.registry.get("caen_hv") is None
    assert hv.pid not in descendants(main)

    # Its readings are rows in the main node's CSV store; the device's machine stores nothing.
    rows = wait_for(
        lambda: every_channel_read(main, polls=3),
        30,
        f"{DEVICE}'s HV rows in {MAIN}'s CSV out_dir (logs: {device.log_dir}, {main.log_dir})",
        interval=0.1,
    )
    assert {"timestamp", "slot", "channel", "VMon", "IMon", "V0Set", "Pw", "Status"} <= set(rows[0])
    assert {r["slot"] for r in rows} == {"0"} and {float(r["V0Set"]) for r in rows} == {1000.0}
    ramp = [float(r["VMon"]) for r in sorted(rows, key=lambda r: int(r["timestamp"])) if r["channel"] == "0"]
    assert ramp[-1] > ramp[0], f"channel 0 does not ramp towards V0Set: VMon {ramp}"
    assert not os.listdir(device.out_dir)
    # Its ring (made at its first reading) is in the device node's ring directory.
    assert os.path.exists(ring_path(device.run_dir, "caen_hv"))
    assert not os.path.exists(ring_path(main.run_dir, "caen_hv"))

    # `enrgdaq status` on the main node, naming the device's node, shows the job running there.
    doc = status_json(main, DEVICE)
    job = next(j for j in doc["jobs"] if j["unique_id"] == "caen_hv")
    assert (job["state"], job["queue"], job["pid"]) == ("running", "caen", hv.pid)
    assert {n["supervisor_id"]: n["state"] for n in doc["nodes"]} == {MAIN: "alive", DEVICE: "alive"}
    assert "caen_hv" not in {j["unique_id"] for j in status_json(main, MAIN)["jobs"]}
    table = enrgdaq(main, "status", "--supervisor", DEVICE).splitlines()
    [line] = [row.split() for row in table if row.startswith("caen_hv ")]
    assert line[:4] == ["caen_hv", "DAQJobCAENHV", "caen", "running"], table
