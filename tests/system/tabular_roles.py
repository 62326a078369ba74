"""A producer job sending tabular rows, or a ring consumer logging them, as its own process.

``python -m tests.system.tabular_roles '<json>'``; started by
tests/system/test_ring_tabular_processes.py. The producer is a real job
(``DAQJob._put_message_out``, routes naming the consumer, a real message
plane): whether a message goes into the ring is the job layer's choice. The
consumer writes one JSON line per message to its log, with one ``os.write``
per batch *before* it releases the batch, so after a kill -9 the log holds at
least everything the ring's cursor had passed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from enrgdaq.daq.base import DAQJob
from enrgdaq.daq.store.models import (
    DAQJobMessageStoreTabular,
    DAQJobStoreConfig,
    DAQJobStoreConfigCSV,
    StorableDAQJobConfig,
)
from enrgdaq.data.reader import RingReader
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.models import SupervisorInfo
from tests.harness.waiting import wait_for

KEYS = ["n", "i", "label", "value"]


class DAQJobRows(DAQJob):
    config_type = StorableDAQJobConfig


def rows_of(n: int) -> list[list[Any]]:
    return [[n, i, f"row {n}.{i}", n + i / 4] for i in range(3)]


def write_json(path: str, data: dict[str, Any]) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.rename(path + ".tmp", path)


def producer(cfg: dict[str, Any]) -> int:
    store_config = DAQJobStoreConfig(csv=DAQJobStoreConfigCSV(file_path="rows.csv"))
    job = DAQJobRows(
        StorableDAQJobConfig(daq_job_type="DAQJobRows", daq_job_unique_id="rows", store_config=store_config),
        supervisor_info=SupervisorInfo(supervisor_id="tabular"),
        zmq_xpub_url=cfg["xpub_url"],
        zmq_xsub_url=cfg["xsub_url"],
    )
    job.configure_data_plane(
        DataPlaneSettings(
            run_dir=cfg["run_dir"],
            ring_bytes=cfg["slots"] * cfg["slot_bytes"],
            slot_bytes=cfg["slot_bytes"],
            policy="block",
            block_timeout_s=60.0,
            consumer_timeout_s=3600.0,
        )
    )
    job.routes = {"DAQJobStoreCSV": [cfg["consumer"]]}  # the supervisor's routes, as a store of this node
    write_json(cfg["ready"], {"pid": os.getpid()})
    for n in range(cfg["count"]):
        job._put_message_out(DAQJobMessageStoreTabular(store_config=store_config, keys=KEYS, data=rows_of(n)))
    job._put_message_out(DAQJobMessageStoreTabular(store_config=store_config, keys=KEYS, data=[], tag="end"))
    counters = job.counters
    summary = {"unrouted": counters.unrouted, "inline_large": counters.inline_large, **job.data_plane_stats()}
    write_json(cfg["summary"], summary)
    job.free()
    return 0


def consumer(cfg: dict[str, Any]) -> int:
    reader = RingReader(cfg["name"], cfg["run_dir"])
    deadline = time.monotonic() + cfg.get("timeout_s", 120.0)
    log = os.open(cfg["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        wait_for(lambda: (reader.scan(), reader.trackers)[1], deadline - time.monotonic(), "the ring")
    except AssertionError:
        return 2
    write_json(cfg["ready"], {"pid": os.getpid()})
    ended = False
    while not ended:
        if time.monotonic() > deadline:
            return 2
        messages = reader.drain()
        lines = []
        for message in messages:
            assert isinstance(message, DAQJobMessageStoreTabular), type(message).__name__
            lines.append(json.dumps({"tag": message.tag, "keys": message.keys, "data": message.data}) + "\n")
            ended = ended or message.tag == "end"
        if lines:
            os.write(log, "".join(lines).encode())  # logged before any of them is released
        for message in messages:
            message.release()
        if cfg.get("sleep_s"):
            time.sleep(cfg["sleep_s"])  # a slow consumer: the producer waits for it
        elif not messages:
            time.sleep(0.001)
    os.close(log)
    write_json(cfg["summary"], {"lost": reader.lost, "corrupted": reader.corrupted})
    reader.close()
    return 0


def main() -> int:
    cfg = json.loads(sys.argv[1])
    return producer(cfg) if cfg["role"] == "producer" else consumer(cfg)


if __name__ == "__main__":
    sys.exit(main())
