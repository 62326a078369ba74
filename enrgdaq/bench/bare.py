"""A reference for the ring: two processes and numpy only, same payload, same ring geometry.

The producer copies the payload into the next free slot of a shared file and
advances a counter; the consumer sums every value of the slot and advances its
own. No framework, no Arrow, no messages: what moving these bytes between two
processes costs on this machine right now. It shows how much of the data
plane's time is the memory traffic itself, and it moves with the machine's
state (on the 2-core VM these numbers were measured on, the same script gives
about 25,000 or about 85,000 messages/s at 10,000 values from one run to the
next).
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import tempfile
import time
from typing import Any

import numpy as np

from enrgdaq.bench.runner import reap, ring_geometry

HEADER = 4096
WAIT_SECONDS = 50e-6  # both sides sleep while they wait, as the ring's own ends do


def _views(path: str, slots: int, slot_bytes: int, values: int) -> tuple[mmap.mmap, Any, list[Any]]:
    fd = os.open(path, os.O_RDWR)
    try:
        mm = mmap.mmap(fd, HEADER + slots * slot_bytes)
    finally:
        os.close(fd)
    counters = np.frombuffer(mm, dtype=np.int64, count=2)  # [written, read]
    data = [
        np.frombuffer(mm, dtype=np.float64, count=2 * values, offset=HEADER + i * slot_bytes)
        for i in range(slots)
    ]
    return mm, counters, data


def _consumer(path: str, slots: int, slot_bytes: int, values: int, count: int, out: Any) -> None:
    mm, counters, data = _views(path, slots, slot_bytes, values)
    expected = float(np.arange(2 * values, dtype=np.float64).sum())
    corrupted = 0
    first = 0
    for seq in range(count):
        while counters[0] <= seq:
            time.sleep(WAIT_SECONDS)
        first = first or time.perf_counter_ns()
        slot = data[seq % slots]
        if float(np.add.reduce(slot)) != expected + seq:
            corrupted += 1
        counters[1] = seq + 1
    out.put((first, time.perf_counter_ns(), corrupted))
    del counters, data, slot
    mm.close()


def bare_ring(values: int, seconds: float) -> tuple[float, float, int]:
    """(messages/s, GB/s, corrupted) for ``seconds`` of payloads of ``values`` values."""
    ring_bytes, slot_bytes = ring_geometry(values)
    slots = max(1, ring_bytes // slot_bytes)
    count = max(50, int(seconds * 4e9 / (values * 16)))
    fd, path = tempfile.mkstemp(prefix="edq-bare-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.ftruncate(fd, HEADER + slots * slot_bytes)
    os.close(fd)
    ctx = mp.get_context("spawn")
    out: Any = ctx.Queue()
    proc = ctx.Process(target=_consumer, args=(path, slots, slot_bytes, values, count, out), daemon=True)
    try:
        proc.start()
        mm, counters, data = _views(path, slots, slot_bytes, values)
        payload = np.arange(2 * values, dtype=np.float64)
        for seq in range(count):
            while seq - counters[1] >= slots:
                time.sleep(WAIT_SECONDS)
            payload[0] = seq  # stamped: the sum names the message
            data[seq % slots][:] = payload
            counters[0] = seq + 1
        first, last, corrupted = out.get(timeout=120)
        del counters, data
        mm.close()
    finally:
        reap([proc])
        os.unlink(path)
    elapsed = max((last - first) / 1e9, 1e-9)
    return (count - 1) / elapsed, count * values * 16 / elapsed / 1e9, corrupted
