"""What a consumer that hands out a pa.Table per message costs without any framework.

Two processes and a ring in /dev/shm with the benchmark's geometry (32 slots
of 256 KiB at 10,000 values): the producer copies a serialized Arrow record
batch (two float64 columns, its sequence number stamped into column a) into
the next free slot; the consumer does the least a store on the data plane
must do per message: rebuild the table zero-copy (``ipc.read_record_batch``,
``Table.from_batches``), take both columns as numpy views, sum every value,
check the stamp, free the slot. No messages, no guards, no dispatch: the
difference to ``enrgdaq bench``'s 1to1 row is what the framework costs.

    python bench/table_floor.py              # --values 10000 --count 30000 --runs 3
"""

from __future__ import annotations

import argparse
import mmap
import multiprocessing as mp
import os
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa

from enrgdaq.bench.runner import reap

HEADER = 4096
SLOTS = 32
WAIT_SECONDS = 50e-6


def payload(values: int) -> tuple[pa.Schema, bytes, int]:
    table = pa.table({"a": np.zeros(values), "b": np.arange(values, dtype=np.float64)})
    serialized = table.to_batches()[0].serialize()
    back = pa.ipc.read_record_batch(serialized, table.schema)
    stamp_at = back.column(0).buffers()[1].address - serialized.address
    return table.schema, serialized.to_pybytes(), stamp_at


def slot_bytes(values: int) -> int:
    return (values * 16 // 65536 + 2) * 65536


def producer(path: str, values: int, count: int) -> None:
    _, data, stamp_at = payload(values)
    size = slot_bytes(values)
    with open(path, "r+b") as f:
        mm = mmap.mmap(f.fileno(), HEADER + SLOTS * size)
    counters = np.frombuffer(mm, dtype=np.int64, count=2)  # [written, read]
    source = np.frombuffer(data, dtype=np.uint8).copy()
    stamp = source[stamp_at : stamp_at + 8].view(np.float64)
    slots = [
        np.frombuffer(mm, dtype=np.uint8, count=len(data), offset=HEADER + i * size) for i in range(SLOTS)
    ]
    for seq in range(count):
        while seq - counters[1] >= SLOTS:
            time.sleep(WAIT_SECONDS)
        stamp[0] = seq
        slots[seq % SLOTS][:] = source
        counters[0] = seq + 1
    del counters, slots
    mm.close()


def consumer(path: str, values: int, count: int, out: Any) -> None:
    schema, data, _ = payload(values)
    size = slot_bytes(values)
    with open(path, "r+b") as f:
        mm = mmap.mmap(f.fileno(), HEADER + SLOTS * size)
    counters = np.frombuffer(mm, dtype=np.int64, count=2)
    mapping = pa.py_buffer(mm)
    add, expected, bad = np.add.reduce, values * (values - 1) / 2, 0
    started = cpu = 0.0
    for seq in range(count):
        while counters[0] <= seq:
            time.sleep(WAIT_SECONDS)
        if not started:
            started, cpu = time.perf_counter(), time.process_time()
        buffer = mapping.slice(HEADER + (seq % SLOTS) * size, len(data))
        table = pa.Table.from_batches([pa.ipc.read_record_batch(buffer, schema)])
        a, b = table.column(0).to_numpy(), table.column(1).to_numpy()
        if add(a) != seq or add(b) != expected:
            bad += 1
        del a, b, table, buffer
        counters[1] = seq + 1
    elapsed = time.perf_counter() - started
    out.put((count / elapsed, (time.process_time() - cpu) / count * 1e6, bad))
    del counters, mapping
    mm.close()


def run(values: int, count: int) -> tuple[float, float, int]:
    fd, path = tempfile.mkstemp(prefix="edq-floor-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.ftruncate(fd, HEADER + SLOTS * slot_bytes(values))
    os.close(fd)
    ctx = mp.get_context("spawn")
    out: Any = ctx.Queue()
    procs = [
        ctx.Process(target=producer, args=(path, values, count)),
        ctx.Process(target=consumer, args=(path, values, count, out)),
    ]
    try:
        for proc in procs:
            proc.start()
        result: tuple[float, float, int] = out.get(timeout=300)
        return result
    finally:
        reap(procs)
        os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10_000)
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for number in range(1, args.runs + 1):
        rate, cpu_us, bad = run(args.values, args.count)
        print(
            f"run {number}: {rate:,.0f} messages/s, consumer {cpu_us:.1f} us CPU per message, "
            f"{bad} corrupted ({args.values:,} values, a pa.Table per message, no framework)"
        )


if __name__ == "__main__":
    main()
