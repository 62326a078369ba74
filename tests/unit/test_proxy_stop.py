"""The message proxy: binds its ipc sockets, forwards, and stops promptly and cleanly."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from enrgdaq.errors import DAQError
from enrgdaq.message.proxy import MessageProxy
from tests.unit.conftest import terminate_proxy_thread

STOP_ROUNDS = 200
PROMPT_SECONDS = 1.0


@pytest.fixture
def run_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="edq-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def proxy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "enrgdaq-proxy"]


def test_a_stopped_proxy_removes_its_socket_files_and_its_thread(run_dir: str) -> None:
    proxy = MessageProxy(f"ipc://{run_dir}/xsub", f"ipc://{run_dir}/xpub")
    proxy.start()
    assert sorted(os.listdir(run_dir)) == ["xpub", "xsub"]

    terminate_proxy_thread(proxy)
    proxy.stop()

    assert os.listdir(run_dir) == []
    assert proxy_threads() == []


def test_a_proxy_replaces_a_socket_file_left_by_an_unclean_stop(run_dir: str) -> None:
    stale = os.path.join(run_dir, "xsub")
    with open(stale, "w") as f:
        f.write("left behind")
    proxy = MessageProxy(f"ipc://{stale}", f"ipc://{run_dir}/xpub")

    proxy.start()
    try:
        assert stat.S_ISSOCK(os.stat(stale).st_mode)
    finally:
        terminate_proxy_thread(proxy)
        proxy.stop()


def test_a_stopped_proxy_cannot_be_restarted(run_dir: str) -> None:
    proxy = MessageProxy(f"ipc://{run_dir}/xsub", f"ipc://{run_dir}/xpub")
    proxy.start()
    terminate_proxy_thread(proxy)
    proxy.stop()

    with pytest.raises(DAQError, match="cannot be restarted"):
        proxy.start()


def test_a_proxy_that_cannot_bind_raises_an_error_saying_so(run_dir: str) -> None:
    too_long = f"ipc://{run_dir}/{'x' * 150}"
    proxy = MessageProxy(too_long, f"ipc://{run_dir}/xpub")
    try:
        with pytest.raises(DAQError, match="could not bind"):
            proxy.start()
    finally:
        proxy.stop()
    assert proxy_threads() == []


def test_a_proxy_whose_socket_dir_cannot_be_made_raises_an_error_at_start(
    run_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_dir = os.path.join(run_dir, "not-a-dir")
    with open(not_a_dir, "w"):
        pass
    thread_crashes: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", thread_crashes.append)
    proxy = MessageProxy(f"ipc://{not_a_dir}/xsub", f"ipc://{run_dir}/xpub")
    try:
        with pytest.raises(DAQError, match="could not bind"):
            proxy.start()
    finally:
        if thread_crashes:
            # The bug: the dead thread left its sockets open, so stop() alone would hang.
            proxy._context.destroy(linger=0)
            thread_crashes.clear()
        proxy.stop()
    assert thread_crashes == []


def test_stopping_a_proxy_always_returns_within_a_second(run_dir: str) -> None:
    for round_ in range(STOP_ROUNDS):
        proxy = MessageProxy(f"ipc://{run_dir}/xsub{round_}", f"ipc://{run_dir}/xpub{round_}")
        proxy.start()
        began = time.monotonic()
        proxy.stop()
        took = time.monotonic() - began
        assert took < PROMPT_SECONDS, f"stop() took {took:.1f} s in round {round_}"
