"""Fixtures of the unit tests: a real message proxy on ipc:// sockets in a short temp dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from enrgdaq.message.proxy import MessageProxy


@dataclass
class ProxyUrls:
    xsub_url: str
    """Producers connect here."""
    xpub_url: str
    """Subscribers connect here."""
    run_dir: str


@pytest.fixture
def proxy() -> Iterator[ProxyUrls]:
    """A started ``MessageProxy``; stopped and its directory removed afterwards."""
    # Short: ipc socket paths are limited to about 100 characters.
    run_dir = tempfile.mkdtemp(prefix="edq-", dir="/tmp")
    urls = ProxyUrls(f"ipc://{run_dir}/xsub", f"ipc://{run_dir}/xpub", run_dir)
    message_proxy = MessageProxy(urls.xsub_url, urls.xpub_url)
    try:
        message_proxy.start()
        yield urls
    finally:
        message_proxy.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    assert not os.path.exists(run_dir)
