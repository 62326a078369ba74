"""``enrgdaq logs ID [-f] [-n N]``: a job's last log lines, from any machine that reaches Redis.

Every record of a job's process while it runs is kept in Redis (the last few thousand lines per
job, :mod:`enrgdaq.control.joblog`); ``_node`` is the supervisor worker's own log.
"""

from __future__ import annotations

from datetime import datetime

import click
import msgspec

from enrgdaq.cli.target import find_registry, redis_option, supervisor_option
from enrgdaq.control.joblog import LogLine, LogStore
from enrgdaq.control.keys import NODE_LOG
from enrgdaq.errors import JobNotFoundError


def format_line(line: LogLine) -> str:
    when = datetime.fromtimestamp(line.time).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{when} {line.level:<7} {line.logger}: {line.message}"


def _show(line: LogLine, as_json: bool) -> None:
    click.echo(msgspec.json.encode(line).decode() if as_json else format_line(line))


@click.command()
@click.argument("unique_id")
@click.option("-n", "--lines", default=100, show_default=True, type=click.IntRange(min=0))
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for scripts.")
@redis_option
@supervisor_option
def logs(
    unique_id: str,
    lines: int,
    follow: bool,
    as_json: bool,
    redis_url: str | None,
    supervisor_id: str | None,
) -> None:
    """Print a job's last log lines (`_node`: the supervisor's own); -f follows them."""
    registry, record = find_registry(redis_url, supervisor_id)
    store = LogStore(registry.redis, record.supervisor_id)
    known = unique_id == NODE_LOG or registry.get(unique_id) is not None
    if not known and unique_id not in store.sources():
        raise JobNotFoundError(
            f"no job '{unique_id}' in supervisor '{record.supervisor_id}' (`enrgdaq jobs` lists them)"
        )
    shown = store.tail(unique_id, lines)
    for line in shown:
        _show(line, as_json)
    if not follow:
        return
    cursor = (
        shown[-1].id if shown else (store.tail(unique_id, 1) or [LogLine("0-0", 0, "", "", "", "")])[-1].id
    )
    try:
        while True:
            for line in store.follow(unique_id, after=cursor, block_ms=1000):
                _show(line, as_json)
                cursor = line.id
    except KeyboardInterrupt:
        return  # Ctrl-C is how a follow ends: not an error
