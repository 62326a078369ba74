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
from enrgdaq.control.placement import NodePlacement
from enrgdaq.control.reconcile import Reconciler, routes_of, stores_not_running
from enrgdaq.control.registry import JobRecord, JobRegistry
from enrgdaq.control.status import shown_state
from enrgdaq.control.watch import ConfigWatcher
from enrgdaq.daq.models import (
    DAQJobInfo,
    DAQJobLatencyStats,
    DAQJobMessage,
    DAQJobMessageCombinedStats,
    DAQJobMessageHeartbeat,
    DAQJobMessageRoutes,
    DAQJobResourceStats,
    DAQJobStats,
    DAQJobStatsRecord,
)
from enrgdaq.daq.stats import RateTracker
from enrgdaq.daq.topics import Topic
from enrgdaq.message.client import Publisher

logger = logging.getLogger(__name__)


def _when(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch) if epoch else None


def _num(stats: dict[str, Any], name: str) -> float:
    value = stats.get(name, 0)
    return float(value) if isinstance(value, int | float) else 0.0


def _last_error(record: JobRecord, stats: dict[str, Any]) -> str:
    """The last line of the job's error (a traceback's last line says what went wrong)."""
    text = str(stats.get("last_error") or record.error or "").strip()
    return text.splitlines()[-1][:300] if text else ""


def job_stats(record: JobRecord, rates: RateTracker | None = None) -> DAQJobStats:
    """A job's stats as handlers and the status see them, from its registry record.

    ``rates``: the ticker's tracker, which turns the counters into per-second rates and notes
    when a counter last grew (stores that do not stamp ``last_in`` still get a date).
    """
    s = record.stats_dict
    uid, at = record.unique_id, s.get("at")
    names = ("processed", "sent", "processed_bytes", "sent_bytes")
    rate = {n: rates.rate(uid, n, _num(s, n), at) if rates else 0.0 for n in names}
    grew = rates.grew_at if rates else {}
    last_in = s.get("last_in") or grew.get((uid, "processed"))
    last_out = s.get("last_out") or grew.get((uid, "sent"))
    state, _ = shown_state(record, s)
    return DAQJobStats(
        message_in_stats=DAQJobStatsRecord(count=int(_num(s, "processed")), last_updated=_when(last_in)),
        message_out_stats=DAQJobStatsRecord(count=int(_num(s, "sent")), last_updated=_when(last_out)),
        message_in_queue_stats=DAQJobStatsRecord(
            count=int(_num(s, "ring_unreleased")), last_updated=_when(at)
        ),
        message_out_queue_stats=DAQJobStatsRecord(
            count=int(_num(s, "ring_occupancy")), last_updated=_when(at)
        ),
        restart_stats=DAQJobStatsRecord(
            count=record.restarts, last_updated=_when(record.started_at) if record.restarts else None
        ),
        latency_stats=DAQJobLatencyStats(
            count=int(_num(s, "latency_count")),
            max_ms=_num(s, "latency_max_ms"),
            p50_ms=_num(s, "latency_p50_ms"),
            p95_ms=_num(s, "latency_p95_ms"),
            p99_ms=_num(s, "latency_p99_ms"),
        ),
        resource_stats=DAQJobResourceStats(cpu_percent=_num(s, "cpu_percent"), rss_mb=_num(s, "rss_mb")),
        is_alive=record.state is JobState.RUNNING,
        daq_job_type=record.daq_job_type,
        state=state,
        message_in_bytes=int(_num(s, "processed_bytes")),
        message_out_bytes=int(_num(s, "sent_bytes")),
        message_in_rate=rate["processed"],
        message_out_rate=rate["sent"],
        message_in_bytes_rate=rate["processed_bytes"],
        message_out_bytes_rate=rate["sent_bytes"],
        ring_occupancy=int(_num(s, "ring_occupancy")),
        ring_slots=int(_num(s, "ring_slots")),
        ring_blocked_ms=int(_num(s, "ring_blocked_ms")),
        last_error=_last_error(record, s),
        updated_at=_when(at),
        stop_requested=record.desired != "run",
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
        self.placement = NodePlacement(self.registry)
        self.broadcast = Topic.supervisor_broadcast(supervisor_id)
        self.watcher = ConfigWatcher(self.record.config_dir) if self.record.config_dir else None
        self._context: zmq.Context | None = None
        self._publisher: Publisher | None = None
        self.rates = RateTracker()

    def _publish(self, message: DAQJobMessage) -> None:
        if self._publisher is None:
            self._context = zmq.Context()
            self._publisher = Publisher(self._context, self.record.xsub_url)
            self._publisher.socket.setsockopt(zmq.LINGER, 0)
        message.daq_job_info = self.info
        message.pre_send()
        self._publisher.send(message)

    def routes(self) -> None:
        """Reconcile, then say which stores and bridges run on this node: this supervisor's jobs
        that are not pinned elsewhere and other supervisors' jobs pinned here
        (:mod:`enrgdaq.control.placement`)."""
        self.placement.before_dispatch()
        records = self.reconciler.tick()
        self.placement.after_tick(records)
        here = self.placement.routed(records)
        self._publish(
            DAQJobMessageRoutes(
                routes=routes_of(here), not_running=stores_not_running(here), topics={self.broadcast}
            )
        )

    def heartbeat(self) -> None:
        mark_alive(self.registry.redis, self.registry.keys.supervisor_id)
        self._publish(DAQJobMessageHeartbeat(topics={self.broadcast}))
        if self.watcher is not None and self.watcher.changed(self.registry):
            self.watcher.resync(self.registry)

    def stats(self) -> None:
        """Every job's stats on ``stats.combined.supervisor.<id>`` (handle_stats, healthcheck)."""
        sid = self.registry.keys.supervisor_id
        records = self.registry.all()
        self.rates.forget({r.unique_id for r in records})
        combined = {sid: {r.unique_id: job_stats(r, self.rates) for r in records}}
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
