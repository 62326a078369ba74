"""Custom jobs from installed packages: the ``enrgdaq.jobs`` entry-point group."""

from __future__ import annotations

import textwrap

import pytest

from enrgdaq.daq.types import JobTypeRegistry
from enrgdaq.errors import PluginImportError


def install_fake_distribution(root, entry: str, module_source: str, module: str) -> None:
    """A minimal installed distribution on ``root``: dist-info with an entry point, and its module."""
    info = root / "lab_jobs-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-jobs\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[enrgdaq.jobs]\n{entry}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(module_source))


def test_a_job_class_from_an_entry_point_is_found_by_name(tmp_path, monkeypatch) -> None:
    install_fake_distribution(
        tmp_path,
        "DAQJobLabCounter = lab_jobs_mod:DAQJobLabCounter",
        """
        from enrgdaq.daq.base import DAQJob

        class DAQJobLabCounter(DAQJob):
            def start(self):
                pass
    """,
        "lab_jobs_mod",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = JobTypeRegistry().get("DAQJobLabCounter")
    assert cls.__name__ == "DAQJobLabCounter" and cls.__module__ == "lab_jobs_mod"


def test_an_entry_point_that_fails_to_load_is_an_error_naming_it(tmp_path, monkeypatch) -> None:
    install_fake_distribution(
        tmp_path,
        "DAQJobBroken = lab_broken_mod:DAQJobBroken",
        """
        raise ImportError("libCAENDigitizer.so: cannot open shared object file")
    """,
        "lab_broken_mod",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        PluginImportError, match=r"DAQJobBroken = lab_broken_mod:DAQJobBroken.*libCAENDigitizer"
    ):
        JobTypeRegistry().get("DAQJobBroken")
