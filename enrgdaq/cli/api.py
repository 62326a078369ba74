"""``enrgdaq api``: the REST control API and status page, as ``enrgdaq up`` and Compose run it."""

from __future__ import annotations

import os
import sys

import click

from enrgdaq.api.server import PORT_TAKEN_EXIT, PortTakenError, serve
from enrgdaq.api.settings import api_settings
from enrgdaq.cli.target import find_registry, redis_option, supervisor_option
from enrgdaq.config.loader import load_supervisor_config
from enrgdaq.constants import CONFIG_DIR_ENV
from enrgdaq.control.connection import connect
from enrgdaq.control.operations import Operator
from enrgdaq.local.state_file import read_state
from enrgdaq.models import SupervisorConfig
from enrgdaq.settings import configured_redis_url


def _config(config_dir: str | None) -> SupervisorConfig | None:
    """supervisor.toml of the given directory, ``ENRGDAQ_CONFIG_DIR`` or the ``up`` running here."""
    directory = config_dir or os.environ.get(CONFIG_DIR_ENV) or (read_state() or {}).get("config_dir")
    return load_supervisor_config(directory) if directory and os.path.isdir(directory) else None


def _echo(url: str) -> None:
    click.echo(f"REST API and status page: {url}")
    sys.stdout.flush()


@click.command()
@click.option("--host", default=None, help="Address to bind (default: [cnc] rest_api_host, localhost).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port (default: [cnc] rest_api_port, 8000)."
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Config directory whose supervisor.toml gives the id and [cnc] (default: ENRGDAQ_CONFIG_DIR).",
)
@redis_option
@supervisor_option
def api(
    host: str | None,
    port: int | None,
    config_dir: str | None,
    redis_url: str | None,
    supervisor_id: str | None,
) -> None:
    """Serve the REST API and the status page (a token is required beyond loopback: ENRGDAQ_API_TOKEN)."""
    config = _config(config_dir)
    settings = api_settings(config.cnc if config else None, host, port)
    settings.check()
    url = redis_url or configured_redis_url(config)
    if config is not None and url:
        client, sid = connect(url), supervisor_id or config.info.supervisor_id
    else:
        registry, record = find_registry(url, supervisor_id)
        client, sid = registry.redis, record.supervisor_id
    try:
        serve(Operator(client, sid, actor="REST API"), settings, on_ready=_echo)
    except PortTakenError as exc:
        click.echo(f"enrgdaq: error: {exc}", err=True)
        raise click.exceptions.Exit(PORT_TAKEN_EXIT) from None
