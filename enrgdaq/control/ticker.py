"""The supervisor's periodic work, driven by Celery beat.

Each tick runs as a task in the supervisor worker; this module keeps the
per-process state those tasks share (Redis client, a PUB socket on the
proxy) so that a tick costs a few Redis round trips and one ZMQ send.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

import zmq

from enrgdaq.constants import SUPERVISOR_ID_ENV
from enrgdaq.control.connection import connect
from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.node import SupervisorRecord, mark_alive, this_host
from enrgdaq.control.reconcile import Reconciler, routes_of, stores_not_running
from enrgdaq.control.registry import JobRecord, JobRegistry
from enrgdaq.control.watch import ConfigWatcher
from enrgdaq.daq.models import (
    DAQJobInfo,
    DAQJobMessage,
    DAQJobMessageCombinedStats,
    DAQJobMessageHeartbeat,
    DAQJobMessageRoutes,
    DAQJobResourceStats,
    DAQJobStats,
    DAQJobStatsRecord,
)
from enrgdaq.daq.topics import Topic
from enrgdaq.message.client import Publisher

logger = logging.getLogger(__name__)


def _when(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch) if epoch else None


def job_stats(record: JobRecord) -> DAQJobStats:
    s = record.stats_dict
    return DAQJobStats(
        message_in_stats=DAQJobStatsRecord(
            count=int(s.get("processed", 0)), last_updated=_when(s.get("last_in"))
        ),
        message_out_stats=DAQJobStatsRecord(
            count=int(s.get("sent", 0)), last_updated=_when(s.get("last_out"))
        ),
        restart_stats=DAQJobStatsRecord(count=record.restarts, last_updated=_when(record.started_at)),
        resource_stats=DAQJobResourceStats(
            cpu_percent=float(s.get("cpu_percent", 0.0)), rss_mb=float(s.get("rss_mb", 0.0))
        ),
        is_alive=record.state is JobState.RUNNING,
    )


class SupervisorTicker:
    def __init__(self, app: Any, supervisor_id: str) -> None:
        client = connect(app.conf.broker_url)
        self.registry = JobRegistry(client, supervisor_id)
        self.record = SupervisorRecord.load(client, supervisor_id)
        self.reconciler = Reconciler(
            self.registry, app, this_host(), self.record.restart_backoff_max_seconds, self.record.run_dir
        )
        self.info = DAQJobInfo(
            daq_job_type="Supervisor", unique_id=supervisor_id, supervisor_info=self.record.info
        )
        self.broadcast = Topic.supervisor_broadcast(supervisor_id)
        self.watcher = ConfigWatcher(self.record.config_dir) if self.record.config_dir else None
        self._context: zmq.Context | None = None
        self._publisher: Publisher | None = None

    def _publish(self, message: DAQJobMessage) -> None:
        if self._publisher is None:
            self._context = zmq.Context()
            self._publisher = Publisher(self._context, self.record.xsub_url)
            self._publisher.socket.setsockopt(zmq.LINGER, 0)
        message.daq_job_info = self.info
        message.pre_send()
        self._publisher.send(message)

    def routes(self) -> None:
        records = self.reconciler.tick()
        self._publish(
            DAQJobMessageRoutes(
                routes=routes_of(records), not_running=stores_not_running(records), topics={self.broadcast}
            )
        )

    def heartbeat(self) -> None:
        mark_alive(self.registry.redis, self.registry.keys.supervisor_id)
        self._publish(DAQJobMessageHeartbeat(topics={self.broadcast}))
        if self.watcher is not None and self.watcher.changed(self.registry):
            self.watcher.resync(self.registry)

    def stats(self) -> None:
        sid = self.registry.keys.supervisor_id
        combined = {sid: {r.unique_id: job_stats(r) for r in self.registry.all()}}
        self._publish(DAQJobMessageCombinedStats(stats=combined))

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        if self._context is not None:
            self._context.term()


_tickers: dict[tuple[int, str], SupervisorTicker] = {}


def ticker_for_process(app: Any) -> SupervisorTicker | None:
    """This process's ticker, or None where no supervisor runs (a stray tick elsewhere)."""
    supervisor_id = os.environ.get(SUPERVISOR_ID_ENV)
    if not supervisor_id:
        logger.warning("supervisor tick received by a worker that hosts no supervisor; ignored")
        return None
    key = (os.getpid(), supervisor_id)
    ticker = _tickers.get(key)
    if ticker is None:
        ticker = _tickers[key] = SupervisorTicker(app, supervisor_id)
    return ticker
