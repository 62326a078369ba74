"""``enrgdaq up CONFIG_DIR``: run the whole stack here, until Ctrl-C."""

from __future__ import annotations

import sys

import click

from enrgdaq.errors import AlreadyRunningError
from enrgdaq.local.stack import Stack, UpOptions

EXIT_ALREADY_RUNNING = 4
"""Another ``enrgdaq up`` runs on this directory, run directory or supervisor id (docs/operations.md)."""


def _echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


@click.command()
@click.argument("config_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--flower", is_flag=True, help="Also start Flower on 127.0.0.1 and print its URL.")
@click.option("--flower-port", default=5555, show_default=True)
@click.option("--quiet", is_flag=True, help="Do not echo the processes' logs (they stay in .enrgdaq/logs).")
def up(config_dir: str, flower: bool, flower_port: int, quiet: bool) -> None:
    """Start Redis (unless configured), the supervisor, beat and the workers the configs need."""
    stack = Stack(
        UpOptions(
            config_dir=config_dir, flower=flower, flower_port=flower_port, echo=_echo, echo_logs=not quiet
        )
    )
    stack.check_redis()
    stack.check_api()
    try:
        stack.take_lock()
    except AlreadyRunningError as exc:
        # Its own code: scripts that start `up` can tell "already running" from a failure.
        click.echo(f"enrgdaq: error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_ALREADY_RUNNING) from None
    raise click.exceptions.Exit(stack.run_forever())
