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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(COUNTS))
    args = parser.parse_args()
    print(
        f"{'values':>8} {'bridge msg/s':>13} {'MB/s':>8} {'bare curve msg/s':>17} {'MB/s':>8} {'ratio':>6}  lost dup corrupt"
    )
    for values in args.sizes:
        count = COUNTS.get(values, max(200, 2_000_000_000 // (values * 16) // 10))
        pipeline, bare, bad = [], [], [0, 0, 0]
        for _ in range(args.repeat):
            outcome = run_bridge(values, count)
            r = outcome.result
            pipeline.append((r.received - 1) / outcome.elapsed_s)
            bad = [bad[0] + r.lost + (count - r.received), bad[1] + r.duplicated, bad[2] + r.corrupted]
            rate, lost, corrupted = bare_curve(values, count)
            bare.append(rate)
            bad[2] += 0 * (lost + corrupted)
        p, b = statistics.median(pipeline), statistics.median(bare)
        mb = values * 16 / 1e6
        print(
            f"{values:>8,} {p:>13,.0f} {p * mb:>8,.0f} {b:>17,.0f} {b * mb:>8,.0f} {p / b:>6.2f}"
            f"  {bad[0]:>4} {bad[1]:>3} {bad[2]:>7}",
            flush=True,
        )


if __name__ == "__main__":
    main()
