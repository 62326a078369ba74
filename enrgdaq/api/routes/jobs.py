"""``/api/jobs``: list, add from TOML, stop, start, restart, remove, send a message."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from enrgdaq.api.deps import operator
from enrgdaq.api.problems import responses
from enrgdaq.api.schemas import JobDetail, JobRow, MessageRequest, MessageSent, Removed
from enrgdaq.control.operations import Operator
from enrgdaq.errors import ConfigError

router = APIRouter(prefix="/api", tags=["jobs"])
Op = Depends(operator)

TOML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The job's TOML file, as it would lie in the config directory.",
        "content": {
            "application/toml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}
MAX_TOML_BYTES = 1024 * 1024


@router.get("/jobs", response_model=list[JobRow], responses=responses())
def list_jobs(op: Operator = Op) -> list[dict[str, Any]]:
    """Every job of this supervisor, as in the status document."""
    jobs: list[dict[str, Any]] = op.status()["jobs"]
    return jobs


@router.post(
    "/jobs",
    status_code=status.HTTP_201_CREATED,
    response_model=JobDetail,
    responses=responses(409),
    openapi_extra=TOML_BODY,
)
async def add_job(
    request: Request,
    name: str | None = Query(None, max_length=64, description="File name (default: daq_job_unique_id)."),
    op: Operator = Op,
) -> dict[str, Any]:
    """Add a job from its TOML: validated like a file of the config directory (422 naming file,
    line and field), written there as ``<unique_id>.toml`` and registered (409: the id exists)."""
    body = await request.body()
    if len(body) > MAX_TOML_BYTES:
        raise ConfigError(f"the TOML is larger than {MAX_TOML_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the TOML is not UTF-8 text (byte {exc.start})") from exc
    if "\x00" in text:
        raise ConfigError("the TOML holds a NUL character")
    result: dict[str, Any] = await run_in_threadpool(op.add_job, text, name)
    return result


@router.post("/jobs/restart", response_model=list[JobDetail], responses=responses())
def restart_all(op: Operator = Op) -> list[dict[str, Any]]:
    """Restart every job that is meant to run (stopped jobs stay stopped)."""
    return op.restart_all()


@router.get("/jobs/{unique_id}", response_model=JobDetail, responses=responses(404))
def get_job(unique_id: str, op: Operator = Op) -> dict[str, Any]:
    """One job: state, process, stats, and its config with secrets masked."""
    return op.job(unique_id)


@router.delete("/jobs/{unique_id}", response_model=Removed, responses=responses(404))
def remove_job(unique_id: str, op: Operator = Op) -> dict[str, Any]:
    """Stop the job for good and remove it; its file is renamed to ``<name>.toml.removed``."""
    return op.remove(unique_id)


@router.post("/jobs/{unique_id}/stop", response_model=JobDetail, responses=responses(404, 409))
def stop_job(unique_id: str, op: Operator = Op) -> dict[str, Any]:
    """A person's stop: the job ends and stays stopped until started (409: already stopped)."""
    return op.stop(unique_id)


@router.post("/jobs/{unique_id}/start", response_model=JobDetail, responses=responses(404, 409))
def start_job(unique_id: str, op: Operator = Op) -> dict[str, Any]:
    """Start a stopped job (409: it is already running or about to)."""
    return op.start(unique_id)


@router.post("/jobs/{unique_id}/restart", response_model=JobDetail, responses=responses(404))
def restart_job(unique_id: str, op: Operator = Op) -> dict[str, Any]:
    """End the job's run and start a new one at once (a new process)."""
    return op.restart(unique_id)


@router.post("/jobs/{unique_id}/messages", response_model=MessageSent, responses=responses(404, 409))
def send_to_job(unique_id: str, message: MessageRequest, op: Operator = Op) -> dict[str, Any]:
    """Send a typed message to one running job (422: a type it does not take, or a bad field)."""
    sent = op.send_message(unique_id, message.message_type, message.payload)
    return {"message_type": message.message_type, "sent_to": sent}


@router.post("/messages", response_model=MessageSent, responses=responses())
def broadcast(message: MessageRequest, op: Operator = Op) -> dict[str, Any]:
    """Send a typed message to every running job that takes its type, once each."""
    sent = op.send_message(None, message.message_type, message.payload)
    return {"message_type": message.message_type, "sent_to": sent}
