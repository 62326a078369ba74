"""The original's example configs of the file stores pass ``enrgdaq check`` unchanged (they run in
tests/system/test_upstream_file_configs.py)."""

from __future__ import annotations

import os
import shutil

import pytest

from enrgdaq.cli.main import main

UPSTREAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("store_csv.toml", "DAQJobStoreCSV 'store_csv' on queue 'store'"),
        ("store_raw.toml", "DAQJobStoreRaw 'store_raw' on queue 'store'"),
    ],
)
def test_the_original_example_config_passes_check_unchanged(
    tmp_path, capsys: pytest.CaptureFixture[str], name: str, line: str
) -> None:
    shutil.copy(os.path.join(UPSTREAM, name), tmp_path / name)

    assert main(["check", str(tmp_path)]) == 0

    out = capsys.readouterr()
    assert line in out.out and "1 job(s), no problems" in out.out, out
