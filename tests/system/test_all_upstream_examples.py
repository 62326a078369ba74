"""Every example config of the original ENRGDAQ, unchanged, in one config directory, as a user
who copies them all over would run them: ``enrgdaq check`` passes (the two supervisor files of
the command-and-control example are named as other nodes' supervisor configs, not jobs), and
``enrgdaq up`` runs them side by side on a machine with none of their hardware and none of their
database servers. The jobs that need nothing from outside run and keep running; each hardware
job shows the error a person must fix in ``enrgdaq status`` and is retried, never taking its
worker or the other jobs down; a store whose server is not there is stalled with the server's
error. Ctrl-C then stops it all cleanly.

Only ``supervisor.toml`` is added: its own supervisor id, a REST port of its own and a short
restart backoff (the job files are copied byte for byte)."""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import pathlib
import shutil
import uuid
from typing import Any

import pytest

from enrgdaq.settings import default_run_dir
from tests.harness.celery_proc import REPO
from tests.harness.ports import free_port, port_free
from tests.harness.up import enrgdaq, start_up, stop_up
from tests.harness.waiting import stays, wait_for

# One at a time (xdist group "up"): serve_http.toml binds the fixed port 8000 and
# remote_proxy.toml the fixed ports 10001 and 10002.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("up")]

UPSTREAM = os.path.join(REPO, "tests", "upstream_configs")

RUNS = {
    "alert_slack",
    "handle_alerts",
    "handle_stats",
    "healthcheck",
    "pc_metrics",
    "remote",  # connects to 1.2.3.4: ZMQ connects in the background, the job runs
    "remote_proxy",
    "serve_http",
    "store_csv",
    "store_hdf5",
    "store_raw",
    "store_root",
}
HARDWARE = {  # job id -> what its error names for the person to fix
    "caen_digitizer": "enrgdaq[caen]",
    "caen_hv": "enrgdaq[caen]",
    "camera": "enrgdaq[camera]",
    "xiaomi_mijia": "enrgdaq[sensors]",
    "toolbox": "caen-toolbox",
    "n1081b": "1.2.3.4",
}
SERVERS = {"store_mysql": "127.0.0.1:3306", "store_redis": "127.0.0.1:6379"}
"""A machine may run a database service on its default port: such a store then runs."""


def jobs(workdir: str) -> dict[str, dict[str, Any]]:
    result = enrgdaq(workdir, "status", "--json")
    if result.returncode != 0:
        return {}
    return {j["unique_id"]: j for j in json.loads(result.stdout)["jobs"]}


def error_of(job: dict[str, Any]) -> str:
    return str(job.get("last_error") or job.get("error") or "")


def stats_jobs(path: str) -> set[str]:
    if not os.path.exists(path):
        return set()
    with open(path, newline="") as f:
        return {row["daq_job"] for row in csv.DictReader(f)}


def settled(now: dict[str, dict[str, Any]]) -> bool:
    """Every job where it ends up: running, retried with its error, or stalled on its server."""
    if set(now) != RUNS | set(HARDWARE) | set(SERVERS):
        return False
    hardware_retried = all(
        now[uid]["restarts"] >= 2 and needed in error_of(now[uid]) for uid, needed in HARDWARE.items()
    )
    servers_told = all(
        now[uid]["state"] == "running" or (now[uid]["state"] == "stalled" and where in error_of(now[uid]))
        for uid, where in SERVERS.items()
    )
    return hardware_retried and servers_told and all(now[uid]["state"] == "running" for uid in RUNS)


def errors_told(table: str, told: dict[str, str]) -> set[str]:
    """Add to ``told`` the hardware jobs whose error line in this status table names their fix."""
    for line in table.splitlines():
        uid, _, text = line.partition(": ")
        if uid in HARDWARE and HARDWARE[uid] in text:
            told[uid] = text
    return set(told)


def kept(now: dict[str, dict[str, Any]], pids: dict[str, int]) -> bool:
    """Each job of ``pids`` still running in that process, never restarted."""
    return all(
        uid in now and now[uid]["state"] == "running" and now[uid]["pid"] == pid and now[uid]["restarts"] == 0
        for uid, pid in pids.items()
    )


def test_every_original_example_checks_and_runs_unchanged_side_by_side(tmp_path: pathlib.Path) -> None:
    workdir = str(tmp_path)
    configs = os.path.join(workdir, "configs")
    shutil.copytree(UPSTREAM, configs)
    assert len(glob.glob(os.path.join(configs, "*.toml"))) == len(RUNS | set(HARDWARE) | set(SERVERS)) + 2
    sid = f"all-{uuid.uuid4().hex[:8]}"
    with open(os.path.join(configs, "supervisor.toml"), "w") as f:
        f.write(
            f'restart_backoff_max_seconds = 1\n[info]\nsupervisor_id = "{sid}"\n'
            f"[cnc]\nrest_api_port = {free_port()}\n"
        )

    check = enrgdaq(workdir, "check", "configs/")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "20 job(s), no problems" in check.stdout, check.stdout
    for node in ("cnc-client-1", "cnc-server"):
        assert f"supervisor config of node '{node}' (not a job" in check.stdout, check.stdout

    wait_for(lambda: port_free(8000), 120, "port 8000 free (serve_http.toml binds 0.0.0.0:8000)", 0.5)
    up = start_up(workdir, "--quiet")
    try:
        wait_for(lambda: settled(jobs(workdir)), 90, "every example job where it ends up", 0.5)
        pids = {uid: job["pid"] for uid, job in jobs(workdir).items() if uid in RUNS}
        # The retries go on beside them: the running jobs keep their process, no restart.
        stays(
            lambda: kept(jobs(workdir), pids),
            5,
            "the jobs that need nothing from outside running in the same process",
            0.5,
        )
        # handle_stats.toml's CSV, through store_csv.toml: a row for every job of the node.
        stats_csv = os.path.join(workdir, "out", "stats.csv")
        wait_for(lambda: RUNS | set(HARDWARE) <= stats_jobs(stats_csv), 30, "every job in stats.csv", 0.5)
        # What a person reads in the table: each hardware job's error line names what to fix (a
        # line shows while the job waits for its restart, not while it tries again: looked for
        # across the tables of a few seconds).
        told: dict[str, str] = {}
        wait_for(
            lambda: errors_told(enrgdaq(workdir, "status").stdout, told) >= set(HARDWARE),
            60,
            "every hardware job's error line in enrgdaq status",
            0.5,
        )
        assert up.poll() is None, "enrgdaq up ended while its jobs were retried"
    finally:
        code = stop_up(up, timeout=90)
        run_dir = default_run_dir(sid)
        left = sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []
        shutil.rmtree(run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(run_dir))  # (the enrgdaq directory, when no other node uses it)
    assert code == 0
    # What a clean stop leaves: only remote_proxy's table of what it took (docs/bridges.md).
    assert left in ([], ["bridges-seen"]), left
