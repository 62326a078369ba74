"""The simulated CAEN digitizer -> ring -> Parquet store, beside the same work without the framework.

    python bench/digitizer.py [--rates 250,500,1000,2000] [--seconds 10] [--floor-events 2000]

8 channels, record length 1024, every sample stored (8,192 rows of the original's waveform
columns per event, 17 bytes each). For each trigger rate the board runs for ``--seconds`` in
real time; the Parquet file is read back and must hold every event the board triggered, with
all its rows, and the board must have lost none ("complete"). CPU per 1,000 events is the
digitizer's process plus the store's. The floor, in the same run: the same board and waveform
processing on a virtual clock plus pyarrow's own ParquetWriter, in one process. Results go to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys

from enrgdaq.bench.digitizer import CHANNELS, RECORD_LENGTH, run_floor, run_pipeline

ROW_BYTES = 17


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="250,500,1000,2000", help="trigger rates in Hz, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="acquisition time per rate")
    parser.add_argument("--floor-events", type=int, default=2000)
    args = parser.parse_args()

    floor = run_floor(args.floor_events)
    print(
        f"floor (one process, virtual clock): {floor.events:,} events, board + processing "
        f"{1e6 * floor.simulate_cpu_s / floor.events:.0f} ms CPU per 1,000 events, pyarrow ParquetWriter "
        f"{1e6 * floor.write_cpu_s / floor.events:.0f} ms (alone it keeps up with "
        f"{floor.write_events_per_s:,.0f} events/s); {floor.cpu_ms_per_1000:.0f} ms per 1,000 events in all",
        flush=True,
    )
    print(
        f"{'rate Hz':>8} {'events':>7} {'lost':>5} {'stored':>7} {'events/s':>9} {'Msamples/s':>11} "
        f"{'MB/s':>6} {'complete':>8} {'CPU ms/1k ev':>13} {'(digitizer':>10} {'store)':>7} {'x floor':>8}"
    )
    for rate in (float(r) for r in args.rates.split(",")):
        run = run_pipeline(rate, args.seconds)
        samples = run.stored_rows / run.seconds
        per_event = 1e6 / run.stored_events if run.stored_events else 0.0
        print(
            f"{rate:>8,.0f} {run.events:>7,} {run.lost:>5,} {run.stored_events:>7,} "
            f"{run.events_per_s:>9,.0f} {samples / 1e6:>11.2f} {samples * ROW_BYTES / 1e6:>6.0f} "
            f"{'yes' if run.complete else 'NO':>8} "
            f"{run.cpu_ms_per_1000:>13.0f} {run.digitizer_cpu_s * per_event:>10.0f} "
            f"{run.store_cpu_s * per_event:>7.0f} {run.cpu_ms_per_1000 / floor.cpu_ms_per_1000:>8.2f}",
            flush=True,
        )
    print(
        f"({CHANNELS} channels x {RECORD_LENGTH} samples per event; MB/s of stored rows, {ROW_BYTES} B each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
