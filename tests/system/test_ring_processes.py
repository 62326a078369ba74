"""The ring between real processes: stress, kill -9 of either side, two producers, a slow consumer.

Producers and consumers are fresh interpreters (``python -m tests.system.ring_roles``),
unrelated to each other and to the test: a consumer finds its rings by name in
the run directory. The test watches a ring by mapping it too (``Ring.attach``,
which registers nothing).
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
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

from enrgdaq.data import layout as L
from enrgdaq.data.ring import Ring
from enrgdaq.data.settings import ring_path
from tests.harness.waiting import stays, wait_for

pytestmark = pytest.mark.system

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOTS = 8


@dataclass
class Role:
    key: str
    popen: subprocess.Popen[bytes]
    paths: dict[str, str]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        with open(self.paths["out"], errors="replace") as f:
            return f.read()[-3000:]

    def ready(self, timeout: float = 30) -> dict[str, Any]:
        wait_for(
            lambda: os.path.exists(self.paths["ready"]) or not self.alive(),
            timeout,
            f"{self.key} to be ready",
        )
        assert os.path.exists(self.paths["ready"]), f"{self.key} exited:\n{self.output()}"
        return self._json("ready")

    def finish(self, timeout: float) -> dict[str, Any]:
        """Wait for a clean exit; its summary."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.key} still running after {timeout} s:\n{self.output()}") from None
        assert code == 0, f"{self.key} exited with {code}:\n{self.output()}"
        return self._json("summary")

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        assert self.popen.wait(10) == -signal.SIGKILL

    def entries(self) -> list[tuple[str, int, str]]:
        """A consumer's log: (ring, seq, status) per message it received; a torn last line is ignored."""
        if not os.path.exists(self.paths["log"]):
            return []
        with open(self.paths["log"]) as f:
            text = f.read()
        lines = text.split("\n")[:-1]  # whatever follows the last newline was cut by a kill
        found = []
        for line in lines:
            ring, seq, status = line.split(" ")
            found.append((ring, int(seq), status))
        return found

    def _json(self, name: str) -> dict[str, Any]:
        with open(self.paths[name]) as f:
            return json.load(f)


