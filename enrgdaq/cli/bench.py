"""``enrgdaq bench``: the data plane through the job API, against a memory copy and plain pyzmq."""

from __future__ import annotations

from typing import Any

import click
import msgspec


@click.command()
@click.option("--quick", is_flag=True, help="Two sizes, short runs (under a minute).")
@click.option("--json", "as_json", is_flag=True, help="Print {'results': [...]} for scripts.")
@click.option(
    "--repeat",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="Run everything N times; each row is the run with the median messages/s "
    "(losses are summed over all runs). For noisy machines.",
)
def bench(quick: bool, as_json: bool, repeat: int) -> None:
    """Messages/s, GB/s, latency and losses, producer job -> proxy -> consumer job."""
    import logging

    from enrgdaq.bench.suite import median_rows, ratios, render, run_suite

    logging.getLogger("enrgdaq").setLevel(logging.WARNING)

    def progress(rows: list[Any]) -> None:
        if not as_json:
            click.echo(f"... {rows[0].values:,} values done", err=True)

    runs = []
    for number in range(repeat):
        if repeat > 1 and not as_json:
            click.echo(f"run {number + 1} of {repeat}", err=True)
        runs.append(run_suite(quick=quick, progress=progress))
    rows = median_rows(runs)
    if as_json:
        click.echo(msgspec.json.encode({"results": rows}).decode())
        return
    click.echo(render(rows))
    for line in ratios(rows):
        click.echo(line)
