"""``configs/hardware/`` as a user runs it: ``enrgdaq check`` passes and ``enrgdaq up`` brings every
job to running with its simulated device, and what each job sends lands on disk. Whatever files
the directory holds at run time are covered (camera and sensor, CAEN, ...), read from their TOML.

And the original's camera and Mijia examples, unchanged, on a machine with neither the device
nor its library: each shows the error naming the extra to install in ``enrgdaq status`` and is
restarted with backoff, again and again, by a worker that stays alive."""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import tomllib
import uuid
from typing import Any

import pytest

from tests.harness.celery_proc import REPO
from tests.harness.ports import free_port
from tests.harness.up import enrgdaq, start_up, stop_up
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.system

HARDWARE = os.path.join(REPO, "configs", "hardware")
UPSTREAM = os.path.join(REPO, "tests", "upstream_configs")
FILE_STORES = {"csv", "raw", "parquet", "hdf5", "root"}


def csv_rows(pattern: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(glob.glob(pattern)):
        with open(path, newline="") as f:
            rows.extend(csv.DictReader(f))
    return rows


def read_bytes(path: str) -> bytes:
    if not os.path.exists(path):
        return b""
    with open(path, "rb") as f:
        return f.read()


def jobs(workdir: str) -> dict[str, dict[str, Any]]:
    result = enrgdaq(workdir, "status", "--json")
    if result.returncode != 0:
        return {}
    return {j["unique_id"]: j for j in json.loads(result.stdout)["jobs"]}


def job_files(configs: str) -> dict[str, dict[str, Any]]:
    """Every job file of ``configs`` by job id (its daq_job_unique_id, else the file's stem)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(configs, "*.toml"))):
        if os.path.basename(path) == "supervisor.toml":
            continue
        with open(path, "rb") as f:
            data = tomllib.load(f)
        found[data.get("daq_job_unique_id") or os.path.basename(path)[:-5]] = data
    return found


def expected_files(job: dict[str, Any]) -> list[str]:
    """The file names a producer's store configs name (``store_config`` and the digitizer's
    ``waveform_store_config`` / ``stats_store_config``), for the file stores."""
    names = []
    for key, value in job.items():
        if key.endswith("store_config") and isinstance(value, dict):
            for kind, store in value.items():
                if kind in FILE_STORES and isinstance(store, dict) and "file_path" in store:
                    names.append(os.path.basename(store["file_path"]))
    return names


def written(workdir: str, name: str) -> list[str]:
    """Non-empty files under ``workdir`` (not its configs) that a store wrote for ``name``: the
    stem may get a date before it and a tag after it."""
    stem, ext = os.path.splitext(name)
    paths = glob.glob(os.path.join(workdir, "**", f"*{stem}*{ext}*"), recursive=True)
    return [p for p in paths if "/configs/" not in p and os.path.isfile(p) and os.path.getsize(p) > 0]


def copy_configs(source: str, workdir: str, names: list[str] | None = None) -> str:
    configs = os.path.join(workdir, "configs")
    if names is None:
        shutil.copytree(source, configs)
    else:
        os.makedirs(configs)
        for name in names:
            shutil.copy(os.path.join(source, name), os.path.join(configs, name))
    return configs


def test_the_hardware_examples_check_and_run_with_simulated_devices(tmp_path) -> None:
    workdir = str(tmp_path)
    configs = copy_configs(HARDWARE, workdir)
    sid = f"hw-{uuid.uuid4().hex[:8]}"
    with open(os.path.join(configs, "supervisor.toml")) as f:
        supervisor = f.read()
    assert 'supervisor_id = "hardware"' in supervisor
    with open(os.path.join(configs, "supervisor.toml"), "w") as f:
        f.write(supervisor.replace('"hardware"', f'"{sid}"') + f"\n[cnc]\nrest_api_port = {free_port()}\n")
    files = job_files(configs)
    producers = {uid: job for uid, job in files.items() if not job["daq_job_type"].startswith("DAQJobStore")}
    stores = [job["daq_job_type"] for job in files.values() if job["daq_job_type"].startswith("DAQJobStore")]
    assert {"camera", "xiaomi_mijia"} <= set(producers)
    # Every store of a class takes every message for that class: two would write each row twice.
    assert len(stores) == len(set(stores)), f"two store jobs of one class in configs/hardware: {stores}"

    check = enrgdaq(workdir, "check", "configs/")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(files)} job(s), no problems" in check.stdout, check.stdout

    up = start_up(workdir, "--quiet")
    try:
        wait_for(
            lambda: (s := jobs(workdir)) and all(s.get(uid, {}).get("state") == "running" for uid in files),
            40,
            f"every job of configs/hardware running: {sorted(files)}",
            interval=0.2,
        )
        out = os.path.join(workdir, "out")
        frame = os.path.join(out, "camera.png")
        first = wait_for(lambda: read_bytes(frame), 20, "a camera frame")
        wait_for(lambda: len(csv_rows(os.path.join(out, "*xiaomi_mijia.csv"))) >= 2, 20, "two sensor rows")
        wait_for(lambda: read_bytes(frame) not in (b"", first), 20, "a newer camera frame")
        states = jobs(workdir)
    finally:
        code = stop_up(up, timeout=60)
    assert code == 0

    errors = {uid: job.get("last_error") or job.get("error") for uid, job in states.items()}
    assert not any(errors.values()), errors  # no job failed on its way (simulated devices never do)
    assert (states["camera"]["queue"], states["xiaomi_mijia"]["queue"]) == ("camera", "sensors")
    assert first.startswith(b"\x89PNG\r\n\x1a\n")  # the simulated camera's frames are PNG
    rows = csv_rows(os.path.join(out, "*xiaomi_mijia.csv"))
    assert set(rows[0]) == {"timestamp", "temperature", "humidity", "battery"}
    assert all(10 < float(r["temperature"]) < 35 and 0 <= int(r["battery"]) <= 100 for r in rows), rows
    missing = {
        uid: name
        for uid, job in producers.items()
        for name in expected_files(job)
        if not written(workdir, name)
    }
    assert not missing, f"nothing on disk for: {missing}"


def test_the_original_camera_and_mijia_examples_show_their_error_and_are_retried(tmp_path) -> None:
    workdir = str(tmp_path)
    configs = copy_configs(UPSTREAM, workdir, ["camera.toml", "xiaomi_mijia.toml"])
    with open(os.path.join(configs, "supervisor.toml"), "w") as f:
        f.write(
            f'restart_backoff_max_seconds = 1\n[info]\nsupervisor_id = "hwx-{uuid.uuid4().hex[:8]}"\n'
            f"[cnc]\nrest_api_port = {free_port()}\n"
        )
    for store in ("DAQJobStoreCSV", "DAQJobStoreRaw"):
        with open(os.path.join(configs, f"{store.lower()}.toml"), "w") as f:
            f.write(f'daq_job_type = "{store}"\n')
    check = enrgdaq(workdir, "check", "configs/")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "DAQJobCamera 'camera' on queue 'camera'" in check.stdout
    assert "DAQJobXiaomiMijia 'xiaomi_mijia' on queue 'sensors'" in check.stdout

    extras = {"camera": "enrgdaq[camera]", "xiaomi_mijia": "enrgdaq[sensors]"}
    up = start_up(workdir, "--quiet")
    try:
        seen: dict[str, set[str]] = {uid: set() for uid in extras}

        def retried() -> bool:
            now = jobs(workdir)
            for uid in seen:
                if uid in now:
                    seen[uid].add(now[uid]["state"])
            return all(
                uid in now
                and "restart_scheduled" in seen[uid]
                and now[uid]["restarts"] >= 2
                and extra in str(now[uid].get("last_error") or now[uid].get("error"))
                for uid, extra in extras.items()
            )

        wait_for(retried, 40, "both examples failing on their missing library and restarted twice", 0.1)
        # The table's error line, as a person reads it while the job waits for its restart.
        text = wait_for(
            lambda: (out := enrgdaq(workdir, "status").stdout).count("needs its vendor library") == 2 and out,
            20,
            "both errors in `enrgdaq status`",
            0.1,
        )
        libraries_here = {uid: job for uid, job in jobs(workdir).items() if uid in extras}
    finally:
        code = stop_up(up, timeout=60)
    assert code == 0
    for uid, extra in extras.items():
        assert f"pip install '{extra}'" in str(
            libraries_here[uid].get("last_error") or libraries_here[uid]["error"]
        )
    for uid, extra in extras.items():
        assert any(line.startswith(f"{uid}: ") and extra in line for line in text.splitlines()), text
