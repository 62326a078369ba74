"""Messages an operator sends to jobs: typed from JSON, checked against what each job takes,
delivered once per job on its own topic (``daq_job.<unique_id>``).

The original reused one message object and added each job's topic to it, so earlier jobs got
it again and again, and nobody could send a stop. Here the message goes out once with the
topic of every target, and :class:`DAQJobMessageStop` is taken by every job (it ends the
current run; the supervisor restarts it as after a crash: a stop that stays is
:meth:`enrgdaq.control.operations.Operator.stop`).
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from typing import Any

import msgspec
import pyarrow as pa
import zmq

from enrgdaq.control.registry import JobRecord
from enrgdaq.daq.models import (
    DAQJobInfo,
    DAQJobMessage,
    DAQJobMessageCombinedStats,
    DAQJobMessageHeartbeat,
    DAQJobMessageRingNotify,
    DAQJobMessageStop,
    DAQJobMessageStoreQuery,
    DAQJobMessageStoreReady,
    InternalDAQJobMessage,
)
from enrgdaq.daq.topics import Topic, exact
from enrgdaq.daq.types import registry as job_types
from enrgdaq.errors import ControlPlaneError, DAQError, MessagePayloadError
from enrgdaq.message.client import DAQJobMessageProbe, Publisher
from enrgdaq.models import SupervisorInfo

PROBE_TIMEOUT_SECONDS = 5.0
SYSTEM_TYPES: tuple[type[DAQJobMessage], ...] = (
    InternalDAQJobMessage,
    DAQJobMessageHeartbeat,
    DAQJobMessageCombinedStats,
    DAQJobMessageRingNotify,
    DAQJobMessageStoreQuery,
    DAQJobMessageStoreReady,
    DAQJobMessageProbe,
)
"""The plane's own traffic (routes, heartbeats, ring wake-ups, stats): never sent by a person."""
SET_BY_SENDER = ("topics", "daq_job_info", "is_remote")
"""Fields the operator's payload cannot set: where it goes and who sent it are facts."""


def sendable_types() -> dict[str, type[DAQJobMessage]]:
    """Every message type a person may send, by class name (custom ones once their module is
    imported: a plugin's jobs are loaded with the supervisor's plugins)."""
    found: dict[str, type[DAQJobMessage]] = {}
    pending: list[type[DAQJobMessage]] = [DAQJobMessage]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not issubclass(cls, SYSTEM_TYPES):
            found.setdefault(cls.__name__, cls)
    return dict(sorted(found.items()))


def takes(record: JobRecord, message_type: type[DAQJobMessage]) -> bool:
    """Whether the job's class takes messages of this type (a stop: every job)."""
    if message_type is DAQJobMessageStop:
        return True
    try:
        cls = job_types.get(record.daq_job_type)
    except DAQError:
        return False
    return any(issubclass(message_type, t) for t in cls.allowed_message_in_types)


def _dec_hook(target: type, value: Any) -> Any:
    if target is pa.Table and isinstance(value, dict):
        try:
            return pa.table(value)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise MessagePayloadError(f"not a table of columns: {exc}", field="payload.table") from exc
    raise NotImplementedError


def decode_payload(message_type: str, payload: dict[str, Any]) -> DAQJobMessage:
    """The message ``payload`` describes; :class:`MessagePayloadError` names the field that is wrong.
    An Arrow table is given as ``{"column": [values, ...]}``."""
    cls = sendable_types().get(message_type)
    if cls is None:
        raise MessagePayloadError(
            f"unknown message type '{message_type}'; types: {', '.join(sendable_types())}",
            field="message_type",
        )
    given = {k: v for k, v in payload.items() if k not in SET_BY_SENDER}
    try:
        message = msgspec.json.decode(msgspec.json.encode(given), type=cls, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise MessagePayloadError(f"{message_type}: {exc}", field=_field_of(str(exc))) from exc
    if getattr(message, "handle", None) is not None:
        raise MessagePayloadError("a ring handle cannot be sent by hand", field="payload.handle")
    return message


def _field_of(error: str) -> str:
    """The payload field a msgspec error names (``payload.store_config.csv.file_pat``)."""
    path = re.search(r" - at `\$([^`]*)`", error)
    name = re.search(r"field `([^`]+)`", error)
    return "payload" + (path.group(1) if path else "") + (f".{name.group(1)}" if name else "")


def message_for(
    message_type: str, payload: dict[str, Any], running: list[JobRecord], strict: bool
) -> tuple[DAQJobMessage, list[str]]:
    """The message and the running jobs that take it. ``strict`` (one job named): a job that does
    not take the type is an error; otherwise such jobs are skipped, and none left is an error."""
    for record in running:  # a job's module defines its message types (DAQJobMessageCAENHVSetChParam)
        with contextlib.suppress(DAQError):
            job_types.get(record.daq_job_type)
    kind = sendable_types().get(message_type)
    targets = [r.unique_id for r in running if kind is not None and takes(r, kind)]
    if kind is not None and not targets:
        which = f"job '{running[0].unique_id}' ({running[0].daq_job_type})" if strict else "no running job"
        raise MessagePayloadError(f"{which} does not take {message_type}", field="message_type")
    return decode_payload(message_type, payload), targets


def deliver(
    xpub_url: str, xsub_url: str, info: SupervisorInfo, message: DAQJobMessage, targets: list[str]
) -> None:
    """Publish ``message`` once on the topic of each target, through this node's proxy.

    A new PUB socket drops what it sends until the proxy has passed it the subscriptions, so
    the path is proven first: a probe on a topic of our own must come back.
    """
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    try:
        probe_topic = f"operator.{uuid.uuid4().hex}"
        sub.connect(xpub_url)
        sub.setsockopt(zmq.SUBSCRIBE, exact(probe_topic))
        publisher = Publisher(context, xsub_url)
        try:
            _prove(sub, publisher, probe_topic)
            message.daq_job_info = DAQJobInfo(
                daq_job_type="Operator", unique_id="operator", supervisor_info=info
            )
            message.topics = {Topic.daq_job_direct(uid) for uid in targets}
            publisher.send(message)
        finally:
            publisher.close()  # LINGER: what was sent still goes out
    finally:
        sub.close()
        context.term()


def _prove(sub: zmq.Socket, publisher: Publisher, probe_topic: str) -> None:
    deadline = time.monotonic() + PROBE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        publisher.send(DAQJobMessageProbe(token=probe_topic, topics={probe_topic}))
        if sub.poll(20):
            return
    raise ControlPlaneError(
        f"the supervisor's message proxy did not answer within {PROBE_TIMEOUT_SECONDS:.0f} s: "
        "is the supervisor running on this machine?"
    )
