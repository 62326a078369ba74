"""Kill -9 a running job's process N times; how long until it runs again?

    python bench/restart_after_kill.py --kills 10

A complete system (real Redis, supervisor, beat, one default worker with a
spare pool slot) runs one job with the default restart_offset (2 s). Each
kill is followed by polling the registry until the job runs again in a new
process. The target is restart_offset + 0.5 s; each line says how far off it is.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.harness.system import DAQSystem
from tests.harness.waiting import wait_for

OFFSET = 2.0
TARGET = OFFSET + 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    system = DAQSystem(tempfile.mkdtemp(prefix="enrgdaq-restart-"))
    times: list[float] = []
    try:
        life_dir = os.path.join(system.base, "life")
        system.write("life.toml", f'daq_job_type = "DAQJobLifeLog"\nlog_dir = "{life_dir}"\n')
        system.start_all(queues=("default",))
        record = system.wait_state("life", "running")
        for i in range(args.kills):
            time.sleep(6)  # let it run steadily, so that the backoff resets (5 s)
            pid = record.pid
            assert pid is not None
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)

            def again(old: int = pid):  # type: ignore[no-untyped-def]
                r = system.registry.get("life")
                return r if r and r.state.value == "running" and r.pid != old else None

            record = wait_for(again, 30, "the job to run again", interval=0.002)
            took = time.monotonic() - killed
            times.append(took)
            if not args.json:
                print(f"kill {i + 1}: running again after {took:.3f} s (target <= {TARGET:.1f} s)")
    finally:
        system.close()
    summary = {
        "kills": len(times),
        "min_s": min(times),
        "median_s": statistics.median(times),
        "max_s": max(times),
        "target_s": TARGET,
        "within_target": sum(t <= TARGET for t in times),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"min {summary['min_s']:.3f} s, median {summary['median_s']:.3f} s, "
            f"max {summary['max_s']:.3f} s; "
            f"{summary['within_target']}/{len(times)} within restart_offset + 0.5 s = {TARGET:.1f} s"
        )


if __name__ == "__main__":
    main()
