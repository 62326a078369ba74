"""The commands of docker-compose.yml, run outside Docker on the repository's example configs.

No Docker engine runs here. What Compose would run is still testable: each
service's ``command`` and ``environment`` from the compose file, started as a
subprocess against a real redis-server, with the example ``configs/``. Only
what differs outside a container is replaced: the Redis URL (the test's
server instead of the ``redis`` service), the run dir (a temp dir instead of
the shared tmpfs volume at /dev/shm/enrgdaq), and container paths, mapped
through the service's bind mounts (``./configs`` and ``./out``) to the test's
directories.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import time
import tomllib
from typing import Any

import psutil
import pytest
from ruamel.yaml import YAML

from tests.harness.celery_proc import REPO, CeleryProcess
from tests.harness.system import DAQSystem, csv_rows
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.system

SERVICES = ("supervisor", "beat", "worker-default", "worker-store")
CELERY = ["celery", "-A", "enrgdaq"]
ROWS_WITHIN_SECONDS = 20.0


def compose_services() -> dict[str, Any]:
    with open(os.path.join(REPO, "docker-compose.yml")) as f:
        doc = YAML(typ="safe", pure=True).load(f)
    services: dict[str, Any] = json.loads(json.dumps(doc["services"]))
    return services


def image_workdir() -> str:
    with open(os.path.join(REPO, "Dockerfile")) as f:
        found = re.findall(r"^WORKDIR\s+(\S+)", f.read(), flags=re.MULTILINE)
    assert found, "the Dockerfile sets no WORKDIR"
    return str(found[-1])


class ContainerPaths:
    """Container paths of one service, mapped through its bind mounts to the test's dirs."""

    def __init__(self, service: dict[str, Any], system: DAQSystem) -> None:
        host_dirs = {"./configs": system.config_dir, "./out": system.out_dir}
        self.binds: dict[str, str] = {}
        for entry in service.get("volumes", []):
            source, target = entry.split(":")[:2]
            if source in host_dirs:
                self.binds[target.rstrip("/")] = host_dirs[source]

    def to_host(self, path: str) -> str | None:
        for target, host in self.binds.items():
            if path == target or path.startswith(target + "/"):
                return host + path[len(target) :]
        return None


def service_env(service: dict[str, Any], system: DAQSystem) -> dict[str, str]:
    """The environment Compose gives ``service``, with the test's Redis, run dir and paths."""
    container_env = {k: str(v) for k, v in service.get("environment", {}).items()}
    assert "ENRGDAQ_RUN_DIR" not in container_env  # compose uses the default: the tmpfs volume
    paths = ContainerPaths(service, system)
    env = system.env  # the test's ENRGDAQ_REDIS_URL and ENRGDAQ_RUN_DIR, PYTHONPATH
    for key, value in container_env.items():
        if key == "ENRGDAQ_REDIS_URL":
            assert value.startswith("redis://redis:")  # the compose service, replaced here
            continue
        env[key] = (paths.to_host(value) or value) if value.startswith("/") else value
    assert env["ENRGDAQ_CONFIG_DIR"] == system.config_dir, "configs are not mounted where read"
    return env


def install_example_configs(system: DAQSystem, store_service: dict[str, Any]) -> None:
    """configs/*.toml as they are, but for the supervisor id and the CSV store's out_dir."""
    for stale in glob.glob(os.path.join(system.config_dir, "*.toml")):
        os.remove(stale)
    for path in sorted(glob.glob(os.path.join(REPO, "configs", "*.toml"))):
        shutil.copy(path, system.config_dir)

    def rewrite(name: str, key: str, value: str) -> None:
        path = os.path.join(system.config_dir, name)
        with open(path) as f:
            text, count = re.subn(
                rf"^{key}\s*=.*$", f"{key} = {json.dumps(value)}", f.read(), flags=re.MULTILINE
            )
        assert count == 1, f"{name}: no single {key} line"
        with open(path, "w") as f:
            f.write(text)

    rewrite("supervisor.toml", "supervisor_id", system.supervisor_id)
    with open(os.path.join(system.config_dir, "store_csv.toml"), "rb") as f:
        out_dir = tomllib.load(f)["out_dir"]
    # Where the store writes inside its container, then where that is here.
    container_out = os.path.normpath(os.path.join(image_workdir(), out_dir))
    host_out = ContainerPaths(store_service, system).to_host(container_out)
    assert host_out == system.out_dir, f"{container_out} is not the ./out bind mount"
    rewrite("store_csv.toml", "out_dir", host_out + "/")


def start_service(system: DAQSystem, name: str, service: dict[str, Any]) -> CeleryProcess:
    command = service["command"]
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    assert argv[:3] == CELERY, f"{name}: {command!r}"
    proc = CeleryProcess(name, argv[3:], service_env(service, system), system.log_dir)
    system.procs.append(proc)  # the system fixture stops it
    return proc.start()


def is_descendant(pid: int, ancestor: int) -> bool:
    try:
        return ancestor in {p.pid for p in psutil.Process(pid).parents()}
    except psutil.NoSuchProcess:
        return False


def test_compose_commands_run_the_example_configs(system: DAQSystem) -> None:
    services = compose_services()
    install_example_configs(system, services["worker-store"])
    with open(os.path.join(REPO, "configs", "test_producer.toml"), "rb") as f:
        producer = tomllib.load(f)

    started = time.monotonic()
    procs = {name: start_service(system, name, services[name]) for name in SERVICES}
    try:
        for name, proc in procs.items():
            if name != "beat":
                proc.wait_ready()
        assert procs["beat"].alive(), procs["beat"].log()[-3000:]
        left = max(1.0, ROWS_WITHIN_SECONDS - (time.monotonic() - started))
        rows = wait_for(
            lambda: len(csv_rows(system.out_dir)) >= 10 and csv_rows(system.out_dir),
            left,
            f"10 rows in {system.out_dir} within {ROWS_WITHIN_SECONDS} s",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{system.logs()}") from None

    # configs/test_producer.toml: file_path = "test_data.csv", add_date = true, values in range.
    [path] = glob.glob(os.path.join(system.out_dir, "*test_data.csv"))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}_test_data\.csv", os.path.basename(path)), path
    with open(path) as f:
        assert f.readline().strip() == "timestamp,A,B,C"
    for row in rows:
        assert all(producer["rand_min"] <= int(v) <= producer["rand_max"] for v in row[1:]), row

    # Each job runs as a task in a pool process of the worker for its queue.
    for unique_id, queue, worker in (
        ("test_producer", "default", "worker-default"),
        ("store_csv", "store", "worker-store"),
    ):
        record = system.wait_state(unique_id, "running", timeout=5)
        assert record.queue == queue, record
        assert record.pid and is_descendant(record.pid, procs[worker].pid), (
            f"{unique_id}: pid {record.pid} is not a child of {worker} (pid {procs[worker].pid})"
        )
    assert all(proc.alive() for proc in procs.values())
