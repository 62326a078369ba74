"""Fixtures: a real system per test, and the leak checks every test passes through.

* per test: no child process may outlive the test's own teardown, and a
  system's run directory (ipc sockets, ring files) must be gone;
* per session (in the controlling process, after every test): no new entry
  named ``enrgdaq*`` or ``edq*`` in /dev/shm.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness.leaks import describe, kill_all, live_children, shm_entries
from tests.harness.redis_proc import RedisProcess
from tests.harness.system import DAQSystem

_SHM_AT_START: set[str] = set()


def pytest_sessionstart(session: pytest.Session) -> None:
    _SHM_AT_START.update(shm_entries())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller checks once every worker is done
    leaked = sorted(shm_entries() - _SHM_AT_START)
    if leaked:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"LEAK: the test session left in /dev/shm: {', '.join(leaked)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under --dist loadgroup, refuse to run if xdist could not tag the grouped tests: they would
    run on two workers at once and fight over the examples' run directory and port 8000."""
    if not hasattr(config, "workerinput") or not getattr(config.option, "loadgroup", False):
        return
    untagged = [i.nodeid for i in items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
    if untagged:
        raise pytest.UsageError(
            f"pytest-xdist did not group {len(untagged)} test(s) marked xdist_group (e.g. {untagged[0]}): "
            "this pytest / pytest-xdist pair does not support --dist loadgroup (see pyproject.toml)"
        )


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves a process behind (checked after its own teardown)."""
    yield
    leaked = live_children()
    problems = [describe(p) for p in leaked]
    kill_all(leaked)
    if problems:
        pytest.fail("test leaked: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def redis_proc(tmp_path: os.PathLike[str]) -> Iterator[RedisProcess]:
    proc = RedisProcess(os.path.join(str(tmp_path), "redis"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def system(tmp_path: os.PathLike[str]) -> Iterator[DAQSystem]:
    sut = DAQSystem(str(tmp_path))
    try:
        yield sut
    finally:
        sut.close()
        assert not os.path.exists(sut.run_dir), f"run dir left behind: {sut.run_dir}"
