"""JSON schemas of every job config, store config and message type, for forms in a control UI
(the original's ``/templates``). Schemas only: no value of any running job's config."""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any

import msgspec
import pyarrow as pa

from enrgdaq.control.masking import MASK, SECRET_KEY
from enrgdaq.control.messages import sendable_types
from enrgdaq.daq.store.models import DAQJobStoreConfig, DAQJobStoreConfigBase
from enrgdaq.daq.types import registry as job_types
from enrgdaq.errors import DAQError


def _schema_hook(kind: type) -> dict[str, Any]:
    if kind is pa.Table:
        return {"type": "object", "description": "An Arrow table as {column: [values, ...]}"}
    if isinstance(kind, type):
        return {"type": "string", "description": f"a {kind.__name__}"}
    raise NotImplementedError


def _schema(kind: Any) -> dict[str, Any] | None:
    try:
        return _no_secret_defaults(msgspec.json.schema(kind, schema_hook=_schema_hook))
    except (TypeError, ValueError, NotImplementedError):
        return None


def _no_secret_defaults(schema: Any) -> Any:
    """A class may default a secret field to a value; a template shows ``***`` instead."""
    if isinstance(schema, dict):
        for name, field in (schema.get("properties") or {}).items():
            if SECRET_KEY.search(name) and isinstance(field, dict) and field.get("default") not in (None, ""):
                field["default"] = MASK
        for value in schema.values():
            _no_secret_defaults(value)
    elif isinstance(schema, list):
        for value in schema:
            _no_secret_defaults(value)
    return schema


def _label(name: str, prefix: str) -> str:
    """``DAQJobStoreCSV`` -> ``Store CSV``: the prefix dropped, words spaced."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.removeprefix(prefix)).strip()
    return words or "Base Message"


def _first_line(obj: Any) -> str:
    return (inspect.getdoc(obj) or "").strip().splitlines()[0] if inspect.getdoc(obj) else ""


def job_templates() -> list[dict[str, Any]]:
    """One entry per job type this installation knows; one whose extra is missing says so."""
    return _job_templates(tuple(job_types.names()))


@functools.cache
def _job_templates(names: tuple[str, ...]) -> list[dict[str, Any]]:
    found = []
    for name in names:
        entry: dict[str, Any] = {"type_key": name, "label": _label(name, "DAQJob"), "description": ""}
        try:
            cls = job_types.get(name)
        except DAQError as exc:
            found.append({**entry, "schema": None, "available": False, "reason": str(exc)})
            continue
        schema = _schema(cls.config_type)
        if schema is not None:
            found.append({**entry, "description": _first_line(cls), "schema": schema})
    return found


@functools.cache
def store_templates() -> list[dict[str, Any]]:
    """One entry per kind of ``[store_config.<key>]`` a producer can name."""
    found = []
    for key, kind in _store_kinds().items():
        found.append(
            {
                "type_key": key,
                "label": _label(kind.__name__, "DAQJobStoreConfig") + " Store",
                "description": _first_line(kind),
                "schema": _schema(kind),
            }
        )
    return found


def _store_kinds() -> dict[str, type]:
    kinds = {}
    for field in msgspec.structs.fields(DAQJobStoreConfig):
        options = [t for t in getattr(field.type, "__args__", ()) if isinstance(t, type)]
        kind = next((t for t in options if issubclass(t, DAQJobStoreConfigBase)), None)
        if kind is not None:
            kinds[field.name] = kind
    return kinds


def message_templates() -> list[dict[str, Any]]:
    """One entry per message type a person may send."""
    return _message_templates(tuple(sendable_types()))


@functools.cache
def _message_templates(_names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "type_key": name,
            "label": _label(name, "DAQJobMessage"),
            "description": _first_line(kind),
            "schema": _schema(kind),
        }
        for name, kind in sendable_types().items()
    ]
