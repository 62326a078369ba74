"""What an operator can do to a running system: the one surface the REST API and the CLI call.

Every method reads or changes the registry in Redis (the supervisor, beat and the workers act
on it); none talks to a worker directly. Errors are the project's: :class:`JobNotFoundError`
(an unknown id), :class:`JobConflictError` (the job's state or an existing id forbids it),
:class:`ConfigError` (a job's TOML), :class:`MessagePayloadError` (a message given as JSON),
:class:`ControlPlaneError` / ``redis.RedisError`` (the system is not reachable).

Jobs added here are files: :meth:`Operator.add_job` writes ``<unique_id>.toml`` into the
supervisor's config directory, where the config watcher registers it and where it survives a
restart; :meth:`Operator.remove` renames that file to ``<name>.toml.removed``.
"""

from __future__ import annotations

import logging
import os
import time
import tomllib
from collections.abc import Callable
from typing import Any

import redis

from enrgdaq.config.decode import parse_toml
from enrgdaq.config.loader import load_job_text
from enrgdaq.control.lifecycle import JobState
from enrgdaq.control.masking import mask_text, mask_value
from enrgdaq.control.messages import deliver, message_for
from enrgdaq.control.node import SupervisorRecord
from enrgdaq.control.registry import JobRecord, JobRegistry
from enrgdaq.control.status_document import status_report
from enrgdaq.daq.types import registry as job_types
from enrgdaq.errors import ConfigError, ControlPlaneError, JobConflictError, JobNotFoundError
from enrgdaq.models import ID_PATTERN

logger = logging.getLogger(__name__)

STATE_WAIT_SECONDS = 10.0
"""How long an operation waits for the state it asked for (stopped, running, registered)."""
REMOVED_SUFFIX = ".removed"
_ENDED = (JobState.STOPPED, JobState.CRASHED, JobState.RESTART_SCHEDULED)
_STARTING = (JobState.REGISTERED, JobState.WAITING, JobState.STARTING, JobState.RESTART_SCHEDULED)


