"""Strict TOML decoding into msgspec structs, with errors that say where."""

from __future__ import annotations

import re
import tomllib
from typing import Any, TypeVar

import msgspec

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
        raise _located(str(exc), text, file) from exc


def _located(message: str, text: str, file: str) -> ConfigError:
    path, name = path_from_msgspec(message)
    detail = message.split(" - at ")[0]
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
