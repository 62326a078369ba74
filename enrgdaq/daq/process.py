"""``DAQJobProcess``: a job as the supervisor tracks it (the original's name).

In the original it carried a job class across ``fork()``; here it is a view
of a registry record, and the way to hand jobs built in Python (rather than
read from files) to ``Supervisor(daq_job_processes=[...])``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from enrgdaq.control.lifecycle import JobState
from enrgdaq.daq.models import DAQJobInfo
from enrgdaq.errors import ConfigError
from enrgdaq.models import SupervisorInfo

if TYPE_CHECKING:
    from enrgdaq.config.loader import JobSpec
    from enrgdaq.control.registry import JobRecord


class DAQJobProcess(msgspec.Struct, kw_only=True):
    daq_job_cls: Any
    supervisor_info: SupervisorInfo | None = None
    config: Any = None
    process: Any = None
    start_time: datetime | None = None
    instance_id: int = 0
    daq_job_info: DAQJobInfo | None = None
    raw_config: str | None = None
    restart_on_crash: bool = True
    unique_id: str | None = None
    state: JobState = JobState.REGISTERED

    def to_spec(self) -> JobSpec:
        """A spec to register; ``raw_config`` (the TOML text) is what the worker decodes."""
        from enrgdaq.config.loader import load_job_text

        if not self.raw_config:
            raise ConfigError("a DAQJobProcess handed to the supervisor needs raw_config (its TOML text)")
        spec = load_job_text(self.raw_config, f"{self.unique_id or 'custom'}.toml")
        spec.restart_on_crash = self.restart_on_crash
        return spec

    @classmethod
    def from_record(cls, record: JobRecord, info: SupervisorInfo) -> DAQJobProcess:
        from enrgdaq.daq.types import registry

        try:
            job_cls: Any = registry.get(record.daq_job_type)
        except ConfigError:  # its class is unknown here (a broken plugin): keep the name
            job_cls = record.daq_job_type
        return cls(
            daq_job_cls=job_cls,
            supervisor_info=info,
            instance_id=record.restarts,
            raw_config=record.config,
            restart_on_crash=record.restart_on_crash,
            unique_id=record.unique_id,
            state=record.state,
            start_time=datetime.fromtimestamp(record.started_at) if record.started_at else None,
            daq_job_info=DAQJobInfo(
                daq_job_type=record.daq_job_type,
                unique_id=record.unique_id,
                instance_id=record.restarts,
                supervisor_info=info,
            ),
        )
