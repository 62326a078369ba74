"""Two nodes on this machine, bridged over TCP loopback with CURVE, beside bare pyzmq with CURVE.

The pipeline: node A's producer job (``DAQJobBenchSource``, through its ring) -> node A's
``DAQJobRemote`` (reads the ring, sends Arrow IPC over CURVE) -> node B's
``DAQJobRemoteProxy`` -> node B's proxy -> node B's consumer (``DAQJobBenchSink``, which reads
and checks every value). Six processes (two proxies in this one). The comparison, in the same
run: a bare pyzmq PUB (CURVE server) and SUB (CURVE client) in two processes moving the same
payloads, as fast as the subscriber takes them (XPUB_NODROP: nothing dropped on either side).
The two nodes share a redis-server (started here) for the bridges' acknowledgements: node A's
ring slots are given back only once node B has committed the payloads into its own ring.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any

import msgspec
import numpy as np
import zmq

from enrgdaq.bench.jobs import BenchResult, BenchSourceConfig, DAQJobBenchSource
from enrgdaq.bench.runner import _sink_main, reap, ring_geometry
from enrgdaq.constants import REDIS_URL_ENV
from enrgdaq.daq.jobs.remote import (
    DAQJobRemote,
    DAQJobRemoteConfig,
    DAQJobRemoteProxy,
    DAQJobRemoteProxyConfig,
)
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.local.redis_server import RedisServer
from enrgdaq.message.curve import generate, key_pair, public_key
from enrgdaq.message.proxy import MessageProxy
from enrgdaq.models import SupervisorInfo

BRIDGE_RING_BYTES = 64 * 2**20
NODE_A, NODE_B = SupervisorInfo(supervisor_id="bench-a"), SupervisorInfo(supervisor_id="bench-b")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bridge_main(
    kind: str, urls: tuple[str, str], settings: DataPlaneSettings, config: Any, stop: Any, redis_url: str
) -> None:
    os.environ[REDIS_URL_ENV] = redis_url
    cls = DAQJobRemote if kind == "remote" else DAQJobRemoteProxy
    info = NODE_A if kind == "remote" else NODE_B
    job = cls(config, supervisor_info=info, zmq_xpub_url=urls[0], zmq_xsub_url=urls[1])
    job.configure_data_plane(settings)
    if kind == "proxy":  # node B's routes, as its supervisor would send them: the sink
        job.routes, job.stores_not_running = {"DAQJobBenchSink": ["sink"]}, frozenset()
    threading.Thread(target=lambda: (stop.wait(), job.request_stop()), daemon=True).start()
    try:
        job.start()
    finally:
        job.free()


def _source_main(
    urls: tuple[str, str], settings: DataPlaneSettings, config: BenchSourceConfig, go: Any
) -> None:
    source = DAQJobBenchSource(config, supervisor_info=NODE_A, zmq_xpub_url=urls[0], zmq_xsub_url=urls[1])
    source.configure_data_plane(settings)
    source.routes, source.stores_not_running = {"*": ["remote"]}, frozenset()
    source._started_monotonic -= 10  # its routes are given: no start-up hold
    go.wait(30)
    try:
        source.start()
    finally:
        source.free()


class BridgeOutcome(msgspec.Struct):
    result: BenchResult
    elapsed_s: float


def run_bridge(values: int, count: int, timeout: float = 180.0) -> BridgeOutcome:
    """One run of the pipeline: ``count`` payloads of ``values`` values from node A to node B."""
    ctx = mp.get_context("spawn")
    base = tempfile.mkdtemp(prefix="edq-bridge-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    dirs = {n: os.path.join(base, n) for n in ("a", "b", "keys", "allowed")}
    for d in dirs.values():
        os.makedirs(d)
    generate(dirs["keys"], "a")
    generate(dirs["keys"], "b")
    shutil.copy(os.path.join(dirs["keys"], "a.key"), dirs["allowed"])
    urls = {n: (f"ipc://{dirs[n]}/xpub", f"ipc://{dirs[n]}/xsub") for n in ("a", "b")}
    proxies = [MessageProxy(urls[n][1], urls[n][0]) for n in ("a", "b")]
    for proxy in proxies:
        proxy.start()
    ring_bytes, slot_bytes = ring_geometry(values)
    # A ring is a bridge's window of payloads not yet acknowledged by the other node: a few
    # milliseconds' worth at least (the default ring is 256 MiB; bare pyzmq queues 1,000 messages).
    ring_bytes = max(ring_bytes, BRIDGE_RING_BYTES)
    plane = {
        n: DataPlaneSettings(run_dir=dirs[n], ring_bytes=ring_bytes, slot_bytes=slot_bytes)
        for n in ("a", "b")
    }
    in_port, out_port = _free_port(), _free_port()
    proxy_config = DAQJobRemoteProxyConfig(
        daq_job_type="DAQJobRemoteProxy",
        daq_job_unique_id="remote_proxy",
        zmq_xsub_url=f"tcp://127.0.0.1:{in_port}",
        zmq_xpub_url=f"tcp://127.0.0.1:{out_port}",
        secret_key_file=os.path.join(dirs["keys"], "b.key_secret"),
        authorized_keys_dir=dirs["allowed"],
    )
    remote_config = DAQJobRemoteConfig(
        daq_job_type="DAQJobRemote",
        daq_job_unique_id="remote",
        zmq_proxy_pub_url=f"tcp://127.0.0.1:{in_port}",
        zmq_proxy_sub_urls=[f"tcp://127.0.0.1:{out_port}"],
        secret_key_file=os.path.join(dirs["keys"], "a.key_secret"),
        server_public_key_file=os.path.join(dirs["keys"], "b.key"),
    )
    source_config = BenchSourceConfig(
        daq_job_type="DAQJobBenchSource", daq_job_unique_id="source0", values=values, count=count
    )
    redis = RedisServer(os.path.join(base, "redis"))
    redis_proc = subprocess.Popen(redis.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: Any = ctx.Queue()
    ready, go, stop = ctx.Event(), ctx.Event(), ctx.Event()
    procs = [
        ctx.Process(target=_sink_main, args=(urls["b"], plane["b"], {0: count}, out, ready), daemon=True),
        ctx.Process(
            target=_bridge_main,
            args=("proxy", urls["b"], plane["b"], proxy_config, stop, redis.url),
            daemon=True,
        ),
        ctx.Process(
            target=_bridge_main,
            args=("remote", urls["a"], plane["a"], remote_config, stop, redis.url),
            daemon=True,
        ),
        ctx.Process(target=_source_main, args=(urls["a"], plane["a"], source_config, go), daemon=True),
    ]
    try:
        redis.wait_ready()
        for proc in procs:
            proc.start()
        ready.wait(30)
        time.sleep(1.0)  # the bridge's TCP connection and subscriptions (a start-up, not measured)
        go.set()
        encoded, _cpu = out.get(timeout=timeout)
        result = msgspec.msgpack.decode(encoded, type=BenchResult)
    finally:
        stop.set()
        reap(procs)
        for proxy in proxies:
            proxy.stop()
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)
    elapsed = max((result.last_ns - result.first_ns) / 1e9, 1e-9)
    return BridgeOutcome(result=result, elapsed_s=elapsed)


def _bare_sub(
    port: int, server_public: bytes, client: tuple[bytes, bytes], values: int, count: int, out: Any
) -> None:
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.curve_publickey, sub.curve_secretkey = client
    sub.curve_serverkey = server_public
    sub.setsockopt(zmq.RCVHWM, 100)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{port}")
    expected = float(np.arange(2 * values, dtype=np.float64).sum())
    first = last = 0
    received = corrupted = lost = 0
    next_seq = 0
    while received < count:
        head, body = sub.recv_multipart(copy=False)
        seq = int.from_bytes(head.bytes, "little")
        if seq < 0 or seq > count:
            continue
        first = first or time.perf_counter_ns()
        data = np.frombuffer(body.buffer, dtype=np.float64)
        if float(np.add.reduce(data)) != expected + seq or data[0] != seq:  # arange, first value = seq
            corrupted += 1
        lost += max(0, seq - next_seq)
        next_seq = seq + 1
        received += 1
        last = time.perf_counter_ns()
    out.put((first, last, received, lost, corrupted))
    sub.close(linger=0)
    context.term()


def bare_curve(values: int, count: int) -> tuple[float, int, int]:
    """(messages/s, lost, corrupted) of bare pyzmq PUB -> SUB with CURVE over TCP loopback."""
    key_dir = tempfile.mkdtemp(prefix="edq-bare-curve-")
    try:
        generate(key_dir, "server")
        generate(key_dir, "client")
        server = key_pair(os.path.join(key_dir, "server.key_secret"))
        client = key_pair(os.path.join(key_dir, "client.key_secret"))
        server_public = public_key(os.path.join(key_dir, "server.key"))
    finally:
        shutil.rmtree(key_dir, ignore_errors=True)
    context = zmq.Context()
    pub = context.socket(zmq.XPUB)
    pub.curve_publickey, pub.curve_secretkey = server
    pub.curve_server = True
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.setsockopt(zmq.SNDHWM, 100)
    port = _free_port()
    pub.bind(f"tcp://127.0.0.1:{port}")
    ctx = mp.get_context("spawn")
    out: Any = ctx.Queue()
    proc = ctx.Process(target=_bare_sub, args=(port, server_public, client, values, count, out), daemon=True)
    proc.start()
    try:
        pub.recv()  # the subscription: the subscriber is there
        payload = np.arange(2 * values, dtype=np.float64)
        for seq in range(count):
            payload[0] = seq
            _send_lossless(pub, [seq.to_bytes(8, "little"), payload])
        first, last, received, lost, corrupted = out.get(timeout=180)
    finally:
        reap([proc])
        pub.close(linger=0)
        context.term()
    return (received - 1) / max((last - first) / 1e9, 1e-9), lost, corrupted


def _send_lossless(socket: zmq.Socket, frames: list[Any]) -> None:
    while True:
        try:
            # copied: the producer refills its payload in place, as the pipeline's does
            socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=True)
            return
        except zmq.Again:
            socket.poll(100, zmq.POLLOUT)