class Roles:
    """Role processes of one test; every one still running is killed by close()."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.started: list[Role] = []

    def start(self, key: str, **cfg: Any) -> Role:
        paths = {
            name: os.path.join(self.run_dir, f"{key}.{name}") for name in ("ready", "summary", "log", "out")
        }
        cfg = {"run_dir": self.run_dir, **{n: p for n, p in paths.items() if n != "out"}, **cfg}
        with open(paths["out"], "wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "tests.system.ring_roles", json.dumps(cfg)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        role = Role(key, popen, paths)
        self.started.append(role)
        return role

    def producer(self, key: str, producer_id: str, consumers: list[str], **cfg: Any) -> Role:
        cfg = {"slots": SLOTS, "slot_bytes": 8192, "rows": 64, "count": None, **cfg}
        return self.start(key, role="producer", producer_id=producer_id, consumers=consumers, **cfg)

    def consumer(self, key: str, name: str, rings: int = 1, **cfg: Any) -> Role:
        return self.start(key, role="consumer", name=name, rings=rings, **cfg)

    def close(self) -> None:
        for role in self.started:
            if role.alive():
                role.popen.kill()
        for role in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                role.popen.wait(10)


@pytest.fixture
def run_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="edq-", dir="/dev/shm")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def roles(run_dir: str) -> Iterator[Roles]:
    started = Roles(run_dir)
    try:
        yield started
    finally:
        started.close()


@contextlib.contextmanager
def watching(path: str) -> Iterator[Ring]:
    """The ring at ``path``, mapped by the test (read-only use: no consumer entry)."""
    ring = wait_for(lambda: attach_if_ready(path), 30, f"ring {path}")
    try:
        yield ring
    finally:
        ring.close()


def attach_if_ready(path: str) -> Ring | None:
    try:
        return Ring.attach(path)
    except Exception:  # not created yet, or not initialised yet
        return None


def seqs_of(entries: list[tuple[str, int, str]], ring: str | None = None) -> list[int]:
    return [seq for name, seq, _status in entries if ring is None or name == ring]


def assert_all_intact(entries: list[tuple[str, int, str]], ends: int = 1) -> None:
    bad = [e for e in entries if e[2] not in ("ok", "end")]
    assert not bad, f"corrupted messages: {bad[:10]}"
    assert [e[2] for e in entries].count("end") == ends


def consumer_index(ring: Ring, name: str) -> int:
    index = ring.find_consumer(name)
    assert index is not None, f"no entry for {name}"
    return index


# -- a. stress ---------------------------------------------------------------------------------


def test_two_consumers_in_other_processes_get_every_message_once_in_order_and_intact(
    run_dir: str, roles: Roles
) -> None:
    count = 20_000
    consumers = [roles.consumer(name, name) for name in ("c1", "c2")]
    producer = roles.producer("p", "p", ["c1", "c2"], count=count)

    stats = producer.finish(120)
    summaries = [c.finish(60) for c in consumers]

    assert (stats["start"], stats["end"], stats["write_seq"]) == (0, count, count + 1)
    assert stats["dropped"] == 0
    assert stats["blocked_ns"] > 0, "a ring of 8 slots never made the producer wait for its consumers"
    for consumer, summary in zip(consumers, summaries, strict=True):
        entries = consumer.entries()
        assert seqs_of(entries) == list(range(count + 1)), f"{consumer.key}: lost, duplicated or out of order"
        assert_all_intact(entries)
        assert summary == {"lost": 0, "corrupted": 0}


# -- b. kill -9 of a consumer ----------------------------------------------------------------


def test_a_consumer_killed_mid_stream_holds_the_producer_and_its_successor_resumes_from_its_cursor(
    run_dir: str, roles: Roles
) -> None:
    count, hold = 3000, 3
    first = roles.consumer("c-run1", "c", hold=hold)
    producer = roles.producer("p", "p", ["c"], count=count)
    with watching(ring_path(run_dir, "p")) as ring:
        wait_for(lambda: len(first.entries()) >= 1000, 60, "the first consumer to be mid-stream")
        first.kill9()
        index = consumer_index(ring, "c")
        cursor_at_kill = ring.cursor(index)

        # The dead consumer's cursor holds the ring: the producer fills it and waits.
        wait_for(lambda: ring.write_seq == cursor_at_kill + SLOTS, 30, "the producer to fill the ring")
        stays(
            lambda: ring.write_seq == cursor_at_kill + SLOTS and producer.alive(),
            0.5,
            "the producer waiting behind the dead consumer",
        )
        assert ring.cursor(index) == cursor_at_kill
        assert ring.state(index) == L.ACTIVE

        second = roles.consumer("c-run2", "c", hold=hold)
        stats = producer.finish(60)
        second.finish(60)

    before, after = first.entries(), second.entries()
    assert_all_intact(before, ends=0)
    assert_all_intact(after)
    run1, run2 = seqs_of(before), seqs_of(after)
    assert run1 == list(range(len(run1))), "the first run got a gap or a duplicate"
    assert run2 == list(range(cursor_at_kill, count + 1)), "the second run did not resume at the cursor"
    assert set(run1) | set(run2) == set(range(count + 1)), "a message was lost"
    # Again only what the first run had received and not released (at least once).
    again = sorted(set(run1) & set(run2))
    assert again == list(range(cursor_at_kill, run1[-1] + 1))
    assert len(again) >= 1, "the killed consumer held nothing back (its last messages were unreleased)"
    assert stats["dropped"] == 0 and stats["blocked_ns"] > 0


# -- c. kill -9 of the producer ------------------------------------------------------------------


def test_a_producer_killed_mid_stream_leaves_a_consistent_ring_that_its_successor_continues(
    run_dir: str, roles: Roles
) -> None:
    consumer = roles.consumer("c", "c")
    # Big payloads: the producer spends most of its time copying into a slot when it is killed.
    geometry = {"slot_bytes": 32768, "rows": 1200}
    first = roles.producer("p-run1", "p", ["c"], **geometry)
    started = first.ready()
    path = ring_path(run_dir, "p")
    with watching(path) as ring:
        wait_for(lambda: ring.write_seq >= 2000, 60, "the producer to be mid-stream")
        first.kill9()
        written = ring.write_seq
        identity = (os.stat(path).st_ino, os.stat(path).st_size)

        # The slot table only names committed messages; the slot being rewritten at the kill names
        # none (it is marked before its data changes), so nobody can take its half-written data.
        for slot in range(SLOTS):
            seq = ring.slot_seq(slot)
            if seq == L.EMPTY_SEQ:
                assert slot == written % SLOTS, (slot, written)
                continue
            assert seq % SLOTS == slot and written - SLOTS <= seq <= written, (slot, seq, written)
        # The consumer takes every committed message intact, and nothing half-written after them.
        wait_for(lambda: len(consumer.entries()) >= written, 30, "the consumer to take what was committed")
        stays(lambda: len(consumer.entries()) == written, 0.3, "nothing more than what was committed")
        assert seqs_of(consumer.entries()) == list(range(written))
        assert_all_intact(consumer.entries(), ends=0)

        second = roles.producer("p-run2", "p", ["c"], count=500, **geometry)
        resumed = second.ready()
        stats = second.finish(60)
        consumer.finish(60)
        assert (os.stat(path).st_ino, os.stat(path).st_size) == identity, "the ring file was made anew"
        assert ring.word(L.PRODUCER_EPOCH_W) == started["epoch"] + 1

    assert (started["start"], started["epoch"]) == (0, 1)
    assert (resumed["start"], resumed["epoch"]) == (written, 2)
    assert stats["end"] == written + 500
    entries = consumer.entries()
    assert seqs_of(entries) == list(range(written + 501))
    assert_all_intact(entries)


# -- d. two producers, one consumer ------------------------------------------------------------------


def test_one_consumer_reads_the_rings_of_two_producers(run_dir: str, roles: Roles) -> None:
    count = 5000
    consumer = roles.consumer("c", "store", rings=2)
    producers = [roles.producer(pid, pid, ["store"], count=count) for pid in ("pa", "pb")]
    assert sorted(consumer.ready()["rings"]) == ["ring-pa", "ring-pb"]

    for producer in producers:
        assert producer.finish(120)["end"] == count
    assert consumer.finish(60) == {"lost": 0, "corrupted": 0}

    entries = consumer.entries()
    assert_all_intact(entries, ends=2)
    for ring in ("ring-pa", "ring-pb"):
        assert seqs_of(entries, ring) == list(range(count + 1)), f"{ring}: lost, duplicated or out of order"


# -- e. a slow consumer ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_slow_consumer_for_30_s_keeps_memory_bounded_and_loses_nothing(run_dir: str, roles: Roles) -> None:
    window = 30.0
    stop = os.path.join(run_dir, "stop")
    consumer = roles.consumer("c", "c", sleep_s=0.05)
    producer = roles.producer("p", "p", ["c"], rows=256, stop_file=stop)
    path = ring_path(run_dir, "p")
    with watching(path) as ring:
        wait_for(lambda: ring.write_seq >= 100, 60, "the producer to warm up")
        size = os.stat(path).st_size
        procs = {"producer": psutil.Process(producer.pid), "consumer": psutil.Process(consumer.pid)}
        base = {name: p.memory_info().rss for name, p in procs.items()}
        peak = dict(base)
        blocked_before, written_before = ring.stats()["blocked_ns"], ring.write_seq

        def bounded() -> bool:
            if not (producer.alive() and consumer.alive()):
                return False
            for name, proc in procs.items():
                peak[name] = max(peak[name], proc.memory_info().rss)
            return os.stat(path).st_size == size and all(
                peak[name] - base[name] < 4 * 2**20 for name in procs
            )

        stays(bounded, window, "bounded memory and a ring file of a constant size", interval=0.25)
        blocked = ring.stats()["blocked_ns"] - blocked_before
        written = ring.write_seq - written_before
        # The consumer takes 8 messages every 50 ms: the producer waits for most of the window.
        assert blocked > 0.5 * window * 1e9, f"the producer waited only {blocked / 1e9:.1f} s"
        assert written < window / 0.05 * SLOTS * 1.5, f"{written} messages: the producer did not wait"

        open(stop, "w").close()
        stats = producer.finish(30)
        assert consumer.finish(30) == {"lost": 0, "corrupted": 0}
    entries = consumer.entries()
    assert seqs_of(entries) == list(range(stats["end"] + 1))
    assert_all_intact(entries)
    growth = {name: (peak[name] - base[name]) // 1024 for name in procs}
    print(f"slow consumer: {stats['end']} messages, RSS growth (KiB) {growth}, blocked {blocked / 1e9:.1f} s")
