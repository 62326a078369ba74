"""Start a Celery worker or beat for ``enrgdaq up`` without the ``celery`` command line.

``celery -A enrgdaq worker ...`` and this start the same ``app.Worker``; the
command line also imports every installed Celery plugin (Flower's among
them) and an interactive shell, about 0.35 s of CPU per process. On two
cores, with four processes starting at once, that is the difference between
the first row on disk in 3 s or later.

    python -m enrgdaq.local.launch worker QUEUE CONCURRENCY [LOGLEVEL]
    python -m enrgdaq.local.launch beat [LOGLEVEL]
"""

from __future__ import annotations

import sys


def run_worker(queue: str, concurrency: int, loglevel: str) -> int:
    from celery.utils.nodenames import default_nodename, host_format

    from enrgdaq.celery import app

    worker = app.Worker(
        hostname=host_format(default_nodename(f"{queue}@%h")),
        queues=[queue],
        concurrency=concurrency,
        loglevel=loglevel,
        without_mingle=True,
        without_gossip=True,
    )
    worker.start()
    return int(worker.exitcode or 0)


def run_beat(loglevel: str) -> int:
    from enrgdaq.celery import app

    app.Beat(loglevel=loglevel).run()
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["worker"] and len(argv) >= 3:
        return run_worker(argv[1], int(argv[2]), argv[3] if len(argv) > 3 else "INFO")
    if argv[:1] == ["beat"]:
        return run_beat(argv[1] if len(argv) > 1 else "WARNING")
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
