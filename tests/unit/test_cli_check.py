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
