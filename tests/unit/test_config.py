"""Config files: strict decoding, and errors that name the file, the line and the field."""

from __future__ import annotations

import os
import platform
import re
import textwrap

import pytest

from enrgdaq.config.decode import decode
from enrgdaq.config.directory import read_config_dir
from enrgdaq.config.loader import load_job_file, load_supervisor_config
from enrgdaq.daq.jobs.store.csv import DAQJobStoreCSV
from enrgdaq.daq.jobs.test_job import DAQJobTest
from enrgdaq.data.settings import DataPlaneSettings
from enrgdaq.errors import ConfigError
from enrgdaq.models import SupervisorConfig

PRODUCER = """\
    daq_job_type = "DAQJobTest"
    rand_min = 1
    rand_max = 100

    [store_config.csv]
    file_path = "data.csv"
"""


def write(directory, name: str, text: str) -> str:
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


def error_of(path: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_job_file(path)
    return caught.value


class TestJobFileErrors:
    def test_an_unknown_key_names_the_file_the_line_and_the_dotted_field(self, tmp_path) -> None:
        path = write(tmp_path, "producer.toml", PRODUCER + "    foo = 3\n")

        err = error_of(path)

        assert (err.file, err.line, err.field) == (path, 7, "store_config.csv.foo")
        assert "unknown" in err.message
        assert str(err).startswith(f"{path}:7: field 'store_config.csv.foo': ")

    def test_an_unknown_top_level_key_names_it_and_its_line(self, tmp_path) -> None:
        path = write(
            tmp_path,
            "producer.toml",
            """\
            daq_job_type = "DAQJobTest"
            rand_min = 1
            rand_max = 100
            rate_hzz = 5
            [store_config.csv]
            file_path = "data.csv"
        """,
        )

        err = error_of(path)

        assert (err.line, err.field) == (4, "rate_hzz")

    def test_a_value_of_the_wrong_type_names_its_field_its_line_and_the_types(self, tmp_path) -> None:
        path = write(tmp_path, "producer.toml", PRODUCER.replace("rand_min = 1", 'rand_min = "one"'))

        err = error_of(path)

        assert (err.file, err.line, err.field) == (path, 2, "rand_min")
        assert "int" in err.message and "str" in err.message

    def test_a_missing_required_field_is_named(self, tmp_path) -> None:
        path = write(tmp_path, "producer.toml", PRODUCER.replace("    rand_max = 100\n", ""))

        err = error_of(path)

        assert (err.file, err.field) == (path, "rand_max")
        assert "missing required field" in err.message

    def test_a_missing_field_of_a_table_points_at_the_tables_header(self, tmp_path) -> None:
        path = write(tmp_path, "producer.toml", PRODUCER.replace('file_path = "data.csv"', "add_date = true"))

        err = error_of(path)

        assert (err.line, err.field) == (5, "store_config.csv.file_path")

    def test_bad_toml_syntax_names_its_line(self, tmp_path) -> None:
        path = write(tmp_path, "producer.toml", PRODUCER.replace("rand_max = 100", "rand_max = = 100"))

        err = error_of(path)

        assert (err.file, err.line) == (path, 3)
        assert "TOML" in err.message

    def test_an_unknown_daq_job_type_names_the_known_types(self, tmp_path) -> None:
        path = write(
            tmp_path,
            "producer.toml",
            """\
            # a comment first
            daq_job_type = "DAQJobNoSuchThing"
        """,
        )

        err = error_of(path)

        assert (err.file, err.line, err.field) == (path, 2, "daq_job_type")
        assert "DAQJobNoSuchThing" in err.message
        assert "DAQJobTest" in err.message and "DAQJobStoreCSV" in err.message

    def test_a_file_without_daq_job_type_says_it_is_missing(self, tmp_path) -> None:
        path = write(tmp_path, "producer.toml", "rand_min = 1\n")

        assert error_of(path).field == "daq_job_type"

    def test_rand_min_above_rand_max_is_an_error_naming_rand_min_and_both_values(self, tmp_path) -> None:
        path = write(tmp_path, "producer.toml", PRODUCER.replace("rand_min = 1", "rand_min = 500"))

        err = error_of(path)

        assert (err.line, err.field) == (2, "rand_min")
        assert "500" in err.message and "100" in err.message

    def test_rand_min_equal_to_rand_max_is_accepted(self, tmp_path) -> None:
        path = write(tmp_path, "producer.toml", PRODUCER.replace("rand_min = 1", "rand_min = 100"))

        assert load_job_file(path).config.rand_min == 100

    def test_an_invalid_queue_name_is_an_error_naming_queue(self, tmp_path) -> None:
        path = write(tmp_path, "producer.toml", 'queue = "no spaces please"\n' + textwrap.dedent(PRODUCER))

        err = error_of(path)

        assert (err.line, err.field) == (1, "queue")

    def test_an_unknown_ring_policy_is_an_error_naming_the_field_and_its_line(self, tmp_path) -> None:
        path = write(tmp_path, "producer.toml", 'ring_policy = "sometimes"\n' + textwrap.dedent(PRODUCER))

        err = error_of(path)

        assert (err.line, err.field) == (1, "ring_policy")
        assert "block" in str(err) and "drop" in str(err)


class TestRingPolicyPerJob:
    SETTINGS = DataPlaneSettings(run_dir="/dev/shm", policy="block", block_timeout_s=5.0)

    def test_a_job_that_says_drop_drops_after_its_own_timeout(self, tmp_path) -> None:
        text = 'ring_policy = "drop"\nring_block_timeout_seconds = 0.25\n' + textwrap.dedent(PRODUCER)
        job = DAQJobTest(load_job_file(write(tmp_path, "producer.toml", text)).config)

        job.configure_data_plane(self.SETTINGS)

        assert (job._data_plane.policy, job._data_plane.block_timeout_s) == ("drop", 0.25)

    def test_a_job_without_the_keys_keeps_the_supervisors_settings(self, tmp_path) -> None:
        job = DAQJobTest(load_job_file(write(tmp_path, "producer.toml", PRODUCER)).config)

        job.configure_data_plane(self.SETTINGS)

        assert job._data_plane == self.SETTINGS


class TestJobFileDefaults:
    def test_the_unique_id_defaults_to_the_file_stem(self, tmp_path) -> None:
        spec = load_job_file(write(tmp_path, "hall-b_producer.toml", PRODUCER))

        assert spec.unique_id == "hall-b_producer"
        assert spec.config.daq_job_unique_id == "hall-b_producer"

    def test_an_explicit_unique_id_wins_over_the_file_stem(self, tmp_path) -> None:
        spec = load_job_file(
            write(tmp_path, "producer.toml", 'daq_job_unique_id = "explicit"\n' + textwrap.dedent(PRODUCER))
        )

        assert spec.unique_id == "explicit"

    def test_a_file_stem_with_spaces_becomes_a_sanitized_unique_id(self, tmp_path) -> None:
        spec = load_job_file(write(tmp_path, "my producer.toml", PRODUCER))

        assert spec.unique_id == "my_producer"

    def test_the_queue_key_chooses_the_queue(self, tmp_path) -> None:
        spec = load_job_file(write(tmp_path, "producer.toml", 'queue = "caen"\n' + textwrap.dedent(PRODUCER)))

        assert spec.queue == "caen"

    def test_without_a_queue_key_daq_job_test_goes_to_the_default_queue(self, tmp_path) -> None:
        spec = load_job_file(write(tmp_path, "producer.toml", PRODUCER))

        assert (spec.daq_job_cls, spec.queue) == (DAQJobTest, "default")

    def test_without_a_queue_key_the_csv_store_goes_to_the_store_queue(self, tmp_path) -> None:
        spec = load_job_file(write(tmp_path, "store.toml", 'daq_job_type = "DAQJobStoreCSV"\n'))

        assert (spec.daq_job_cls, spec.queue) == (DAQJobStoreCSV, "store")

    def test_a_spec_keeps_the_raw_text_and_the_restart_settings(self, tmp_path) -> None:
        path = write(tmp_path, "producer.toml", "restart_on_crash = false\n" + textwrap.dedent(PRODUCER))

        spec = load_job_file(path)

        assert spec.raw_config.startswith("restart_on_crash = false\n")
        assert spec.restart_on_crash is False
        assert spec.config_file == path

    def test_the_deprecated_type_name_test_still_loads_daq_job_test(self, tmp_path) -> None:
        spec = load_job_file(write(tmp_path, "producer.toml", PRODUCER.replace('"DAQJobTest"', '"test"')))

        assert spec.daq_job_cls is DAQJobTest


class TestJobDirectory:
    def test_one_broken_file_among_good_ones_gives_the_good_specs_and_one_problem_per_file(
        self, tmp_path
    ) -> None:
        write(tmp_path, "a_producer.toml", PRODUCER)
        write(tmp_path, "b_store.toml", 'daq_job_type = "DAQJobStoreCSV"\n')
        broken_key = write(tmp_path, "c_broken.toml", PRODUCER + "    foo = 3\n")
        broken_syntax = write(tmp_path, "d_broken.toml", "daq_job_type = \n")
        write(tmp_path, "notes.txt", "not a job")

        found = read_config_dir(str(tmp_path))
        specs, problems = found.jobs, found.problems

        assert [s.unique_id for s in specs] == ["a_producer", "b_store"]
        assert [p.file for p in problems] == [broken_key, broken_syntax]
        assert problems[0].field == "store_config.csv.foo"
        assert problems[1].line == 1

    def test_supervisor_toml_is_not_read_as_a_job(self, tmp_path) -> None:
        write(tmp_path, "supervisor.toml", '[info]\nsupervisor_id = "lab"\n')
        write(tmp_path, "producer.toml", PRODUCER)

        found = read_config_dir(str(tmp_path))
        specs, problems = found.jobs, found.problems

        assert ([s.unique_id for s in specs], problems) == (["producer"], [])

    def test_two_files_with_the_same_unique_id_give_one_problem_naming_both(self, tmp_path) -> None:
        first = write(tmp_path, "a.toml", 'daq_job_unique_id = "same"\n' + textwrap.dedent(PRODUCER))
        second = write(tmp_path, "b.toml", 'daq_job_unique_id = "same"\n' + textwrap.dedent(PRODUCER))

        found = read_config_dir(str(tmp_path))
        specs, problems = found.jobs, found.problems

        assert [s.config_file for s in specs] == [first]
        assert len(problems) == 1
        assert problems[0].file == second and first in problems[0].message

    def test_the_file_that_holds_an_id_keeps_it_whichever_sorts_first(self, tmp_path) -> None:
        first = write(tmp_path, "a.toml", 'daq_job_unique_id = "same"\n' + textwrap.dedent(PRODUCER))
        holder = write(tmp_path, "b.toml", 'daq_job_unique_id = "same"\n' + textwrap.dedent(PRODUCER))

        found = read_config_dir(str(tmp_path), holders={"same": holder})
        again = read_config_dir(str(tmp_path), holders={"same": holder})

        assert [s.config_file for s in found.jobs] == [holder]
        assert [p.file for p in found.problems] == [first]
        assert holder in found.problems[0].message and "another daq_job_unique_id" in str(found.problems[0])
        assert [str(p) for p in again.problems] == [str(p) for p in found.problems]

    def test_a_missing_directory_is_an_error(self, tmp_path) -> None:
        with pytest.raises(ConfigError, match="does not exist"):
            read_config_dir(str(tmp_path / "nowhere"))


class TestSupervisorConfig:
    def test_without_supervisor_toml_the_supervisor_id_is_the_host_name(self, tmp_path) -> None:
        config = load_supervisor_config(str(tmp_path))

        expected = re.sub(r"[^A-Za-z0-9_.-]", "_", platform.node())[:64]
        assert config.info.supervisor_id == expected

    def test_a_host_name_with_odd_characters_is_sanitized(
        self, tmp_path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(platform, "node", lambda: "lab pc#3 (hall B)")

        assert load_supervisor_config(str(tmp_path)).info.supervisor_id == "lab_pc_3__hall_B_"

    def test_a_valid_supervisor_toml_is_read(self, tmp_path) -> None:
        write(
            tmp_path,
            "supervisor.toml",
            """\
            plugins = ["lab_jobs"]
            restart_backoff_max_seconds = 30
            [info]
            supervisor_id = "hall-b.daq1"
        """,
        )

        config = load_supervisor_config(str(tmp_path))

        assert config.info.supervisor_id == "hall-b.daq1"
        assert config.plugins == ["lab_jobs"]
        assert config.restart_backoff_max_seconds == 30.0

    def test_an_unknown_key_in_supervisor_toml_is_an_error_naming_it(self, tmp_path) -> None:
        path = write(
            tmp_path,
            "supervisor.toml",
            """\
            [info]
            supervisor_id = "lab"
            colour = "red"
        """,
        )

        with pytest.raises(ConfigError) as caught:
            load_supervisor_config(str(tmp_path))

        assert (caught.value.file, caught.value.line, caught.value.field) == (path, 3, "info.colour")

    def test_an_unknown_top_level_key_in_supervisor_toml_is_an_error_naming_it(self, tmp_path) -> None:
        write(tmp_path, "supervisor.toml", 'plugin = ["typo"]\n[info]\nsupervisor_id = "lab"\n')

        with pytest.raises(ConfigError) as caught:
            load_supervisor_config(str(tmp_path))

        assert (caught.value.line, caught.value.field) == (1, "plugin")

    @pytest.mark.parametrize("bad_id", ["lab pc", "lab/1", "", "-lab", "x" * 65])
    def test_an_invalid_supervisor_id_is_an_error_naming_the_field(self, tmp_path, bad_id: str) -> None:
        path = write(tmp_path, "supervisor.toml", f'[info]\nsupervisor_id = "{bad_id}"\n')

        with pytest.raises(ConfigError) as caught:
            load_supervisor_config(str(tmp_path))

        assert (caught.value.file, caught.value.field) == (path, "info.supervisor_id")

    def test_an_invalid_supervisor_id_error_points_at_its_line(self, tmp_path) -> None:
        write(tmp_path, "supervisor.toml", '# lab\n[info]\nsupervisor_id = "lab pc"\n')

        with pytest.raises(ConfigError) as caught:
            load_supervisor_config(str(tmp_path))

        assert caught.value.line == 3


class TestDecode:
    def test_decode_gives_the_struct_for_valid_text(self) -> None:
        config = decode('[info]\nsupervisor_id = "lab"\n', SupervisorConfig, "s.toml")

        assert config.info.supervisor_id == "lab"

    def test_decode_is_strict_about_types(self) -> None:
        with pytest.raises(ConfigError) as caught:
            decode('ring_buffer_size_mb = "256"\n[info]\nsupervisor_id = "lab"\n', SupervisorConfig, "s.toml")

        assert (caught.value.file, caught.value.line, caught.value.field) == (
            "s.toml",
            1,
            "ring_buffer_size_mb",
        )
