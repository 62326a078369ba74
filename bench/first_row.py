"""Time from `enrgdaq up configs/` to the first CSV row on disk, and to a clean stop.

Runs the README's example in a scratch directory, N times:

    python bench/first_row.py --runs 5

It prints each run and the median; the target (ARCHITECTURE.md) is 3 s to the
first row. Stop time is from SIGINT to the exit of `enrgdaq up` (target 10 s).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def first_row(directory: str, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in glob.glob(os.path.join(directory, "out", "*.csv")):
            with open(path, "rb") as f:
                if f.read().count(b"\n") >= 2:  # header and one row
                    return time.monotonic()
        time.sleep(0.01)
    return None


def one_run(workdir: str) -> tuple[float, float]:
    shutil.rmtree(os.path.join(workdir, "out"), ignore_errors=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "enrgdaq.cli.main", "up", "configs/", "--quiet"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen = first_row(workdir, 30.0)
    time.sleep(1.0)
    t1 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
    stopped = time.monotonic() - t1
    if seen is None:
        raise SystemExit("no row within 30 s")
    return seen - t0, stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="enrgdaq-first-row-")
    shutil.copytree(os.path.join(REPO, "configs"), os.path.join(workdir, "configs"))
    results = []
    try:
        for i in range(args.runs):
            row, stop = one_run(workdir)
            results.append((row, stop))
            if not args.json:
                print(f"run {i + 1}: first row after {row:.2f} s, stopped in {stop:.2f} s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = [r for r, _ in results]
    stops = [s for _, s in results]
    summary = {
        "first_row_median_s": statistics.median(rows),
        "first_row_max_s": max(rows),
        "stop_median_s": statistics.median(stops),
        "stop_max_s": max(stops),
        "runs": len(results),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"median first row {summary['first_row_median_s']:.2f} s (max {summary['first_row_max_s']:.2f}); "
            f"target 3 s. median stop {summary['stop_median_s']:.2f} s (max {summary['stop_max_s']:.2f}); "
            "target 10 s"
        )


if __name__ == "__main__":
    main()
