"""The FastAPI application: routes, the error table, the token, CORS and the status page."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from enrgdaq.api import problems
from enrgdaq.api.auth import refusal, require_token
from enrgdaq.api.routes import jobs, logs, system
from enrgdaq.api.settings import ApiSettings
from enrgdaq.control.operations import Operator

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


def create_app(operator: Operator, settings: ApiSettings) -> FastAPI:
    """The app for one supervisor; ``settings`` decide the token and the CORS origins."""
    app = FastAPI(
        title="ENRGDAQ control API",
        version="1",
        description="Status and control of one ENRGDAQ supervisor and its DAQ jobs (docs/api.md).",
        docs_url=None,  # Swagger UI loads from a CDN; /openapi.json is what tools read
        redoc_url=None,
    )
    app.state.operator = operator
    app.state.settings = settings
    problems.install(app)
    guarded = [Depends(require_token(settings))]
    for module in (system, jobs, logs):
        app.include_router(module.router, dependencies=guarded)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )

    @app.middleware("http")
    async def refuse_foreign(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        refused = refusal(request, settings)
        if refused is not None:
            return problems.problem(*refused)
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
