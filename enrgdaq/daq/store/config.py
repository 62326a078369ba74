"""Settings every store job's TOML file has, on top of :class:`DAQJobConfig`.

The flush policy is the same for every store: what a store received is in its
file or server within ``flush_interval`` seconds (at once when the store is
idle), and all of it at a clean stop. A ring slot is given back only after
that, so a crash loses nothing that came through a ring.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from enrgdaq.daq.models import DAQJobConfig

FlushSeconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]


class StoreJobConfig(DAQJobConfig, kw_only=True):
    """Attributes:
    flush_interval: under load, rows reach the file or server at least this often (seconds);
        an idle store writes at once.
    fsync: also ``fsync`` files at each write (survives a power cut, not only a crash of the
        store; slower on real disks).
    """

    flush_interval: FlushSeconds = 1.0
    fsync: bool = False


class FileStoreJobConfig(StoreJobConfig, kw_only=True):
    """``out_dir``: the directory every ``file_path`` of a producer's store config is relative to."""

    out_dir: str = "out/"
