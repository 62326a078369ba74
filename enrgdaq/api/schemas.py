"""Response and request models: what /openapi.json promises and the responses are checked against.

The status document grows with the project; its models accept fields they do not name yet
(``extra = allow``), so an addition shows in the API without a change here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Problem(BaseModel):
    """Every error response: what is wrong, and where when it is known."""

    detail: str
    field: str | None = None
    file: str | None = None
    line: int | None = None


class JobRow(_Open):
    unique_id: str
    daq_job_type: str
    queue: str
    state: str
    pid: int | None = None
    hostname: str | None = None
    restarts: int = 0
    last_heartbeat: str | None = None
    restart_at: str | None = None
    error: str | None = None
    last_error: str | None = Field(
        default=None, description="The error of the last run that ended with one, kept while it runs again."
    )
    last_error_at: str | None = None
    config_file: str | None = None
    messages_in: int = 0
    messages_out: int = 0
    data: dict[str, int] = {}


class JobDetail(JobRow):
    desired: str
    stop_reason: str = ""
    restart_on_crash: bool = True
    started_at: float | None = None
    config: dict[str, Any] = Field(default_factory=dict, description="The job's TOML, secrets masked.")
    stats: dict[str, Any] = {}


class StatusDocument(_Open):
    supervisor_id: str
    supervisor_alive: bool
    jobs: list[JobRow]
    problems: dict[str, str] = {}
    api_url: str | None = None


class Node(BaseModel):
    supervisor_id: str
    hostname: str
    pid: int
    alive: bool
    state: str = Field("alive", description="alive, or lost: its heartbeat expired (docs/nodes.md).")
    last_heartbeat: str | None = Field(None, description="When it last said it is alive (ISO 8601).")
    started_at: float
    api_url: str | None = None
    jobs: dict[str, int] = Field(description="Number of jobs in each state.")


class Removed(BaseModel):
    unique_id: str
    removed: bool
    config_file: str | None = Field(None, description="Where the job's file was renamed to.")


class MessageRequest(BaseModel):
    message_type: str = Field(description="A message class name, e.g. DAQJobMessageStoreTabular.")
    payload: dict[str, Any] = Field(default_factory=dict, description="Its fields, as JSON.")


class MessageSent(BaseModel):
    message_type: str
    sent_to: list[str]


class LogLineModel(BaseModel):
    id: str = Field(description="Stream entry id; resume a stream after it (Last-Event-ID).")
    time: float
    level: str
    source: str
    logger: str
    message: str


class Template(BaseModel):
    type_key: str
    label: str
    description: str
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    available: bool = True
    reason: str | None = None

    model_config = ConfigDict(populate_by_name=True)
