"""Each file store through the whole pipeline, against its library's own writer in the same run.

    python bench/stores.py [--kinds csv,parquet,hdf5,root] [--repeat 3] [--quick]

Producer job -> ring -> store job -> file, for 10,000 and 500,000 rows of the
two-column float64 payload; beside it the library writer (pyarrow CSV/Parquet,
h5py, uproot) writing the same tables directly. The ratio is pipeline speed
over library speed (target: at least 0.8). Every file is read back and must hold
every row. Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys

from enrgdaq.bench.stores import CASES, StoreRun, run_case

SIZES = ((10_000, 300), (500_000, 20))
QUICK_SIZES = ((10_000, 100), (500_000, 6))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kinds", default=",".join(CASES))
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the median ratio is shown")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(
        f"{'store':8} {'rows/msg':>9} {'msgs':>5} {'pipeline Mrows/s':>17} {'MB/s':>7} "
        f"{'library Mrows/s':>16} {'ratio':>6}"
    )
    for kind in args.kinds.split(","):
        for values, count in QUICK_SIZES if args.quick else SIZES:
            runs: list[StoreRun] = [run_case(CASES[kind], values, count) for _ in range(args.repeat)]
            run = sorted(runs, key=lambda r: r.ratio)[len(runs) // 2]
            mb = values * count * 16 / run.pipeline_s / 1e6
            print(
                f"{kind:8} {values:>9,} {count:>5} {run.rows_per_s(run.pipeline_s) / 1e6:>17.2f} {mb:>7.0f} "
                f"{run.rows_per_s(run.direct_s) / 1e6:>16.2f} {run.ratio:>6.2f}"
                + (f"   (ratios {', '.join(f'{r.ratio:.2f}' for r in runs)})" if len(runs) > 1 else ""),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
