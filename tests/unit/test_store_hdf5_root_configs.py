"""The HDF5 and ROOT stores' configs: the original's example files pass ``enrgdaq check`` unchanged
(they run in tests/system/test_hdf5_root_stores.py), and without h5py or uproot installed the
stores stay known types whose config error names the extra to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from enrgdaq.cli.main import main

UPSTREAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("store_hdf5.toml", "DAQJobStoreHDF5 'store_hdf5' on queue 'store'"),
        ("store_root.toml", "DAQJobStoreROOT 'store_root' on queue 'store'"),
    ],
)
def test_the_original_example_config_passes_check_unchanged(
    tmp_path, capsys: pytest.CaptureFixture[str], name: str, line: str
) -> None:
    shutil.copy(os.path.join(UPSTREAM, name), tmp_path / name)

    assert main(["check", str(tmp_path)]) == 0

    out = capsys.readouterr()
    assert line in out.out and "1 job(s), no problems" in out.out, out


WITHOUT = """
import sys

class Missing:
    \"\"\"Acts as if {module} were not installed.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name == {module!r} or name.startswith({module!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Missing())
from enrgdaq.cli.main import main
sys.exit(main(["check", {directory!r}]))
"""


def check_without(module: str, directory: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(WITHOUT.format(module=module, directory=directory))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("module", "job_type", "extra"),
    [("h5py", "DAQJobStoreHDF5", "hdf5"), ("uproot", "DAQJobStoreROOT", "root")],
)
def test_without_the_library_the_store_is_a_config_error_naming_the_extra_not_a_vanished_type(
    tmp_path, module: str, job_type: str, extra: str
) -> None:
    (tmp_path / "store.toml").write_text(f'daq_job_type = "{job_type}"\n')
    (tmp_path / "typo.toml").write_text('daq_job_type = "DAQJobStoreHDF6"\n')

    done = check_without(module, str(tmp_path))

    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    problem = next(line for line in said.splitlines() if "store.toml" in line and "error" in line.lower())
    assert f"pip install 'enrgdaq[{extra}]'" in problem and job_type in problem, said
    assert module in problem, f"the missing module is not named: {problem}"
    known = next(line for line in said.splitlines() if "DAQJobStoreHDF6" in line)
    assert "DAQJobStoreHDF5" in known and "DAQJobStoreROOT" in known, (
        f"a store vanished from the types: {known}"
    )
