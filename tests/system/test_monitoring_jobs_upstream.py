"""The original's example configs of the monitoring jobs (handle_stats, handle_alerts,
alert_slack, healthcheck, pc_metrics, serve_http) pass ``enrgdaq check`` and run under
``enrgdaq up`` unchanged; only alert_slack.toml's webhook URL points at a local stand-in.

serve_http.toml binds 0.0.0.0:8000, which is not loopback: the job makes a token file beside
``out/`` and every request needs the token; it serves ``out/`` (with ``TODAY`` in a name
meaning today's date) and refuses paths that climb out of it."""

from __future__ import annotations

import csv
import glob
import http.client
import json
import os
import pathlib
import shutil
import uuid
from datetime import date

import pytest

from tests.harness.ports import free_port, port_free
from tests.harness.up import enrgdaq, start_up, stop_up
from tests.harness.waiting import wait_for
from tests.system.monitoring_webhook import WebhookServer

# One at a time (xdist group "up"): these run `enrgdaq up` with the examples' supervisor id or
# the default API port 8000, which two at once would share.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("up")]

UPSTREAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")
EXAMPLES = ("handle_stats", "handle_alerts", "alert_slack", "healthcheck", "pc_metrics", "serve_http")
SLACK_URL = "https://hooks.slack.com/services/xxxxxxxxxxxxxxxxxxxxxxxxx"


def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A raw request to the served port: the path goes out exactly as written (``..`` too)."""
    conn = http.client.HTTPConnection("127.0.0.1", 8000, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        assert response.getheader("Server", "").startswith("enrgdaq"), "another program answers on 8000"
        return response.status, response.read()
    finally:
        conn.close()


def serve_http_answers() -> bool:
    """Whether the job's server (not another program) answers on port 8000."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", 8000, timeout=2)
        conn.request("HEAD", "/")
        server = conn.getresponse().getheader("Server", "")
        conn.close()
    except OSError:
        return False
    return server.startswith("enrgdaq")


def jobs(workdir: str) -> dict[str, str]:
    result = enrgdaq(workdir, "status", "--json")
    if result.returncode != 0:
        return {}
    return {j["unique_id"]: j["state"] for j in json.loads(result.stdout)["jobs"]}


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def csv_rows(pattern: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(glob.glob(pattern)):
        with open(path, newline="") as f:
            rows.extend(csv.DictReader(f))
    return rows


def test_the_original_monitoring_examples_check_and_run_unchanged(tmp_path: pathlib.Path) -> None:
    # serve_http.toml (unchanged) binds 0.0.0.0:8000, which another test's REST API (127.0.0.1:8000
    # by default) may hold for a while: wait for it, and let the job retry its bind quickly.
    wait_for(
        lambda: port_free(8000), 120, "port 8000 free (serve_http.toml binds 0.0.0.0:8000)", interval=0.5
    )
    workdir = str(tmp_path)
    configs = os.path.join(workdir, "configs")
    os.makedirs(configs)
    sid = f"ex-{uuid.uuid4().hex[:8]}"
    with WebhookServer() as hook:
        for name in EXAMPLES:
            shutil.copy(os.path.join(UPSTREAM, f"{name}.toml"), os.path.join(configs, f"{name}.toml"))
        with open(os.path.join(configs, "alert_slack.toml")) as f:
            slack = f.read()
        assert SLACK_URL in slack
        with open(os.path.join(configs, "alert_slack.toml"), "w") as f:
            f.write(slack.replace(SLACK_URL, hook.url))
        with open(os.path.join(configs, "supervisor.toml"), "w") as f:
            # The REST API (127.0.0.1:8000 by default) elsewhere: the example serves 0.0.0.0:8000.
            f.write(
                f'restart_backoff_max_seconds = 1\n[info]\nsupervisor_id = "{sid}"\n'
                f"[cnc]\nrest_api_port = {free_port()}\n"
            )
        with open(os.path.join(configs, "store_csv.toml"), "w") as f:
            f.write('daq_job_type = "DAQJobStoreCSV"\n')
        with open(os.path.join(configs, "producer.toml"), "w") as f:
            f.write(
                'daq_job_type = "DAQJobTest"\nrand_min = 1\nrand_max = 9\nrate_hz = 5\n'
                '[store_config.csv]\nfile_path = "test.csv"\nadd_date = true\n'
            )

        check = enrgdaq(workdir, "check", "configs/")
        assert check.returncode == 0, check.stdout + check.stderr
        for name in EXAMPLES:
            assert f"{name}.toml" in check.stdout

        up = start_up(workdir, "--quiet")
        try:
            wait_for(
                lambda: (s := jobs(workdir)) and all(s.get(n) == "running" for n in EXAMPLES),
                60,
                "every example job running",
            )
            out = os.path.join(workdir, "out")
            first = wait_for(lambda: csv_rows(f"{out}/pc_metrics_{sid}.csv"), 30, "pc_metrics rows")
            wait_for(
                lambda: (
                    (rows := csv_rows(f"{out}/pc_metrics_{sid}.csv"))
                    and rows[0]["timestamp"] != first[0]["timestamp"]
                ),
                30,
                "a second pc_metrics row",
            )
            wait_for(
                lambda: (
                    {"producer", "pc_metrics", "serve_http"}
                    <= {r["daq_job"] for r in csv_rows(f"{out}/stats.csv")}
                ),
                30,
                "stats rows",
            )
            wait_for(serve_http_answers, 120, "serve_http answering on port 8000", interval=0.5)
            token_file = os.path.join(workdir, "serve_http.token")
            token = wait_for(
                lambda: read(token_file).strip() if os.path.exists(token_file) else "", 10, "the token"
            )
            auth = {"Authorization": f"Bearer {token}"}
            today = date.today().isoformat()
            wait_for(lambda: os.path.exists(f"{out}/{today}_test.csv"), 20, "today's data file")

            no_token = get("/stats.csv")
            wrong_token = get("/stats.csv", {"Authorization": "Bearer nope"})
            served = get(f"/{today}_test.csv", auth)
            by_word = get("/TODAY_test.csv", auth)
            by_placeholder = get("/%7BTODAY%7D_test.csv", auth)
            by_query = get(f"/TODAY_test.csv?token={token}")
            climbing = [
                get("/../configs/supervisor.toml", auth),
                get("/%2e%2e/configs/supervisor.toml", auth),
                get("/..%2fconfigs/supervisor.toml", auth),
            ]
            post = http.client.HTTPConnection("127.0.0.1", 8000, timeout=5)
            post.request("PUT", "/x.csv", body=b"x", headers=auth)
            put_status = post.getresponse().status
            post.close()
        finally:
            code = stop_up(up, timeout=60)
        assert code == 0

    # pc_metrics: every metric, as percentages.
    row = csv_rows(f"{out}/pc_metrics_{sid}.csv")[-1]
    assert set(row) == {"timestamp", "cpu", "memory", "disk"}
    assert all(0 <= float(row[k]) <= 100 for k in ("cpu", "memory", "disk")), row

    # serve_http: token needed (not loopback), files served, dates substituted, nothing outside.
    assert no_token[0] == 401 and wrong_token[0] == 401
    assert served[0] == 200 and served[1].startswith(b"timestamp,A,B,C"), served
    assert by_word[0] == 200 and by_word[1].startswith(b"timestamp,A,B,C")
    assert by_placeholder[0] == 200 and by_query[0] == 200
    assert [status for status, _ in climbing] == [403, 403, 403], climbing
    assert all(b"supervisor_id" not in body for _, body in climbing)
    assert put_status in (405, 501)
    assert token not in read(os.path.join(workdir, "up.out"))
