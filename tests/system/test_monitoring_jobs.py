"""Monitoring jobs in a running system: a producer frozen with SIGSTOP makes the healthcheck
raise "stopped sending", then killed with -9 an alert of its restart, and "sending again" when it
is back; the Slack job posts each one to a local stand-in webhook that refuses the first two
posts (each alert arrives once, the first after two retries); the alert handler keeps them as
CSV rows; the stats handler writes one row per job, two jobs of one type on two rows, every
column filled. The webhook URL appears nowhere a user can see it."""

from __future__ import annotations

import csv
import glob
import json
import os
import pathlib
import shutil
import signal
import uuid

import pytest

from tests.harness.up import enrgdaq, start_up, stop_up
from tests.harness.waiting import wait_for
from tests.system.monitoring_webhook import WebhookServer

# One at a time (xdist group "up"): these run `enrgdaq up` with the examples' supervisor id or
# the default API port 8000, which two at once would share.
pytestmark = [pytest.mark.system, pytest.mark.xdist_group("up")]

STOPPED = "[producer_a] DAQJobTest stopped running"
AGAIN = "[producer_a] DAQJobTest is running again"
RESTARTED = "[producer_a] DAQJobTest crashed and got restarted"

UPSTREAM = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "upstream_configs")


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def read_csv(pattern: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(glob.glob(pattern)):
        with open(path, newline="") as f:
            rows.extend(csv.DictReader(f))
    return rows


def status(workdir: str) -> dict[str, dict[str, object]]:
    """Jobs by id; empty while ``up`` is still starting."""
    result = enrgdaq(workdir, "status", "--json")
    if result.returncode != 0:
        return {}
    return {j["unique_id"]: j for j in json.loads(result.stdout)["jobs"]}


def make_configs(workdir: str, webhook_url: str) -> None:
    configs = os.path.join(workdir, "configs")
    os.makedirs(configs)
    # No REST API: it would take 127.0.0.1:8000, which serve_http.toml's test needs.
    write(
        f"{configs}/supervisor.toml",
        f'[info]\nsupervisor_id = "mon-{uuid.uuid4().hex[:8]}"\n[cnc]\nrest_api_enabled = false\n',
    )
    for name in ("producer_a", "producer_b"):
        write(
            f"{configs}/{name}.toml",
            'daq_job_type = "DAQJobTest"\nrand_min = 1\nrand_max = 9\nrate_hz = 5\n'
            '[store_config.csv]\nfile_path = "data.csv"\n',
        )
    write(f"{configs}/store_csv.toml", 'daq_job_type = "DAQJobStoreCSV"\n')
    for name in ("handle_stats.toml", "handle_alerts.toml"):
        shutil.copy(os.path.join(UPSTREAM, name), os.path.join(configs, name))
    with open(os.path.join(UPSTREAM, "alert_slack.toml")) as f:
        slack = f.read()
    original_url = "https://hooks.slack.com/services/xxxxxxxxxxxxxxxxxxxxxxxxx"
    assert original_url in slack
    write(f"{configs}/alert_slack.toml", slack.replace(original_url, webhook_url))  # only the URL
    write(
        f"{configs}/healthcheck.toml",
        'daq_job_type = "DAQJobHealthcheck"\n'
        "[[healthcheck_stats]]\n"
        'daq_job_type = "test"\nstats_key = "message_out_stats"\ninterval = "1s"\n'
        'alert_if_interval_is = "unsatisfied"\n'
        'alert_info = { message = "stopped sending", severity = "warning" }\n'
        'alive_alert_info = { message = "sending again", severity = "info" }\n',
    )


def test_a_killed_producer_raises_alerts_that_reach_slack_and_the_alerts_csv(tmp_path: pathlib.Path) -> None:
    workdir = str(tmp_path)
    with WebhookServer(failures=2) as hook:
        make_configs(workdir, hook.url)
        check = enrgdaq(workdir, "check", "configs/")
        assert check.returncode == 0, check.stdout + check.stderr
        up = start_up(workdir, "--quiet")
        try:
            out = os.path.join(workdir, "out")
            jobs = wait_for(
                lambda: (
                    (s := status(workdir))
                    and all(
                        s.get(j, {}).get("state") == "running"
                        for j in ("producer_a", "healthcheck", "alert_slack")
                    )
                    and s
                ),
                60,
                "the jobs running",
            )
            # Stats rows for both producers before the kill.
            wait_for(
                lambda: {"producer_a", "producer_b"} <= {r["daq_job"] for r in read_csv(f"{out}/stats.csv")},
                30,
                "stats rows of both producers",
            )
            assert jobs
            pid = int(str(jobs["producer_a"]["pid"]))
            # Frozen first: alive but silent, as long as it takes for the interval check to see it
            # (a kill alone is silent only for the ~2 s restart, which 1 s stats ticks can miss).
            os.kill(pid, signal.SIGSTOP)

            def delivered(*texts: str) -> bool:
                got = hook.messages()
                return all(any(t in m for m in got) for t in texts)

            def restart_told() -> bool:
                """Seen down on a stats tick, then back; or back before any tick saw it down
                (the kill ends a run silent for longer than its restart_offset: restarted at once)."""
                return delivered(STOPPED, AGAIN) or delivered(RESTARTED)

            def await_alerts(what: str, *texts: str, restart: bool = False) -> None:
                try:
                    wait_for(lambda: delivered(*texts) and (not restart or restart_told()), 45, what)
                except AssertionError as exc:
                    log = enrgdaq(workdir, "logs", "healthcheck", "-n", "40").stdout
                    got = hook.messages()
                    raise AssertionError(f"{exc}; delivered: {got}; healthcheck log:\n{log}") from None

            try:
                await_alerts("the silence alert at the webhook", "[producer_a] stopped sending")
            finally:
                os.kill(pid, signal.SIGKILL)
            await_alerts("the restart and recovery alerts", "[producer_a] sending again", restart=True)
            wait_for(
                lambda: any(
                    r["restart_count"] == "1"
                    for r in read_csv(f"{out}/stats.csv")
                    if r["daq_job"] == "producer_a"
                ),
                20,
                "producer_a's restart in stats.csv",
            )
            stats_rows = read_csv(f"{out}/stats.csv")
            wait_for(lambda: len(read_csv(f"{out}/*_alerts.csv")) >= 3, 20, "alert rows in alerts.csv")
            status_text = enrgdaq(workdir, "status", "--json").stdout + enrgdaq(workdir, "status").stdout
            delivered_texts, attempts = hook.messages(), hook.messages("attempts")  # before the stop
        finally:
            code = stop_up(up, timeout=60)
        assert code == 0

    # Each alert arrived once; the first one after two refused posts.
    assert len(delivered_texts) == len(set(delivered_texts)), delivered_texts
    assert attempts[0] == attempts[1] == attempts[2] == delivered_texts[0], attempts
    assert len(attempts) == len(delivered_texts) + 2
    body = hook.delivered[0]["attachments"][0]
    assert body["author_name"] == "DAQJobHealthcheck" and body["title"] == "Alert!"

    # One alert per transition: not one per stats tick.
    down = [t for t in delivered_texts if STOPPED in t or RESTARTED in t]
    assert len(down) == 1, delivered_texts
    silent = [t for t in delivered_texts if "[producer_a] stopped sending" in t]
    assert len(silent) == 1, delivered_texts

    # The alert handler's rows.
    alert_rows = read_csv(f"{workdir}/out/*_alerts.csv")
    messages = [r["message"] for r in alert_rows]
    assert any("[producer_a] stopped sending" in m for m in messages), messages
    assert any(STOPPED in m or RESTARTED in m for m in messages), messages
    assert {r["severity"] for r in alert_rows} >= {"error", "info"}

    # Stats: one row per job and snapshot, two DAQJobTest jobs apart, every column filled.
    latest = {r["daq_job"]: r for r in stats_rows}
    assert {"producer_a", "producer_b", "store_csv", "healthcheck"} <= set(latest), latest.keys()
    assert latest["producer_a"]["daq_job_type"] == latest["producer_b"]["daq_job_type"] == "DAQJobTest"
    for row in stats_rows:
        assert all(value != "" for value in row.values()), row
    a, b, store = latest["producer_a"], latest["producer_b"], latest["store_csv"]
    assert a["restart_count"] == "1" and a["last_restart_date"].isdigit(), a
    assert b["restart_count"] == "0" and b["last_restart_date"] == "N/A", b
    assert b["is_alive"] == "true" and b["state"] == "running"
    assert int(b["message_out_count"]) > 0 and b["last_message_out_date"].isdigit()
    assert float(b["message_out_rate"]) > 0 and float(b["rss_mb"]) > 0
    assert int(store["message_in_count"]) > 0 and store["last_message_in_date"].isdigit(), store
    assert float(latest["healthcheck"]["latency_p99_ms"]) > 0, latest["healthcheck"]

    # The webhook URL's secret part is nowhere a user sees: logs, status, stored alerts.
    secret = hook.secret_path.split("/")[-1]
    seen = [status_text]
    for path in glob.glob(f"{workdir}/**/*", recursive=True):
        if os.path.isfile(path) and "configs" not in path:
            with open(path, errors="replace") as f:
                seen.append(f.read())
    assert not any(secret in text for text in seen)
