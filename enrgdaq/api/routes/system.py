"""``/api/status``, ``/api/nodes`` and ``/api/templates``: what runs, where, and what could."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from enrgdaq.api import templates
from enrgdaq.api.deps import operator
from enrgdaq.api.problems import responses
from enrgdaq.api.schemas import Node, StatusDocument, Template
from enrgdaq.control.keys import Keys
from enrgdaq.control.nodes import list_nodes
from enrgdaq.control.operations import Operator
from enrgdaq.errors import JobNotFoundError

router = APIRouter(prefix="/api")
Op = Depends(operator)


@router.get("/status", response_model=StatusDocument, responses=responses(), tags=["status"])
def status(op: Operator = Op) -> dict[str, Any]:
    """The supervisor and every job: the document ``enrgdaq status --json`` prints."""
    return op.status()


@router.get("/nodes", response_model=list[Node], responses=responses(), tags=["status"])
def nodes(op: Operator = Op) -> list[dict[str, Any]]:
    """Every supervisor registered in this Redis: ``alive`` or ``lost``, its last heartbeat, its
    number of jobs in each state (a lost node's jobs that nothing runs count as waiting)."""
    return list_nodes(op.registry.redis)


@router.get(
    "/nodes/{supervisor_id}/status", response_model=StatusDocument, responses=responses(404), tags=["status"]
)
def node_status(supervisor_id: str, op: Operator = Op) -> dict[str, Any]:
    """The status document of another supervisor sharing this Redis."""
    if supervisor_id == op.supervisor_id:
        return op.status()
    if not op.registry.redis.exists(Keys(supervisor_id).supervisor):
        raise JobNotFoundError(f"no supervisor '{supervisor_id}' in this Redis (GET /api/nodes lists them)")
    return Operator(op.registry.redis, supervisor_id).status()


@router.get("/templates/jobs", response_model=list[Template], responses=responses(), tags=["templates"])
def job_templates() -> list[dict[str, Any]]:
    """JSON schema of every job type's config (a type whose extra is missing says so)."""
    return templates.job_templates()


@router.get("/templates/stores", response_model=list[Template], responses=responses(), tags=["templates"])
def store_templates() -> list[dict[str, Any]]:
    """JSON schema of every ``[store_config.<kind>]`` table."""
    return templates.store_templates()


@router.get("/templates/messages", response_model=list[Template], responses=responses(), tags=["templates"])
def message_templates() -> list[dict[str, Any]]:
    """JSON schema of every message type a person may send."""
    return templates.message_templates()
