"""What the data plane is compared with, in the same run: a memory copy, and plain pyzmq inline."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np

from enrgdaq.bench.runner import reap, ring_geometry


def memcpy_gbps(values: int, seconds: float) -> tuple[float, float]:
    """(GB/s, messages/s) copying the payload (N rows x 16 bytes) slot by slot through a ring-sized buffer."""
    ring_bytes, slot_bytes = ring_geometry(values)
    payload = np.random.default_rng(1).random(values * 2)
    src = payload.view(np.uint8)
    slots = max(1, ring_bytes // slot_bytes)
    ring = np.zeros(slots * slot_bytes, dtype=np.uint8)
    n = 0
    start = time.perf_counter()
    while True:
        offset = (n % slots) * slot_bytes
        ring[offset : offset + src.nbytes] = src
        n += 1
        if n % 16 == 0 and time.perf_counter() - start >= seconds:
            break
    elapsed = time.perf_counter() - start
    return n * src.nbytes / elapsed / 1e9, n / elapsed


def _zmq_sink(url: str, count: int, out: Any, ready: Any, joined: Any) -> None:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(url)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    ready.set()
    latencies = []
    first = last = 0
    seen = -1
    lost = corrupted = 0
    for _ in range(count + 1000):
        frames = sock.recv_multipart(copy=False)
        now = time.monotonic_ns()
        a = np.frombuffer(frames[0].buffer, dtype=np.float64)
        b = np.frombuffer(frames[1].buffer, dtype=np.float64)
        seq, sent = int(a[0]), int(a[2])
        if seq < 0:
            joined.set()  # a probe: the subscription has reached the publisher
            continue
        n = b.size
        if np.add.reduce(a) != float(seq + sent) or np.add.reduce(b) != n * (n - 1) / 2 + seq:
            corrupted += 1
        lost += seq - seen - 1
        seen = seq
        first = first or now
        last = now
        latencies.append(now - sent)
        if seq == count - 1:
            break
    out.put((first, last, seen + 1, lost, corrupted, latencies))
    sock.close(0)
    ctx.term()


def zmq_inline(values: int, count: int) -> dict[str, Any]:
    """Plain pyzmq PUB -> SUB over ipc, the two column buffers as frames (copy=False)."""
    import zmq

    ctx_mp = mp.get_context("spawn")
    run_dir = tempfile.mkdtemp(prefix="edq-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    url = f"ipc://{run_dir}/zmq.sock"
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)  # no drops: this baseline measures speed, not flow control
    pub.bind(url)
    out: Any = ctx_mp.Queue()
    ready, joined = ctx_mp.Event(), ctx_mp.Event()
    proc = ctx_mp.Process(target=_zmq_sink, args=(url, count, out, ready, joined), daemon=True)
    proc.start()
    try:
        ready.wait(30)
        base = np.arange(values, dtype=np.float64)
        probe = np.full(values, -1.0)
        deadline = time.monotonic() + 10
        while not joined.is_set() and time.monotonic() < deadline:  # PUB drops until subscribed
            pub.send_multipart([probe.data, probe.data], copy=False)
            joined.wait(0.01)
        for seq in range(count):
            b = base.copy()  # new buffers each time: with copy=False ZMQ holds them until sent
            a = np.zeros(values, dtype=np.float64)
            b[0], a[0], a[2] = seq, seq, time.monotonic_ns()
            pub.send_multipart([a.data, b.data], copy=False)
        first, last, received, lost, corrupted, latencies = out.get(timeout=60)
    finally:
        reap([proc])
        pub.close(0)
        ctx.term()
        shutil.rmtree(run_dir, ignore_errors=True)
    elapsed = max((last - first) / 1e9, 1e-9)
    return {
        "received": received,
        "elapsed_s": elapsed,
        "lost": lost,
        "corrupted": corrupted,
        "latencies_ns": latencies,
    }
