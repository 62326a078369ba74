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
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from enrgdaq.api.settings import ApiSettings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

bearer = HTTPBearer(auto_error=False, description="The API token (ENRGDAQ_API_TOKEN).")


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (a timing difference would tell a guesser how far it got)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def require_token(settings: ApiSettings):  # type: ignore[no-untyped-def]
    """A dependency that checks the bearer token (or lets everything through without one)."""

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        if settings.token is None:
            return
        if credentials is None or not token_matches(credentials.credentials, settings.token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid API token is required: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def refusal(request: Request, settings: ApiSettings) -> tuple[int, str] | None:
    """(status, reason) when the request must not be served at all, else None."""
    host = (request.headers.get("host") or "").rsplit(":", 1)[0] if request.headers.get("host") else ""
    if request.headers.get("host", "").startswith("["):
        host = request.headers["host"].split("]")[0] + "]"
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
