"""The ``enrgdaq`` command: a thin shell over the library."""

from __future__ import annotations

import logging
import sys

import click

from enrgdaq.cli.bench import bench
from enrgdaq.cli.check import check
from enrgdaq.cli.jobs import start, stop
from enrgdaq.cli.status import status
from enrgdaq.cli.up import up


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="enrgdaq")
def cli() -> None:
    """ENRGDAQ: data acquisition with DAQ jobs as long-running Celery tasks."""


cli.add_command(up)
cli.add_command(status)
cli.add_command(check)
cli.add_command(stop)
cli.add_command(start)
cli.add_command(bench)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        # Without standalone mode click returns (not raises) the code of an Exit.
        result = cli.main(args=argv, prog_name="enrgdaq", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
