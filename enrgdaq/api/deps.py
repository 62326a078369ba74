"""What an endpoint is handed: the app's :class:`Operator` (one per process, thread-safe: it keeps
no state but a Redis connection pool)."""

from __future__ import annotations

from fastapi import Request

from enrgdaq.control.operations import Operator


def operator(request: Request) -> Operator:
    found: Operator = request.app.state.operator
    return found
