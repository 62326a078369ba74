"""Where the API listens and who may call it, settled once at start from ``[cnc]`` and the
environment: ``ENRGDAQ_API_TOKEN`` overrides ``rest_api_token``; a bind beyond loopback
without a token is refused (:class:`ConfigError`)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from enrgdaq.errors import ConfigError
from enrgdaq.models import SupervisorCNCConfig

TOKEN_ENV = "ENRGDAQ_API_TOKEN"
URL_ENV = "ENRGDAQ_API_URL"
"""The address to advertise (``enrgdaq status``) when it differs from the bound one (Compose)."""
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """True when ``host`` only ever means this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0])).is_loopback for i in infos)


def bind_host(host: str) -> str:
    """``localhost`` binds 127.0.0.1 (one address, the one the printed URL names)."""
    return "127.0.0.1" if host == "localhost" else host.strip("[]")


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    public_url: str | None = None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def url(self, port: int | None = None) -> str:
        """The URL to print and advertise (``ENRGDAQ_API_URL`` if set)."""
        if self.public_url:
            return self.public_url.rstrip("/") + "/"
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port if port is not None else self.port}/"

    def check(self) -> None:
        """Refuse what would expose the API: beyond loopback it needs a token, and a real one."""
        if not self.loopback and not self.token:
            raise ConfigError(
                f"the REST API would listen on {self.host}, beyond this machine, without a token: set "
                f"{TOKEN_ENV} (or [cnc] rest_api_token), or bind 127.0.0.1 (cnc.rest_api_host)",
                field="cnc.rest_api_token",
            )
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"the REST API token is shorter than {MIN_TOKEN_LENGTH} characters: use a random one "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))')",
                field="cnc.rest_api_token",
            )


def api_settings(
    cnc: SupervisorCNCConfig | None,
    host: str | None = None,
    port: int | None = None,
    env: Mapping[str, str] = os.environ,
) -> ApiSettings:
    """Settings from ``[cnc]`` (defaults: 127.0.0.1:8000, no token, no CORS), the environment and
    command-line overrides."""
    cnc = cnc or SupervisorCNCConfig()
    return ApiSettings(
        host=bind_host(host or cnc.rest_api_host),
        port=cnc.rest_api_port if port is None else port,
        token=env.get(TOKEN_ENV) or cnc.rest_api_token or None,
        cors_origins=tuple(cnc.rest_api_cors_origins),
        public_url=env.get(URL_ENV) or None,
    )


def api_enabled(cnc: SupervisorCNCConfig | None) -> bool:
    """Served unless ``[cnc] rest_api_enabled = false``."""
    return cnc is None or cnc.rest_api_enabled is not False
