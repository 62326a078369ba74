"""Running one benchmark scenario: a proxy here, producers and a consumer in their own processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time
from typing import Any

import msgspec
import psutil

from enrgdaq.bench.jobs import BenchResult, BenchSourceConfig, DAQJobBenchSink, DAQJobBenchSource
from enrgdaq.daq.models import DAQJobConfig
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.message.proxy import MessageProxy
from enrgdaq.models import SupervisorInfo

INFO = SupervisorInfo(supervisor_id="bench")


def ring_geometry(values: int) -> tuple[int, int]:
    """(ring bytes, slot bytes): slots just above the payload (64 KiB steps, room for the header),
    a ring sized to the latency budget: 8 MiB, at least 3 slots, so that it fits the 32 MiB L3."""
    step = 64 * 1024
    slot = -(-(values * 16) // step) * step + step
    return max(3 * slot, 8 * 2**20), slot


def _sink_main(
    urls: tuple[str, str], settings: DataPlaneSettings, expected: dict[int, int], out: Any, ready: Any
) -> None:
    config = DAQJobConfig(daq_job_type="DAQJobBenchSink", daq_job_unique_id="sink")
    sink = DAQJobBenchSink(
        config, expected=expected, supervisor_info=INFO, zmq_xpub_url=urls[0], zmq_xsub_url=urls[1]
    )
    sink.configure_data_plane(settings)
    ready.set()
    cpu = psutil.Process().cpu_times()
    try:
        _profiled(sink.start, "sink")
    finally:
        used = psutil.Process().cpu_times()
        sink.free()
        out.put((msgspec.msgpack.encode(sink.result), used.user + used.system - cpu.user - cpu.system))


def _source_main(
    urls: tuple[str, str], settings: DataPlaneSettings, config: BenchSourceConfig, go: Any, out: Any
) -> None:
    source = DAQJobBenchSource(config, supervisor_info=INFO, zmq_xpub_url=urls[0], zmq_xsub_url=urls[1])
    source.configure_data_plane(settings)
    go.wait(30)
    cpu = psutil.Process().cpu_times()
    thread_start = time.monotonic_ns()
    import threading

    runner = threading.Thread(target=_profiled, args=(source.start, f"source{config.producer}"), daemon=True)
    runner.start()
    while runner.is_alive() and source.counters.sent < config.count and not source._has_been_freed:
        time.sleep(0.005)
    used = psutil.Process().cpu_times()
    out.put(
        (
            "source",
            config.producer,
            source.counters.sent,
            thread_start,
            used.user + used.system - cpu.user - cpu.system,
            dict(source.counters.snapshot()),
        )
    )
    source.request_stop()
    runner.join(5)
    source.free()


def reap(procs: list[Any]) -> None:
    """Wait for the benchmark's processes; one that hangs is killed (nothing is left running).
    One that never started (a start that failed half-way through the list) is skipped, so that
    the caller's clean-up of its run directory still runs."""
    for proc in procs:
        if proc.pid is None:
            continue
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def _profiled(fn: Any, name: str) -> None:
    """Run ``fn``; with ENRGDAQ_BENCH_PROFILE=DIR, under cProfile, saved as DIR/<name>.prof."""
    directory = os.environ.get("ENRGDAQ_BENCH_PROFILE")
    if not directory:
        fn()
        return
    import cProfile

    profile = cProfile.Profile()
    profile.runcall(fn)
    profile.dump_stats(os.path.join(directory, f"{name}.prof"))


class Outcome(msgspec.Struct):
    result: BenchResult
    elapsed_s: float
    cpu_sink_s: float
    cpu_sources_s: float


def run_path(
    values: int,
    count: int,
    producers: int = 1,
    rate: float = 0.0,
    ring: bool = True,
    timeout: float = 120.0,
    channel: bool = True,
) -> Outcome:
    """One run: ``producers`` sources of ``count`` messages of ``values`` values into one sink."""
    ctx = mp.get_context("spawn")
    run_dir = tempfile.mkdtemp(prefix="edq-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    urls = (f"ipc://{run_dir}/xpub.sock", f"ipc://{run_dir}/xsub.sock")
    proxy = MessageProxy(urls[1], urls[0])
    proxy.start()
    ring_bytes, slot_bytes = ring_geometry(values)
    settings = DataPlaneSettings(run_dir=run_dir, enabled=ring, ring_bytes=ring_bytes, slot_bytes=slot_bytes)
    out: Any = ctx.Queue()
    ready, go = ctx.Event(), ctx.Event()
    expected = {p: count for p in range(producers)}
    procs = [ctx.Process(target=_sink_main, args=(urls, settings, expected, out, ready), daemon=True)]
    for p in range(producers):
        config = BenchSourceConfig(
            daq_job_type="DAQJobBenchSource",
            daq_job_unique_id=f"source{p}",
            values=values,
            count=count,
            rate=rate,
            producer=p,
            channel=channel,
        )
        procs.append(ctx.Process(target=_source_main, args=(urls, settings, config, go, out), daemon=True))
    try:
        for proc in procs:
            proc.start()
        ready.wait(30)
        go.set()
        sink_result: BenchResult | None = None
        cpu_sink = cpu_sources = 0.0
        deadline = time.monotonic() + timeout
        pending = producers + 1
        while pending:
            item = out.get(timeout=max(0.1, deadline - time.monotonic()))
            pending -= 1
            if isinstance(item, tuple) and item and item[0] == "source":
                cpu_sources += item[4]
            else:
                raw, cpu_sink = item
                sink_result = msgspec.msgpack.decode(raw, type=BenchResult)
        assert sink_result is not None
        elapsed = (sink_result.last_ns - sink_result.first_ns) / 1e9
        return Outcome(result=sink_result, elapsed_s=elapsed, cpu_sink_s=cpu_sink, cpu_sources_s=cpu_sources)
    finally:
        reap(procs)
        proxy.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
