"""Flower as an operator uses it: live rates of every job, and Terminate as a stop that lasts.

A real ``enrgdaq up --flower`` (Redis, supervisor, beat, workers, Flower behind basic auth),
read through Flower's own HTTP API.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from enrgdaq.local.redis_server import free_port
from tests.harness.up import enrgdaq, start_up, stop_up, user_env
from tests.harness.waiting import stays, wait_for
from tests.system.test_cli import private_configs

# One at a time (xdist group "up"): these run `enrgdaq up` with the examples' supervisor id or
# the default API port 8000, which two at once would share.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("up")]

AUTH = "operator:flower-test-secret"
_RATE = re.compile(r"^(?P<dir>out|in) (?P<rate>[\d.]+) msg/s, [\d.]+ [kMG]?B/s$")


def flower(port: int, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None
    )
    request.add_header("Authorization", "Basic " + base64.b64encode(AUTH.encode()).decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"null")


def job_tasks(port: int) -> dict[str, dict[str, Any]]:
    """The running job tasks Flower knows, by name (``DAQJobTest[test_producer]``)."""
    try:
        tasks = flower(port, "/api/tasks").values()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return {}
    return {str(t["name"]): t for t in tasks if t.get("state") == "STARTED"}


def job_state(workdir: str, unique_id: str) -> str | None:
    done = enrgdaq(workdir, "status", "--json")
    if done.returncode != 0:
        return None
    return next((j["state"] for j in json.loads(done.stdout)["jobs"] if j["unique_id"] == unique_id), None)


PLUGIN = """
import os
import time

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.models import DAQJobConfig


class DAQJobDigitizerGoneConfig(DAQJobConfig):
    fail_when: str  # the digitizer stops answering once this file is there


class DAQJobDigitizerGone(DAQJob):
    config_type = DAQJobDigitizerGoneConfig

    def start(self) -> None:
        while self.sleep_until(time.monotonic() + 0.05):
            if os.path.exists(self.config.fail_when):
                raise RuntimeError("digitizer stopped answering; password=hunter2")
"""


def test_flower_shows_live_rates_and_terminate_is_a_stop_that_is_never_undone(tmp_path) -> None:
    workdir = str(tmp_path)
    private_configs(workdir, top='plugins = ["flower_lab_jobs"]')
    (tmp_path / "configs" / "flower_lab_jobs.py").write_text(PLUGIN)
    fail_when = tmp_path / "digitizer-gone"
    (tmp_path / "configs" / "digitizer.toml").write_text(
        f'daq_job_type = "DAQJobDigitizerGone"\nrestart_on_crash = false\nfail_when = "{fail_when}"\n'
    )
    port = free_port()
    env = {**user_env(), "FLOWER_BASIC_AUTH": AUTH}
    up = start_up(workdir, "--flower", "--flower-port", str(port), "--quiet", env=env)
    try:
        # A job that raised: FAILURE, and its result says why (secrets masked).
        def crashed() -> dict[str, Any] | None:
            try:
                tasks = flower(port, "/api/tasks").values()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return None
            return next(
                (
                    t
                    for t in tasks
                    if t.get("name") == "DAQJobDigitizerGone[digitizer]" and t.get("state") == "FAILURE"
                ),
                None,
            )

        # Flower sees task events from when it is up: the digitizer fails once Flower shows it running.
        wait_for(lambda: "DAQJobDigitizerGone[digitizer]" in job_tasks(port), 40, "the digitizer in Flower")
        fail_when.touch()
        failed = wait_for(crashed, 40, "the digitizer's crash in Flower")
        assert failed["result"] == "crashed: RuntimeError: digitizer stopped answering; password=***", failed
        assert "RuntimeError" in str(failed["exception"])

        # Live progress: the producer's task shows its rate out, the store's its rate in.
        def rates() -> dict[str, re.Match[str]] | None:
            tasks = job_tasks(port)
            found = {n: _RATE.match(str(t.get("result") or "")) for n, t in tasks.items()}
            producer, store = found.get("DAQJobTest[test_producer]"), found.get("DAQJobStoreCSV[store_csv]")
            if (
                producer
                and store
                and producer["dir"] == "out"
                and float(producer["rate"]) > 0
                and store["dir"] == "in"
            ):
                return {"producer": producer, "store": store}
            return None

        seen = wait_for(rates, 40, "Flower to show both jobs with non-zero rates")
        assert 3 <= float(seen["producer"]["rate"]) <= 20, seen["producer"].string  # rate_hz = 10
        assert float(seen["store"]["rate"]) > 0, seen["store"].string

        # About once a second: the task's event timestamp moves on.
        stamps: set[float] = set()

        def updated_three_times() -> bool:
            stamps.add(float(job_tasks(port)["DAQJobTest[test_producer]"]["timestamp"]))
            return len(stamps) >= 3

        wait_for(updated_three_times, 4.5, "three progress updates", interval=0.2)

        # Flower's Terminate (what its button posts) is a person's stop: stopped, never restarted.
        producer_task = str(job_tasks(port)["DAQJobTest[test_producer]"]["uuid"])
        flower(port, f"/api/task/revoke/{producer_task}?terminate=true", method="POST")
        wait_for(lambda: job_state(workdir, "test_producer") == "stopped", 15, "the producer stopped")

        # The same through `celery control terminate`, for the store.
        store_task = str(job_tasks(port)["DAQJobStoreCSV[store_csv]"]["uuid"])
        subprocess.run(
            [sys.executable, "-m", "celery", "-A", "enrgdaq", "control", "terminate", "SIGTERM", store_task],
            cwd=workdir,
            env={**env, "ENRGDAQ_REDIS_URL": redis_url(workdir)},
            capture_output=True,
            timeout=30,
            check=True,
        )
        wait_for(lambda: job_state(workdir, "store_csv") == "stopped", 15, "the store stopped")

        # Longer than the restart offset (2 s) and a reconcile pass or two: nothing comes back.
        stays(
            lambda: (
                job_state(workdir, "test_producer") == "stopped"
                and job_state(workdir, "store_csv") == "stopped"
            ),
            4.0,
            "both jobs stopped",
            interval=0.3,
        )
        assert enrgdaq(workdir, "start", "test_producer").returncode == 0
        wait_for(lambda: job_state(workdir, "test_producer") == "running", 20, "the producer running again")
    finally:
        code = stop_up(up)
    assert code == 0


def redis_url(workdir: str) -> str:
    with open(os.path.join(workdir, ".enrgdaq", "up.json")) as f:
        return str(json.load(f)["redis_url"])
