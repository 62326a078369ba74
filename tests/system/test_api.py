"""The REST API as an operator uses it: a real ``enrgdaq up`` (Redis, supervisor, beat, workers,
``enrgdaq api`` under uvicorn on a random loopback port), driven over HTTP.

One system serves the whole module (it takes ~5 s to start); each test leaves its jobs as it
found them. The status codes mean what they say: 404 unknown job, 409 a state or an id that
forbids it, 422 invalid input naming the field, 503 Redis down, never a 500.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest

from enrgdaq.local.redis_server import free_port
from tests.harness.celery_proc import REPO
from tests.harness.leaks import describe, kill_all, live_children
from tests.harness.up import enrgdaq, start_up, stop_up, user_env
from tests.harness.waiting import stays, wait_for

pytestmark = pytest.mark.system

TOKEN = "a-long-random-test-token-" + uuid.uuid4().hex
SLACK_SECRET = "TOPSECRET" + uuid.uuid4().hex[:8]


@dataclass
class Running:
    workdir: str
    base: str
    up: subprocess.Popen[bytes]
    supervisor_id: str
    http: httpx.Client

    def job(self, unique_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/jobs/{unique_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def states(self) -> dict[str, str]:
        return {j["unique_id"]: j["state"] for j in self.http.get("/api/jobs").json()}

    def redis_url(self) -> str:
        with open(os.path.join(self.workdir, ".enrgdaq", "up.json")) as f:
            return str(json.load(f)["redis_url"])


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    workdir = str(tmp_path_factory.mktemp("api"))
    shutil.copytree(os.path.join(REPO, "configs"), os.path.join(workdir, "configs"))
    supervisor_id = f"api-{uuid.uuid4().hex[:8]}"
    port = free_port()
    with open(os.path.join(workdir, "configs", "supervisor.toml"), "w") as f:
        f.write(f'[info]\nsupervisor_id = "{supervisor_id}"\n\n[cnc]\nrest_api_port = {port}\n')
    up = start_up(workdir, "--quiet")
    base = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=base, timeout=30)
    try:

        def both_running() -> bool:
            try:
                jobs = http.get("/api/jobs").json()
            except httpx.HTTPError:
                return False
            return {j["unique_id"]: j["state"] for j in jobs} == {
                "store_csv": "running",
                "test_producer": "running",
            }

        wait_for(both_running, 60, f"the API to show both jobs running (log: {workdir}/up.out)")
        yield Running(workdir, base, up, supervisor_id, http)
    finally:
        http.close()
        code = stop_up(up)
    assert code == 0, "enrgdaq up did not stop cleanly"
    assert not live_children()


@pytest.fixture(autouse=True)
def no_leaks(running: Running) -> Iterator[None]:
    """The conftest check, less the module's own system (it lives across the module's tests)."""
    yield
    try:
        shared = {running.up.pid} | {p.pid for p in psutil.Process(running.up.pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        shared = set()
    leaked = [p for p in live_children() if p.pid not in shared]
    problems = [describe(p) for p in leaked]
    kill_all(leaked)
    if problems:
        pytest.fail("test leaked: " + "; ".join(problems), pytrace=False)


def start_api(*args: str, env: dict[str, str], log: str) -> tuple[subprocess.Popen[bytes], str | None]:
    """Another ``enrgdaq api`` (as Compose runs it); returns it and its URL once it serves
    (None if it exited first)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "enrgdaq.cli.main", "api", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def served() -> str | bool:
        with open(log) as f:
            found = re.search(r"REST API and status page: (\S+)", f.read())
        return found.group(1) if found else proc.poll() is not None

    result = wait_for(served, 30, f"enrgdaq api to serve or exit (log: {log})")
    return proc, result if isinstance(result, str) else None


