"""Reading a whole config directory: the one way ``check``, ``up`` and the supervisor see it.

A config directory is ``supervisor.toml`` (optional), the plugin modules it
names (looked up next to the TOML files first), the ``enrgdaq.jobs`` entry
points, and one TOML file per job. :func:`read_config_dir` reads all of it and
never stops at the first problem: a broken file, a plugin that fails to import
or a duplicate ``daq_job_unique_id`` becomes one located :class:`ConfigError`
and every other job is still returned with its queue.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field

from enrgdaq.config.bounds import check_ring_fits
from enrgdaq.config.loader import (
    JobSpec,
    default_supervisor_config,
    job_id_for_file,
    load_job_file,
    load_supervisor_config,
    load_supervisor_file,
)
from enrgdaq.constants import SUPERVISOR_CONFIG_FILE_NAME
from enrgdaq.daq.types import registry
from enrgdaq.errors import ConfigDirNotFoundError, ConfigError
from enrgdaq.models import SupervisorConfig


@dataclass
class ConfigDirectory:
    """What a config directory holds, as far as it could be read."""

    path: str
    supervisor: SupervisorConfig
    jobs: list[JobSpec] = field(default_factory=list)
    problems: list[ConfigError] = field(default_factory=list)
    supervisor_problem: ConfigError | None = None
    """``supervisor.toml`` itself is unusable: the defaults stand in, and ``up`` refuses to start."""
    node_configs: list[tuple[str, SupervisorConfig]] = field(default_factory=list)
    """Other nodes' supervisor configs kept beside the jobs (the original's
    ``enrgdaq_supervisor_cnc_client.toml``): checked, never run as jobs here."""

    def queues(self) -> dict[str, int]:
        """Queue -> number of jobs routed to it (the workers ``up`` starts)."""
        counts: dict[str, int] = {}
        for spec in self.jobs:
            counts[spec.queue] = counts.get(spec.queue, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def supervisor_file(self) -> str:
        return os.path.join(self.path, SUPERVISOR_CONFIG_FILE_NAME)


def read_config_dir(
    path: str,
    holders: Mapping[str, str] | None = None,
    supervisor: SupervisorConfig | None = None,
) -> ConfigDirectory:
    """Read ``path`` completely; problems are collected, never raised (but a missing directory).

    ``holders``: unique id -> config file of the jobs a running system already has; such a
    file keeps its id when another file claims the same one, whichever sorts first.
    ``supervisor``: a config given in code (``Supervisor(config=...)``) instead of the file.
    """
    if not os.path.isdir(path):
        raise ConfigDirNotFoundError(f"config directory '{path}' does not exist")
    directory = ConfigDirectory(path=path, supervisor=supervisor or default_supervisor_config())
    if supervisor is None:
        try:
            directory.supervisor = load_supervisor_config(path)
        except ConfigError as exc:
            directory.supervisor_problem = exc
            directory.problems.append(exc)
    for problem in registry.load_plugins(list(directory.supervisor.plugins), search_dir=path):
        directory.problems.append(
            ConfigError(problem.message, file=directory.supervisor_file, field=problem.field)
        )
    ring_problem = check_ring_fits(directory.supervisor, directory.supervisor_file)
    if ring_problem is not None:
        directory.problems.append(ring_problem)
    jobs, job_problems = _read_jobs(path, holders or {}, directory.node_configs)
    directory.jobs = jobs
    directory.problems += job_problems
    return directory


def job_files(config_dir: str) -> list[str]:
    return sorted(
        os.path.join(config_dir, name)
        for name in os.listdir(config_dir)
        if name.endswith(".toml") and name != SUPERVISOR_CONFIG_FILE_NAME
    )


def _read_jobs(
    config_dir: str, holders: Mapping[str, str], node_configs: list[tuple[str, SupervisorConfig]]
) -> tuple[list[JobSpec], list[ConfigError]]:
    specs: list[JobSpec] = []
    problems: list[ConfigError] = []
    for path in job_files(config_dir):
        try:
            if is_node_config(path):
                node_configs.append((path, load_supervisor_file(path)))
            else:
                specs.append(load_job_file(path))
        except ConfigError as exc:
            problems.append(exc)
    kept, duplicates = _one_file_per_id(specs, holders)
    return kept, problems + duplicates


def _one_file_per_id(
    specs: list[JobSpec], holders: Mapping[str, str]
) -> tuple[list[JobSpec], list[ConfigError]]:
    """Two files with the same unique id: the one the running system already has keeps it
    (else the first in name order); the other is a problem, the same one every time."""
    by_id: dict[str, list[JobSpec]] = {}
    for spec in specs:
        by_id.setdefault(spec.unique_id, []).append(spec)
    kept: list[JobSpec] = []
    problems: list[ConfigError] = []
    for uid, claimants in by_id.items():
        holder = holders.get(uid)
        owner = next(
            (s for s in claimants if holder and os.path.abspath(s.config_file) == os.path.abspath(holder)),
            claimants[0],
        )
        kept.append(owner)
        problems += [
            ConfigError(
                f"daq_job_unique_id '{uid}' is already used by {owner.config_file}; "
                "give this job another daq_job_unique_id",
                file=other.config_file,
                field="daq_job_unique_id",
            )
            for other in claimants
            if other is not owner
        ]
    kept.sort(key=lambda s: s.config_file)
    return kept, problems


def problem_job_id(problem: ConfigError) -> str | None:
    """The unique id a broken job file would have had; None for a problem that is not a job's
    (supervisor.toml, a plugin): those never show as a job."""
    file = problem.file or ""
    if not file.endswith(".toml") or os.path.basename(file) == SUPERVISOR_CONFIG_FILE_NAME:
        return None
    return job_id_for_file(file)


NODE_CONFIG_TABLES = frozenset({"info", "cnc", "federation"})


def is_node_config(path: str) -> bool:
    """A supervisor config of some node kept beside the job files: a file named ``*supervisor*``
    without ``daq_job_type`` that has an ``[info]``, ``[cnc]`` or ``[federation]`` table."""
    if "supervisor" not in os.path.basename(path):
        return False
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return False  # read as a job file: its problem is said there, with the line
    return "daq_job_type" not in doc and bool(NODE_CONFIG_TABLES & doc.keys())
