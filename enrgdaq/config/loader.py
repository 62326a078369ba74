"""Reading one config file: ``supervisor.toml``, or a job's TOML file into a :class:`JobSpec`.

A whole directory is read by :func:`enrgdaq.config.directory.read_config_dir`;
the job runner builds its job from the registered text with :func:`load_job_text`.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from enrgdaq.config.decode import decode, parse_toml
from enrgdaq.config.locate import find_line
from enrgdaq.constants import DAQ_SUPERVISOR_DEFAULT_RESTART_TIME_SECONDS, SUPERVISOR_CONFIG_FILE_NAME
from enrgdaq.errors import ConfigError, DAQError
from enrgdaq.models import ID_PATTERN, SupervisorConfig, SupervisorInfo

if TYPE_CHECKING:
    from enrgdaq.daq.base import DAQJob

QUEUE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")


@dataclass
class JobSpec:
    """A job as read from its file, ready to register."""

    unique_id: str
    daq_job_cls: type[DAQJob]
    config: Any
    raw_config: str
    config_file: str
    queue: str
    restart_on_crash: bool
    restart_offset: float
    errors: list[str] = field(default_factory=list)

    @property
    def daq_job_type(self) -> str:
        return self.daq_job_cls.__name__


def sanitize_id(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64]
    return cleaned if ID_PATTERN.match(cleaned) else f"_{cleaned}"[:64]


def default_supervisor_id() -> str:
    return sanitize_id(platform.node() or "localhost")


def default_supervisor_config() -> SupervisorConfig:
    """What a directory without ``supervisor.toml`` gets (the original's defaults)."""
    return SupervisorConfig(info=SupervisorInfo(supervisor_id=default_supervisor_id()))


def read_text(path: str) -> str:
    """A config file's text; an unreadable or non-UTF-8 file is a ConfigError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start}): save the file as UTF-8", file=path) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=path) from exc


def load_supervisor_config(config_dir: str) -> SupervisorConfig:
    """``supervisor.toml`` of ``config_dir``, or the original's defaults when it is absent."""
    path = os.path.join(config_dir, SUPERVISOR_CONFIG_FILE_NAME)
    if not os.path.exists(path):
        return default_supervisor_config()
    return load_supervisor_file(path)


def load_supervisor_file(path: str) -> SupervisorConfig:
    """A supervisor config file (``supervisor.toml``, or another node's kept beside the jobs)."""
    text = read_text(path)
    config = decode(text, SupervisorConfig, path)
    if not ID_PATTERN.match(config.info.supervisor_id):
        raise ConfigError(
            f"supervisor_id '{config.info.supervisor_id}' may only use letters, digits, '_', '.' "
            "and '-' (at most 64)",
            file=path,
            field="info.supervisor_id",
            line=find_line(text, ["info", "supervisor_id"]),
        )
    return config


def _restart_offset_seconds(cls: type[DAQJob]) -> float:
    offset = getattr(cls, "restart_offset", None)
    if isinstance(offset, timedelta):
        return offset.total_seconds()
    return float(DAQ_SUPERVISOR_DEFAULT_RESTART_TIME_SECONDS)


def load_job_text(text: str, path: str) -> JobSpec:
    """Build a job spec from a job file's text; raises ConfigError naming file, line and field."""
    from enrgdaq.config.locate import find_line
    from enrgdaq.daq.types import get_daq_job_class

    data = parse_toml(text, path)
    job_type = data.get("daq_job_type")
    if not isinstance(job_type, str):
        raise ConfigError(
            "missing required field 'daq_job_type' (the job's class name)", file=path, field="daq_job_type"
        )
    try:
        cls = get_daq_job_class(job_type)
    except ConfigError as exc:
        raise ConfigError(
            exc.message, file=path, line=find_line(text, ["daq_job_type"]), field="daq_job_type"
        ) from exc
    except DAQError as exc:
        raise ConfigError(
            str(exc), file=path, line=find_line(text, ["daq_job_type"]), field="daq_job_type"
        ) from exc
    config = decode(text, cls.config_type, path)
    stem = os.path.splitext(os.path.basename(path))[0]
    unique_id = config.daq_job_unique_id or sanitize_id(stem)
    if not ID_PATTERN.match(unique_id):
        raise ConfigError(
            f"daq_job_unique_id '{unique_id}' may only use letters, digits, '_', '.' and '-' (at most 64)",
            file=path,
            field="daq_job_unique_id",
            line=find_line(text, ["daq_job_unique_id"]),
        )
    config.daq_job_unique_id = unique_id
    queue = config.queue or cls.queue
    if not QUEUE_PATTERN.match(queue):
        raise ConfigError(
            f"queue '{queue}' may only use letters, digits, '_', '.' and '-'",
            file=path,
            field="queue",
            line=find_line(text, ["queue"]),
        )
    return JobSpec(
        unique_id=unique_id,
        daq_job_cls=cls,
        config=config,
        raw_config=text,
        config_file=path,
        queue=queue,
        restart_on_crash=config.restart_on_crash,
        restart_offset=_restart_offset_seconds(cls),
    )


def load_job_file(path: str) -> JobSpec:
    return load_job_text(read_text(path), path)


def job_id_for_file(path: str) -> str:
    """The unique id a file would get by default (used to show a broken file in status)."""
    return sanitize_id(os.path.splitext(os.path.basename(path))[0])
