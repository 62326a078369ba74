"""CPU time per message on each side of the benchmark's path, one process, no other process involved.

The benchmark's own producer job (``DAQJobBenchSource``'s payload, through a
``StoreChannel`` or one ``_put_message_out`` call a message, into its ring) and
its own store (``DAQJobBenchSink``, through the store loop's drain, handling and release) take turns in one
process: the producer fills half the ring, the store takes it, and so on.
``time.process_time`` around each side gives what each costs per message,
which, unlike wall-clock rates, holds still while other programs load the
machine. (The message plane is a stand-in that sends nothing: a store that
keeps up needs no wake-up.) Compare two trees by running it with each on
``PYTHONPATH``:

    python bench/side_cpu.py --values 10000 --count 20000 --runs 3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from enrgdaq.bench.jobs import SINK, BenchSourceConfig, DAQJobBenchSink, DAQJobBenchSource
from enrgdaq.bench.runner import INFO, ring_geometry
from enrgdaq.daq.models import DAQJobConfig
from enrgdaq.daq.store.models import DAQJobMessageStorePyArrow, DAQJobStoreConfig
from enrgdaq.daq.topics import Topic
from enrgdaq.data.settings import DataPlaneSettings


class _Publisher:
    def send(self, message: Any) -> int:
        return 0


class _Plane:
    """Stands in for the message plane: the producer's wake-ups go nowhere (the store is polled)."""

    def publisher(self) -> _Publisher:
        return _Publisher()

    def close(self) -> None:
        pass


def one_run(values: int, count: int, api: str = "channel") -> tuple[float, float, Any]:
    """(producer us/message, store us/message, the store's BenchResult)."""
    run_dir = tempfile.mkdtemp(prefix="edq-sidecpu-", dir="/dev/shm")
    ring_bytes, slot_bytes = ring_geometry(values)
    settings = DataPlaneSettings(run_dir=run_dir, ring_bytes=ring_bytes, slot_bytes=slot_bytes)
    source = DAQJobBenchSource(
        BenchSourceConfig(daq_job_type="DAQJobBenchSource", daq_job_unique_id="source0", values=values),
        supervisor_info=INFO,
    )
    source._plane = _Plane()
    source.routes = {SINK: ["sink"]}
    source.configure_data_plane(settings)
    sink = DAQJobBenchSink(
        DAQJobConfig(daq_job_type=SINK, daq_job_unique_id="sink"), expected={0: count}, supervisor_info=INFO
    )
    sink.configure_data_plane(settings)
    # The source's loop body (DAQJobBenchSource.start), one message at a time.
    a, b = np.zeros(values), np.arange(values, dtype=np.float64)
    table = pa.table({"a": a, "b": b})
    target = msgspec.convert({}, DAQJobStoreConfig)
    topics = {Topic.store(SINK)}

    channel = source.store_channel(target, topics=topics) if api == "channel" else None

    def send(seq: int) -> None:
        b[0] = seq
        a[0], a[1], a[2] = seq, 0, time.monotonic_ns()
        if channel is not None:
            channel.put(table)
        else:
            source._put_message_out(
                DAQJobMessageStorePyArrow(store_config=target, table=table, topics=set(topics))
            )

    try:
        send(0)
        assert sink._rings is not None
        sink._rings.scan()
        sink._drain_ring(None)
        sink._write_out()
        batch = max(1, ring_bytes // slot_bytes // 2)
        produced = consumed = 0.0
        seq = 1
        while seq < count:
            k = min(batch, count - seq)
            t0 = time.process_time()
            for s in range(seq, seq + k):
                send(s)
            t1 = time.process_time()
            sink._drain_ring(None)
            sink._write_out()
            t2 = time.process_time()
            produced += t1 - t0
            consumed += t2 - t1
            seq += k
        return produced / (count - 1) * 1e6, consumed / (count - 1) * 1e6, sink.result
    finally:
        source.free()
        sink.free()
        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--values", type=int, default=10_000)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--api",
        choices=["channel", "message", "both"],
        default="both",
        help="the producer's way: StoreChannel.put, one _put_message_out call a message, or each in turn",
    )
    args = parser.parse_args()
    apis = ["channel", "message"] if args.api == "both" else [args.api]
    for number in range(args.runs):
        for api in apis:
            producer, store, result = one_run(args.values, args.count, api)
            print(
                f"run {number + 1} ({api:7}): producer {producer:.1f} us CPU per message, "
                f"store {store:.1f} us CPU per message ({args.values:,} values; "
                f"received {result.received}, lost {result.lost}, "
                f"duplicated {result.duplicated}, corrupted {result.corrupted})"
            )


if __name__ == "__main__":
    main()
