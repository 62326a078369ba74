"""Find the line of a TOML key, so that errors can point at it.

msgspec reports a JSON-path-like location (``$.store_config.csv``) but no
line; this walks the text tracking table headers and returns the line where
that path is defined. Best effort: inline tables and multi-line values are
located by their first line.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\.\"' ]+?)\s*=")
_MSGSPEC_PATH = re.compile(r"`\$([^`]*)`")
_BACKTICK_NAME = re.compile(r"field `([^`]+)`")


def _split_key(key: str) -> list[str]:
    return [part.strip().strip("\"'") for part in key.split(".")]


def find_line(text: str, path: list[str]) -> int | None:
    """1-based line where ``path`` is defined (as a key or a table header), or None."""
    if not path:
        return None
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group(1))
            if table == path:
                return number
            continue
        key = _KEY.match(line)
        if key and table + _split_key(key.group(1)) == path:
            return number
    return None


def path_from_msgspec(message: str) -> tuple[list[str], str | None]:
    """(path to the object, offending field name) from a msgspec ValidationError text."""
    match = _MSGSPEC_PATH.search(message)
    raw = match.group(1) if match else ""
    parts = [p for p in re.split(r"\.|\[[^\]]*\]", raw) if p]
    name = _BACKTICK_NAME.search(message)
    return parts, name.group(1) if name else None
