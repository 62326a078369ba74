"""``enrgdaq check CONFIG_DIR``: validate every file, name each problem's file, line and field."""

from __future__ import annotations

import click

from enrgdaq.config.directory import read_config_dir


@click.command()
@click.argument("config_dir", type=click.Path(file_okay=False))
def check(config_dir: str) -> None:
    """Validate a config directory; exits 1 if any file has a problem."""
    directory = read_config_dir(config_dir)
    for spec in directory.jobs:
        click.echo(
            f"ok    {spec.config_file}: {spec.daq_job_type} '{spec.unique_id}' on queue '{spec.queue}'"
        )
    for path, node in directory.node_configs:
        click.echo(
            f"ok    {path}: supervisor config of node '{node.info.supervisor_id}' "
            "(not a job; run it as that node's supervisor.toml)"
        )
    for problem in directory.problems:
        click.echo(f"error {problem}", err=True)
    if directory.problems:
        click.echo(f"{len(directory.problems)} problem(s) in {config_dir}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{len(directory.jobs)} job(s), no problems")
