"""Where the API listens, when it asks for a token, and what it never shows (no server needed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from enrgdaq.api.auth import token_matches
from enrgdaq.api.settings import ApiSettings, api_enabled, api_settings, is_loopback
from enrgdaq.config.decode import decode
from enrgdaq.control.masking import MASK, mask_text, mask_value
from enrgdaq.errors import ConfigError
from enrgdaq.models import SupervisorCNCConfig, SupervisorConfig
from tests.harness.up import user_env

TOKEN = "0123456789abcdef-long-enough"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("no-such-host.invalid", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_defaults_bind_loopback_8000_without_token_or_cors() -> None:
    settings = api_settings(None, env={})
    assert (settings.host, settings.port, settings.token, settings.cors_origins) == (
        "127.0.0.1",
        8000,
        None,
        (),
    )
    assert settings.url() == "http://127.0.0.1:8000/"
    settings.check()  # loopback: no token needed


def test_beyond_loopback_without_a_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="ENRGDAQ_API_TOKEN") as caught:
        api_settings(None, host="0.0.0.0", env={}).check()
    assert caught.value.field == "cnc.rest_api_token"
    with pytest.raises(ConfigError, match="shorter than"):
        api_settings(None, host="0.0.0.0", env={"ENRGDAQ_API_TOKEN": "short"}).check()
    api_settings(None, host="0.0.0.0", env={"ENRGDAQ_API_TOKEN": TOKEN}).check()


def test_cnc_settings_and_the_environment() -> None:
    text = """
[info]
supervisor_id = "x"
[cnc]
rest_api_host = "0.0.0.0"
rest_api_port = 9001
rest_api_token = "from-the-file-0123456789"
rest_api_cors_origins = ["https://ui.example.org"]
"""
    cnc = decode(text, SupervisorConfig, "supervisor.toml").cnc
    from_file = api_settings(cnc, env={})
    assert (from_file.host, from_file.port, from_file.token) == ("0.0.0.0", 9001, "from-the-file-0123456789")
    assert from_file.cors_origins == ("https://ui.example.org",)
    assert api_settings(cnc, env={"ENRGDAQ_API_TOKEN": TOKEN}).token == TOKEN
    assert api_settings(cnc, port=0, env={}).port == 0
    public = api_settings(cnc, env={"ENRGDAQ_API_URL": "http://127.0.0.1:8000"})
    assert public.url(1234) == "http://127.0.0.1:8000/"
    assert "from-the-file" not in repr(from_file)  # the token stays out of reprs and logs


def test_the_api_is_on_unless_turned_off() -> None:
    assert (
        api_enabled(None)
        and api_enabled(SupervisorCNCConfig())
        and api_enabled(SupervisorCNCConfig(rest_api_enabled=True))
    )
    assert not api_enabled(SupervisorCNCConfig(rest_api_enabled=False))


def test_an_unknown_cnc_key_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        decode(
            '[info]\nsupervisor_id = "x"\n[cnc]\nrest_api_tokn = "x"\n', SupervisorConfig, "supervisor.toml"
        )
    assert caught.value.field == "cnc.rest_api_tokn" and caught.value.line == 4


def test_token_comparison() -> None:
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN[:-1], TOKEN)
    assert not token_matches("", TOKEN)
    assert not token_matches(TOKEN + "x", TOKEN)


def test_enrgdaq_api_refuses_to_start_beyond_loopback_without_a_token(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "enrgdaq.cli.main", "api", "--host", "0.0.0.0", "--port", "0"],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "ENRGDAQ_API_TOKEN" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("connect to mysql://daq:hunter2@db/x failed", "hunter2"),
        ("posting to https://hooks.slack.com/services/T0/B0/XyZsecret1 failed", "XyZsecret1"),
        ("retry with password=hunter2 and token: abc123def", "hunter2"),
        ("retry with password=hunter2 and token: abc123def", "abc123def"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc", "eyJhbGciOiJIUzI1NiJ9"),
    ],
)
def test_secrets_in_text_are_masked(text: str, secret: str) -> None:
    masked = mask_text(text)
    assert secret not in masked and MASK in masked


def test_secret_keys_of_a_config_are_masked_whatever_they_hold() -> None:
    config = {
        "daq_job_type": "DAQJobStoreMySQL",
        "host": "db",
        "password": "hunter2",
        "slack_webhook_url": "https://example.org/anything",
        "nested": {"api_key": "k", "tokens": ["a", "b"], "url": "redis://:pw@host/0"},
        "rate_hz": 10,
    }
    masked = mask_value(config)
    assert masked["password"] == masked["slack_webhook_url"] == masked["nested"]["api_key"] == MASK
    assert masked["nested"]["tokens"] == [MASK, MASK]
    assert masked["nested"]["url"] == "redis://:***@host/0"
    assert (masked["host"], masked["rate_hz"], masked["daq_job_type"]) == ("db", 10, "DAQJobStoreMySQL")


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        ApiSettings().port = 1  # type: ignore[misc]


def test_enrgdaq_up_refuses_an_api_beyond_loopback_without_a_token_before_starting_anything(tmp_path) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "supervisor.toml").write_text(
        f'[info]\nsupervisor_id = "exposed-{os.getpid()}"\n[cnc]\nrest_api_host = "0.0.0.0"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "enrgdaq.cli.main", "up", "configs"],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ENRGDAQ_API_TOKEN" in done.stderr and "Traceback" not in done.stderr
    assert "ENRGDAQ up:" not in done.stdout  # nothing was started
    assert not (tmp_path / ".enrgdaq" / "up.json").exists()
