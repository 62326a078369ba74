"""Who may call the API: a bearer token when one is set, and never a foreign web page.

* With a token (always when bound beyond loopback) every ``/api`` request must carry
  ``Authorization: Bearer <token>``; it is compared in constant time.
* A browser page from another origin may not change anything: a POST or DELETE whose
  ``Origin`` is neither this server nor a configured CORS origin is refused (a page on the
  internet cannot drive a loopback API through the user's browser).
* Bound to loopback, only loopback host names are answered (no DNS rebinding).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from enrgdaq.api.settings import ApiSettings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

bearer = HTTPBearer(auto_error=False, description="The API token (ENRGDAQ_API_TOKEN).")
Credentials = Depends(bearer)


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (a timing difference would tell a guesser how far it got)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def require_token(settings: ApiSettings) -> Callable[..., None]:
    """A dependency that checks the bearer token (or lets everything through without one)."""

    def check(credentials: HTTPAuthorizationCredentials | None = Credentials) -> None:
        if settings.token is None:
            return
        if credentials is None or not token_matches(credentials.credentials, settings.token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid API token is required: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without the port (``[::1]:8000`` -> ``[::1]``)."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def refusal(request: Request, settings: ApiSettings) -> tuple[int, str] | None:
    """(status, reason) when the request must not be served at all, else None."""
    host = host_name(request.headers.get("host", ""))
    if settings.loopback and host and host not in LOOPBACK_HOSTS:
        return status.HTTP_400_BAD_REQUEST, f"this API answers on loopback only, not as '{host}'"
    origin = request.headers.get("origin")
    if request.method not in SAFE_METHODS and origin and not _same_origin(origin, request, settings):
        return status.HTTP_403_FORBIDDEN, f"requests from pages of {origin} may not change anything here"
    return None


def _same_origin(origin: str, request: Request, settings: ApiSettings) -> bool:
    if origin in settings.cors_origins:
        return True
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc == request.headers.get("host")
