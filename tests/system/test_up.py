"""``enrgdaq up configs/``: what a new user runs first, with Flower, from start to Ctrl-C."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from enrgdaq.local.redis_server import free_port
from tests.harness.leaks import live_children
from tests.harness.system import csv_rows
from tests.harness.up import start_up, user_env
from tests.harness.waiting import wait_for

# One at a time (xdist group "up"): these run `enrgdaq up` with the examples' supervisor id or
# the default API port 8000, which two at once would share.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("up")]


def flower_tasks(port: int, auth: str) -> dict[str, dict[str, object]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/tasks")
    request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return {}


def test_enrgdaq_up_runs_the_examples_shows_them_in_flower_and_stops_cleanly(tmp_path) -> None:
    workdir = str(tmp_path)
    env = user_env()
    env["FLOWER_BASIC_AUTH"] = "operator:test-secret"
    port = free_port()
    log_path = os.path.join(workdir, "up.out")
    up = start_up(workdir, "--flower", "--flower-port", str(port), env=env)
    try:
        wait_for(lambda: len(csv_rows(os.path.join(workdir, "out"))) >= 3, 30, "rows on disk")

        # From another terminal in the same directory, without flags.
        status = subprocess.run(
            [sys.executable, "-m", "enrgdaq.cli.main", "status", "--json"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        doc = json.loads(status.stdout)
        assert doc["supervisor_id"] == "example"
        assert {j["unique_id"]: j["state"] for j in doc["jobs"]} == {
            "store_csv": "running",
            "test_producer": "running",
        }
        assert set(doc["jobs"][0]) >= {
            "unique_id",
            "daq_job_type",
            "queue",
            "state",
            "pid",
            "hostname",
            "restarts",
            "last_heartbeat",
            "restart_at",
        }

        def job_tasks() -> dict[str, dict[str, object]]:
            tasks = flower_tasks(port, "operator:test-secret").values()
            return {str(t["name"]): t for t in tasks if t.get("state") == "STARTED" and t.get("routing_key")}

        shown = wait_for(
            lambda: len(job_tasks()) == 2 and job_tasks(),
            30,
            "Flower to show both jobs as started, on their queues",
        )
        # The node's queues on the wire: <queue>@<supervisor id> (docs/nodes.md).
        assert shown["DAQJobTest[test_producer]"]["routing_key"] == "default@example", shown
        assert shown["DAQJobStoreCSV[store_csv]"]["routing_key"] == "store@example"
        # Beat's ticks (12 a second) stay out of Flower's task list.
        names = {str(t["name"]) for t in flower_tasks(port, "operator:test-secret").values()}
        assert names == {"DAQJobTest[test_producer]", "DAQJobStoreCSV[store_csv]"}, names
        with open(log_path) as f:
            assert f"flower: http://127.0.0.1:{port}" in f.read()
    finally:
        asked = time.monotonic()
        up.send_signal(signal.SIGINT)
        code = up.wait(30)
        took = time.monotonic() - asked
    assert code == 0
    assert took <= 10, f"Ctrl-C took {took:.1f} s"
    assert not live_children()
    assert not os.path.exists("/dev/shm/enrgdaq/example")
    assert not os.path.exists(os.path.join(workdir, ".enrgdaq", "up.json"))


def test_ctrl_c_pressed_again_and_again_still_stops_cleanly(tmp_path) -> None:
    """A user who hammers Ctrl-C: every signal after the first must not wedge the shutdown."""
    workdir = str(tmp_path)
    up = start_up(workdir, "--quiet", env=user_env())
    try:
        wait_for(lambda: len(csv_rows(os.path.join(workdir, "out"))) >= 1, 30, "rows on disk")
    finally:
        asked = time.monotonic()
        deadline = time.monotonic() + 0.5  # signals as fast as they go, for half a second
        while time.monotonic() < deadline and up.poll() is None:
            up.send_signal(signal.SIGINT)
        try:
            code = up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait(10)
            raise
        took = time.monotonic() - asked
    assert code == 0
    assert took <= 10, f"stopping took {took:.1f} s"
    assert not live_children()
    assert not os.path.exists("/dev/shm/enrgdaq/example")
