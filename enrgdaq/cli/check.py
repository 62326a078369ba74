"""``enrgdaq check CONFIG_DIR``: validate every file, name each problem's file, line and field."""

from __future__ import annotations

import click

from enrgdaq.config.loader import load_job_dir, load_supervisor_config
from enrgdaq.daq.types import registry
from enrgdaq.errors import ConfigError


@click.command()
@click.argument("config_dir", type=click.Path(file_okay=False))
def check(config_dir: str) -> None:
    """Validate a config directory; exits 1 if any file has a problem."""
    problems: list[ConfigError] = []
    try:
        config = load_supervisor_config(config_dir)
    except ConfigError as exc:
        problems.append(exc)
        config = None
    if config is not None:
        for module in config.plugins:
            try:
                registry.load_plugin(module)
            except ConfigError as exc:
                problems.append(
                    ConfigError(
                        exc.message, file=f"{config_dir.rstrip('/')}/supervisor.toml", field="plugins"
                    )
                )
    try:
        specs, job_problems = load_job_dir(config_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    problems += job_problems
    for spec in specs:
        click.echo(
            f"ok    {spec.config_file}: {spec.daq_job_type} '{spec.unique_id}' on queue '{spec.queue}'"
        )
    for problem in problems:
        click.echo(f"error {problem}", err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) in {config_dir}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"{len(specs)} job(s), no problems")
