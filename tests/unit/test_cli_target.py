"""Which supervisor a command means without ``--supervisor``: this machine's node, else the
only one; several and none known is an error that lists them and says how to choose."""

from __future__ import annotations

import os

import pytest

from enrgdaq.cli.target import choose_supervisor, local_node
from enrgdaq.control.node import SupervisorRecord
from enrgdaq.errors import SupervisorNotFoundError
from enrgdaq.models import SupervisorInfo


def record(sid: str) -> SupervisorRecord:
    return SupervisorRecord(
        supervisor_id=sid, info=SupervisorInfo(supervisor_id=sid), xpub_url="", xsub_url="", run_dir=""
    )


def config_dir(tmp_path: os.PathLike[str], text: str) -> dict[str, str]:
    path = os.path.join(str(tmp_path), "configs")
    os.makedirs(path)
    with open(os.path.join(path, "supervisor.toml"), "w") as f:
        f.write(text)
    return {"ENRGDAQ_CONFIG_DIR": path}


NODES = [record("daq-01"), record("daq-02")]


def test_the_node_of_the_config_directory_or_enrgdaq_node_is_chosen(tmp_path: os.PathLike[str]) -> None:
    env = config_dir(tmp_path, '[info]\nsupervisor_id = "daq-02"\n')
    assert local_node(env)[0] == "daq-02"
    assert choose_supervisor(NODES, env).supervisor_id == "daq-02"
    assert choose_supervisor(NODES, {**env, "ENRGDAQ_NODE": "daq-01"}).supervisor_id == "daq-01"


def test_the_only_supervisor_is_chosen_whatever_this_machine_is(tmp_path: os.PathLike[str]) -> None:
    env = config_dir(tmp_path, '[info]\nsupervisor_id = "elsewhere"\n')
    assert choose_supervisor([record("daq-01")], env).supervisor_id == "daq-01"


def test_several_and_none_known_is_an_error_that_lists_them(tmp_path: os.PathLike[str]) -> None:
    env = {"ENRGDAQ_CONFIG_DIR": os.path.join(str(tmp_path), "none")}
    with pytest.raises(SupervisorNotFoundError) as unknown:
        choose_supervisor(NODES, env)
    text = str(unknown.value)
    assert "2 supervisors (nodes) in this Redis: daq-01, daq-02" in text
    assert "--supervisor ID" in text and "ENRGDAQ_NODE=ID" in text

    with pytest.raises(SupervisorNotFoundError, match=r"node 'daq-03' .* is not one of them"):
        choose_supervisor(NODES, {**env, "ENRGDAQ_NODE": "daq-03"})
    broken = config_dir(tmp_path, "[info\n")
    assert local_node(broken)[0] is None
    with pytest.raises(SupervisorNotFoundError, match="cannot be read"):
        choose_supervisor(NODES, broken)
    with pytest.raises(SupervisorNotFoundError, match="no supervisor is registered"):
        choose_supervisor([], env)
