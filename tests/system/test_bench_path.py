"""The benchmark's path (producer jobs -> proxy -> ring -> consumer job) loses nothing, and its
JSON has the fields scripts compare."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest

from enrgdaq.bench.jobs import BenchResult
from enrgdaq.bench.suite import Row, median_rows

pytestmark = pytest.mark.system

REQUIRED = {
    "scenario",
    "values",
    "msgs_per_s",
    "gb_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "lost",
    "duplicated",
    "corrupted",
}


def run_path(values: int, count: int, producers: int = 1) -> BenchResult:
    """``enrgdaq.bench.runner.run_path`` in its own interpreter (its multiprocessing helpers with it)."""
    code = (
        "import sys, msgspec\n"
        "from enrgdaq.bench.runner import run_path\n"
        f"outcome = run_path({values}, {count}, producers={producers})\n"
        "sys.stdout.buffer.write(msgspec.json.encode(outcome.result))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, check=True)
    return msgspec.json.decode(done.stdout, type=BenchResult)


def test_one_producer_every_message_intact_through_the_ring() -> None:
    result = run_path(10_000, 400)
    assert (result.received, result.lost, result.duplicated, result.corrupted) == (400, 0, 0, 0)
    # Every message came out of the ring: each carries the commit time of its slot.
    assert len(result.handle_latencies_ns) == 400


def test_two_producers_into_one_consumer() -> None:
    result = run_path(2_000, 300, producers=2)
    assert (result.received, result.lost, result.duplicated, result.corrupted) == (600, 0, 0, 0)


def test_json_rows_carry_the_compared_fields_and_losses_are_never_averaged_away() -> None:
    runs = [
        [Row("1to1", 10_000, rate, 1.0, 0, 0, 0, 0, lost=lost)]
        for rate, lost in ((100.0, 0), (300.0, 2), (200.0, 0))
    ]
    (row,) = median_rows(runs)
    assert row.msgs_per_s == 200.0 and row.lost == 2
    encoded = msgspec.json.decode(msgspec.json.encode({"results": [row]}))
    assert set(encoded["results"][0]) >= REQUIRED
