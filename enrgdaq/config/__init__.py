"""Configuration: ``supervisor.toml`` and job files, decoded once and strictly."""

from enrgdaq.config.directory import ConfigDirectory, read_config_dir
from enrgdaq.config.loader import JobSpec, load_job_file, load_job_text, load_supervisor_config

__all__ = [
    "ConfigDirectory",
    "JobSpec",
    "load_job_file",
    "load_job_text",
    "load_supervisor_config",
    "read_config_dir",
]