class Operator:
    """Status and control of one supervisor's jobs (see the module docstring for the errors)."""

    def __init__(
        self,
        client: redis.Redis,
        supervisor_id: str,
        actor: str = "operator",
        wait_seconds: float = STATE_WAIT_SECONDS,
    ) -> None:
        """``actor`` names who acts in logs and stop reasons (``REST API``, ``enrgdaq stop``)."""
        self.registry = JobRegistry(client, supervisor_id)
        self.supervisor_id = supervisor_id
        self.actor = actor
        self.wait_seconds = wait_seconds
        self._plugins_loaded: tuple[str, ...] | None = None

    # -- reading ---------------------------------------------------------------
    def record(self) -> SupervisorRecord:
        """The supervisor's record (raises :class:`SupervisorNotFoundError` before it registered)."""
        record = SupervisorRecord.load(self.registry.redis, self.supervisor_id)
        plugins = tuple(record.plugins)
        if plugins != self._plugins_loaded:
            # Custom job types must be known here to validate a job's TOML and its messages.
            job_types.load_plugins(list(plugins), search_dir=record.config_dir or None)
            self._plugins_loaded = plugins
        return record

    def status(self) -> dict[str, Any]:
        """The status document (``enrgdaq status --json``; secrets masked where it is built)."""
        doc: dict[str, Any] = status_report(self.registry, self.record().info)
        return doc

    def job(self, unique_id: str) -> dict[str, Any]:
        """One job as the status document shows it, plus its config (secrets masked) and policy."""
        record = self._get(unique_id)
        doc = next((j for j in self.status()["jobs"] if j["unique_id"] == unique_id), None)
        if doc is None:
            raise JobNotFoundError(f"no job '{unique_id}' in supervisor '{self.supervisor_id}'")
        try:
            config = tomllib.loads(record.config) if record.config else {}
        except tomllib.TOMLDecodeError:
            config = {}
        doc.update(
            desired=record.desired,
            stop_reason=mask_text(record.stop_reason),
            restart_on_crash=record.restart_on_crash,
            started_at=record.started_at,
            config=mask_value(config),
            stats=mask_value(record.stats_dict),
        )
        return doc

    # -- adding and removing ---------------------------------------------------------
    def add_job(self, toml_text: str, name: str | None = None) -> dict[str, Any]:
        """Validate a job's TOML as the config directory would, write it as ``<name>.toml`` there
        (``name``: the job's ``daq_job_unique_id``, else the ``name`` given) and wait until the
        supervisor has registered it. A duplicate id or file is a :class:`JobConflictError`."""
        config_dir = self._config_dir()
        stem = name or _declared_id(toml_text, os.path.join(config_dir, "(new job).toml"))
        if not stem:
            raise ConfigError(
                "the job has no daq_job_unique_id: add one to the TOML or give a name",
                field="daq_job_unique_id",
            )
        if not ID_PATTERN.match(stem):
            raise ConfigError(
                f"'{stem}' may only use letters, digits, '_', '.' and '-' (at most 64)",
                field="daq_job_unique_id",
            )
        path = os.path.join(config_dir, f"{stem}.toml")
        spec = load_job_text(toml_text, path)
        existing = self.registry.get(spec.unique_id)
        if existing is not None and not existing.removed:
            where = f" (from {existing.config_file})" if existing.config_file else ""
            raise JobConflictError(f"a job '{spec.unique_id}' exists already{where}")
        _write_new_file(path, toml_text)
        logger.info("[%s] written to %s by %s", spec.unique_id, path, self.actor)
        self._wait(spec.unique_id, lambda r: r is not None and not r.removed, "registered")
        registered = self.registry.get(spec.unique_id)
        if registered is None or registered.removed:
            raise ControlPlaneError(
                f"{path} is written, but the supervisor has not registered it within "
                f"{self.wait_seconds:.0f} s: is it running? (`enrgdaq status`)"
            )
        self._wait_started([spec.unique_id])
        return self.job(spec.unique_id)

    def remove(self, unique_id: str) -> dict[str, Any]:
        """Stop a job for good and remove it. Its file is renamed to ``<name>.toml.removed`` (kept
        for the user, never read again). Returns the file's new path (or none)."""
        record = self._get(unique_id)
        renamed = None
        if record.config_file and os.path.exists(record.config_file):
            renamed = _free_name(record.config_file + REMOVED_SUFFIX)
            os.rename(record.config_file, renamed)
        self.registry.mark_removed(unique_id)
        logger.info("[%s] removed by %s (file now %s)", unique_id, self.actor, renamed or "-")
        self._wait(unique_id, lambda r: r is None, "removed")
        return {"unique_id": unique_id, "removed": True, "config_file": renamed}

    # -- running and stopping ---------------------------------------------------------
    def stop(self, unique_id: str) -> dict[str, Any]:
        """A person's stop: the job ends and is not restarted until :meth:`start`."""
        record = self._get(unique_id)
        if record.desired != "run" and record.state in (JobState.STOPPED, JobState.CRASHED):
            raise JobConflictError(f"job '{unique_id}' is already stopped")
        self.registry.request_stop(unique_id, f"stopped by a person ({self.actor})")
        self._wait(unique_id, lambda r: r is not None and not r.state.is_live, "stopped")
        return self.job(unique_id)

    def start(self, unique_id: str) -> dict[str, Any]:
        """Start a job that was stopped (or crashed for good); :class:`JobConflictError` if it runs."""
        record = self._get(unique_id)
        if record.desired == "run" and record.state not in (JobState.STOPPED, JobState.CRASHED):
            raise JobConflictError(f"job '{unique_id}' is already {record.state.shown}")
        self.registry.request_start(unique_id)
        self._wait_started([unique_id])
        return self.job(unique_id)

    def restart(self, unique_id: str) -> dict[str, Any]:
        """End the job's run and start a new one at once (a stopped job is started)."""
        record = self._get(unique_id)
        if record.desired != "run" or record.state in (JobState.STOPPED, JobState.CRASHED):
            return self.start(unique_id)
        self._restart_runs([record])
        return self.job(unique_id)

    def restart_all(self) -> list[dict[str, Any]]:
        """Restart every job that is meant to run (stopped jobs stay stopped)."""
        records = [r for r in self.registry.all() if r.desired == "run" and not r.removed]
        self._restart_runs(records)
        return [self.job(r.unique_id) for r in records if self.registry.get(r.unique_id)]

    def send_message(self, unique_id: str | None, message_type: str, payload: dict[str, Any]) -> list[str]:
        """Send a message given as JSON to one running job, or to every running job that takes its
        type; each gets it once, on its own topic. Returns the ids it was sent to."""
        node = self.record()  # plugins (custom message types) loaded
        records = [self._get(unique_id)] if unique_id else self.registry.all()
        running = [r for r in records if r.state is JobState.RUNNING]
        if unique_id and not running:
            raise JobConflictError(f"job '{unique_id}' is {records[0].state.shown}: it receives nothing")
        message, targets = message_for(message_type, payload, running, strict=unique_id is not None)
        deliver(node.xpub_url, node.xsub_url, node.info, message, targets)
        logger.info("%s sent by %s to %s", message_type, self.actor, ", ".join(targets))
        return targets

    # -- helpers ----------------------------------------------------------------------
    def _get(self, unique_id: str) -> JobRecord:
        record = self.registry.get(unique_id)
        if record is None or record.removed:
            raise JobNotFoundError(f"no job '{unique_id}' in supervisor '{self.supervisor_id}'")
        return record

    def _config_dir(self) -> str:
        config_dir = self.record().config_dir
        if not config_dir or not os.path.isdir(config_dir):
            raise ControlPlaneError(
                f"the supervisor's config directory '{config_dir}' is not reachable from here: "
                "add jobs where the supervisor runs"
            )
        return config_dir

    def _restart_runs(self, records: list[JobRecord]) -> None:
        """End the live runs, then dispatch them and any pending restart now. A job that waits for
        its first run (no worker on its queue yet) is left as it is: there is nothing to restart."""
        live = {r.unique_id: r.task_id for r in records if r.state.is_live}
        for uid, task_id in live.items():
            self.registry.stop_run(uid, task_id)

        def ended(uid: str) -> bool:
            now = self.registry.get(uid)
            return now is None or now.task_id != live[uid] or now.state in _ENDED

        self._wait_all(list(live), ended, "its run to end")
        restarted = []
        for record in records:
            now = self.registry.get(record.unique_id)
            if now is not None and now.state is JobState.RESTART_SCHEDULED:
                self.registry.reschedule(record.unique_id, time.time())  # asked for: not delayed
                restarted.append(record.unique_id)
        self._wait_started(restarted)

    def _wait_started(self, unique_ids: list[str]) -> None:
        """Wait until each job's new run runs (or has ended again, or no worker takes it in time)."""
        self._wait_all(
            unique_ids,
            lambda uid: (r := self.registry.get(uid)) is None or r.state not in _STARTING,
            "running",
        )

    def _wait(self, unique_id: str, done: Callable[[JobRecord | None], bool], what: str) -> None:
        self._wait_all([unique_id], lambda uid: bool(done(self.registry.get(uid))), what)

    def _wait_all(self, unique_ids: list[str], done: Callable[[str], bool], what: str) -> None:
        deadline = time.monotonic() + self.wait_seconds
        pending = list(unique_ids)
        while pending and time.monotonic() < deadline:
            pending = [uid for uid in pending if not done(uid)]
            if pending:
                time.sleep(0.05)
        if pending:
            logger.warning("not %s after %.0f s: %s", what, self.wait_seconds, ", ".join(pending))


def _declared_id(toml_text: str, file: str) -> str | None:
    """The TOML's ``daq_job_unique_id``; a syntax error is a ConfigError with its line."""
    value = parse_toml(toml_text, file).get("daq_job_unique_id")
    return value if isinstance(value, str) and value else None


def _write_new_file(path: str, text: str) -> None:
    """Write ``path`` atomically (a temporary file renamed), never over an existing file."""
    if os.path.exists(path):
        raise JobConflictError(f"{path} exists already: choose another daq_job_unique_id")
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # fails if the file appeared meanwhile: nothing a user wrote is replaced
    except FileExistsError as exc:
        raise JobConflictError(f"{path} exists already: choose another daq_job_unique_id") from exc
    except OSError as exc:
        raise ControlPlaneError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _free_name(path: str) -> str:
    candidate, n = path, 1
    while os.path.exists(candidate):
        n += 1
        candidate = f"{path}.{n}"
    return candidate
