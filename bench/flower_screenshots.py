"""Reproduce the Flower screenshots of docs/operations.md ("A crashed job in Flower").

Runs ``enrgdaq up --flower`` on the example configs in a temporary directory (the producer
with ``restart_on_crash = false``, so that its crash stays), kills the producer's process,
restarts it with ``enrgdaq restart``, and photographs Flower's pages with the system's
Chromium (never a downloaded browser)::

    python bench/flower_screenshots.py           # writes docs/img/flower-*.png
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "docs", "img")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USER, PASSWORD = "operator", "screenshots"
PRODUCER = "DAQJobTest[test_producer]"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def cli(workdir: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enrgdaq.cli.main", *args], cwd=workdir, capture_output=True, text=True
    )


def flower_tasks(port: int) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/tasks")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return list(json.loads(response.read()).values())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return []


def producer_tasks(port: int, state: str) -> list[dict[str, Any]]:
    return [t for t in flower_tasks(port) if t.get("name") == PRODUCER and t.get("state") == state]


def main() -> None:
    from playwright.sync_api import sync_playwright

    from enrgdaq.local.redis_server import free_port

    os.makedirs(OUT, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="flower-shots-")
    shutil.copytree(os.path.join(REPO, "configs"), os.path.join(workdir, "configs"))
    producer_file = os.path.join(workdir, "configs", "test_producer.toml")
    with open(producer_file) as f:
        text = f.read().replace("rate_hz = 10\n", "rate_hz = 10\nrestart_on_crash = false\n")
    with open(producer_file, "w") as f:
        f.write(text)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENRGDAQ_") and k != "PYTHONPATH"}
    env["FLOWER_BASIC_AUTH"] = f"{USER}:{PASSWORD}"
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "enrgdaq.cli.main",
            "up",
            "configs/",
            "--flower",
            "--flower-port",
            str(port),
            "--quiet",
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            "rates in Flower",
            lambda: any(str(t.get("result")).startswith("out 1") for t in producer_tasks(port, "STARTED")),
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="chromium-profile-"),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1500, "height": 430},
                http_credentials={"username": USER, "password": PASSWORD},
            )
            page = browser.new_page()
            base = f"http://127.0.0.1:{port}"

            def tasks_page(name: str, expect: str) -> None:
                page.goto(f"{base}/tasks")
                page.wait_for_selector(f"#tasks-table td:has-text('{expect}')", timeout=20000)
                page.screenshot(path=os.path.join(OUT, name))

            tasks_page("flower-tasks-running.png", "msg/s")

            status = json.loads(cli(workdir, "status", "--json").stdout)
            pid = next(j["pid"] for j in status["jobs"] if j["unique_id"] == "test_producer")
            os.kill(pid, signal.SIGKILL)  # a crash as a segfault or the OOM killer would do it
            failed = wait_for("the crash in Flower", lambda: producer_tasks(port, "FAILURE"))
            tasks_page("flower-tasks-crashed.png", "FAILURE")
            page.goto(f"{base}/task/{failed[0]['uuid']}")
            page.wait_for_selector("text=WorkerLostError", timeout=20000)
            page.screenshot(path=os.path.join(OUT, "flower-task-crashed.png"), full_page=True)

            done = cli(workdir, "restart", "test_producer")
            print(done.stdout.strip(), done.stderr.strip())
            wait_for(
                "the new run's rates",
                lambda: any(
                    str(t.get("result")).startswith("out 1") for t in producer_tasks(port, "STARTED")
                ),
            )
            tasks_page("flower-tasks-restarted.png", "msg/s")
            browser.close()
        print("\n".join(sorted(p for p in os.listdir(OUT) if p.startswith("flower-"))))
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
