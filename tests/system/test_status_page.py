"""The status page in a real browser: Debian's headless Chromium (never a downloaded one), driven
by Playwright, against a real ``enrgdaq up``. A job is killed with SIGKILL and the page shows it
without being reloaded; the screenshot goes to the test's directory, and to docs/img when
``ENRGDAQ_UPDATE_SCREENSHOTS=1`` is set (a test run does not change tracked files otherwise)."""

from __future__ import annotations

import os
import shutil
import signal
import uuid

import httpx
import pytest

from enrgdaq.local.redis_server import free_port
from tests.harness.celery_proc import REPO
from tests.harness.up import start_up, stop_up
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.system

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
DOCS_SCREENSHOT = os.path.join(REPO, "docs", "img", "status-page.png")


def cell(page: object, unique_id: str, selector: str) -> str:
    locator = page.locator(f"#jobs tr[data-job='{unique_id}'] {selector}")  # type: ignore[attr-defined]
    return str(locator.inner_text(timeout=5000)).strip()


def test_the_page_shows_a_killed_job_restart_without_a_reload(tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    workdir = str(tmp_path)
    shutil.copytree(os.path.join(REPO, "configs"), os.path.join(workdir, "configs"))
    port = free_port()
    with open(os.path.join(workdir, "configs", "supervisor.toml"), "w") as f:
        f.write(f'[info]\nsupervisor_id = "page-{uuid.uuid4().hex[:8]}"\n\n[cnc]\nrest_api_port = {port}\n')
    up = start_up(workdir, "--quiet")
    base = f"http://127.0.0.1:{port}"
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    try:

        def running_pid() -> int | None:
            try:
                jobs = {j["unique_id"]: j for j in httpx.get(f"{base}/api/jobs", timeout=5).json()}
            except (httpx.HTTPError, ValueError):
                return None
            producer = jobs.get("test_producer", {})
            return producer.get("pid") if producer.get("state") == "running" else None

        pid = wait_for(running_pid, 60, "test_producer running, seen through the API")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1280, "height": 560},
            )
            try:
                page = browser.new_page()
                page.goto(f"{base}/")
                page.wait_for_selector("#jobs tr[data-job='test_producer']", timeout=15000)
                assert cell(page, "test_producer", ".state") == "running"
                assert cell(page, "test_producer", ".restarts") == "0"
                page.evaluate("window.notReloaded = true")

                os.kill(pid, signal.SIGKILL)

                # The table refreshes by itself: the crash shows (restart scheduled, or the new run
                # already, with one restart more), and the page was never loaded again.
                page.wait_for_function(
                    """() => {
                        const row = document.querySelector("#jobs tr[data-job='test_producer']");
                        return row && row.querySelector('.restarts').textContent === '1';
                    }""",
                    timeout=15000,
                )
                assert page.evaluate("window.notReloaded") is True
                page.wait_for_function(
                    """() => document.querySelector("#jobs tr[data-job='test_producer'] .state")
                        .textContent === 'running'""",
                    timeout=15000,
                )
                assert cell(page, "test_producer", ".pid") not in ("", "-")
                # A throughput plot per job, drawn from the rates between polls.
                page.wait_for_function(
                    """() => {
                        const line = document.querySelector(
                            "#plots .plot[data-job='test_producer'] polyline.out");
                        return line && line.getAttribute('points').split(' ').length >= 8;
                    }""",
                    timeout=20000,
                )
                assert page.locator("#plots .plot").count() == 2
                page.screenshot(path=str(tmp_path / "status-page.png"))
                if os.environ.get("ENRGDAQ_UPDATE_SCREENSHOTS") == "1":
                    os.makedirs(os.path.dirname(DOCS_SCREENSHOT), exist_ok=True)
                    shutil.copyfile(tmp_path / "status-page.png", DOCS_SCREENSHOT)
            finally:
                browser.close()
    finally:
        assert stop_up(up) == 0
    assert os.path.getsize(tmp_path / "status-page.png") > 10_000
