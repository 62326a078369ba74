"""The ``enrgdaq`` command: a thin shell over the library."""

from __future__ import annotations

import logging
import sys

import click
import redis

from enrgdaq.cli.api import api
from enrgdaq.cli.bench import bench
from enrgdaq.cli.check import check
from enrgdaq.cli.joblist import jobs
from enrgdaq.cli.jobs import restart, start, stop
from enrgdaq.cli.logs import logs
from enrgdaq.cli.status import status
from enrgdaq.cli.up import up
from enrgdaq.errors import ControlPlaneError, DAQError, JobConflictError, JobNotFoundError

EXIT_PROBLEM = 1
"""A config problem, a job that does not exist, an error the user can fix in what they typed."""
EXIT_USAGE = 2
"""Click's code for a wrong command line."""
EXIT_NO_SYSTEM = 3
"""Redis or the supervisor is not where the command looked for it."""
EXIT_REFUSED = 4
"""Refused: another ``enrgdaq up`` runs there, or the job's state or an existing id forbids it."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="enrgdaq")
def cli() -> None:
    """ENRGDAQ: data acquisition with DAQ jobs as long-running Celery tasks."""


cli.add_command(up)
cli.add_command(status)
cli.add_command(check)
cli.add_command(jobs)
cli.add_command(stop)
cli.add_command(start)
cli.add_command(restart)
cli.add_command(logs)
cli.add_command(bench)
cli.add_command(api)


def one_line(exc: BaseException) -> str:
    """An error as one line: a multi-line message is joined, never a traceback."""
    text = str(exc).strip() or type(exc).__name__
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def fail(message: str, code: int) -> int:
    click.echo(f"enrgdaq: error: {message}", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run a command; every error ENRGDAQ raises ends as one line on stderr and a non-zero code."""
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
    except JobNotFoundError as exc:
        return fail(one_line(exc), EXIT_PROBLEM)  # a job id that was mistyped: not a missing system
    except JobConflictError as exc:
        return fail(one_line(exc), EXIT_REFUSED)
    except ControlPlaneError as exc:
        return fail(one_line(exc), EXIT_NO_SYSTEM)
    except DAQError as exc:
        return fail(one_line(exc), EXIT_PROBLEM)
    except redis.RedisError as exc:
        return fail(
            f"Redis stopped answering ({one_line(exc)}): is the system still running? `enrgdaq status`",
            EXIT_NO_SYSTEM,
        )
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
