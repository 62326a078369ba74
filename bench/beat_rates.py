"""Rates and gaps of the supervisor's beat-driven messages, as a subscriber receives them.

Starts a whole system (Redis, supervisor worker, beat, a worker per queue; a
DAQJobTest producer writing to a DAQJobStoreCSV store), subscribes with a ZMQ
SUB socket to the proxy's XPUB and records the arrival of every routes,
heartbeat and stats message for ``--seconds``:

    python bench/beat_rates.py [--seconds 60] [--json]

Targets: routes 10 Hz, heartbeat 1 Hz, stats 1 Hz, each within +-10 % of the
delivered rate. It also prints the CPU of beat and of the supervisor worker
(with its pool), how many ticks beat sent (from its log), and the number of
keys in Redis at the start and end of the window (ticks must leave no result
keys behind).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import psutil
import zmq

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from enrgdaq.daq.models import (  # noqa: E402
    DAQJobMessageCombinedStats,
    DAQJobMessageHeartbeat,
    DAQJobMessageRoutes,
)
from enrgdaq.daq.topics import Topic, exact  # noqa: E402
from enrgdaq.message.wire import Decoder  # noqa: E402
from tests.harness.system import DAQSystem  # noqa: E402

KINDS = {  # name -> (message class, target Hz, beat task name)
    "routes": (DAQJobMessageRoutes, 10.0, "enrgdaq.supervisor.routes"),
    "heartbeat": (DAQJobMessageHeartbeat, 1.0, "enrgdaq.supervisor.heartbeat"),
    "stats": (DAQJobMessageCombinedStats, 1.0, "enrgdaq.supervisor.stats"),
}
TOLERANCE = 0.10
WARMUP_TIMEOUT_SECONDS = 60.0

# The repo's example (configs/test_producer.toml), with its output in the scratch directory.
PRODUCER_TOML = """
    daq_job_type = "DAQJobTest"
    rand_min = 1
    rand_max = 100
    rate_hz = 10

    [store_config.csv]
    file_path = "test_data.csv"
    add_date = true
