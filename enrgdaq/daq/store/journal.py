"""Exactly once across a kill -9: what a file store is about to write, recorded before it writes.

A store gives a ring slot back only after the slot's rows are in its file, so a
crash never loses them; but a crash *between* the write and the give-back
would make the next run read those slots again and write their rows twice.
Before each write the store records, atomically (a small file renamed into
place in the run directory):

* every file it appends to, with its length before and after the write;
* every ring the write covers, with the sequence number the write reaches.

At its next start the store looks at the files: all at their "after" length
means the write went through, and the ring payloads below the recorded
sequence numbers are skipped (given back unread); otherwise the files are cut
back to their "before" length and the payloads are read again from the ring
(their slots were never given back). Either way every row is in the file once.

"Files" and "lengths" are whatever a store appends to and can cut back: bytes
of a file by default, or rows of an HDF5 dataset (a :class:`Medium` of the
store's own, handed to :meth:`WriteJournal.recover`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from enrgdaq.errors import JournalUnreachableError

logger = logging.getLogger(__name__)

JOURNAL_PREFIX = "journal-"

RingPositions = dict[str, tuple[int, int]]
"""Ring file name -> (its inode, the first sequence number not covered by the write)."""


class Medium(Protocol):
    """What a store appends to: named targets with a length that only grows, and can be cut."""

    def length(self, name: str) -> int:
        """The target's length now (0 when it does not exist)."""
        ...

    def cut(self, name: str, length: int) -> None:
        """Cut the target back to ``length``."""
        ...


class Files:
    """Byte files: the length is the size, cutting is truncating."""

    def length(self, name: str) -> int:
        return _size(name)

    def cut(self, name: str, length: int) -> None:
        with open(name, "r+b") as f:
            f.truncate(length)


FILES = Files()


@dataclass
class Recovery:
    """What a store's previous run left half done, and what to do about it."""

    skip: RingPositions = field(default_factory=dict)
    """Payloads below these positions are in the files already: give them back unread."""
    cut: dict[str, int] = field(default_factory=dict)
    """Files cut back to these lengths (a write that did not finish)."""


class WriteJournal:
    """One store's journal file in the run directory (a tmpfs: it lives exactly as long as the rings
    whose positions it records)."""

    def __init__(self, run_dir: str, store_id: str) -> None:
        self.path = os.path.join(run_dir, f"{JOURNAL_PREFIX}{store_id}")

    def record(self, files: dict[str, tuple[int, int]], rings: RingPositions) -> None:
        """Before a write: ``files`` maps path -> (length before, length after)."""
        doc = {
            "files": {path: list(lengths) for path, lengths in files.items()},
            "rings": {name: list(position) for name, position in rings.items()},
        }
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, self.path)

    def recover(self, medium: Medium = FILES) -> Recovery:
        """At start, before any payload is read: finish or undo the last recorded write."""
        try:
            with open(self.path) as f:
                doc = json.load(f)
            files = {str(p): (int(v[0]), int(v[1])) for p, v in doc["files"].items()}
            rings = {str(n): (int(v[0]), int(v[1])) for n, v in doc["rings"].items()}
        except FileNotFoundError:
            return Recovery()
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            logger.error("unreadable write journal %s (%s): ignored", self.path, exc)
            return Recovery()
        sizes = _measure(files, medium)
        changed = [p for p, (before, after) in files.items() if not before <= sizes[p] <= after]
        if changed:
            # Not our half-done write: someone else changed the file. Cut nothing, skip nothing
            # (a row read again is better than a row cut away).
            logger.warning(
                "files changed since the last recorded write, left as they are (their payloads are "
                "read again): %s",
                {p: f"{sizes[p]} now, {files[p][0]} before the write, {files[p][1]} after" for p in changed},
            )
            return Recovery()
        if all(sizes[path] == after for path, (_before, after) in files.items()):
            return Recovery(skip=rings)
        cut = {}
        for path, (before, _after) in files.items():
            if sizes[path] > before:
                with _unreachable_on_os_error():
                    medium.cut(path, before)
                cut[path] = before
        if cut:
            logger.warning("a write cut short by a crash was undone: %s", cut)
        return Recovery(cut=cut)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _measure(files: dict[str, tuple[int, int]], medium: Medium) -> dict[str, int]:
    """The targets' lengths now. A directory that is not there before or after they are read (a
    length read meanwhile may be of nothing), or a read that fails, leaves it unknown:
    :class:`JournalUnreachableError`, never a guess."""
    for name in files:
        require_directory(name.partition("\0")[0])
    with _unreachable_on_os_error():
        sizes = {name: medium.length(name) for name in files}
    for name in files:
        require_directory(name.partition("\0")[0])
    return sizes


@contextlib.contextmanager
def _unreachable_on_os_error() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise JournalUnreachableError(
            f"cannot check the last write before the crash ({exc}); the data waits in the ring until it can"
        ) from exc


def require_directory(path: str) -> None:
    """Raise :class:`JournalUnreachableError` while ``path``'s directory is not there: a file
    missing from a directory that is there was removed (length 0, its rows are written again), but
    a directory that is not there says nothing about what is on disk."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise JournalUnreachableError(
            f"cannot check the last write before the crash: {directory} is not a directory now; "
            "the data waits in the ring until it is back"
        )


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
