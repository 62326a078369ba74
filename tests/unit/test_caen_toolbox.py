"""DAQJobCAENToolbox: strict config, the dump parser, the simulated digitizer, and the real
CLI path with a stand-in ``caen-toolbox`` executable on PATH (CAEN's is not on this machine):
an argument list, never a shell; a private dump file per run; errors, a missing CLI and a
stop during a slow dump."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import threading
import time

import pytest

from enrgdaq.config.decode import decode
from enrgdaq.daq.jobs.caen.toolbox import DAQJobCAENToolbox, DAQJobCAENToolboxConfig
from enrgdaq.daq.jobs.caen.toolbox_device import parse_dump
from enrgdaq.errors import ConfigError, DeviceError
from tests.harness.waiting import wait_for

BASE = """daq_job_type = "DAQJobCAENToolbox"
digitizer_type = "dig1"
connection_string = "-c OPTICAL_LINK -l 0"
poll_interval_seconds = 0.05
{top}
[[register_labels]]
register = "0x11a8"
label = "ADC_ch_1_Temperature"

[[register_labels]]
register = "0x8000"
label = "config"

[store_config.csv]
file_path = "registers.csv"
"""

STAND_IN = """#!{python}
import json, os, signal, sys
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
mode = os.environ.get("STANDIN_MODE", "ok")
if mode == "fail":
    print("Error: cannot open the digitizer (OPTICAL_LINK 0)")
    sys.exit(3)
if mode == "slow":
    signal.pause()  # hangs until the job kills it
with open(sys.argv[-1], "w") as f:
    f.write("# register,value\\n0x11A8,0x0000002b\\n0x8000,0x00010010\\n0x8004,0xdeadbeef\\n")
"""


def config(top: str = "") -> DAQJobCAENToolboxConfig:
    return decode(BASE.format(top=top), DAQJobCAENToolboxConfig, "toolbox.toml")


@pytest.fixture
def stand_in(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A ``caen-toolbox`` on PATH that logs its arguments (one JSON list a line) and dumps."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "caen-toolbox"
    exe.write_text(STAND_IN.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_LOG", str(log))
    return log


def runs(log: pathlib.Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run(job: DAQJobCAENToolbox) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            job.start()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, errors


def test_config_is_strict_and_checks_registers_and_labels() -> None:
    assert config().connection_args == ["-c", "OPTICAL_LINK", "-l", "0"]
    with pytest.raises(ConfigError, match="digitizer_type"):
        decode(BASE.format(top="").replace('"dig1"', '"dig1; rm -rf ~"'), DAQJobCAENToolboxConfig, "t.toml")
    with pytest.raises(ConfigError, match="not a hexadecimal"):
        decode(BASE.format(top="").replace('"0x8000"', '"zz"'), DAQJobCAENToolboxConfig, "t.toml")
    with pytest.raises(ConfigError, match="used twice"):
        decode(
            BASE.format(top="").replace('"config"', '"ADC_ch_1_Temperature"'),
            DAQJobCAENToolboxConfig,
            "t.toml",
        )
    with pytest.raises(ConfigError, match="unknown key"):
        config(top="interval = 1")


def test_parse_dump_reads_hex_pairs_whatever_their_case() -> None:
    assert parse_dump(["# comment", "", "0x11A8,0x2b", "8000, 00010010"]) == {0x11A8: 0x2B, 0x8000: 0x10010}
    with pytest.raises(DeviceError, match="line 2"):
        parse_dump(["0x1,0x2", "garbage"])


def test_the_simulated_digitizer_gives_plausible_rows() -> None:
    job = DAQJobCAENToolbox(config(top="simulate = true"))
    thread, errors = run(job)
    wait_for(lambda: len(job.message_out) >= 3, 10, "three tables out")
    job.request_stop()
    thread.join(5)
    assert errors == []
    rows = [m.table.to_pylist()[0] for m in job.message_out]
    assert list(rows[0]) == ["timestamp", "ADC_ch_1_Temperature", "config"]
    assert all(35 <= r["ADC_ch_1_Temperature"] <= 50 for r in rows)
    assert len({r["config"] for r in rows}) == 1


def test_the_cli_runs_as_an_argument_list_into_a_private_file(
    stand_in: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    marker = tmp_path / "injected"
    text = BASE.format(top="").replace("-l 0", f"-l 0 ; touch {marker}")
    job = DAQJobCAENToolbox(decode(text, DAQJobCAENToolboxConfig, "toolbox.toml"))
    thread, errors = run(job)
    wait_for(lambda: len(job.message_out) >= 2, 10, "two tables out")
    job.request_stop()
    thread.join(5)
    assert errors == []
    argvs = runs(stand_in)
    assert argvs[0][:6] == ["dig1", "dump", "-c", "OPTICAL_LINK", "-l", "0"]
    assert argvs[0][6:8] == [";", "touch"], "the connection options were not passed as separate arguments"
    assert not marker.exists(), "a shell ran the command line"
    files = [argv[-1] for argv in argvs]
    assert len(set(files)) == len(files), "two runs shared one dump file"
    assert all(f != "/tmp/reg-dump.csv" and "enrgdaq-toolbox-" in f for f in files)
    assert not any(os.path.exists(f) for f in files), "a dump file was left behind"
    row = job.message_out[0].table.to_pylist()[0]
    assert (row["ADC_ch_1_Temperature"], row["config"]) == (0x2B, 0x10010)


def test_a_failing_cli_is_a_device_error_with_its_output(
    stand_in: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "fail")
    with pytest.raises(DeviceError, match=r"exit 3\): Error: cannot open the digitizer"):
        DAQJobCAENToolbox(config()).start()


def test_a_missing_cli_is_a_device_error_that_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DeviceError, match="caen-toolbox is not on PATH"):
        DAQJobCAENToolbox(config()).start()


def test_a_register_missing_from_the_dump_is_named(stand_in: pathlib.Path) -> None:
    c = decode(BASE.format(top="").replace('"0x8000"', '"0x9000"'), DAQJobCAENToolboxConfig, "t.toml")
    with pytest.raises(DeviceError, match="no register 0x9000"):
        DAQJobCAENToolbox(c).start()


def test_a_stop_during_a_slow_dump_ends_it_within_a_second(
    stand_in: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "slow")
    job = DAQJobCAENToolbox(config())
    thread, errors = run(job)
    wait_for(lambda: runs(stand_in), 10, "a run of the stand-in tool")
    t0 = time.monotonic()
    job.request_stop()
    thread.join(5)
    assert time.monotonic() - t0 < 1.0 and errors == []
