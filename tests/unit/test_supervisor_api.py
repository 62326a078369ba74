"""``enrgdaq.supervisor`` keeps the seed's names, values and methods, on a real Redis."""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
import textwrap

import pytest
from celery import Celery

import enrgdaq.supervisor as sup
from enrgdaq.control.status import SupervisorStatus
from enrgdaq.daq.base import DAQJob, DAQJobProcess
from enrgdaq.errors import ConfigError
from tests.harness.redis_proc import RedisProcess

SEED_CONSTANTS = {
    "DAQ_JOB_MARK_AS_ALIVE_TIME_SECONDS": 5,
    "DAQ_JOB_QUEUE_ACTION_TIMEOUT": 0.02,
    "DAQ_SUPERVISOR_DEFAULT_RESTART_TIME_SECONDS": 2,
    "DAQ_SUPERVISOR_HEARTBEAT_MESSAGE_INTERVAL_SECONDS": 1,
    "DAQ_SUPERVISOR_LOOP_INTERVAL_SECONDS": 0.1,
    "DAQ_SUPERVISOR_ROUTES_MESSAGE_INTERVAL_SECONDS": 0.1,
    "DAQ_SUPERVISOR_STATS_MESSAGE_INTERVAL_SECONDS": 1,
}

SEED_METHODS = [
    "init",
    "run",
    "stop",
    "loop",
    "get_status",
    "get_restart_schedules",
    "restart_daq_jobs",
    "start_daq_job_processes",
    "warn_for_lack_of_daq_jobs",
    "_load_supervisor_config",
]


def test_the_seed_constants_keep_their_names_and_values() -> None:
    for name, value in SEED_CONSTANTS.items():
        assert getattr(sup, name) == value, name


def test_the_seed_classes_and_methods_exist_with_their_signatures() -> None:
    params = inspect.signature(sup.Supervisor.__init__).parameters
    assert list(params)[1:4] == ["config", "daq_job_processes", "daq_job_config_path"]
    assert params["daq_job_config_path"].default == "configs/"
    for method in SEED_METHODS:
        assert callable(getattr(sup.Supervisor, method)), method
    assert isinstance(sup.Supervisor.supervisor_id, property)
    assert [f.name for f in sup.RestartDAQJobSchedule.__dataclass_fields__.values()] == [
        "daq_job_process",
        "restart_at",
    ]


def test_the_original_job_api_is_where_custom_jobs_import_it_from() -> None:
    from enrgdaq.daq.process import DAQJobProcess as defined

    assert DAQJobProcess is defined
    for name in ("start", "handle_message", "_put_message_out", "free", "get_job_started_message"):
        assert callable(getattr(DAQJob, name)), name
    for name in ("config_type", "allowed_message_in_types", "topics_to_subscribe"):
        assert hasattr(DAQJob, name), name
    job = DAQJob(DAQJob.config_type(daq_job_type="DAQJob"))
    assert job._has_been_freed is False
    job.free()
    assert job._has_been_freed is True


def test_a_missing_config_directory_is_a_value_error_as_in_the_original() -> None:
    with pytest.raises(ValueError, match="does not exist") as caught:
        sup.Supervisor(daq_job_config_path="/nonexistent/configs/")
    assert isinstance(caught.value, ConfigError)


def test_a_supervisor_registers_and_dispatches_the_jobs_of_its_directory(redis_proc: RedisProcess) -> None:
    config_dir = tempfile.mkdtemp(prefix="edq-cfg-")
    run_dir = tempfile.mkdtemp(prefix="edq-", dir="/tmp")
    with open(os.path.join(config_dir, "producer.toml"), "w") as f:
        f.write(
            textwrap.dedent("""
            daq_job_type = "DAQJobTest"
            rand_min = 1
            rand_max = 2
            [store_config.csv]
            file_path = "x.csv"
        """)
        )
    with open(os.path.join(config_dir, "supervisor.toml"), "w") as f:
        f.write(f'run_dir = "{run_dir}"\nredis_url = "{redis_proc.url}"\n[info]\nsupervisor_id = "api"\n')
    app = Celery("api-test", broker=redis_proc.url)
    app.config_from_object("celeryconfig")
    app.conf.broker_url = redis_proc.url
    supervisor = sup.Supervisor(daq_job_config_path=config_dir, celery_app=app)
    try:
        supervisor.init()
        assert supervisor.supervisor_id == "api"
        assert os.path.exists(os.path.join(run_dir, "xsub.sock"))
        # The job's task waits in its node's queue (no worker here): Celery's Redis list "default@api".
        assert redis_proc.client().llen("default@api") == 1
        status = supervisor.get_status()
        assert isinstance(status, SupervisorStatus)
        assert [(j.unique_id, j.state, j.queue) for j in status.jobs] == [("producer", "waiting", "default")]
        assert [p.unique_id for p in supervisor.daq_job_processes] == ["producer"]
        supervisor.loop()  # a reconcile pass with nothing due is harmless
        assert redis_proc.client().llen("default@api") == 1
    finally:
        supervisor.stop()
        app.close()
        shutil.rmtree(config_dir)
    assert supervisor.registry is not None
    assert supervisor.registry.get("producer").state.value == "stopped"
    assert not os.path.exists(os.path.join(run_dir, "xsub.sock"))
    shutil.rmtree(run_dir)
