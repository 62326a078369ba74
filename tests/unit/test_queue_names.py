"""Queue names on the wire: ``<queue>@<node>``, and which node a worker, beat or job belongs to."""

from __future__ import annotations

import os

import pytest
from celery import Celery

from enrgdaq.control.queues import (
    base_queue,
    job_node,
    node_queue,
    qualify_worker_queues,
    route_ticks,
    this_node,
)
from enrgdaq.errors import ConfigError


def test_a_queue_becomes_its_nodes_and_a_qualified_name_is_left_alone() -> None:
    assert node_queue("caen", "daq-02") == "caen@daq-02"
    assert node_queue("supervisor", "lab") == "supervisor@lab"
    assert node_queue("caen@daq-02", "lab") == "caen@daq-02"
    assert base_queue("caen@daq-02") == "caen"
    assert base_queue("caen") == "caen"


def test_this_node_is_the_env_else_the_config_dirs_supervisor_else_the_default(tmp_path: str) -> None:
    config_dir = str(tmp_path)
    with open(os.path.join(config_dir, "supervisor.toml"), "w") as f:
        f.write('[info]\nsupervisor_id = "daq-02"\n')
    assert this_node({"ENRGDAQ_CONFIG_DIR": config_dir}) == "daq-02"
    assert this_node({"ENRGDAQ_CONFIG_DIR": config_dir, "ENRGDAQ_NODE": "daq-07"}) == "daq-07"
    empty = os.path.join(config_dir, "empty")
    os.mkdir(empty)
    from enrgdaq.config.loader import default_supervisor_id

    assert this_node({"ENRGDAQ_CONFIG_DIR": empty}) == default_supervisor_id()


def test_a_broken_supervisor_toml_is_an_error_not_a_guess(tmp_path: str) -> None:
    with open(os.path.join(str(tmp_path), "supervisor.toml"), "w") as f:
        f.write('[info]\nsupervisor_id = "no spaces allowed"\n')
    with pytest.raises(ConfigError, match="supervisor_id"):
        this_node({"ENRGDAQ_CONFIG_DIR": str(tmp_path)})


def test_a_job_runs_on_its_pinned_node_else_on_its_supervisors() -> None:
    assert job_node('daq_job_type = "DAQJobTest"\nnode = "daq-02"\n', "lab") == "daq-02"
    assert job_node('daq_job_type = "DAQJobTest"\n', "lab") == "lab"
    assert job_node("", "lab") == "lab"
    assert job_node("not = = toml", "lab") == "lab"


class _Worker:
    """What the ``celeryd_after_setup`` signal hands over: the worker, with its app."""

    def __init__(self, app: Celery) -> None:
        self.app = app


def _app() -> Celery:
    app = Celery("q")
    app.config_from_object("celeryconfig")
    return app


def _consumed(app: Celery) -> list[str]:
    return sorted(app.amqp.queues.consume_from)


def test_a_worker_started_with_plain_names_consumes_its_nodes_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENRGDAQ_NODE", "daq-02")
    monkeypatch.setattr("enrgdaq.control.queues._worker_node", [])
    app = _app()
    app.amqp.queues.select(["caen", "store", "camera@daq-09"])  # what -Q caen,store,camera@daq-09 does
    qualify_worker_queues(sender="w@h", instance=_Worker(app))
    assert _consumed(app) == ["caen@daq-02", "camera@daq-09", "store@daq-02"]
    queue = app.amqp.queues["caen@daq-02"]
    assert (queue.routing_key, queue.exchange.name) == ("caen@daq-02", "caen@daq-02")


def test_a_worker_without_q_consumes_its_nodes_default_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENRGDAQ_NODE", "daq-02")
    monkeypatch.setattr("enrgdaq.control.queues._worker_node", [])
    app = _app()
    qualify_worker_queues(sender="w@h", instance=_Worker(app))
    assert _consumed(app) == ["default@daq-02"]


def test_beats_ticks_go_to_this_nodes_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENRGDAQ_NODE", "daq-02")
    monkeypatch.setattr("enrgdaq.control.queues._worker_node", [])
    assert route_ticks("enrgdaq.supervisor.heartbeat", (), {}, {}) == {"queue": "supervisor@daq-02"}
    assert route_ticks("enrgdaq.run_daq_job", (), {}, {}) is None
    app = _app()
    route = app.amqp.router.route({}, "enrgdaq.supervisor.routes")
    assert route["queue"].name == "supervisor@daq-02"


def test_a_supervisor_refuses_an_enrgdaq_node_naming_another(monkeypatch: pytest.MonkeyPatch) -> None:
    from enrgdaq.control.bootstep import check_node

    monkeypatch.setenv("ENRGDAQ_NODE", "daq-02")
    check_node("daq-02")
    with pytest.raises(ConfigError, match=r"ENRGDAQ_NODE='daq-02'.*supervisor_id = 'daq-01'"):
        check_node("daq-01")
    monkeypatch.delenv("ENRGDAQ_NODE")
    check_node("daq-01")


def test_up_starts_workers_only_for_its_own_nodes_jobs(tmp_path: str) -> None:
    from enrgdaq.config.directory import read_config_dir
    from enrgdaq.local.stack import Stack, UpOptions

    files = {
        "supervisor.toml": '[info]\nsupervisor_id = "daq-01"\n',
        "here.toml": 'daq_job_type = "DAQJobStoreCSV"\nout_dir = "out/"\n',
        "mine.toml": 'daq_job_type = "DAQJobStoreCSV"\nout_dir = "out/"\nqueue = "lab"\nnode = "daq-01"\n',
        "there.toml": 'daq_job_type = "DAQJobStoreCSV"\nout_dir = "out/"\nqueue = "caen"\nnode = "daq-02"\n',
    }
    for name, text in files.items():
        with open(os.path.join(str(tmp_path), name), "w") as f:
            f.write(text)
    stack = Stack(UpOptions(config_dir=str(tmp_path), echo=None))
    directory = read_config_dir(str(tmp_path))
    assert not directory.problems
    stack.specs = directory.jobs
    assert stack.queues() == {"lab": 1, "store": 1}
