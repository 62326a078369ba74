"""The simulated CAEN digitizer through the whole pipeline, beside the same work without it.

Pipeline: ``DAQJobCAENDigitizer`` (simulated board, 8 channels, record length 1024, a software
trigger at the given rate, so every pulse is an event) in its own process sends its waveform
rows through its ring to ``DAQJobStoreParquet`` in another process, which writes them to a
Parquet file (zstd). The run is read back: every event the board triggered must be in the
file with all its rows (``filter_threshold_mv = 0`` keeps every sample: 8,192 rows, 136 KiB
per event), and the board must have lost none.

Floor, in the same run: the same simulated board and waveform processing driven by a virtual
clock (no waiting), and pyarrow's own ``ParquetWriter`` writing the same tables, in one process:
what the events cost without the framework (no ring, no second process, no store).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import threading
import time
from typing import Any

import msgspec
import psutil
import pyarrow as pa

from enrgdaq.bench.runner import INFO, reap
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import DAQError
from enrgdaq.message.proxy import MessageProxy

CHANNELS = 8
RECORD_LENGTH = 1024
STORE_ID = "bench_parquet"
RING_BYTES = 256 * 2**20
SLOT_BYTES = 4 * 2**20


class DigitizerRun(msgspec.Struct):
    """One rate: what the board triggered and lost, what reached the file, and the CPU it took."""

    rate_hz: float
    seconds: float
    events: int
    lost: int
    stored_events: int
    stored_rows: int
    digitizer_cpu_s: float
    store_cpu_s: float

    @property
    def events_per_s(self) -> float:
        return self.stored_events / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_1000(self) -> float:
        """CPU of both processes per 1,000 stored events, in ms."""
        total = self.digitizer_cpu_s + self.store_cpu_s
        return 1e6 * total / self.stored_events if self.stored_events else 0.0

    @property
    def complete(self) -> bool:
        return (
            self.lost == 0
            and self.stored_events == self.events
            and self.stored_rows == self.events * (CHANNELS * RECORD_LENGTH)
        )


class FloorRun(msgspec.Struct):
    events: int
    simulate_cpu_s: float
    write_cpu_s: float

    @property
    def cpu_ms_per_1000(self) -> float:
        return 1e6 * (self.simulate_cpu_s + self.write_cpu_s) / self.events if self.events else 0.0

    @property
    def write_events_per_s(self) -> float:
        """What pyarrow's writer alone keeps up with (CPU-bound, one core)."""
        return self.events / self.write_cpu_s if self.write_cpu_s else 0.0


def digitizer_config(rate_hz: float) -> Any:
    from enrgdaq.daq.jobs.caen.digitizer_config import DAQJobCAENDigitizerConfig

    return msgspec.convert(
        {
            "daq_job_type": "DAQJobCAENDigitizer",
            "daq_job_unique_id": "digitizer",
            "connection_type": "SIMULATED",
            "simulated_trigger_rate_hz": rate_hz,
            "channel_enable_mask": 2**CHANNELS - 1,
            "record_length": RECORD_LENGTH,
            "max_num_events_blt": 64,
            "sw_trigger_mode": "ACQ_ONLY",
            "filter_threshold_mv": 0,
            "waveform_store_config": {"parquet": {"file_path": "waveform.parquet"}},
            "stats_store_config": {"parquet": {"file_path": "stats.parquet"}},
        },
        DAQJobCAENDigitizerConfig,
    )


def _cpu() -> float:
    used = psutil.Process().cpu_times()
    return float(used.user + used.system)


def _digitizer_main(urls: tuple[str, str], settings: DataPlaneSettings, rate_hz: float, seconds: float,
                    go: Any, out: Any) -> None:  # fmt: skip
    from enrgdaq.daq.jobs.caen.digitizer import DAQJobCAENDigitizer

    job = DAQJobCAENDigitizer(
        digitizer_config(rate_hz), supervisor_info=INFO, zmq_xpub_url=urls[0], zmq_xsub_url=urls[1]
    )
    job.configure_data_plane(settings)
    job.routes, job.stores_not_running = {"DAQJobStoreParquet": [STORE_ID]}, frozenset()
    job._started_monotonic -= 10  # its routes are given: no start-up hold
    driver = job.new_driver()
    job.new_driver = lambda: driver  # type: ignore[method-assign]  # its stats are read below
    go.wait(60)
    cpu, started = _cpu(), time.monotonic()
    runner = threading.Thread(target=job.start, daemon=True)
    runner.start()
    time.sleep(seconds)  # the measured acquisition: the board triggers in real time
    job.request_stop()
    runner.join(60)
    elapsed, used = time.monotonic() - started, _cpu() - cpu
    stats = driver.stats()
    sent = job.counters.sent
    job.free()
    out.put(("digitizer", elapsed, used, stats.events_read, stats.events_lost, sent))


