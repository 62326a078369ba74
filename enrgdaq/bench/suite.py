"""The benchmark table: scenarios x payload sizes, and what each row means."""

from __future__ import annotations

import statistics
from typing import Any

import msgspec

from enrgdaq.bench.bare import bare_ring
from enrgdaq.bench.baselines import memcpy_gbps, zmq_inline
from enrgdaq.bench.runner import Outcome, run_path

SIZES = (10_000, 50_000, 100_000, 500_000)
QUICK_SIZES = (10_000, 500_000)


class Row(msgspec.Struct):
    scenario: str
    values: int
    msgs_per_s: float
    gb_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    lost: int = 0
    duplicated: int = 0
    corrupted: int = 0
    rate: str = "max"
    cpu_s_per_msg: float = 0.0
    handle_p50_ms: float = 0.0  # from the commit into the ring to the consumer (ring scenarios)
    handle_p99_ms: float = 0.0


def _pct(samples: list[int], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1e6


def _count(values: int, seconds: float, rate_hint: float) -> int:
    return max(50, int(seconds * rate_hint))


def _row(scenario: str, values: int, outcome: Outcome, rate: str = "max") -> Row:
    r = outcome.result
    elapsed = max(outcome.elapsed_s, 1e-9)
    lat = r.latencies_ns[len(r.latencies_ns) // 10 :]  # without the first 10 % (start-up)
    handle = r.handle_latencies_ns[len(r.handle_latencies_ns) // 10 :]
    return Row(
        scenario=scenario,
        values=values,
        msgs_per_s=(r.received - 1) / elapsed,
        gb_per_s=r.bytes / elapsed / 1e9,
        p50_ms=_pct(lat, 0.5),
        p95_ms=_pct(lat, 0.95),
        p99_ms=_pct(lat, 0.99),
        max_ms=max(lat) / 1e6 if lat else 0.0,
        lost=r.lost,
        duplicated=r.duplicated,
        corrupted=r.corrupted,
        rate=rate,
        cpu_s_per_msg=(outcome.cpu_sink_s + outcome.cpu_sources_s) / max(r.received, 1),
        handle_p50_ms=_pct(handle, 0.5),
        handle_p99_ms=_pct(handle, 0.99),
    )


def run_suite(quick: bool = False, progress: Any = None) -> list[Row]:
    seconds = 1.0 if quick else 3.0
    rows: list[Row] = []
    for values in QUICK_SIZES if quick else SIZES:
        guess = max(200.0, 4e9 / (values * 16))  # a first guess of the rate, to size the runs
        gbps, mps = memcpy_gbps(values, seconds / 2)
        rows.append(Row("memcpy", values, mps, gbps, 0, 0, 0, 0))
        mps, gbps, corrupted = bare_ring(values, seconds / 2)
        rows.append(Row("bare_ring", values, mps, gbps, 0, 0, 0, 0, corrupted=corrupted))
        one = run_path(values, _count(values, seconds, guess))
        rows.append(_row("1to1", values, one))
        full = rows[-1].msgs_per_s
        half = run_path(values, _count(values, seconds, full / 2), rate=full / 2)
        rows.append(_row("1to1", values, half, rate="half"))
        two = run_path(values, _count(values, seconds, full / 2), producers=2)
        rows.append(_row("2to1", values, two))
        message_api = run_path(values, _count(values, seconds, full / 2), channel=False)
        rows.append(_row("1to1_msg", values, message_api))
        inline = zmq_inline(values, _count(values, seconds, guess))
        lat = inline["latencies_ns"][len(inline["latencies_ns"]) // 10 :]
        elapsed = inline["elapsed_s"]
        rows.append(
            Row(
                "zmq_inline",
                values,
                (inline["received"] - 1) / elapsed,
                inline["received"] * values * 16 / elapsed / 1e9,
                _pct(lat, 0.5),
                _pct(lat, 0.95),
                _pct(lat, 0.99),
                max(lat) / 1e6 if lat else 0.0,
                inline["lost"],
                0,
                inline["corrupted"],
            )
        )
        if progress is not None:
            progress(rows[-7:])
    return rows


def render(rows: list[Row]) -> str:
    head = (
        "scenario",
        "values",
        "rate",
        "msgs/s",
        "GB/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "lost",
        "dup",
        "corrupt",
        "handle p50/p99 ms",
    )
    lines = [head]
    for r in rows:
        lines.append(
            (
                r.scenario,
                f"{r.values:,}",
                r.rate,
                f"{r.msgs_per_s:,.0f}",
                f"{r.gb_per_s:.2f}",
                f"{r.p50_ms:.2f}",
                f"{r.p95_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.max_ms:.2f}",
                str(r.lost),
                str(r.duplicated),
                str(r.corrupted),
                f"{r.handle_p50_ms:.2f}/{r.handle_p99_ms:.2f}" if r.handle_p99_ms else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines)


def ratios(rows: list[Row]) -> list[str]:
    """The comparisons the targets are stated in."""
    out = []
    for values in sorted({r.values for r in rows}):
        by = {(r.scenario, r.rate): r for r in rows if r.values == values}
        one, mem, inline = by.get(("1to1", "max")), by.get(("memcpy", "max")), by.get(("zmq_inline", "max"))
        bare = by.get(("bare_ring", "max"))
        message_api = by.get(("1to1_msg", "max"))
        if one and mem:
            out.append(
                f"{values:,} values: 1to1 {one.gb_per_s:.2f} GB/s = {one.gb_per_s / mem.gb_per_s:.2f} "
                f"of memcpy ({mem.gb_per_s:.2f} GB/s)"
                + (f", {one.msgs_per_s / bare.msgs_per_s:.2f} of the bare ring" if bare else "")
                + (f", {one.msgs_per_s / inline.msgs_per_s:.2f}x plain pyzmq inline" if inline else "")
            )
        if message_api and bare:
            out.append(
                f"{values:,} values: 1to1_msg (a _put_message_out call a message) "
                f"{message_api.msgs_per_s:,.0f} msg/s = {message_api.msgs_per_s / bare.msgs_per_s:.2f} "
                "of the bare ring"
            )
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def median_rows(runs: list[list[Row]]) -> list[Row]:
    """Per row of the table, the run with the median messages/s; lost, duplicated and corrupted
    are the sums over every run (a loss in any run must show)."""
    out = []
    for rows in zip(*runs, strict=True):
        ordered = sorted(rows, key=lambda r: r.msgs_per_s)
        chosen = msgspec.structs.replace(ordered[(len(ordered) - 1) // 2])
        chosen.lost = sum(r.lost for r in rows)
        chosen.duplicated = sum(r.duplicated for r in rows)
        chosen.corrupted = sum(r.corrupted for r in rows)
        out.append(chosen)
    return out
