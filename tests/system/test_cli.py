"""The operator's commands against a running ``enrgdaq up``, from another terminal: jobs, logs,
restart, stop/start, adding a job from a file; tables for people, JSON and exit codes for scripts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from enrgdaq.local.redis_server import free_port
from tests.harness.celery_proc import REPO
from tests.harness.up import enrgdaq, start_up, stop_up, user_env
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.system

SECOND_JOB = """\
daq_job_type = "DAQJobTest"
daq_job_unique_id = "second"
rand_min = 1
rand_max = 9
rate_hz = 5

[store_config.csv]
file_path = "second.csv"
"""


def private_configs(workdir: str, top: str = "") -> str:
    """The examples in ``workdir/configs`` with a supervisor id and API port of their own, so that
    this test's ``up`` never meets another test's (run directory, lock, port 8000); returns the id.
    ``top``: more top-level keys of supervisor.toml (``plugins = [...]``)."""
    shutil.copytree(os.path.join(REPO, "configs"), os.path.join(workdir, "configs"))
    supervisor_id = f"cli-{uuid.uuid4().hex[:8]}"
    with open(os.path.join(workdir, "configs", "supervisor.toml"), "w") as f:
        f.write(f'{top}\n[info]\nsupervisor_id = "{supervisor_id}"\n\n[cnc]\nrest_api_port = {free_port()}\n')
    return supervisor_id


def as_json(workdir: str, *args: str) -> object:
    done = enrgdaq(workdir, *args, "--json")
    assert done.returncode == 0, done
    return json.loads(done.stdout)


def jobs_by_id(workdir: str) -> dict[str, dict[str, object]]:
    rows = as_json(workdir, "jobs")
    assert isinstance(rows, list)
    return {str(r["unique_id"]): r for r in rows}


def producer_rate(workdir: str) -> dict[str, dict[str, object]] | None:
    """The jobs once the producer has a rate out and the store a rate in (None before)."""
    done = enrgdaq(workdir, "jobs", "--json")
    if done.returncode != 0:
        return None
    jobs = {str(r["unique_id"]): r for r in json.loads(done.stdout)}
    if jobs.get("test_producer", {}).get("out_per_s") and jobs.get("store_csv", {}).get("in_per_s"):
        return jobs
    return None


def test_jobs_logs_restart_stop_start_and_add_from_a_file(tmp_path) -> None:
    workdir = str(tmp_path)
    private_configs(workdir)
    up = start_up(workdir, "--quiet")
    follower: subprocess.Popen[bytes] | None = None
    try:
        rows = wait_for(lambda: producer_rate(workdir), 40, "a rate out")
        assert rows["test_producer"]["state"] == "running"
        assert 3 <= float(rows["test_producer"]["out_per_s"]) <= 20  # rate_hz = 10
        assert float(rows["store_csv"]["in_per_s"]) > 0
        table = enrgdaq(workdir, "jobs").stdout.splitlines()
        assert table[0].split() == ["JOB", "TYPE", "QUEUE", "STATE", "RESTARTS", "IN/s", "OUT/s"]
        assert table[2].split()[:5] == ["test_producer", "DAQJobTest", "default", "running", "0"]

        # Logs: the job's own lines, and the supervisor's.
        lines = wait_for(lambda: enrgdaq(workdir, "logs", "test_producer", "-n", "5").stdout, 10, "log lines")
        assert "[test_producer] running DAQJobTest" in lines or "[test_producer]" in lines, lines
        node = enrgdaq(workdir, "logs", "_node", "-n", "1000", "--json").stdout.splitlines()
        assert any("dispatched" in json.loads(x)["message"] for x in node), node[-5:]

        # Restart: a new process; `logs -f`, started before, prints its lines as they come.
        follow_out = tmp_path / "follow.out"
        with open(follow_out, "wb") as out:
            follower = subprocess.Popen(
                [sys.executable, "-m", "enrgdaq.cli.main", "logs", "test_producer", "-f", "-n", "1"],
                cwd=workdir,
                env=user_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # Its one line printed: it reads new lines from here on.
        wait_for(lambda: follow_out.read_text().strip(), 15, "the follower's first line")
        before = jobs_by_id(workdir)
        pid_before = next(
            j["pid"] for j in as_json(workdir, "status")["jobs"] if j["unique_id"] == "test_producer"
        )  # type: ignore[index]
        done = enrgdaq(workdir, "restart", "test_producer", "--json")
        assert done.returncode == 0, done
        after = json.loads(done.stdout)[0]
        assert after["state"] == "running" and after["pid"] and after["pid"] != pid_before, after
        assert before["test_producer"]["restarts"] != jobs_by_id(workdir)["test_producer"]["restarts"]
        wait_for(
            lambda: follow_out.read_text().count("running DAQJobTest") == 2, 15, "the new run's line followed"
        )
        assert "run ended (stopped)" in follow_out.read_text()
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0  # Ctrl-C ends a follow: not an error
        assert "Traceback" not in follow_out.read_text()

        # Stop lasts; stopping again is not an error; start brings it back.
        assert "test_producer: stopped" in enrgdaq(workdir, "stop", "test_producer").stdout
        again = enrgdaq(workdir, "stop", "test_producer")
        assert again.returncode == 0 and "already" in again.stdout
        assert jobs_by_id(workdir)["test_producer"]["state"] == "stopped"
        started = enrgdaq(workdir, "start", "test_producer")
        assert started.returncode == 0 and "test_producer: running" in started.stdout, started

        # A new job from a file: added and running when the command returns; stdout pure JSON.
        (tmp_path / "second.toml").write_text(SECOND_JOB)
        added = enrgdaq(workdir, "start", "second.toml", "--json")
        assert added.returncode == 0, added
        assert json.loads(added.stdout)[0]["state"] == "running", added.stdout
        assert os.path.exists(tmp_path / "configs" / "second.toml")
        wait_for(lambda: jobs_by_id(workdir)["second"]["state"] == "running", 20, "the new job running")

        # Exit codes scripts rely on.
        dup = enrgdaq(workdir, "start", "second.toml")
        assert dup.returncode == 4 and "exists already" in dup.stderr, dup
        for args in (("logs", "nope"), ("stop", "nope"), ("restart", "nope"), ("start", "nope")):
            done = enrgdaq(workdir, *args)
            assert done.returncode == 1 and "no job 'nope'" in done.stderr, (args, done)
        assert enrgdaq(workdir, "logs").returncode == 2
        (tmp_path / "broken.toml").write_text(SECOND_JOB.replace("rate_hz = 5", 'rate_hz = "fast"'))
        broken = enrgdaq(workdir, "start", "broken.toml")
        assert broken.returncode == 1 and "rate_hz" in broken.stderr, broken
    finally:
        if follower is not None and follower.poll() is None:
            follower.kill()
            follower.wait(5)
        code = stop_up(up)
    assert code == 0
