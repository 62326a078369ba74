"""``enrgdaq check CONFIG_DIR``: exit 0 for good configs, 1 naming file, line and field otherwise."""

from __future__ import annotations

import os
import textwrap

import pytest

from enrgdaq.cli.main import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPO_CONFIGS = os.path.join(REPO, "configs")


def write(directory, name: str, text: str) -> str:
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


def good_dir(directory) -> None:
    write(directory, "supervisor.toml", '[info]\nsupervisor_id = "lab"\n')
    write(directory, "store_csv.toml", 'daq_job_type = "DAQJobStoreCSV"\nout_dir = "out/"\n')
    write(
        directory,
        "producer.toml",
        """\
        daq_job_type = "DAQJobTest"
        rand_min = 1
        rand_max = 10
        [store_config.csv]
        file_path = "data.csv"
    """,
    )


def test_the_repos_configs_directory_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", REPO_CONFIGS]) == 0

    out = capsys.readouterr()
    assert "no problems" in out.out
    for name in os.listdir(REPO_CONFIGS):
        if name.endswith(".toml") and name != "supervisor.toml":
            assert name in out.out
    assert "error" not in out.err


def test_a_good_directory_passes_and_lists_each_job_with_its_queue(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    good_dir(tmp_path)

    assert main(["check", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    assert "DAQJobTest 'producer' on queue 'default'" in out
    assert "DAQJobStoreCSV 'store_csv' on queue 'store'" in out
    assert "2 job(s), no problems" in out


BROKEN_JOB = """\
    daq_job_type = "DAQJobTest"
    rand_min = 1
    rand_max = 10

    [store_config.csv]
    file_path = "data.csv"
    fiel_path = "typo.csv"
"""


def break_job_file(directory) -> None:
    write(directory, "broken.toml", BROKEN_JOB)


def break_supervisor_toml(directory) -> None:
    write(directory, "supervisor.toml", '[info]\nsupervisor_id = "lab"\nsupervisor_idd = "x"\n')


def list_a_missing_plugin(directory) -> None:
    write(
        directory,
        "supervisor.toml",
        'plugins = ["edq_no_such_plugin_module"]\n[info]\nsupervisor_id = "lab"\n',
    )


@pytest.mark.parametrize("breakage", [break_job_file, break_supervisor_toml, list_a_missing_plugin])
def test_a_directory_with_a_problem_exits_1(tmp_path, breakage, capsys) -> None:
    good_dir(tmp_path)
    breakage(tmp_path)

    rc = main(["check", str(tmp_path)])

    assert "1 problem(s)" in capsys.readouterr().err  # the problem was found...
    assert rc == 1  # ...and the exit status says so


def test_a_broken_file_is_reported_naming_the_file_the_line_and_the_field(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    good_dir(tmp_path)
    break_job_file(tmp_path)
    broken = os.path.join(str(tmp_path), "broken.toml")

    main(["check", str(tmp_path)])

    out = capsys.readouterr()
    assert f"error {broken}:7: field 'store_config.csv.fiel_path'" in out.err
    assert "1 problem(s)" in out.err
    assert "no problems" not in out.out
    assert "producer.toml" in out.out  # the good files are still listed


def test_every_broken_file_is_reported(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    good_dir(tmp_path)
    wrong_type = write(tmp_path, "a.toml", 'daq_job_type = "DAQJobTest"\nrand_min = "x"\nrand_max = 1\n')
    bad_syntax = write(tmp_path, "b.toml", 'daq_job_type = "DAQJobTest"\n\nrand_min = \n')

    main(["check", str(tmp_path)])

    err = capsys.readouterr().err
    assert f"{wrong_type}:2: field 'rand_min'" in err
    assert f"{bad_syntax}:3:" in err
    assert "2 problem(s)" in err


def test_a_broken_supervisor_toml_is_reported_naming_the_key_and_its_line(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    good_dir(tmp_path)
    break_supervisor_toml(tmp_path)
    path = os.path.join(str(tmp_path), "supervisor.toml")

    main(["check", str(tmp_path)])

    assert f"{path}:3: field 'info.supervisor_idd'" in capsys.readouterr().err


def test_a_plugin_that_cannot_be_imported_is_reported_naming_it(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    good_dir(tmp_path)
    list_a_missing_plugin(tmp_path)

    main(["check", str(tmp_path)])

    err = capsys.readouterr().err
    assert "supervisor.toml: field 'plugins'" in err
    assert "edq_no_such_plugin_module" in err


def test_a_missing_directory_fails(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nowhere")]) == 1

    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("rate_hz = 1e9", "rate_hz"),
        ("rate_hz = 0", "rate_hz"),
        ("rows_per_message = 0", "rows_per_message"),
        ("ring_block_timeout_seconds = 1e12", "ring_block_timeout_seconds"),
    ],
)
def test_an_absurd_number_in_a_job_file_is_refused_naming_file_line_and_field(
    tmp_path, line: str, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good_dir(tmp_path)
    path = write(tmp_path, "fast.toml", f'daq_job_type = "DAQJobTest"\nrand_min = 1\nrand_max = 2\n{line}\n')

    assert main(["check", str(tmp_path)]) == 1

    assert f"error {path}:4: field '{field}'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("ring_buffer_size_mb = 100000", "ring_buffer_size_mb"),
        ("ring_buffer_size_mb = 0", "ring_buffer_size_mb"),
        ("ring_buffer_slot_size_kb = -1", "ring_buffer_slot_size_kb"),
        ("restart_backoff_max_seconds = 0", "restart_backoff_max_seconds"),
        ("ring_consumer_timeout_seconds = 1e9", "ring_consumer_timeout_seconds"),
    ],
)
def test_an_absurd_number_in_supervisor_toml_is_refused(
    tmp_path, line: str, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good_dir(tmp_path)
    path = write(tmp_path, "supervisor.toml", f'{line}\n[info]\nsupervisor_id = "lab"\n')

    assert main(["check", str(tmp_path)]) == 1

    assert f"error {path}:1: field '{field}'" in capsys.readouterr().err


def test_a_ring_larger_than_the_free_space_of_its_directory_is_refused(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not created: check looks at the nearest directory that exists (the tmpfs, as in production).
    ring_dir = f"/dev/shm/check-{os.getpid()}/rings"
    stat = os.statvfs("/dev/shm")
    if stat.f_bavail * stat.f_frsize >= 64 * 2**30:
        pytest.skip("more than 64 GiB free in /dev/shm: no ring size within bounds is too big")
    good_dir(tmp_path)
    path = write(
        tmp_path,
        "supervisor.toml",
        f'run_dir = "{ring_dir}"\n\nring_buffer_size_mb = 65536\n[info]\nsupervisor_id = "lab"\n',
    )

    assert main(["check", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert f"error {path}:3: field 'ring_buffer_size_mb'" in err and "does not fit" in err
