"""Tabular rows through the ring between real processes: a consumer killed -9 loses none of them.

The producer is a real job in its own process (``python -m tests.system.tabular_roles``)
that sends ``DAQJobMessageStoreTabular`` rows with ``_put_message_out``; the
consumer is another process reading the ring by name. The test runs the
message proxy the producer's job connects to.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from enrgdaq.data import layout as L
from enrgdaq.data.ring import Ring
from enrgdaq.data.settings import ring_path
from enrgdaq.message.proxy import MessageProxy
from tests.harness.waiting import wait_for
from tests.system.tabular_roles import KEYS, rows_of

pytestmark = pytest.mark.system

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOTS = 8
COUNT = 400


class Role:
    """One role process; its files (ready, summary, log, out) live in the run directory."""

    def __init__(self, run_dir: str, key: str, **cfg: Any) -> None:
        self.key = key
        self.paths = {
            name: os.path.join(run_dir, f"{key}.{name}") for name in ("ready", "summary", "log", "out")
        }
        cfg = {"run_dir": run_dir, **{n: p for n, p in self.paths.items() if n != "out"}, **cfg}
        with open(self.paths["out"], "wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "tests.system.tabular_roles", json.dumps(cfg)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        with open(self.paths["out"], errors="replace") as f:
            return f.read()[-3000:]

    def ready(self) -> None:
        wait_for(
            lambda: os.path.exists(self.paths["ready"]) or self.popen.poll() is not None,
            30,
            f"{self.key} to be ready",
        )
        assert os.path.exists(self.paths["ready"]), f"{self.key} exited:\n{self.output()}"

    def finish(self, timeout: float) -> dict[str, Any]:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.key} still running after {timeout} s:\n{self.output()}") from None
        assert code == 0, f"{self.key} exited with {code}:\n{self.output()}"
        with open(self.paths["summary"]) as f:
            return json.load(f)

    def kill9(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        assert self.popen.wait(10) == -signal.SIGKILL

    def logged(self) -> list[dict[str, Any]]:
        """One entry per message the consumer received; a line torn by a kill is ignored."""
        if not os.path.exists(self.paths["log"]):
            return []
        with open(self.paths["log"]) as f:
            lines = f.read().split("\n")[:-1]
        return [json.loads(line) for line in lines]


@pytest.fixture
def run_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="edq-", dir="/dev/shm")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def proxy(run_dir: str) -> Iterator[tuple[str, str]]:
    message_proxy = MessageProxy(f"ipc://{run_dir}/xsub", f"ipc://{run_dir}/xpub")
    message_proxy.start()
    try:
        yield message_proxy.xpub_url, message_proxy.xsub_url
    finally:
        message_proxy.stop()


@pytest.fixture
def roles(run_dir: str) -> Iterator[list[Role]]:
    started: list[Role] = []
    yield started
    for role in started:
        if role.popen.poll() is None:
            role.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            role.popen.wait(10)


def ring_is_full(run_dir: str) -> bool:
    """The producer waits: the ring holds SLOTS payloads that its (dead) consumer has not released."""
    ring = Ring.attach(ring_path(run_dir, "rows"))
    try:
        index = ring.find_consumer("consumer")
        return index is not None and ring.write_seq - ring.entry(index, L.C_CURSOR) == SLOTS
    finally:
        ring.close()


def test_tabular_rows_survive_a_kill_9_of_their_consumer_every_row_arrives(
    run_dir: str, proxy: tuple[str, str], roles: list[Role]
) -> None:
    xpub_url, xsub_url = proxy
    producer = Role(
        run_dir,
        "producer",
        role="producer",
        xpub_url=xpub_url,
        xsub_url=xsub_url,
        consumer="consumer",
        count=COUNT,
        slots=SLOTS,
        slot_bytes=4096,
    )
    roles.append(producer)
    producer.ready()
    first = Role(run_dir, "first", role="consumer", name="consumer", sleep_s=0.02)  # killed mid-run
    roles.append(first)
    first.ready()
    wait_for(lambda: len(first.logged()) >= 60, 30, "the first consumer to log 60 messages")
    first.kill9()
    wait_for(lambda: ring_is_full(run_dir), 30, "the producer to wait on a full ring")
    second = Role(run_dir, "second", role="consumer", name="consumer")
    roles.append(second)

    sent = producer.finish(60)
    second.finish(60)

    entries = first.logged() + second.logged()
    numbered = [e for e in entries if e["tag"] != "end"]
    firsts: dict[int, dict[str, Any]] = {}
    for entry in numbered:
        firsts.setdefault(entry["data"][0][0], entry)
    assert list(firsts) == list(range(COUNT))  # each message, in order (again only what was unreleased)
    assert all(e["keys"] == KEYS and e["data"] == rows_of(e["data"][0][0]) for e in numbered)
    assert len(numbered) - COUNT <= SLOTS  # delivered twice: at most what the killed one held
    assert entries[-1]["tag"] == "end"
    assert (sent["unrouted"], sent["inline_large"], sent["ring_write_seq"]) == (0, 0, COUNT + 1)
