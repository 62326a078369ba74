"""Strict TOML decoding into msgspec structs, with errors that say where."""

from __future__ import annotations

import re
import tomllib
from typing import Any, TypeVar

import msgspec
import msgspec.inspect

from enrgdaq.config.locate import find_line, path_from_msgspec
from enrgdaq.errors import ConfigError

T = TypeVar("T")

_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def parse_toml(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        raise ConfigError(
            f"invalid TOML syntax: {_TOML_LINE.sub('', str(exc)).strip()}",
            file=file,
            line=int(match.group(1)) if match else None,
        ) from exc


def decode(text: str, type_: type[T], file: str) -> T:
    """Decode ``text`` as ``type_``; unknown keys, wrong types and missing fields are ConfigErrors."""
    data = parse_toml(text, file)
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        raise _located(str(exc), text, file, type_) from exc


def _located(message: str, text: str, file: str, type_: Any = None) -> ConfigError:
    path, name = path_from_msgspec(message)
    detail = message.split(" - at ")[0]
    if "Invalid enum value" in detail and type_ is not None:
        choices = _choices(msgspec.inspect.type_info(type_), path)
        if choices:
            detail += "; choose one of: " + ", ".join(repr(c) for c in choices)
    if "unknown field" in message and name:
        field_path = [*path, name]
        return ConfigError(
            f"unknown key ({detail})", file=file, line=find_line(text, field_path), field=".".join(field_path)
        )
    if "missing required field" in message and name:
        field_path = [*path, name]
        return ConfigError(
            f"missing required field ({detail})",
            file=file,
            line=find_line(text, path),
            field=".".join(field_path),
        )
    if not path:
        # A check in __post_init__ names its field first ("rand_min (5) must not ...").
        first = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\b", detail)
        if first and find_line(text, [first.group(1)]) is not None:
            path = [first.group(1)]
    return ConfigError(detail, file=file, line=find_line(text, path), field=".".join(path) or None)


def _choices(info: Any, path: list[str]) -> list[Any] | None:
    """The allowed values of the literal or enum field at ``path`` (for the error message)."""
    for key in path:
        info = _one_type(info)
        if isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if key in (f.name, f.encode_name)), None)
        elif isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        else:
            return None
    info = _one_type(info)
    if isinstance(info, msgspec.inspect.LiteralType):
        return list(info.values)
    if isinstance(info, msgspec.inspect.EnumType):
        return [member.value for member in info.cls]
    return None


def _one_type(info: Any) -> Any:
    """``X | None`` -> ``X``; other types unchanged."""
    if isinstance(info, msgspec.inspect.UnionType):
        types = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(types) == 1:
            return types[0]
    return info
