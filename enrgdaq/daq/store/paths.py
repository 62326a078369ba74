"""File names of file-based stores (the original's rules)."""

from __future__ import annotations

import os
from datetime import date

COMPRESSED_SUFFIXES = (".zst", ".gz", ".bz2", ".xz", ".lz4")


def modify_file_path(file_path: str, add_date: bool, tag: str | None) -> str:
    """``add_date`` prefixes ``YYYY-MM-DD_`` to the file name; ``tag`` goes before the extension.

    ``data/test.csv.zst`` with tag ``latency`` becomes ``data/test_latency.csv.zst``.
    """
    directory, name = os.path.split(file_path)
    if tag:
        compressed = next((s for s in COMPRESSED_SUFFIXES if name.endswith(s)), "")
        base = name[: len(name) - len(compressed)] if compressed else name
        stem, ext = os.path.splitext(base)
        name = f"{stem}_{tag}{ext}{compressed}"
    if add_date:
        name = f"{date.today().isoformat()}_{name}"
    return os.path.join(directory, name)