"""


# -- CPU of a process tree ---------------------------------------------------------------------
@dataclass
class TreeCpu:
    """CPU seconds used by a process and its descendants between start() and stop().

    Samples the tree every ``interval`` so that a child that exits in the window still counts up
    to its last sample; a child born in the window counts from zero.
    """

    root: int
    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    started: float = 0.0
    stopped: float = 0.0

    def _sample(self, initial: bool) -> None:
        try:
            root = psutil.Process(self.root)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in procs:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            used = t.user + t.system
            if initial:
                self.first[proc.pid] = used
            else:
                self.first.setdefault(proc.pid, 0.0)
            self.last[proc.pid] = used

    def start(self) -> None:
        self.started = time.monotonic()
        self._sample(initial=True)

    def sample(self) -> None:
        self._sample(initial=False)

    def stop(self) -> None:
        self._sample(initial=False)
        self.stopped = time.monotonic()

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first.get(pid, 0.0) for pid in self.last)

    @property
    def percent(self) -> float:
        wall = self.stopped - self.started
        return 100.0 * self.seconds / wall if wall > 0 else 0.0

    @property
    def processes(self) -> int:
        return len(self.last)


def sample_cpu_until(trees: list[TreeCpu], done: threading.Event, interval: float = 1.0) -> None:
    while not done.wait(interval):
        for tree in trees:
            tree.sample()


# -- beat's own log: when it sent each tick ----------------------------------------------------
_BEAT_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/\w+\] "
    r"Scheduler: Sending due task [\w-]+ \(([\w.]+)\)"
)


def beat_sends(log_text: str, t0: datetime, t1: datetime) -> dict[str, list[float]]:
    """Epoch times at which beat sent each tick task, within [t0, t1]."""
    sends: dict[str, list[float]] = {}
    for line in log_text.splitlines():
        m = _BEAT_LINE.match(line)
        if not m:
            continue
        when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if t0 <= when <= t1:
            sends.setdefault(m.group(2), []).append(when.timestamp())
    return sends


# -- statistics ----------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(times: list[float], window: float, target: float) -> dict[str, object]:
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(times)]
    rate = len(times) / window
    deviation = 100.0 * (rate - target) / target
    return {
        "count": len(times),
        "rate_hz": round(rate, 3),
        "target_hz": target,
        "deviation_pct": round(deviation, 2),
        "gap_p50_ms": round(percentile(gaps, 0.50), 1),
        "gap_p99_ms": round(percentile(gaps, 0.99), 1),
        "gap_max_ms": round(max(gaps), 1) if gaps else float("nan"),
        "target_gap_ms": round(1000 / target, 1),
        "within_target": abs(deviation) <= 100 * TOLERANCE,
    }


# -- the run ----------------------------------------------------------------------------------
def key_summary(system: DAQSystem) -> dict[str, object]:
    client = system.redis.client()
    try:
        keys = sorted(client.keys("*"))
    finally:
        client.close()
    return {
        "count": len(keys),
        "result_keys": sum(1 for k in keys if k.startswith("celery-task-meta-")),
        "keys": keys,
    }


def receive(
    sub: zmq.Socket,
    decoder: Decoder,
    until: float,
    arrivals: dict[str, list[float]],
    latencies: dict[str, list[float]],
) -> int:
    """Record arrivals (monotonic) until ``until``; returns the number of undecodable messages."""
    bad = 0
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return bad
        if not sub.poll(max(1, int(left * 1000))):
            continue
        frames = sub.recv_multipart()
        arrived, arrived_wall = time.monotonic(), time.time()
        try:
            message = decoder.decode(frames[1:])
        except Exception:
            bad += 1
            continue
        for name, (cls, _target, _task) in KINDS.items():
            if type(message) is cls:
                arrivals[name].append(arrived)
                if message.timestamp is not None:
                    latencies[name].append((arrived_wall - message.timestamp.timestamp()) * 1000)
                break


def run(seconds: float) -> dict[str, object]:
    base = tempfile.mkdtemp(prefix="enrgdaq-beat-")
    system: DAQSystem | None = None
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    done = threading.Event()
    try:
        system = DAQSystem(base)
        system.write("test_producer.toml", PRODUCER_TOML)
        system.csv_store("store_csv")
        system.start_all()
        system.wait_state("test_producer", "running", timeout=60)
        system.wait_state("store_csv", "running", timeout=60)

        sub.connect(f"ipc://{os.path.join(system.run_dir, 'xpub.sock')}")
        sub.setsockopt(zmq.SUBSCRIBE, exact(Topic.supervisor_broadcast(system.supervisor_id)))
        sub.setsockopt(zmq.SUBSCRIBE, exact(Topic.stats_combined(system.supervisor_id)))
        decoder = Decoder()

        # Warm-up: until each kind has arrived twice (beat is up and the subscription is live).
        warm: dict[str, list[float]] = {k: [] for k in KINDS}
        deadline = time.monotonic() + WARMUP_TIMEOUT_SECONDS
        while any(len(v) < 2 for v in warm.values()):
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"no steady ticks within {WARMUP_TIMEOUT_SECONDS:.0f} s: "
                    f"{ {k: len(v) for k, v in warm.items()} }\n{system.logs()}"
                )
            receive(sub, decoder, time.monotonic() + 0.5, warm, {k: [] for k in KINDS})

        procs = {p.name: p for p in system.procs}
        beat_cpu, sup_cpu = TreeCpu(procs["beat"].pid), TreeCpu(procs["supervisor"].pid)
        workers_cpu = [TreeCpu(p.pid) for p in system.procs if p.name.startswith("w-")]
        assert system.redis.process is not None
        redis_cpu, self_cpu = TreeCpu(system.redis.process.pid), TreeCpu(os.getpid())
        all_trees = [beat_cpu, sup_cpu, *workers_cpu, redis_cpu]
        keys_start = key_summary(system)

        arrivals: dict[str, list[float]] = {k: [] for k in KINDS}
        latencies: dict[str, list[float]] = {k: [] for k in KINDS}
        for tree in all_trees:
            tree.start()
        self_cpu.start()  # this process only: its children are the trees above
        self_cpu.first = {os.getpid(): self_cpu.first[os.getpid()]}
        psutil.cpu_percent(None)
        sampler = threading.Thread(target=sample_cpu_until, args=(all_trees, done), daemon=True)
        sampler.start()
        wall0, t0 = datetime.now(), time.monotonic()
        bad = receive(sub, decoder, t0 + seconds, arrivals, latencies)
        window = time.monotonic() - t0
        wall1 = datetime.now()
        machine_cpu = psutil.cpu_percent(None)
        done.set()
        sampler.join()
        for tree in all_trees:
            tree.stop()
        self_cpu.stop()
        self_cpu.last = {os.getpid(): self_cpu.last[os.getpid()]}
        keys_end = key_summary(system)
        load = os.getloadavg()

        sends = beat_sends(procs["beat"].log(), wall0, wall1)
        sup_log = procs["supervisor"].log()
        results = {}
        for name, (_cls, target, task) in KINDS.items():
            row = summarize(arrivals[name], window, target)
            sent = sends.get(task, [])
            row["beat_sent"] = len(sent)
            row["beat_sent_hz"] = round(len(sent) / window, 3)
            sent_gaps = [(b - a) * 1000 for a, b in itertools.pairwise(sent)]
            row["beat_send_gap_p50_ms"] = round(percentile(sent_gaps, 0.5), 1)
            row["beat_send_gap_p99_ms"] = round(percentile(sent_gaps, 0.99), 1)
            row["latency_p50_ms"] = round(percentile(latencies[name], 0.5), 1)
            row["latency_p99_ms"] = round(percentile(latencies[name], 0.99), 1)
            results[name] = row
        return {
            "seconds": round(window, 2),
            "messages": results,
            "undecodable": bad,
            "cpu_percent": {
                "beat": round(beat_cpu.percent, 1),
                "supervisor_worker": round(sup_cpu.percent, 1),
                "supervisor_worker_processes": sup_cpu.processes,
                "queue_workers": round(sum(t.percent for t in workers_cpu), 1),
                "redis": round(redis_cpu.percent, 1),
                "this_benchmark": round(self_cpu.percent, 1),
                "machine_all_cores": round(machine_cpu, 1),
                # What the machine used beyond the processes above (one core = 100 %).
                "other_processes": round(
                    machine_cpu * (os.cpu_count() or 1) - sum(t.percent for t in [*all_trees, self_cpu]), 1
                ),
            },
            "loadavg_1m": round(load[0], 2),
            "expired_ticks_in_supervisor_log": len(re.findall(r"[Ee]xpired", sup_log)),
            "redis_keys": {
                "start": keys_start["count"],
                "end": keys_end["count"],
                "result_keys_start": keys_start["result_keys"],
                "result_keys_end": keys_end["result_keys"],
                "new_keys": sorted(set(keys_end["keys"]) - set(keys_start["keys"])),
                "gone_keys": sorted(set(keys_start["keys"]) - set(keys_end["keys"])),
                "keys_end": keys_end["keys"],
            },
            "machine": {"nproc": os.cpu_count(), "python": sys.version.split()[0]},
        }
    finally:
        done.set()
        sub.close(0)
        context.term()
        if system is not None:
            system.close()
        shutil.rmtree(base, ignore_errors=True)


def print_report(summary: dict[str, object]) -> None:
    messages = summary["messages"]
    assert isinstance(messages, dict)
    print(f"window {summary['seconds']} s, {summary['machine']}")
    header = (
        "message",
        "count",
        "rate Hz",
        "target Hz",
        "dev %",
        "gap p50 ms",
        "gap p99 ms",
        "gap max ms",
        "beat sent Hz",
        "beat gap p99 ms",
        "latency p50/p99 ms",
        "within +-10 %",
    )
    rows = [header]
    for name, r in messages.items():
        rows.append(
            (
                name,
                str(r["count"]),
                f"{r['rate_hz']:.3f}",
                f"{r['target_hz']:g}",
                f"{r['deviation_pct']:+.1f}",
                f"{r['gap_p50_ms']:.1f}",
                f"{r['gap_p99_ms']:.1f}",
                f"{r['gap_max_ms']:.1f}",
                f"{r['beat_sent_hz']:.3f}",
                f"{r['beat_send_gap_p99_ms']:.1f}",
                f"{r['latency_p50_ms']:.1f}/{r['latency_p99_ms']:.1f}",
                "yes" if r["within_target"] else "NO",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    cpu = summary["cpu_percent"]
    assert isinstance(cpu, dict)
    print(
        f"CPU (% of one core, over the window): beat {cpu['beat']:.1f} %, supervisor worker + "
        f"pool {cpu['supervisor_worker']:.1f} % "
        f"({cpu['supervisor_worker_processes']} processes), "
        f"queue workers {cpu['queue_workers']:.1f} %, redis {cpu['redis']:.1f} %, this benchmark "
        f"{cpu['this_benchmark']:.1f} %, other processes {cpu['other_processes']:.1f} %; machine "
        f"{cpu['machine_all_cores']:.1f} % of all cores, load {summary['loadavg_1m']}"
    )
    keys = summary["redis_keys"]
    assert isinstance(keys, dict)
    print(
        f"Redis keys: {keys['start']} at start, {keys['end']} at end "
        f"(celery-task-meta-*: {keys['result_keys_start']} -> {keys['result_keys_end']}); "
        f"new keys: {keys['new_keys'] or 'none'}; gone: {keys['gone_keys'] or 'none'}"
    )
    print(
        f"undecodable messages: {summary['undecodable']}; 'expired' in supervisor log: "
        f"{summary['expired_ticks_in_supervisor_log']}"
    )
    verdict = all(r["within_target"] for r in messages.values())
    print(
        "all rates within target"
        if verdict
        else "TARGET MISSED for: " + ", ".join(n for n, r in messages.items() if not r["within_target"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = run(args.seconds)
    if args.json:
        print(json.dumps(summary))
    else:
        print_report(summary)


if __name__ == "__main__":
    main()