def stop_api(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise


# -- status --------------------------------------------------------------------------------------
def test_up_prints_the_api_url_and_status_carries_it(running: Running) -> None:
    with open(os.path.join(running.workdir, "up.out")) as f:
        assert f"api: {running.base}/ (REST API and status page)" in f.read()
    status = running.http.get("/api/status")
    assert status.status_code == 200
    doc = status.json()
    assert doc["supervisor_id"] == running.supervisor_id and doc["supervisor_alive"] is True
    # The same document as the CLI's, with the API's address in it.
    cli = enrgdaq(running.workdir, "status", "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["api_url"] == doc["api_url"] == f"{running.base}/"
    assert {j["unique_id"] for j in json.loads(cli.stdout)["jobs"]} == {j["unique_id"] for j in doc["jobs"]}
    page = running.http.get("/")
    assert page.status_code == 200 and '<table id="jobs">' in page.text
    spec = running.http.get("/openapi.json").json()
    assert {"/api/status", "/api/jobs", "/api/jobs/{unique_id}/messages"} <= set(spec["paths"])
    assert "JobDetail" in spec["components"]["schemas"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs/nope"),
        ("DELETE", "/api/jobs/nope"),
        ("POST", "/api/jobs/nope/stop"),
        ("POST", "/api/jobs/nope/start"),
        ("POST", "/api/jobs/nope/restart"),
        ("GET", "/api/jobs/nope/logs"),
        ("GET", "/api/nodes/nope/status"),
    ],
)
def test_an_unknown_job_is_404(running: Running, method: str, path: str) -> None:
    response = running.http.request(method, path)
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


# -- control -------------------------------------------------------------------------------------
def test_a_stop_lasts_until_start_and_each_twice_is_409(running: Running) -> None:
    stopped = running.http.post("/api/jobs/test_producer/stop")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["state"] == "stopped" and stopped.json()["pid"] is None
    # Longer than its restart_offset (2 s): nothing brings it back.
    stays(lambda: running.states()["test_producer"] == "stopped", 3.0, "test_producer stopped")
    again = running.http.post("/api/jobs/test_producer/stop")
    assert again.status_code == 409 and "already stopped" in again.json()["detail"]

    started = running.http.post("/api/jobs/test_producer/start")
    assert started.status_code == 200, started.text
    assert started.json()["state"] == "running" and started.json()["pid"]
    assert running.http.post("/api/jobs/test_producer/start").status_code == 409


def test_restart_starts_a_new_run_at_once(running: Running) -> None:
    before = running.job("test_producer")
    asked = time.monotonic()
    response = running.http.post("/api/jobs/test_producer/restart")
    took = time.monotonic() - asked
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["state"] == "running"
    assert after["restarts"] == before["restarts"] + 1
    assert after["started_at"] > before["started_at"]
    assert took < 3.0, f"restart took {took:.1f} s"  # not delayed by restart_offset's backoff


def test_restart_all_restarts_every_job(running: Running) -> None:
    before = {j["unique_id"]: j["restarts"] for j in running.http.get("/api/jobs").json()}
    response = running.http.post("/api/jobs/restart")
    assert response.status_code == 200, response.text
    after = {j["unique_id"]: (j["restarts"], j["state"]) for j in response.json()}
    assert after == {uid: (n + 1, "running") for uid, n in before.items()}


PRODUCER = """\
daq_job_type = "DAQJobTest"
daq_job_unique_id = "added_producer"
rand_min = 1
rand_max = 9
rate_hz = 20

[store_config.csv]
file_path = "added.csv"
"""


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [
        (PRODUCER.replace("rand_max = 9", "rand_max = 9\nrand_maxx = 3"), "rand_maxx", 5),
        (PRODUCER.replace('file_path = "added.csv"', "file_path = "), None, 8),
        (PRODUCER.replace("DAQJobTest", "DAQJobNoSuchThing"), "daq_job_type", 1),
        (PRODUCER.replace("rand_min = 1", 'rand_min = "one"'), "rand_min", 3),
        (PRODUCER.replace('daq_job_unique_id = "added_producer"\n', ""), "daq_job_unique_id", None),
    ],
    ids=["unknown key", "syntax", "unknown type", "wrong type", "no id"],
)
def test_a_bad_job_toml_is_422_naming_where(
    running: Running, text: str, field: str | None, line: int
) -> None:
    response = running.http.post("/api/jobs", content=text, headers={"Content-Type": "application/toml"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body.get("field") == field and body.get("line") == line, body
    assert not os.path.exists(os.path.join(running.workdir, "configs", "added_producer.toml"))


def test_a_job_added_from_toml_runs_survives_as_a_file_and_remove_keeps_the_file(running: Running) -> None:
    configs = os.path.join(running.workdir, "configs")
    response = running.http.post("/api/jobs", content=PRODUCER, headers={"Content-Type": "application/toml"})
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "running"
    with open(os.path.join(configs, "added_producer.toml")) as f:
        assert f.read() == PRODUCER
    out = os.path.join(running.workdir, "out")
    wait_for(
        lambda: any(n.endswith("added.csv") for n in os.listdir(out)), 15, "the added job's rows on disk"
    )

    duplicate = running.http.post("/api/jobs", content=PRODUCER)
    assert duplicate.status_code == 409 and "added_producer" in duplicate.json()["detail"]
    not_utf8 = running.http.post("/api/jobs?name=x", content=b"\xff\xfe[x]")
    assert not_utf8.status_code == 422

    removed = running.http.delete("/api/jobs/added_producer")
    assert removed.status_code == 200, removed.text
    assert removed.json()["config_file"] == os.path.join(configs, "added_producer.toml.removed")
    assert not os.path.exists(os.path.join(configs, "added_producer.toml"))
    with open(os.path.join(configs, "added_producer.toml.removed")) as f:
        assert f.read() == PRODUCER
    # Gone, and the config watcher does not bring it back.
    stays(lambda: "added_producer" not in running.states(), 2.0, "the removed job to stay gone")
    assert running.http.get("/api/jobs/added_producer").status_code == 404


# -- messages ------------------------------------------------------------------------------------
def tabular(file_path: str, rows: list[list[int]]) -> dict[str, Any]:
    return {
        "message_type": "DAQJobMessageStoreTabular",
        "payload": {"store_config": {"csv": {"file_path": file_path}}, "keys": ["a", "b"], "data": rows},
    }


def test_a_typed_message_reaches_the_job_once(running: Running) -> None:
    out = os.path.join(running.workdir, "out")
    sent = running.http.post("/api/jobs/store_csv/messages", json=tabular("direct.csv", [[1, 2], [3, 4]]))
    assert sent.status_code == 200, sent.text
    assert sent.json()["sent_to"] == ["store_csv"]
    broadcast = running.http.post("/api/messages", json=tabular("broadcast.csv", [[5, 6]]))
    assert broadcast.status_code == 200 and broadcast.json()["sent_to"] == ["store_csv"]

    def rows(name: str) -> list[list[str]]:
        path = os.path.join(out, name)
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [line.strip().split(",") for line in f if line.strip() and line[0].isdigit()]

    wait_for(lambda: rows("direct.csv") == [["1", "2"], ["3", "4"]], 10, "the message's rows in direct.csv")
    wait_for(lambda: rows("broadcast.csv") == [["5", "6"]], 10, "the broadcast's row in broadcast.csv")
    stays(lambda: len(rows("broadcast.csv")) == 1, 1.5, "the broadcast written once")


@pytest.mark.parametrize(
    ("target", "message", "field"),
    [
        ("store_csv", {"message_type": "NoSuchMessage", "payload": {}}, "message_type"),
        ("test_producer", tabular("x.csv", [[1]]), "message_type"),
        ("store_csv", {**tabular("x.csv", [[1]]), "payload": {"keys": ["a"]}}, "payload.store_config"),
        (
            "store_csv",
            {
                "message_type": "DAQJobMessageStoreTabular",
                "payload": {"store_config": {"csv": {"file_pat": "x"}}},
            },
            "payload.store_config.csv.file_pat",
        ),
        ("store_csv", {"payload": {}}, "body.message_type"),
    ],
    ids=["unknown type", "type the job does not take", "missing field", "unknown field", "no type"],
)
def test_a_bad_message_is_422_naming_the_field(
    running: Running, target: str, message: dict[str, Any], field: str
) -> None:
    response = running.http.post(f"/api/jobs/{target}/messages", json=message)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


# -- logs -----------------------------------------------------------------------------------------
def test_logs_of_a_job_and_of_the_node_and_a_live_stream(running: Running) -> None:
    lines = running.http.get("/api/jobs/test_producer/logs", params={"lines": 3})
    assert lines.status_code == 200
    assert 1 <= len(lines.json()) <= 3
    assert all(line["source"] == "test_producer" for line in lines.json())
    assert running.http.get("/api/jobs/test_producer/logs", params={"lines": 0}).status_code == 422
    node = running.http.get("/api/logs", params={"lines": 50})
    assert node.status_code == 200 and node.json()
    assert "test_producer" in running.http.get("/api/logs/sources").json()

    # The stream: the backlog line, then lines that are logged while it is open.
    seen: list[dict[str, Any]] = []
    with running.http.stream("GET", "/api/jobs/test_producer/logs/stream", params={"lines": 1}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        restarted = False
        deadline = time.monotonic() + 20
        for raw in stream.iter_lines():
            assert time.monotonic() < deadline, f"no new run's line in the stream within 20 s: {seen}"
            if raw.startswith("data: "):
                seen.append(json.loads(raw[len("data: ") :]))
                if not restarted:
                    assert running.http.post("/api/jobs/test_producer/restart").status_code == 200
                    restarted = True
                elif "running DAQJobTest" in seen[-1]["message"]:
                    break
    assert len(seen) >= 2 and seen[0]["source"] == "test_producer"
    assert len({line["id"] for line in seen}) == len(seen), "a line came twice"


# -- templates and nodes ---------------------------------------------------------------------------
def test_templates_and_nodes(running: Running) -> None:
    jobs = {t["type_key"]: t for t in running.http.get("/api/templates/jobs").json()}
    assert "rand_min" in json.dumps(jobs["DAQJobTest"]["schema"])
    assert jobs["DAQJobStoreCSV"]["label"] == "Store CSV"
    stores = {t["type_key"] for t in running.http.get("/api/templates/stores").json()}
    assert {"csv", "raw", "parquet", "hdf5", "root", "mysql", "redis", "memory"} <= stores
    messages = {t["type_key"] for t in running.http.get("/api/templates/messages").json()}
    assert {"DAQJobMessageStoreTabular", "DAQJobMessageStop"} <= messages
    assert "DAQJobMessageRoutes" not in messages  # the plane's own traffic is not sent by hand

    def this_node() -> dict[str, Any]:
        nodes = running.http.get("/api/nodes").json()
        [node] = [n for n in nodes if n["supervisor_id"] == running.supervisor_id]
        return dict(node)

    # Both jobs run again (an earlier test of this module restarted one; its new run may still start).
    node = wait_for(
        lambda: (n := this_node())["jobs"] == {"running": 2} and n, 20, "both jobs running on the node"
    )
    assert node["alive"] is True
    assert running.http.get(f"/api/nodes/{running.supervisor_id}/status").json()["supervisor_id"] == (
        running.supervisor_id
    )


# -- security ---------------------------------------------------------------------------------------
def test_no_secret_leaves_through_any_endpoint(running: Running) -> None:
    webhook = f"https://hooks.slack.com/services/T000/B000/{SLACK_SECRET}"
    toml = (
        f'daq_job_type = "DAQJobAlertSlack"\ndaq_job_unique_id = "slack"\nslack_webhook_url = "{webhook}"\n'
    )
    added = running.http.post("/api/jobs", content=toml)
    assert added.status_code == 201, added.text
    try:
        detail = running.job("slack")
        assert detail["config"]["slack_webhook_url"] == "***"
        bodies = [
            running.http.get(path).text
            for path in (
                "/api/status",
                "/api/jobs",
                "/api/jobs/slack",
                "/api/jobs/slack/logs?lines=500",
                "/api/logs?lines=500",
                "/api/nodes",
                "/api/templates/jobs",
                "/api/templates/messages",
            )
        ]
        leaked = [body[:200] for body in bodies if SLACK_SECRET in body]
        assert not leaked, leaked
    finally:
        assert running.http.delete("/api/jobs/slack").status_code == 200


def test_pages_of_other_origins_and_other_host_names_are_refused(running: Running) -> None:
    foreign = running.http.post("/api/jobs/test_producer/stop", headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert running.states()["test_producer"] == "running"
    rebound = running.http.get("/api/status", headers={"Host": "evil.example"})
    assert rebound.status_code == 400
    assert (
        "access-control-allow-origin"
        not in running.http.get("/api/status", headers={"Origin": "http://evil.example"}).headers
    )  # CORS is off


def test_beyond_loopback_a_token_is_required(running: Running, tmp_path) -> None:
    args = ["--host", "0.0.0.0", "--port", "0", "--redis-url", running.redis_url(), "--supervisor"]
    args.append(running.supervisor_id)
    refused, url = start_api(*args, env=user_env(), log=str(tmp_path / "no-token.log"))
    assert url is None and refused.wait(10) == 1
    with open(tmp_path / "no-token.log") as f:
        assert "ENRGDAQ_API_TOKEN" in f.read()
    short, url = start_api(
        *args, env={**user_env(), "ENRGDAQ_API_TOKEN": "short"}, log=str(tmp_path / "s.log")
    )
    assert url is None and short.wait(10) == 1

    api, url = start_api(*args, env={**user_env(), "ENRGDAQ_API_TOKEN": TOKEN}, log=str(tmp_path / "api.log"))
    try:
        assert url is not None
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert http.get("/api/status").status_code == 401
            assert (
                http.get("/api/status", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"}).status_code
                == 401
            )
            mine = {"Authorization": "Bearer " + TOKEN}
            assert http.get("/api/status", headers=mine).json()["supervisor_id"] == running.supervisor_id
            assert http.post("/api/jobs/test_producer/stop").status_code == 401
            assert http.get("/").status_code == 200  # the page holds no data; it asks with the token
    finally:
        stop_api(api)
    assert running.states()["test_producer"] == "running"


def test_redis_down_is_503(tmp_path) -> None:
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "supervisor.toml").write_text('[info]\nsupervisor_id = "nowhere"\n')
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    api, url = start_api(
        "--port",
        "0",
        "--config-dir",
        str(config_dir),
        "--redis-url",
        nowhere,
        env=user_env(),
        log=str(tmp_path / "a"),
    )
    try:
        assert url is not None
        with httpx.Client(base_url=url, timeout=10) as http:
            for method, path in [
                ("GET", "/api/status"),
                ("GET", "/api/jobs/x"),
                ("POST", "/api/jobs/x/stop"),
            ]:
                response = http.request(method, path)
                assert response.status_code == 503, (path, response.text)
                assert "Redis" in response.json()["detail"]
    finally:
        stop_api(api)


# -- generated input ---------------------------------------------------------------------------------
def test_no_generated_request_gets_a_server_error(running: Running) -> None:
    """schemathesis against /openapi.json: every operation, generated paths, queries and bodies.
    Left out: the endless log streams and restart-all (no input to vary; tested above)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    schema = schemathesis.openapi.from_url(f"{running.base}/openapi.json")
    failures: list[str] = []
    calls = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/stream") or operation.path == "/api/jobs/restart":
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def call(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=running.base, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        call()
    took = time.monotonic() - started
    assert not failures, "\n".join(failures[:10])
    assert calls >= 100 and took < 60, (calls, took)
    assert running.states() == {"store_csv": "running", "test_producer": "running"}


def test_a_taken_port_is_said_and_everything_else_runs(running: Running, tmp_path) -> None:
    import socket

    workdir = str(tmp_path)
    shutil.copytree(os.path.join(REPO, "configs"), os.path.join(workdir, "configs"))
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    with open(os.path.join(workdir, "configs", "supervisor.toml"), "w") as f:
        f.write(f'[info]\nsupervisor_id = "taken-{uuid.uuid4().hex[:8]}"\n\n[cnc]\nrest_api_port = {port}\n')
    up = start_up(workdir, "--quiet")
    try:

        def both_running() -> dict[str, Any] | None:
            done = enrgdaq(workdir, "status", "--json")
            doc = json.loads(done.stdout) if done.returncode == 0 else None
            return doc if doc and {j["state"] for j in doc["jobs"]} == {"running"} else None

        doc = wait_for(both_running, 60, "the jobs running without the API")
        assert doc["api_url"] is None
        with open(os.path.join(workdir, "up.out")) as f:
            said = f.read()
        assert f"REST API: port {port} on 127.0.0.1 is taken by another program" in said
        assert "api:" not in said
    finally:
        holder.close()
        assert stop_up(up) == 0
