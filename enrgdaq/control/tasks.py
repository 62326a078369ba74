"""The Celery tasks of ENRGDAQ: one long-running task per DAQ job, and the supervisor's ticks.

Tick tasks ignore their results, expire when late (beat sets ``expires``),
and send no task events, so that 12 ticks a second neither fill Redis nor
flood Flower's task list. DAQ job tasks do send events: Flower shows each
running job as a started task named ``<DAQJobType>[<unique_id>]``.
"""

from __future__ import annotations

from typing import Any

from enrgdaq.control.dispatch import RUN_TASK_NAME

ROUTES_TASK = "enrgdaq.supervisor.routes"
HEARTBEAT_TASK = "enrgdaq.supervisor.heartbeat"
STATS_TASK = "enrgdaq.supervisor.stats"

_TICK_OPTIONS: dict[str, Any] = {"ignore_result": True, "send_events": False, "acks_late": False}


def register_tasks(app: Any) -> None:
    """Register the job task and the three tick tasks on ``app`` (called once, by ``enrgdaq.celery``)."""

    @app.task(name=RUN_TASK_NAME, bind=True, ignore_result=True, acks_late=False)
    def run_daq_job(self: Any, supervisor_id: str, unique_id: str) -> str:
        """Run one DAQ job until it stops; never returns while the job runs."""
        from enrgdaq.control.runner import JobRun

        run = JobRun(supervisor_id, unique_id, self.request.id, app.conf.broker_url)
        return run.run(flower=(app, self.request.hostname, self.request.shadow))

    def tick(method: str) -> None:
        from enrgdaq.control.ticker import ticker_for_process

        ticker = ticker_for_process(app)
        if ticker is not None:
            getattr(ticker, method)()

    @app.task(name=ROUTES_TASK, **_TICK_OPTIONS)
    def tick_routes() -> None:
        """Reconcile (dead runs, due restarts) and publish which stores are listening."""
        tick("routes")

    @app.task(name=HEARTBEAT_TASK, **_TICK_OPTIONS)
    def tick_heartbeat() -> None:
        """Say the supervisor is alive; apply edits of the config directory."""
        tick("heartbeat")

    @app.task(name=STATS_TASK, **_TICK_OPTIONS)
    def tick_stats() -> None:
        tick("stats")
