"""One ``enrgdaq up`` per directory, per run directory and per supervisor id on a Redis.

Each test runs real ``enrgdaq up`` processes (real Redis, real workers) on the
examples with a supervisor id of its own, so that it never meets another
test's ``/dev/shm/enrgdaq/<id>``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator

import psutil
import pytest

from tests.harness.celery_proc import REPO
from tests.harness.leaks import kill_all, live_children
from tests.harness.redis_proc import RedisProcess
from tests.harness.system import csv_rows
from tests.harness.up import start_up, stop_up, user_env
from tests.harness.waiting import wait_for

# One at a time (xdist group "up"): these run `enrgdaq up` with the examples' supervisor id or
# the default API port 8000, which two at once would share.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("up")]

PR_SET_CHILD_SUBREAPER = 36
STARTED_AT = re.compile(r"started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
REFUSED_EXIT_CODE = 4  # docs/operations.md


def examples(workdir: str, supervisor_id: str, extra: str = "") -> str:
    """The examples in ``workdir/configs`` under a supervisor id of this test's own."""
    configs = os.path.join(workdir, "configs")
    shutil.copytree(os.path.join(REPO, "configs"), configs)
    with open(os.path.join(configs, "supervisor.toml"), "w") as f:
        f.write(f'{extra}\n[info]\nsupervisor_id = "{supervisor_id}"\n')
    return configs


def unique_id() -> str:
    return f"lock-{uuid.uuid4().hex[:8]}"


def rows(workdir: str) -> int:
    return len(csv_rows(os.path.join(workdir, "out")))


def output(workdir: str, name: str) -> list[str]:
    with open(os.path.join(workdir, name), errors="replace") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def wait_exit(up: subprocess.Popen[bytes], what: str) -> int:
    wait_for(lambda: up.poll() is not None, 20, what)
    return up.wait()


def assert_refused(workdir: str, name: str, up: subprocess.Popen[bytes], running_pid: int) -> str:
    """``up`` exited with the dedicated code and printed one line naming the running one."""
    code = wait_exit(up, "the second enrgdaq up to refuse and exit")
    lines = output(workdir, name)
    assert code == REFUSED_EXIT_CODE, (code, lines)
    assert len(lines) == 1, lines
    line = lines[0]
    assert f"pid {running_pid}" in line, line
    assert STARTED_AT.search(line), line
    assert "Traceback" not in line
    return line


