"""``/api/.../logs``: the last lines of a job or of the node, and a live stream (server-sent events).

Lines come from the Redis log streams (:class:`enrgdaq.control.joblog.LogStore`), already
masked by the writer and masked again here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import redis
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from enrgdaq.api.deps import operator
from enrgdaq.api.problems import responses
from enrgdaq.api.schemas import LogLineModel
from enrgdaq.control.joblog import LogLine, LogStore
from enrgdaq.control.keys import NODE_LOG
from enrgdaq.control.masking import mask_text
from enrgdaq.control.operations import Operator
from enrgdaq.errors import JobNotFoundError

router = APIRouter(prefix="/api", tags=["logs"])
Op = Depends(operator)
Lines = Query(100, ge=1, le=5000, description="How many of the last lines.")
KEEPALIVE_EVERY = 15
"""Empty follows (1 s each) between two keep-alive comments, so that proxies keep the stream."""
SSE_MEDIA = "text/event-stream"
STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {SSE_MEDIA: {"schema": {"type": "string"}}}, "description": "Server-sent events"}
}


def _store(op: Operator) -> LogStore:
    return LogStore(op.registry.redis, op.supervisor_id)


def _shown(line: LogLine) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.structs.asdict(line)
    data["message"] = mask_text(line.message)
    return data


def _job_source(op: Operator, unique_id: str) -> str:
    op.job(unique_id)  # 404 for a job that does not exist
    return unique_id


def _node_source(op: Operator, source: str) -> str:
    if source != NODE_LOG and source not in _store(op).sources():
        raise JobNotFoundError(f"no log source '{source}' (GET /api/logs/sources lists them)")
    return source


@router.get("/jobs/{unique_id}/logs", response_model=list[LogLineModel], responses=responses(404))
def job_logs(unique_id: str, lines: int = Lines, op: Operator = Op) -> list[dict[str, Any]]:
    """The job's last lines, oldest first."""
    return [_shown(line) for line in _store(op).tail(_job_source(op, unique_id), lines)]


@router.get("/logs", response_model=list[LogLineModel], responses=responses(404))
def node_logs(
    source: str = Query(NODE_LOG, max_length=80, description="A job id, or _node for the node's processes."),
    lines: int = Lines,
    op: Operator = Op,
) -> list[dict[str, Any]]:
    """The last lines of the node's own processes (``_node``) or of any log source."""
    return [_shown(line) for line in _store(op).tail(_node_source(op, source), lines)]


@router.get("/logs/sources", response_model=list[str], responses=responses())
def log_sources(op: Operator = Op) -> list[str]:
    """Every source with a log stream: job ids and ``_node``."""
    return _store(op).sources()


def _events(store: LogStore, source: str, lines: int, last_id: str | None) -> Iterator[str]:
    """The backlog (unless resuming after ``last_id``), then every new line as it comes."""
    after = last_id
    if after is None:
        backlog = store.tail(source, lines)
        for line in backlog:
            yield _event(line)
        after = backlog[-1].id if backlog else "0-0"
    idle = 0
    while True:
        try:
            new = store.follow(source, after, block_ms=1000)
        except redis.RedisError as exc:
            yield f"event: error\ndata: Redis does not answer ({type(exc).__name__})\n\n"
            return
        for line in new:
            yield _event(line)
            after = line.id
        idle = 0 if new else idle + 1
        if idle >= KEEPALIVE_EVERY:
            idle = 0
            yield ": keep-alive\n\n"


def _event(line: LogLine) -> str:
    return f"id: {line.id}\nevent: log\ndata: {msgspec.json.encode(_shown(line)).decode()}\n\n"


def _stream(op: Operator, source: str, lines: int, last_id: str | None) -> StreamingResponse:
    return StreamingResponse(
        _events(_store(op), source, lines, last_id),
        media_type=SSE_MEDIA,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


LastEventId = Header(None, alias="Last-Event-ID", max_length=40, pattern=r"^\d+-\d+$")


@router.get(
    "/jobs/{unique_id}/logs/stream",
    response_class=StreamingResponse,
    responses={**STREAM_RESPONSE, **responses(404)},
)
def job_log_stream(
    unique_id: str, lines: int = Lines, last_event_id: str | None = LastEventId, op: Operator = Op
) -> StreamingResponse:
    """The job's last lines, then each new one as it is logged (``event: log``, JSON data)."""
    return _stream(op, _job_source(op, unique_id), lines, last_event_id)


@router.get("/logs/stream", response_class=StreamingResponse, responses={**STREAM_RESPONSE, **responses(404)})
def node_log_stream(
    source: str = Query(NODE_LOG, max_length=80),
    lines: int = Lines,
    last_event_id: str | None = LastEventId,
    op: Operator = Op,
) -> StreamingResponse:
    """Any log source as a stream (default: the node's processes)."""
    return _stream(op, _node_source(op, source), lines, last_event_id)
