"""A run that starts on a machine without its node's message plane fails with a message that
says what to do, instead of running with its data going nowhere (a worker on another host that
took the node's queue)."""

from __future__ import annotations

import os
from typing import Any

import zmq

from enrgdaq.control.node import SupervisorRecord, plane_missing_here
from enrgdaq.models import SupervisorInfo


def record(run_dir: str) -> SupervisorRecord:
    return SupervisorRecord(
        supervisor_id="daq-01",
        info=SupervisorInfo(supervisor_id="daq-01"),
        xpub_url=f"ipc://{run_dir}/xpub",
        xsub_url=f"ipc://{run_dir}/xsub",
        run_dir=run_dir,
        hostname="daq-host",
    )


def test_a_node_whose_sockets_are_here_is_reachable(tmp_path: Any) -> None:
    context = zmq.Context()
    sockets = [context.socket(zmq.XPUB), context.socket(zmq.XSUB)]
    try:
        for socket, name in zip(sockets, ("xpub", "xsub"), strict=True):
            socket.bind(f"ipc://{tmp_path}/{name}")
        assert plane_missing_here(record(str(tmp_path))) is None
    finally:
        for socket in sockets:
            socket.close(linger=0)
        context.term()


def test_a_node_whose_run_directory_is_not_on_this_machine_is_named_with_what_to_do(tmp_path: Any) -> None:
    elsewhere = os.path.join(str(tmp_path), "not-here")
    why = plane_missing_here(record(elsewhere))
    assert why is not None
    assert "node 'daq-01'" in why and "daq-host" in why and elsewhere in why
    assert "Make this machine a node of its own" in why


def test_a_node_served_over_tcp_is_not_judged_by_files(tmp_path: Any) -> None:
    tcp = record(str(tmp_path))
    tcp.xpub_url, tcp.xsub_url = "tcp://10.0.0.1:5555", "tcp://10.0.0.1:5556"
    assert plane_missing_here(tcp) is None
