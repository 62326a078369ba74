"""Bridges between two nodes' proxies (real proxies, real ZMQ over TCP loopback, real jobs in
threads): rows of node A's producer land in node B's CSV file once each, through CURVE; a key
not in the allow-list is refused and logged; bridged both ways (A -> B -> A) no message comes
back to its node; a proxy without keys listens on 127.0.0.1 only and says so; the original's
remote and cnc example files pass `enrgdaq check` unchanged."""

from __future__ import annotations

import csv
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import msgspec
import psutil
import pyarrow as pa
import pytest

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.jobs import remote_rings
from enrgdaq.daq.jobs.remote import (
    DAQJobRemote,
    DAQJobRemoteConfig,
    DAQJobRemoteProxy,
    DAQJobRemoteProxyConfig,
)
from enrgdaq.daq.jobs.store.csv import DAQJobStoreCSV, DAQJobStoreCSVConfig
from enrgdaq.daq.outbox import ROUTES_GRACE_SECONDS
from enrgdaq.daq.store.models import (
    DAQJobMessageStorePyArrow,
    DAQJobStoreConfig,
    DAQJobStoreConfigCSV,
    StorableDAQJobConfig,
)
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.message.curve import generate
from enrgdaq.message.proxy import MessageProxy
from enrgdaq.models import SupervisorInfo
from tests.harness.ports import free_port
from tests.harness.waiting import wait_for
from tests.unit.conftest import terminate_proxy_thread

UPSTREAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")
ROWS = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="rows.csv", add_date=False))


class DAQJobRowSource(DAQJob):
    config_type = StorableDAQJobConfig


class Node:
    """One node's message plane: a proxy on ipc sockets, and the jobs that run on it (threads)."""

    def __init__(self, name: str, base: str) -> None:
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"edq-{name}-", dir="/tmp")
        self.xsub, self.xpub = f"ipc://{self.dir}/xsub", f"ipc://{self.dir}/xpub"
        self.proxy = MessageProxy(self.xsub, self.xpub)
        self.proxy.start()
        self.out_dir = os.path.join(base, f"out-{name}")
        self.data_plane = DataPlaneSettings(run_dir=self.dir, ring_bytes=64 * 4096, slot_bytes=4096)
        self.jobs: list[tuple[DAQJob, threading.Thread | None]] = []

    def job(
        self, cls: type[DAQJob], config: Any, run: bool = True, routes: dict[str, list[str]] | None = None
    ) -> Any:
        job = cls(
            config,
            supervisor_info=SupervisorInfo(supervisor_id=self.name),
            zmq_xpub_url=self.xpub,
            zmq_xsub_url=self.xsub,
        )
        job.configure_data_plane(self.data_plane)
        if routes is not None:  # what the node's supervisor would send (none runs here)
            job.routes, job.stores_not_running = routes, frozenset()
        thread = threading.Thread(target=job.start, daemon=True) if run else None
        if thread is not None:
            thread.start()
        self.jobs.append((job, thread))
        return job

    def csv_store(self) -> DAQJobStoreCSV:
        config = DAQJobStoreCSVConfig(
            daq_job_type="DAQJobStoreCSV",
            daq_job_unique_id="store_csv",
            out_dir=self.out_dir,
            flush_interval=0.1,
        )
        return self.job(DAQJobStoreCSV, config)

    def source(self) -> DAQJobRowSource:
        config = StorableDAQJobConfig(
            daq_job_type="DAQJobRowSource", daq_job_unique_id="adc", store_config=ROWS
        )
        job = self.job(DAQJobRowSource, config, run=False)
        job._started_monotonic -= ROUTES_GRACE_SECONDS  # no stores of its own to wait for
        return job

    def close(self) -> None:
        for job, _thread in self.jobs:
            job.request_stop()
        for job, thread in self.jobs:
            if thread is not None:
                thread.join(10)
            job.free()
        terminate_proxy_thread(self.proxy)
        self.proxy.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def nodes(tmp_path: Any) -> Iterator[tuple[Node, Node]]:
    a, b = Node("node-a", str(tmp_path)), Node("node-b", str(tmp_path))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def keys(tmp_path: Any) -> dict[str, str]:
    """Key pairs of both nodes and of a stranger; node-b lets in node-a only."""
    key_dir, allowed = str(tmp_path / "keys"), str(tmp_path / "allowed")
    os.makedirs(allowed)
    for name in ("node-a", "node-b", "stranger"):
        generate(key_dir, name)
    shutil.copy(os.path.join(key_dir, "node-a.key"), allowed)
    return {"dir": key_dir, "allowed": allowed}


