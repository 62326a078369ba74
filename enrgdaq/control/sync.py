"""Bringing the registry in line with the config directory when a supervisor starts.

* a new file: registered and dispatched;
* a changed file: the new config is stored; a running job is asked to stop
  and restarts with it;
* an unchanged file: left alone (a job that is running keeps running, a
  pending restart stays pending: a supervisor restart changes nothing);
* a file that is gone: its job is stopped and removed;
* a broken file: shown as ``crashed`` with its error; the others start.

A *fresh session* (``enrgdaq up`` passes one) starts from an empty registry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from enrgdaq.config.directory import problem_job_id
from enrgdaq.config.loader import JobSpec
from enrgdaq.control.lifecycle import JobState, Outcome
from enrgdaq.control.queues import job_node
from enrgdaq.control.registry import JobRecord, JobRegistry
from enrgdaq.daq.store.base import DAQJobStore
from enrgdaq.data.settings import RING_PREFIX
from enrgdaq.errors import ConfigError

logger = logging.getLogger(__name__)


def record_for(spec: JobSpec) -> JobRecord:
    return JobRecord(
        unique_id=spec.unique_id,
        daq_job_type=spec.daq_job_type,
        queue=spec.queue,
        config=spec.raw_config,
        config_file=spec.config_file,
        restart_on_crash=spec.restart_on_crash,
        restart_offset=spec.restart_offset,
        is_store=issubclass(spec.daq_job_cls, DAQJobStore),
    )


def known_job_ids(registry: JobRegistry) -> set[str]:
    """Unique ids of every supervisor's jobs on this Redis: a job another supervisor pinned to
    this node (``node = ...``) keeps its ring in this node's ring directory."""
    from enrgdaq.control.keys import Keys, supervisor_ids_pattern

    known = set(registry.unique_ids())
    for key in registry.redis.scan_iter(match=supervisor_ids_pattern(), count=100):
        known.update(registry.redis.smembers(Keys(str(key).split(":")[1]).jobs))  # type: ignore[arg-type]
    return known


def remove_orphaned_rings(registry: JobRegistry, run_dir: str) -> list[str]:
    """Delete the ring files of jobs no supervisor on this Redis holds; returns their names."""
    known = known_job_ids(registry)
    removed = []
    try:
        names = [n for n in os.listdir(run_dir) if n.startswith(RING_PREFIX)]
    except FileNotFoundError:
        return []
    for name in names:
        if name[len(RING_PREFIX) :] not in known:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(run_dir, name))
            removed.append(name)
    if removed:
        logger.warning("removed rings of jobs that no longer exist: %s", ", ".join(sorted(removed)))
    return removed


def sync_registry(registry: JobRegistry, specs: list[JobSpec], problems: list[ConfigError]) -> None:
    known = {r.unique_id: r for r in registry.all()}
    wanted: set[str] = set()
    for spec in specs:
        wanted.add(spec.unique_id)
        _sync_one(registry, spec, known.get(spec.unique_id))
    registry.redis.delete(registry.keys.problems)
    by_file = {os.path.abspath(r.config_file): r for r in known.values() if r.config_file and r.config}
    for number, problem in enumerate(problems, start=1):
        file = problem.file or "?"
        registry.redis.hset(registry.keys.problems, f"{file}#{number}", str(problem))
        holder = by_file.get(os.path.abspath(file))
        if holder is not None and holder.unique_id not in wanted and not holder.removed:
            # A file that broke under a job that had a good one (an edit half saved): the job
            # keeps its last good config; the problem is shown until the file is fixed.
            logger.error("[%s] config problem, keeping its last good config: %s", holder.unique_id, problem)
            wanted.add(holder.unique_id)
            continue
        logger.error("config problem, job not started: %s", problem)
        uid = problem_job_id(problem)
        if uid is not None and uid not in wanted:
            registry.register_invalid(uid, file, "", str(problem))
            wanted.add(uid)
    for uid, record in known.items():
        if uid not in wanted and not record.removed:
            logger.info("[%s] its config file is gone: stopping and removing it", uid)
            registry.mark_removed(uid)


def _sync_one(registry: JobRegistry, spec: JobSpec, current: JobRecord | None) -> None:
    uid = spec.unique_id
    invalid_before = current is not None and current.exit_reason == Outcome.INVALID
    if current is None or current.removed or (invalid_before and current.config != spec.raw_config):
        registry.register(record_for(spec))
        node = getattr(spec.config, "node", None)
        pinned = f" of node '{node}'" if node and node != registry.keys.supervisor_id else ""
        logger.info("[%s] registered %s on queue '%s'%s", uid, spec.daq_job_type, spec.queue, pinned)
        return
    if current.config == spec.raw_config and current.queue == spec.queue:
        return
    registry.update_config(uid, spec.raw_config, spec.queue, spec.restart_on_crash, spec.restart_offset)
    if current.state in (JobState.STARTING, JobState.RUNNING):
        registry.stop_run(uid, current.task_id)
        logger.info("[%s] config changed: restarting with the new one", uid)
    elif current.state is JobState.WAITING and _moved(registry, spec, current):
        _send_again(registry, spec)
    else:
        logger.info("[%s] config changed", uid)


# KEYS: job, restarts. ARGV: now, uid. A waiting job's task sits in its old queue (a node that is
# down, a queue without a worker): a new dispatch (a new task id) sends it where its file now says,
# and the old task, when a worker takes it, finds itself stale.
REDISPATCH_WAITING = """
if redis.call('HGET', KEYS[1], 'state') ~= 'waiting' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'restart_scheduled', 'task_id', '', 'restart_at', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return 1
"""


def _send_again(registry: JobRegistry, spec: JobSpec) -> None:
    """A waiting job whose file now names another queue or node: dispatched again, there."""
    keys = [registry.keys.job(spec.unique_id), registry.keys.restarts]
    if registry.redis.register_script(REDISPATCH_WAITING)(
        keys=keys, args=[repr(time.time()), spec.unique_id]
    ):
        queue, node = _target(registry, spec)
        logger.info(
            "[%s] config changed: sent again, to queue '%s' of node '%s'", spec.unique_id, queue, node
        )


def _target(registry: JobRegistry, spec: JobSpec) -> tuple[str, str]:
    """(queue, node) a job's file sends it to."""
    return spec.queue, getattr(spec.config, "node", None) or registry.keys.supervisor_id


def _moved(registry: JobRegistry, spec: JobSpec, current: JobRecord) -> bool:
    """Whether the file now sends the job to another queue or node than its registered config."""
    before = (current.queue, job_node(current.config, registry.keys.supervisor_id))
    return before != _target(registry, spec)
