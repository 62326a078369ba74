"""Several nodes on one Redis: per-node queues, a job pinned to another node, a lost node.

Two nodes share one real redis-server; each has its own config directory (its own
supervisor id), supervisor worker, beat and a job worker started with the same plain
``-Q default``, as a person would start them on two machines.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from typing import Any

import psutil
import pytest

from enrgdaq.control.node import SupervisorRecord
from enrgdaq.daq.models import DAQJobMessageRoutes
from enrgdaq.daq.topics import Topic, exact
from enrgdaq.data.settings import ring_path
from enrgdaq.message.client import MessagePlaneClient, own_topic
from tests.harness.nodes import Node
from tests.harness.system import csv_rows
from tests.harness.waiting import stays, wait_for

pytestmark = pytest.mark.system

NODE_A = "nodes-a"
NODE_B = "nodes-b"
NODE_IDS = (NODE_A, NODE_B)  # the `nodes` fixture's two nodes (tests/system/conftest.py)


def two_nodes_with_a_pinned_producer(a: Node, b: Node) -> None:
    """A: its own job, and a producer pinned to B. B: its own job and a CSV store (whose rows
    show that the pinned producer sends through B's message plane and ring)."""
    a.life_job("life_a")
    a.write(
        "seq_b.toml",
        f"""
        daq_job_type = "DAQJobSequence"
        node = "{NODE_B}"
        rate_hz = 50.0
        [store_config.csv]
        file_path = "seq.csv"
    """,
    )
    b.life_job("life_b")
    b.csv_store(queue="default")
    b.start(concurrency=4)
    a.start(concurrency=2)


def sequence_job(node: Node, name: str, file_path: str, pinned_to: str | None = None) -> None:
    """A producer of rows ``seq, value`` into CSV stores (``file_path``), pinned or not."""
    pin = f'node = "{pinned_to}"' if pinned_to else ""
    node.write(
        f"{name}.toml",
        f"""
        daq_job_type = "DAQJobSequence"
        rate_hz = 50.0
        {pin}
        [store_config.csv]
        file_path = "{file_path}"
    """,
    )


def pinned_csv_store(node: Node, name: str, pinned_to: str, out_dir: str) -> None:
    node.write(
        f"{name}.toml",
        f"""
        daq_job_type = "DAQJobStoreCSV"
        node = "{pinned_to}"
        queue = "default"
        out_dir = "{out_dir}/"
    """,
    )


def sequence_in(directory: str, prefix: str) -> list[int]:
    """The ``seq`` column of the CSV files of ``directory`` whose names start with ``prefix``."""
    if not os.path.isdir(directory):
        return []
    seqs: list[int] = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(prefix):
            with open(os.path.join(directory, name), newline="") as f:
                seqs += [int(r[0]) for r in csv.reader(f) if r and r[0].isdigit()]
    return seqs


def published_routes(node: Node) -> DAQJobMessageRoutes:
    """The next routes message ``node``'s supervisor publishes on its message plane."""
    record = SupervisorRecord.load(node.registry.redis, node.supervisor_id)
    topic = exact(Topic.supervisor_broadcast(node.supervisor_id))
    client = MessagePlaneClient(record.xpub_url, record.xsub_url, [topic], own_topic("routes-probe"))
    try:

        def routes() -> DAQJobMessageRoutes | None:
            got = [m for m in client.receive(100) if isinstance(m, DAQJobMessageRoutes)]
            return got[-1] if got else None

        return wait_for(routes, 5, f"a routes message of node {node.supervisor_id}")
    finally:
        client.close()


def running_in_routes(node: Node, unique_id: str) -> DAQJobMessageRoutes | None:
    """``node``'s routes when they name ``unique_id`` as a running store, else None."""
    routes = published_routes(node)
    named = any(unique_id in ids for ids in routes.routes.values())
    return routes if named and unique_id not in routes.not_running else None


def child_of(pid: int | None, worker: psutil.Process) -> bool:
    return pid is not None and psutil.Process(pid).ppid() == worker.pid


def status(node: Node, supervisor_id: str, *flags: str) -> str:
    """``enrgdaq status`` as a person on ``node`` runs it."""
    argv = [sys.executable, "-m", "enrgdaq.cli.main", "status", *flags]
    done = subprocess.run(
        [*argv, "--redis-url", node.redis.url, "--supervisor", supervisor_id],
        capture_output=True,
        text=True,
        timeout=30,
        env=node.env,
        cwd=node.base,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def status_without_supervisor(
    node: Node, env: dict[str, str] | None = None, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``enrgdaq status`` without ``--supervisor`` (nor ``--redis-url``: the environment's)."""
    return subprocess.run(
        [sys.executable, "-m", "enrgdaq.cli.main", "status"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env or node.env,
        cwd=cwd or node.base,
    )


def status_json(node: Node, supervisor_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(status(node, supervisor_id, "--json"))
    return doc


def node_entry(doc: dict[str, Any], supervisor_id: str) -> dict[str, Any]:
    return next(n for n in doc["nodes"] if n["supervisor_id"] == supervisor_id)


def node_state_is(node: Node, supervisor_id: str, state: str) -> dict[str, Any] | None:
    """``node``'s status document when it shows node ``supervisor_id`` in ``state``, else None."""
    doc = status_json(node, node.supervisor_id)
    return doc if node_entry(doc, supervisor_id)["state"] == state else None


def test_a_pinned_job_runs_on_its_node_and_each_nodes_jobs_on_their_own_workers(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    two_nodes_with_a_pinned_producer(a, b)
    pinned = a.wait_state("seq_b", "running", timeout=30)
    own_a = a.wait_state("life_a", "running")
    own_b = b.wait_state("life_b", "running")
    b.wait_state("store_csv", "running")

    # Both workers were started with `-Q default`; each took only its own node's jobs.
    assert child_of(pinned.pid, b.worker()), f"seq_b runs in pid {pinned.pid}, not in B's worker"
    assert child_of(own_b.pid, b.worker()) and child_of(own_a.pid, a.worker())
    # With B's ring directory and message plane: its ring is in B's run dir, its rows reach B's store.
    wait_for(lambda: len(csv_rows(b.out_dir)) >= 10, 20, "the pinned producer's rows in B's CSV store")
    assert os.path.exists(ring_path(b.run_dir, "seq_b"))
    assert not os.path.exists(ring_path(a.run_dir, "seq_b"))

    doc = status_json(a, NODE_A)
    assert {n["supervisor_id"]: n["state"] for n in doc["nodes"]} == {NODE_A: "alive", NODE_B: "alive"}
    assert node_entry(doc, NODE_A)["jobs"] == {"running": 2}
    assert node_entry(doc, NODE_B)["last_heartbeat"]


def test_a_lost_node_is_shown_lost_and_its_pinned_job_waits_until_the_node_is_back(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    two_nodes_with_a_pinned_producer(a, b)
    first = a.wait_state("seq_b", "running", timeout=30)
    b.wait_state("life_b", "running")
    alive_key = f"enrgdaq:{NODE_B}:supervisor:alive"
    # Beat's heartbeat has taken over from the supervisor's start-up grace (20 s).
    wait_for(lambda: 0 < int(b.registry.redis.pttl(alive_key)) <= 3000, 15, "B's first heartbeat")

    b.kill_9()
    doc = wait_for(lambda: node_state_is(a, NODE_B, "lost"), 8, "node B shown lost from A", interval=0.2)
    assert doc is not None and node_entry(doc, NODE_A)["state"] == "alive"
    a.wait_state("seq_b", "waiting", timeout=10)
    # It waits in B's queue: never dispatched elsewhere, never running anywhere.
    stays(lambda: a.job("seq_b").state.value == "waiting", 3.0, "the pinned job to stay waiting")
    doc = status_json(a, NODE_A)
    seq_b = next(j for j in doc["jobs"] if j["unique_id"] == "seq_b")
    assert (seq_b["state"], seq_b["pid"]) == ("waiting", None)
    # B's own jobs: nothing runs them; shown waiting in its status and in the nodes list.
    own = status_json(a, NODE_B)
    assert {j["unique_id"]: j["state"] for j in own["jobs"]} == {"life_b": "waiting", "store_csv": "waiting"}
    assert node_entry(own, NODE_B)["jobs"] == {"waiting": 2}
    assert not own["supervisor_alive"]
    table = status(a, NODE_A).splitlines()
    [row_b] = [line.split() for line in table if line.strip().startswith(NODE_B)]
    assert row_b[-3:] == ["lost", "2", "waiting"], table

    b.restart()
    again = a.wait_state("seq_b", "running", timeout=30)
    assert again.task_id != first.task_id and child_of(again.pid, b.worker())
    wait_for(
        lambda: node_entry(status_json(a, NODE_A), NODE_B)["state"] == "alive",
        15,
        "B alive again",
        interval=0.2,
    )


def test_a_job_waiting_for_a_node_that_is_down_moves_when_its_file_names_another(
    nodes: tuple[Node, Node],
) -> None:
    a, _b = nodes  # node B is never started: its queue has no worker
    life = os.path.join(a.base, "life-moving")
    pinned = f'daq_job_type = "DAQJobLifeLog"\nlog_dir = "{life}"\nnode = "%s"\n'
    a.write("moving.toml", pinned % NODE_B)
    a.start(concurrency=2)
    first = a.wait_state("moving", "waiting")
    stays(lambda: a.job("moving").state.value == "waiting", 2.0, "the job pinned to B to wait")

    a.write("moving.toml", pinned % NODE_A)  # a person moves it to a node that runs
    moved = a.wait_state("moving", "running", timeout=20)
    assert moved.task_id != first.task_id and child_of(moved.pid, a.worker())


def test_a_store_pinned_to_another_node_stores_what_that_nodes_producers_send(
    nodes: tuple[Node, Node],
) -> None:
    """A store pinned from A's directory to B is in B's routes: B's own producer and a producer
    pinned from A to B write every row for it (before, only A's routes named it: B's producers
    sent inline and most rows reached nobody)."""
    a, b = nodes
    out = os.path.join(a.base, "pinned-out")
    pinned_csv_store(a, "store_b", NODE_B, out)
    sequence_job(a, "seq_ab", "from_a.csv", pinned_to=NODE_B)
    sequence_job(b, "seq_b", "from_b.csv")
    a.start(concurrency=1)
    b.start(concurrency=4)
    store = a.wait_state("store_b", "running", timeout=30)
    assert child_of(store.pid, b.worker()), f"store_b runs in pid {store.pid}, not in B's worker"
    # B announces it (as running); A, where it does not run, does not.
    in_b = wait_for(lambda: running_in_routes(b, "store_b"), 10, "store_b running in B's routes")
    assert in_b.routes == {"DAQJobStoreCSV": ["store_b"]}
    assert published_routes(a).routes == {}

    for producer, prefix in (("B's producer", "from_b"), ("the producer pinned from A", "from_a")):
        seqs = wait_for(
            lambda p=prefix: len(sequence_in(out, p)) >= 100 and sequence_in(out, p), 20, f"{producer}'s rows"
        )
        assert seqs[:100] == list(range(100)), f"{producer}: rows lost or repeated: {seqs[:100]}"
    assert b.job("seq_b").stats_dict.get("unrouted", 0) == 0
    assert a.job("seq_ab").stats_dict.get("unrouted", 0) == 0
    assert not os.listdir(b.out_dir) and not os.listdir(a.out_dir)


def test_a_pinned_store_whose_id_its_node_uses_is_held_and_shown_until_the_id_is_free(
    nodes: tuple[Node, Node], tmp_path: os.PathLike[str]
) -> None:
    """Rings and store consumers of a node are named by unique id: B's own ``store_csv`` keeps
    the id, A's ``store_csv`` pinned to B is neither routed nor run (A's status says why) until
    B's is removed. ``enrgdaq status`` without --supervisor shows this machine's node."""
    a, b = nodes
    out = os.path.join(a.base, "pinned-out")
    pinned_csv_store(a, "store_csv", NODE_B, out)
    b.csv_store(queue="default")
    sequence_job(b, "seq_b", "rows.csv")
    a.start(concurrency=1)
    b.start(concurrency=4)
    b.wait_state("store_csv", "running", timeout=30)
    a.wait_state("store_csv", "stopped", timeout=10)
    stays(lambda: a.job("store_csv").state.value == "stopped", 1.5, "A's store_csv to stay held")

    seqs = wait_for(lambda: len(s := sequence_in(b.out_dir, "rows")) >= 100 and s, 20, "rows in B's store")
    assert seqs[:100] == list(range(100))
    assert published_routes(b).routes == {"DAQJobStoreCSV": ["store_csv"]}
    assert not os.path.exists(out)

    # Without --supervisor: the node of the config directory of the environment (A's here).
    shown = status_without_supervisor(a)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"supervisor {NODE_A} (alive)"), shown.stdout
    assert f"store_csv: daq_job_unique_id 'store_csv' is already used on node '{NODE_B}'" in shown.stdout
    elsewhere = {k: v for k, v in a.env.items() if k not in ("ENRGDAQ_CONFIG_DIR", "ENRGDAQ_NODE")}
    shown = status_without_supervisor(a, env={**elsewhere, "ENRGDAQ_NODE": NODE_B}, cwd=str(tmp_path))
    assert shown.returncode == 0 and shown.stdout.startswith(f"supervisor {NODE_B} "), shown.stderr
    unknown = status_without_supervisor(a, env=elsewhere, cwd=str(tmp_path))
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr
    assert f"2 supervisors (nodes) in this Redis: {NODE_A}, {NODE_B}" in unknown.stderr
    assert "--supervisor" in unknown.stderr and "ENRGDAQ_NODE" in unknown.stderr

    # B's own store goes: A's pinned one runs on B and takes its place in B's routes.
    os.unlink(os.path.join(b.config_dir, "store_csv.toml"))
    moved = a.wait_state("store_csv", "running", timeout=30)
    assert child_of(moved.pid, b.worker()) and not a.job("store_csv").error
    wait_for(lambda: len(sequence_in(out, "rows")) >= 20, 20, "rows in the pinned store once the id is free")