def rows_in(node: Node) -> list[int]:
    path = os.path.join(node.out_dir, "rows.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [int(r[0]) for r in csv.reader(f) if r and r[0].lstrip("-").isdigit()]


def send(source: DAQJobRowSource, numbers: range) -> None:
    for n in numbers:
        source._put_message_out(DAQJobMessageStorePyArrow(store_config=ROWS, table=pa.table({"n": [n]})))


def warm_up(source: DAQJobRowSource, node: Node) -> None:
    """PUB/SUB joins late: send numbered warm-up rows (negative) until one is in the file."""
    sent = iter(range(-1, -10_000, -1))

    def arrived() -> bool:
        send(source, range(next(sent), next(sent) - 1, -1))
        return any(n < 0 for n in rows_in(node))

    wait_for(arrived, 20, "the first row across the bridge", interval=0.05)


def bridge(
    tmp_path: Any,
    a: Node,
    b: Node,
    client_key: str = "node-a",
    curve: bool = True,
    proxy: bool = True,
    routes: dict[str, list[str]] | None = None,
) -> tuple[int, int]:
    """A DAQJobRemoteProxy on b (unless told), and a DAQJobRemote on a connected to it (CURVE
    unless told; ``routes``: a's stores, for payloads that come back to a); the proxy's two ports."""
    k = keys(tmp_path) if curve else {}
    pub_port, sub_port = free_port(), free_port()
    if proxy:
        start_proxy(b, pub_port, sub_port, k)
    a.job(
        DAQJobRemote,
        DAQJobRemoteConfig(
            daq_job_type="DAQJobRemote",
            daq_job_unique_id="remote",
            zmq_proxy_pub_url=f"tcp://127.0.0.1:{pub_port}",
            zmq_proxy_sub_urls=[f"tcp://127.0.0.1:{sub_port}"],
            secret_key_file=os.path.join(k["dir"], f"{client_key}.key_secret") if curve else None,
            server_public_key_file=os.path.join(k["dir"], "node-b.key") if curve else None,
        ),
        routes=routes,
    )
    return pub_port, sub_port


def start_proxy(b: Node, pub_port: int, sub_port: int, k: dict[str, str]) -> None:
    curve = bool(k)
    b.job(
        DAQJobRemoteProxy,
        DAQJobRemoteProxyConfig(
            daq_job_type="DAQJobRemoteProxy",
            daq_job_unique_id="remote_proxy",
            zmq_xsub_url=f"tcp://127.0.0.1:{pub_port}",
            zmq_xpub_url=f"tcp://127.0.0.1:{sub_port}",
            secret_key_file=os.path.join(k["dir"], "node-b.key_secret") if curve else None,
            authorized_keys_dir=k["allowed"] if curve else None,
        ),
        routes={"DAQJobStoreCSV": ["store_csv"]},  # payloads from the peer land in this node's ring
    )


def test_rows_of_node_a_land_once_in_node_bs_file_through_curve(
    nodes: tuple[Node, Node], tmp_path: Any
) -> None:
    a, b = nodes
    b.csv_store()
    bridge(tmp_path, a, b)
    source = a.source()
    warm_up(source, b)
    send(source, range(500))
    wait_for(lambda: set(range(500)) <= set(rows_in(b)), 20, "the 500 rows in node-b's file")
    twice = [n for n, c in Counter(rows_in(b)).items() if c > 1]
    assert not twice, f"rows stored twice: {twice[:5]}"
    assert rows_in(a) == [], "node-a has no store: nothing may be written there"
    (proxy,) = [job for job, _ in b.jobs if isinstance(job, DAQJobRemoteProxy)]
    assert proxy._ring_writer is not None and proxy._ring_writer.ring.write_seq >= 500, (
        "the rows did not land in node-b's ring"
    )


def remote_cursor(source: DAQJobRowSource) -> tuple[int, int]:
    """(the bridge's cursor in the producer's ring, the ring's write sequence)."""
    ring = source._ring_writer.ring
    index = ring.find_consumer("remote")
    assert index is not None
    return ring.cursor(index), ring.write_seq


def test_ring_payloads_cross_as_bytes_and_land_once(nodes: tuple[Node, Node], tmp_path: Any) -> None:
    """node-a has no store: its producer's tables go into its ring for the bridge alone, cross as
    Arrow IPC and are stored on node-b, each once; every slot is given back."""
    a, b = nodes
    b.csv_store()
    bridge(tmp_path, a, b)
    source = a.source()
    source.routes, source.stores_not_running = {"*": ["remote"]}, frozenset()
    send(source, range(500))
    assert source._ring_writer is not None, "the payloads did not go into the ring"
    wait_for(lambda: set(range(500)) <= set(rows_in(b)), 20, "the 500 rows in node-b's file")
    assert [n for n, c in Counter(rows_in(b)).items() if c > 1] == []
    wait_for(lambda: remote_cursor(source)[0] == remote_cursor(source)[1] == 500, 10, "every slot given back")


def test_while_the_peer_is_away_payloads_wait_in_the_ring(nodes: tuple[Node, Node], tmp_path: Any) -> None:
    a, b = nodes
    b.csv_store()
    pub_port, sub_port = bridge(tmp_path, a, b, curve=False, proxy=False)  # node-b's end not there yet
    source = a.source()
    source.routes, source.stores_not_running = {"*": ["remote"]}, frozenset()
    send(source, range(50))
    assert remote_cursor(source) == (0, 50), "payloads were given back with nobody to take them"
    start_proxy(b, pub_port, sub_port, {})
    wait_for(lambda: set(range(50)) <= set(rows_in(b)), 20, "the 50 rows once node-b's end is there")
    assert [n for n, c in Counter(rows_in(b)).items() if c > 1] == []


def test_a_bridge_whose_peer_never_comes_stops_holding_the_producer(
    nodes: tuple[Node, Node], tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Under ``block`` a full ring holds the producer; a bridge whose peer takes nothing stops
    saying it is alive there, so the ring drops it (``consumer_timeout_s``) and the producer goes
    on (its local stores keep their data)."""
    a, b = nodes
    monkeypatch.setattr(remote_rings, "STALL_SECONDS", 0.5)
    a.data_plane = msgspec.structs.replace(a.data_plane, consumer_timeout_s=1.0, block_timeout_s=0.2)
    bridge(tmp_path, a, b, curve=False, proxy=False)  # the peer's end is never there
    source = a.source()
    source.routes, source.stores_not_running = {"*": ["remote"]}, frozenset()
    done = threading.Event()
    threading.Thread(target=lambda: (send(source, range(200)), done.set()), daemon=True).start()
    assert done.wait(30), "a bridge with no peer holds the producer for good (64-slot ring, 200 sent)"
    assert "the peer took nothing for 0.5 s" in caplog.text


def test_a_key_not_in_the_allow_list_is_refused_and_logged(
    nodes: tuple[Node, Node], tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = nodes
    b.csv_store()
    caplog.set_level(logging.ERROR, logger="enrgdaq.message.curve")
    bridge(tmp_path, a, b, client_key="stranger")
    source = a.source()
    wait_for(
        lambda: (send(source, range(-1, -2, -1)), "not in the allow-list" in caplog.text)[1],
        20,
        "the refusal in the log",
        interval=0.05,
    )
    assert rows_in(b) == []


def test_two_links_between_one_pair_store_each_row_once(nodes: tuple[Node, Node], tmp_path: Any) -> None:
    """node-a's DAQJobRemote to node-b's proxy, and node-b's DAQJobRemote to node-a's proxy: both
    links carry node-a's ring payloads, with the same stamps; node-b's bridges share one table
    of what was taken, so each row is stored once."""
    a, b = nodes
    b.csv_store()
    bridge(tmp_path, a, b, curve=False)
    bridge(tmp_path, b, a, curve=False, routes={"DAQJobStoreCSV": ["store_csv"]})
    source = a.source()
    source.routes, source.stores_not_running = {"*": ["remote", "remote_proxy"]}, frozenset()
    send(source, range(300))
    wait_for(lambda: set(range(300)) <= set(rows_in(b)), 20, "the 300 rows in node-b's file")
    wait_for(lambda: remote_cursor(source)[0] == 300, 10, "both links to send everything")
    ring = source._ring_writer.ring
    index = ring.find_consumer("remote_proxy")
    assert index is not None
    wait_for(lambda: ring.cursor(index) == 300, 10, "the second link to send everything")
    counts = Counter(rows_in(b))
    assert [n for n in range(300) if counts[n] != 1] == []


def test_bridged_both_ways_no_message_comes_back_to_its_node(nodes: tuple[Node, Node], tmp_path: Any) -> None:
    """A -> B and B -> A: node-a's rows, stored on node-a, are in its file once each (none comes
    back over a bridge)."""
    a, b = nodes
    a.csv_store()
    bridge(tmp_path, a, b, curve=False)
    bridge(tmp_path / "back", b, a, curve=False)
    source = a.source()
    warm_up(source, a)
    send(source, range(300))
    wait_for(lambda: set(range(300)) <= set(rows_in(a)), 20, "the 300 rows in node-a's file")
    counts = Counter(rows_in(a))
    assert [n for n in range(300) if counts[n] != 1] == []


def test_a_proxy_without_keys_listens_on_loopback_only_and_says_so(
    nodes: tuple[Node, Node], caplog: pytest.LogCaptureFixture
) -> None:
    _a, b = nodes
    caplog.set_level(logging.WARNING)
    port = free_port()
    b.job(
        DAQJobRemoteProxy,
        DAQJobRemoteProxyConfig(
            daq_job_type="DAQJobRemoteProxy",
            zmq_xsub_url=f"tcp://0.0.0.0:{port}",
            zmq_xpub_url=f"tcp://0.0.0.0:{free_port()}",
        ),
    )

    def listening() -> list[str]:
        return [
            c.laddr.ip
            for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]

    assert wait_for(listening, 10, "the proxy to listen") == ["127.0.0.1"]
    assert "listening on 127.0.0.1 only" in caplog.text


def test_the_originals_remote_and_cnc_examples_pass_check_unchanged(tmp_path: Any) -> None:
    names = [
        "remote.toml",
        "remote_proxy.toml",
        "enrgdaq_supervisor_cnc_client.toml",
        "enrgdaq_supervisor_cnc_server.toml",
    ]
    for name in names:
        shutil.copy(os.path.join(UPSTREAM, name), tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "enrgdaq.cli.main", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "DAQJobRemote 'remote'" in result.stdout and "DAQJobRemoteProxy 'remote_proxy'" in result.stdout
    assert "supervisor config of node 'cnc-client-1'" in result.stdout
    assert "supervisor config of node 'cnc-server'" in result.stdout
