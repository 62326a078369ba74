"""The status document never quotes a secret, whichever command or endpoint prints it."""

from __future__ import annotations

from enrgdaq.cli.status import render_table
from enrgdaq.control.registry import JobRegistry
from enrgdaq.control.status_document import status_report
from enrgdaq.models import SupervisorInfo
from tests.harness.redis_proc import RedisProcess


def test_an_error_quoting_a_database_url_or_webhook_is_shown_masked(redis_proc: RedisProcess) -> None:
    client = redis_proc.client()
    try:
        registry = JobRegistry(client, "masking")
        registry.register_invalid(
            "store_mysql",
            "/cfg/store_mysql.toml",
            "DAQJobStoreMySQL",
            "cannot connect to mysql://daq:s3cretPW@db:3306/run password=s3cretPW "
            "and https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX",
        )
        doc = status_report(registry, SupervisorInfo(supervisor_id="masking"))
        shown = render_table(doc) + repr(doc)
        assert "store_mysql" in shown and "cannot connect" in shown
        assert "s3cretPW" not in shown
        assert "XXXXsecretXXXX" not in shown
    finally:
        client.close()
