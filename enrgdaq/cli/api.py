"""``enrgdaq api``: the REST control API and status page, as ``enrgdaq up`` and Compose run it."""

from __future__ import annotations

import click


@click.command()
def api() -> None:
    """Serve the REST API and status page (placeholder: being built, see docs/api.md)."""
    click.echo("enrgdaq api: not built yet", err=True)
    raise click.exceptions.Exit(1)
