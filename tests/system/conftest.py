"""Fixtures shared by the system tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness.nodes import Node, two_nodes


@pytest.fixture
def nodes(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[tuple[Node, Node]]:
    """Two whole nodes on one Redis, named by the test module's ``NODE_IDS``."""
    first, second = request.module.NODE_IDS
    with two_nodes(str(tmp_path), first, second) as pair:
        yield pair
