"""Every error a command meets ends as one line naming the cause, and a non-zero exit code.

Run through a subprocess, as a user's shell runs them: no traceback may reach the terminal.
"""

from __future__ import annotations

import ast
import builtins
import os
import shutil
import subprocess
import sys

import pytest

from enrgdaq.local.redis_server import free_port
from tests.harness.celery_proc import REPO


def enrgdaq(cwd: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ENRGDAQ_")}
    return subprocess.run(
        [sys.executable, "-m", "enrgdaq.cli.main", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def nowhere() -> dict[str, str]:
    return {"ENRGDAQ_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}


def test_up_without_a_reachable_redis_says_so_in_one_line_and_starts_nothing(tmp_path) -> None:
    shutil.copytree(os.path.join(REPO, "configs"), tmp_path / "configs")

    done = enrgdaq(str(tmp_path), "up", "configs/", env=nowhere())

    assert_one_line(done, 3, "cannot reach Redis", "ENRGDAQ_REDIS_URL")
    assert "ENRGDAQ up:" not in done.stdout


def test_status_without_a_system_is_one_line(tmp_path) -> None:
    assert_one_line(enrgdaq(str(tmp_path), "status", env=nowhere()), 3, "no ENRGDAQ system found")


def test_stop_without_a_system_is_one_line(tmp_path) -> None:
    assert_one_line(enrgdaq(str(tmp_path), "stop", "producer", env=nowhere()), 3, "no ENRGDAQ system found")


def test_check_of_a_supervisor_toml_that_is_not_utf8_names_the_file(tmp_path) -> None:
    (tmp_path / "supervisor.toml").write_bytes(b'[info]\nsupervisor_id = "caf\xe9"\n')

    done = enrgdaq(str(tmp_path), "check", ".")

    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "supervisor.toml: not UTF-8" in done.stderr


def test_up_with_a_broken_supervisor_toml_is_one_line_naming_file_line_and_field(tmp_path) -> None:
    (tmp_path / "supervisor.toml").write_text('[info]\nsupervisor_id = "lab"\ncolour = "red"\n')

    done = enrgdaq(str(tmp_path), "up", ".", env=nowhere())

    assert_one_line(done, 1, "supervisor.toml:3", "info.colour")


def test_up_with_a_supervisor_toml_that_is_not_utf8_is_one_line(tmp_path) -> None:
    (tmp_path / "supervisor.toml").write_bytes(b"\xff\xfe[info]\n")

    assert_one_line(enrgdaq(str(tmp_path), "up", ".", env=nowhere()), 1, "not UTF-8")


def test_check_of_a_missing_directory_is_one_line(tmp_path) -> None:
    done = enrgdaq(str(tmp_path), "check", "nowhere")

    assert done.returncode != 0 and "Traceback" not in done.stderr and "nowhere" in done.stderr


_ALLOWED = {"NotImplementedError", "StopIteration", "KeyboardInterrupt", "SystemExit"}


def _raises_of_builtin_errors(path: str) -> list[str]:
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            name = node.exc.func.id if isinstance(node.exc.func, ast.Name) else None
            if name and name not in _ALLOWED and isinstance(getattr(builtins, name, None), type):
                found.append(f"{path}:{node.lineno}: raise {name}")
    return found


def test_every_error_the_package_raises_is_part_of_its_hierarchy() -> None:
    package = os.path.join(REPO, "enrgdaq")
    found = []
    for root, _dirs, files in os.walk(package):
        found += [_raises_of_builtin_errors(os.path.join(root, n)) for n in files if n.endswith(".py")]
    flat = [line for lines in found for line in lines]
    assert flat == [], "raise an enrgdaq.errors class instead:\n" + "\n".join(flat)


@pytest.mark.parametrize(
    "command", [["status"], ["jobs"], ["stop", "x"], ["start", "x"], ["restart", "x"], ["logs", "x", "-f"]]
)
def test_commands_that_need_a_system_exit_3_when_there_is_none(tmp_path, command: list[str]) -> None:
    assert enrgdaq(str(tmp_path), *command, env=nowhere()).returncode == 3