def running_jobs(workdir: str, env: dict[str, str]) -> dict[str, str]:
    status = subprocess.run(
        [sys.executable, "-m", "enrgdaq.cli.main", "status", "--json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    return {j["unique_id"]: j["state"] for j in json.loads(status.stdout)["jobs"]}


def test_a_second_up_in_the_same_directory_refuses_and_the_first_keeps_running(tmp_path) -> None:
    workdir = str(tmp_path)
    supervisor_id = unique_id()
    configs = examples(workdir, supervisor_id)
    run_dir = f"/dev/shm/enrgdaq/{supervisor_id}"
    env = user_env()
    first = start_up(workdir, "--quiet", env=env)
    second = None
    try:
        wait_for(lambda: rows(workdir) >= 1, 60, "rows on disk from the first up")
        second = start_up(workdir, "--quiet", env=env, output="second.out")
        line = assert_refused(workdir, "second.out", second, first.pid)
        assert configs in line, line

        assert first.poll() is None, "the first up stopped"
        assert os.path.isdir(run_dir), "the second up removed the first one's run directory"
        with open(os.path.join(workdir, ".enrgdaq", "up.json")) as f:
            assert json.load(f)["pid"] == first.pid
        assert running_jobs(workdir, env) == {"store_csv": "running", "test_producer": "running"}
        written = rows(workdir)
        wait_for(lambda: rows(workdir) > written + 5, 15, "the first up to keep writing")
    finally:
        codes = [stop_up(first)] + ([stop_up(second)] if second is not None else [])
    assert codes[0] == 0
    assert not live_children()
    assert not os.path.exists(run_dir)


def test_the_same_supervisor_id_on_the_same_redis_is_refused_from_another_directory(tmp_path) -> None:
    supervisor_id = unique_id()
    redis = RedisProcess(os.path.join(str(tmp_path), "redis"))
    redis.start()
    # Two machines' worth of run directories: only the Redis key can tell the two apart.
    run_dirs = [tempfile.mkdtemp(prefix="edq-", dir="/tmp") for _ in range(2)]
    dirs = [os.path.join(str(tmp_path), name) for name in ("a", "b")]
    ups: list[subprocess.Popen[bytes]] = []
    try:
        envs = []
        for workdir, run_dir in zip(dirs, run_dirs, strict=True):
            os.makedirs(workdir)
            examples(workdir, supervisor_id)
            envs.append({**user_env(), "ENRGDAQ_REDIS_URL": redis.url, "ENRGDAQ_RUN_DIR": run_dir})
        ups.append(start_up(dirs[0], "--quiet", env=envs[0]))
        wait_for(lambda: rows(dirs[0]) >= 1, 60, "rows on disk from the first up")
        ups.append(start_up(dirs[1], "--quiet", env=envs[1]))
        line = assert_refused(dirs[1], "up.out", ups[1], ups[0].pid)
        assert f"'{supervisor_id}'" in line, line
        assert os.path.join(dirs[0], "configs") in line, line
        assert not os.path.exists(os.path.join(dirs[1], ".enrgdaq", "logs")), "it started processes"

        assert ups[0].poll() is None, "the first up stopped"
        written = rows(dirs[0])
        wait_for(lambda: rows(dirs[0]) > written + 5, 15, "the first up to keep writing")
    finally:
        codes = [stop_up(up) for up in ups]
        redis.stop()
        for run_dir in run_dirs:
            shutil.rmtree(run_dir, ignore_errors=True)
    assert codes[0] == 0
    assert not live_children()


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Orphans of a killed ``up`` become this test's children, so that they can be seen and reaped."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0)


def kill_tree(up: subprocess.Popen[bytes]) -> None:
    """kill -9 of ``up`` and of everything below it; every one of them reaped."""
    tree = psutil.Process(up.pid).children(recursive=True)
    up.kill()
    up.wait(10)
    kill_all(tree)

    def reaped() -> bool:
        kill_all(live_children())  # orphans born after the snapshot, now ours
        return not live_children()

    wait_for(reaped, 15, "every process of the killed up to be gone")
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def test_a_killed_up_leaves_a_stale_lock_that_the_next_up_takes_over(tmp_path, subreaper) -> None:
    workdir = str(tmp_path)
    supervisor_id = unique_id()
    examples(workdir, supervisor_id)
    run_dir = f"/dev/shm/enrgdaq/{supervisor_id}"
    env = user_env()
    crashed = start_up(workdir, "--quiet", env=env, output="crashed.out")
    ups = [crashed]
    try:
        wait_for(lambda: rows(workdir) >= 1, 60, "rows on disk from the first up")
        kill_tree(crashed)

        taker = start_up(workdir, "--quiet", env=env)
        ups.append(taker)
        written = rows(workdir)
        wait_for(lambda: rows(workdir) > written + 5, 60, "rows from the up that took over")
        said = "\n".join(output(workdir, "up.out"))
        assert f"pid {crashed.pid}" in said, said  # the stale lock it took over, named

        # It holds the lock now: a third one is refused, naming it.
        third = start_up(workdir, "--quiet", env=env, output="third.out")
        ups.append(third)
        assert_refused(workdir, "third.out", third, taker.pid)
        assert taker.poll() is None
    finally:
        codes = [stop_up(up) for up in ups[1:]]
        if crashed.poll() is None:
            kill_tree(crashed)
    assert codes[0] == 0
    assert not live_children()
    assert not os.path.exists(run_dir)


def test_a_configured_run_dir_and_the_users_files_in_it_survive_shutdown(tmp_path) -> None:
    workdir = str(tmp_path)
    run_dir = tempfile.mkdtemp(prefix="edq-", dir="/tmp")
    mine = os.path.join(run_dir, "notes.txt")
    with open(mine, "w") as f:
        f.write("the user's\n")
    examples(workdir, unique_id(), extra=f'run_dir = "{run_dir}"')
    up = start_up(workdir, "--quiet", env=user_env())
    try:
        wait_for(lambda: rows(workdir) >= 1, 60, "rows on disk")
        made = set(os.listdir(run_dir))
        assert {"xpub.sock", "xsub.sock"} <= made, made
        assert any(name.startswith("ring-") for name in made), made
    finally:
        code = stop_up(up)
    try:
        assert code == 0
        assert not live_children()
        assert os.path.isdir(run_dir), "shutdown removed the configured run directory"
        assert os.listdir(run_dir) == ["notes.txt"]
        with open(mine) as f:
            assert f.read() == "the user's\n"
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
