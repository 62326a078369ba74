"""The original's example configs of the server stores pass ``enrgdaq check`` unchanged (they run
in tests/system/test_server_stores.py, given the test servers' port)."""

from __future__ import annotations

import os
import shutil

import pytest

from enrgdaq.cli.main import main

UPSTREAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("store_redis.toml", "DAQJobStoreRedis 'store_redis' on queue 'store'"),
        ("store_mysql.toml", "DAQJobStoreMySQL 'store_mysql' on queue 'store'"),
    ],
)
def test_the_original_example_config_passes_check_unchanged(
    tmp_path, capsys: pytest.CaptureFixture[str], name: str, line: str
) -> None:
    shutil.copy(os.path.join(UPSTREAM, name), tmp_path / name)

    assert main(["check", str(tmp_path)]) == 0

    out = capsys.readouterr()
    assert line in out.out and "1 job(s), no problems" in out.out, out
    assert "password" not in out.out + out.err
