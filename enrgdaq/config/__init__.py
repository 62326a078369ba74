"""Configuration: ``supervisor.toml`` and job files, decoded once and strictly."""

from enrgdaq.config.loader import (
    JobSpec,
    load_job_dir,
    load_job_file,
    load_job_text,
    load_supervisor_config,
)

__all__ = ["JobSpec", "load_job_dir", "load_job_file", "load_job_text", "load_supervisor_config"]
