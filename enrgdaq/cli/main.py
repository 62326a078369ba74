"""The ``enrgdaq`` command: a thin shell over the library."""

from __future__ import annotations

import importlib
import logging
import sys

import click
import redis

from enrgdaq.errors import ControlPlaneError, DAQError, JobConflictError, JobNotFoundError

EXIT_PROBLEM = 1
"""A config problem, a job that does not exist, an error the user can fix in what they typed."""
EXIT_USAGE = 2
"""Click's code for a wrong command line."""
EXIT_NO_SYSTEM = 3
"""Redis or the supervisor is not where the command looked for it."""
EXIT_REFUSED = 4
"""Refused: another ``enrgdaq up`` runs there, or the job's state or an existing id forbids it."""


COMMANDS = {
    "up": "enrgdaq.cli.up:up",
    "status": "enrgdaq.cli.status:status",
    "jobs": "enrgdaq.cli.joblist:jobs",
    "start": "enrgdaq.cli.jobs:start",
    "stop": "enrgdaq.cli.jobs:stop",
    "restart": "enrgdaq.cli.jobs:restart",
    "logs": "enrgdaq.cli.logs:logs",
    "check": "enrgdaq.cli.check:check",
    "bench": "enrgdaq.cli.bench:bench",
    "api": "enrgdaq.cli.api:api",
    "keys": "enrgdaq.cli.keys:keys",
}
"""Each command's module is imported only when it runs: ``enrgdaq stop`` does not pay for the
web server's imports (a second), and a script's stop reaches the job sooner."""


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="enrgdaq")
def cli() -> None:
    """ENRGDAQ: data acquisition with DAQ jobs as long-running Celery tasks."""


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
