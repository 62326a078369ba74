"""Two whole nodes bridged over TCP: a producer's rows on node A are stored on node B once each,
also when either end of the bridge is killed with -9 while rows flow.

Each node is a separate process group on one shared Redis (supervisor, beat, a ``-Q default``
worker, its own run directory and message plane). Node A runs a producer, a CSV store (its own
copy: what was produced) and ``DAQJobRemote``; node B runs ``DAQJobRemoteProxy`` and a CSV
store. The test compares the two CSV files row for row.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
from collections import Counter

import pytest

from enrgdaq.message.curve import generate
from tests.harness.nodes import Node
from tests.harness.ports import free_port
from tests.harness.system import csv_rows
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.system

NODE_A = "bridge-a"
NODE_B = "bridge-b"
NODE_IDS = (NODE_A, NODE_B)  # the `nodes` fixture's two nodes (tests/system/conftest.py)


def bridged(a: Node, b: Node, rate_hz: float) -> None:
    """A -> B: B listens (loopback, no keys), A connects; A's producer's rows go to both stores."""
    into_b, out_of_b = free_port(), free_port()
    b.write(
        "bridge_in.toml",
        f"""
        daq_job_type = "DAQJobRemoteProxy"
        zmq_xsub_url = "tcp://127.0.0.1:{into_b}"
        zmq_xpub_url = "tcp://127.0.0.1:{out_of_b}"
    """,
    )
    b.csv_store(queue="default")
    a.write(
        "bridge_out.toml",
        f"""
        daq_job_type = "DAQJobRemote"
        zmq_proxy_pub_url = "tcp://127.0.0.1:{into_b}"
        zmq_proxy_sub_urls = ["tcp://127.0.0.1:{out_of_b}"]
    """,
    )
    a.write("seq.toml", seq_toml("seq.csv", rate_hz))
    a.csv_store(queue="default")
    b.start(concurrency=2)
    a.start(concurrency=3)


def rows(node: Node) -> Counter[tuple[str, ...]]:
    return Counter(tuple(row) for row in csv_rows(node.out_dir))


def test_rows_of_a_are_stored_on_b_once_each_across_a_kill_9_of_either_bridge(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    bridged(a, b, rate_hz=400.0)
    b.wait_state("bridge_in", "running", timeout=30)
    wait_for(lambda: len(rows(b)) >= 400, 30, f"rows from A in B's store (logs: {b.log_dir}, {a.log_dir})")

    for node, bridge in ((b, "bridge_in"), (a, "bridge_out")):  # the receiving end, then the sending one
        kill_9_and_wait_for_rows(node, bridge, b)

    os.remove(os.path.join(a.config_dir, "seq.toml"))  # a person stops the producer
    wait_for(
        lambda: a.registry.get("seq") is None or a.job("seq").state.value != "running", 20, "seq stopped"
    )
    try:
        wait_for(lambda: rows(b) == rows(a), 30, "B's rows to be A's rows", interval=0.5)
    except AssertionError:
        produced, stored = rows(a), rows(b)
        twice = sum(1 for n in stored.values() if n > 1)
        missing = sum(1 for row in produced if row not in stored)
        raise AssertionError(
            f"A has {len(produced)} rows, B {len(stored)}: {missing} missing, {twice} twice"
        ) from None
    stored = rows(b)
    assert max(stored.values()) == 1


def kill_9_and_wait_for_rows(node: Node, bridge: str, store: Node) -> None:
    """kill -9 of a running bridge while rows flow; its restart; rows in ``store`` again."""
    victim = node.job(bridge)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    at_kill = len(rows(store))
    wait_for(
        lambda: (r := node.job(bridge)).restarts >= 1 and r.state.value == "running" and r.pid != victim.pid,
        30,
        f"{bridge} on {node.supervisor_id} restarted",
    )
    wait_for(lambda: len(rows(store)) >= at_kill + 400, 30, f"rows flowing again after {bridge}'s restart")


def rows_of(node: Node, name: str) -> Counter[tuple[str, ...]]:
    path = os.path.join(node.out_dir, name)
    if not os.path.exists(path):
        return Counter()
    with open(path, newline="") as f:
        return Counter(tuple(row) for row in list(csv.reader(f))[1:])


def test_bridged_both_ways_with_curve_each_row_is_stored_once_on_each_node(
    nodes: tuple[Node, Node], tmp_path: os.PathLike[str]
) -> None:
    """A -> B and B -> A (two links between one pair, which also make a loop A -> B -> A), both
    with CURVE keys: each node's rows are stored once on each node; a key not in the allow-list
    is refused and the refusal is in the listening node's log."""
    a, b = nodes
    keys = os.path.join(str(tmp_path), "keys")
    for name in ("a", "b", "stranger"):
        generate(keys, name)
    for node, peer in ((a, "b"), (b, "a")):
        os.makedirs(os.path.join(node.base, "allowed"))
        shutil.copy(os.path.join(keys, f"{peer}.key"), os.path.join(node.base, "allowed"))
    ports = {node.supervisor_id: (free_port(), free_port()) for node in (a, b)}
    for node, me, peer in ((a, "a", b), (b, "b", a)):
        listen, connect = ports[node.supervisor_id], ports[peer.supervisor_id]
        node.write("bridge_in.toml", proxy_toml(listen, os.path.join(keys, f"{me}.key_secret"), node.base))
        node.write("bridge_out.toml", remote_toml(connect, keys, me, "b" if me == "a" else "a"))
        node.write("seq.toml", seq_toml(f"from_{me}.csv", rate_hz=200.0))
        node.csv_store(queue="default")
    b.start(concurrency=4)
    a.start(concurrency=4)
    for node in (a, b):
        for name in ("from_a.csv", "from_b.csv"):
            wait_for(
                lambda n=node, f=name: len(rows_of(n, f)) >= 200, 40, f"{name} rows on {node.supervisor_id}"
            )
    for node in (a, b):
        os.remove(os.path.join(node.config_dir, "seq.toml"))
    for node in (a, b):
        wait_for(lambda n=node: n.registry.get("seq") is None, 20, "the producers removed")
    for name in ("from_a.csv", "from_b.csv"):
        wait_for(lambda f=name: rows_of(a, f) == rows_of(b, f), 30, f"{name} the same on both nodes")
        assert max(rows_of(a, name).values()) == 1, f"{name}: a row stored twice"

    a.write("stranger.toml", remote_toml(ports[b.supervisor_id], keys, "stranger", "b"))
    wait_for(
        lambda: "refused a connection with a CURVE key not in the allow-list" in b.logs(),
        20,
        "B's log to name the refused key",
    )


def proxy_toml(ports: tuple[int, int], secret: str, base: str) -> str:
    return f"""
        daq_job_type = "DAQJobRemoteProxy"
        zmq_xsub_url = "tcp://127.0.0.1:{ports[0]}"
        zmq_xpub_url = "tcp://127.0.0.1:{ports[1]}"
        secret_key_file = "{secret}"
        authorized_keys_dir = "{os.path.join(base, "allowed")}"
    """


def remote_toml(ports: tuple[int, int], keys: str, me: str, server: str) -> str:
    return f"""
        daq_job_type = "DAQJobRemote"
        zmq_proxy_pub_url = "tcp://127.0.0.1:{ports[0]}"
        zmq_proxy_sub_urls = ["tcp://127.0.0.1:{ports[1]}"]
        secret_key_file = "{os.path.join(keys, me + ".key_secret")}"
        server_public_key_file = "{os.path.join(keys, server + ".key")}"
    """


def seq_toml(file_path: str, rate_hz: float) -> str:
    return f"""
        daq_job_type = "DAQJobSequence"
        rate_hz = {rate_hz}
        [store_config.csv]
        file_path = "{file_path}"
        add_date = false
    """
