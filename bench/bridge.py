"""Two nodes over TCP loopback with CURVE: producer -> ring -> bridge -> bridge -> proxy -> store,
beside bare pyzmq PUB/SUB with CURVE in the same run (issue 12's benchmark).

    python bench/bridge.py --repeat 3

Prints, per payload size, messages/s and MB/s of both, the ratio (target >= 0.7), and the
pipeline's lost / duplicated / corrupted counts (target 0). Each row is the median of the runs.
"""

from __future__ import annotations

import argparse
import statistics

from enrgdaq.bench.bridge import bare_curve, run_bridge

COUNTS = {10_000: 20_000, 500_000: 400}


HEAD = (
    "values",
    "bridge msg/s",
    "MB/s",
    "bare curve msg/s",
    "MB/s",
    "ratio",
    "lost dup corrupt",
    "bare lost corrupt",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(COUNTS))
    args = parser.parse_args()
    print("  ".join(HEAD))
    for values in args.sizes:
        count = COUNTS.get(values, max(200, 2_000_000_000 // (values * 16) // 10))
        pipeline, bare = [], []
        bad = [0, 0, 0]  # the pipeline's lost (incl. never received), duplicated, corrupted
        bare_bad = [0, 0]
        for _ in range(args.repeat):
            outcome = run_bridge(values, count)
            r = outcome.result
            pipeline.append((r.received - 1) / outcome.elapsed_s)
            bad = [bad[0] + r.lost + (count - r.received), bad[1] + r.duplicated, bad[2] + r.corrupted]
            rate, lost, corrupted = bare_curve(values, count)
            bare.append(rate)
            bare_bad = [bare_bad[0] + lost, bare_bad[1] + corrupted]
        p, b = statistics.median(pipeline), statistics.median(bare)
        mb = values * 16 / 1e6
        print(
            f"{values:>6,}  {p:>12,.0f}  {p * mb:>4,.0f}  {b:>16,.0f}  {b * mb:>4,.0f}  {p / b:>5.2f}"
            f"  {bad[0]:>4} {bad[1]:>3} {bad[2]:>7}  {bare_bad[0]:>9} {bare_bad[1]:>7}",
            flush=True,
        )


if __name__ == "__main__":
    main()