def _store_main(urls: tuple[str, str], settings: DataPlaneSettings, out_dir: str, ready: Any,
                expected: Any, out: Any) -> None:  # fmt: skip
    from enrgdaq.daq.jobs.store.parquet import DAQJobStoreParquet, DAQJobStoreParquetConfig

    config = DAQJobStoreParquetConfig(
        daq_job_type="DAQJobStoreParquet", daq_job_unique_id=STORE_ID, out_dir=out_dir
    )
    store = DAQJobStoreParquet(config, supervisor_info=INFO, zmq_xpub_url=urls[0], zmq_xsub_url=urls[1])
    store.configure_data_plane(settings)
    cpu = _cpu()
    runner = threading.Thread(target=store.start, daemon=True)
    runner.start()
    ready.set()
    count = expected.get(timeout=600)  # the messages the digitizer sent, once it has stopped
    while runner.is_alive() and store.counters.processed < count:
        time.sleep(0.005)
    store.request_stop()  # the stop writes the last row group: part of the cost
    runner.join(120)
    used = _cpu() - cpu
    processed = store.counters.processed
    store.free()
    out.put(("store", used, processed))


def _stored(out_dir: str) -> tuple[int, int]:
    """(events, rows) in the run's waveform Parquet file."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    paths = [
        os.path.join(out_dir, name)
        for name in os.listdir(out_dir)
        if "waveform" in name and name.endswith(".parquet")
    ]
    if len(paths) != 1:
        raise DAQError(f"expected one waveform file in {out_dir}, found {sorted(os.listdir(out_dir))}")
    table = pq.read_table(paths[0], columns=["event_counter"])
    return len(pc.unique(table.column("event_counter"))), table.num_rows


def run_pipeline(rate_hz: float, seconds: float) -> DigitizerRun:
    ctx = mp.get_context("spawn")
    base = tempfile.mkdtemp(prefix="edq-digitizer-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    out_dir = tempfile.mkdtemp(prefix="edq-digitizer-out-")
    urls = (f"ipc://{base}/xpub.sock", f"ipc://{base}/xsub.sock")
    proxy = MessageProxy(urls[1], urls[0])
    proxy.start()
    settings = DataPlaneSettings(run_dir=base, ring_bytes=RING_BYTES, slot_bytes=SLOT_BYTES)
    out: Any = ctx.Queue()
    expected: Any = ctx.Queue()
    ready, go = ctx.Event(), ctx.Event()
    procs = [
        ctx.Process(target=_store_main, args=(urls, settings, out_dir, ready, expected, out), daemon=True),
        ctx.Process(target=_digitizer_main, args=(urls, settings, rate_hz, seconds, go, out), daemon=True),
    ]
    try:
        for proc in procs:
            proc.start()
        ready.wait(60)
        time.sleep(0.5)  # the store's subscriptions (a start-up, not measured)
        go.set()
        _, elapsed, dig_cpu, events, lost, sent = out.get(timeout=seconds + 120)
        expected.put(sent)
        _, store_cpu, processed = out.get(timeout=600)
        if processed < sent:
            raise DAQError(f"the store took {processed} of {sent} messages")
        stored_events, rows = _stored(out_dir)
        return DigitizerRun(rate_hz, elapsed, events, lost, stored_events, rows, dig_cpu, store_cpu)
    finally:
        reap(procs)
        proxy.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(out_dir, ignore_errors=True)


def run_floor(events: int) -> FloorRun:
    """``events`` of the same board and processing on a virtual clock, then pyarrow's writer."""
    import pyarrow.parquet as pq

    from enrgdaq.daq.jobs.caen.digitizer_events import WaveformProcessor, waveform_table
    from enrgdaq.daq.jobs.caen.digitizer_sim import SimulatedDigitizer

    config = digitizer_config(1000.0)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    board = SimulatedDigitizer(config, seed=1, clock=lambda: now[0], sleep=sleep)
    processor = WaveformProcessor(0, 0)
    cpu = _cpu()
    board.open()
    board.configure()
    board.start()
    tables: list[pa.Table] = []
    taken = 0
    while taken < events:
        for block in board.read(0.1):
            columns, stats = processor.process(block)
            tables.append(waveform_table(columns))
            taken += stats.acq_events
    simulate = _cpu() - cpu
    directory = tempfile.mkdtemp(prefix="edq-digitizer-floor-")
    try:
        cpu = _cpu()
        with pq.ParquetWriter(
            os.path.join(directory, "w.parquet"), tables[0].schema, compression="zstd"
        ) as w:
            for table in tables:
                w.write_table(table)
        write = _cpu() - cpu
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return FloorRun(taken, simulate, write)
