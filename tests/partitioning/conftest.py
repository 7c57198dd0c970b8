"""Fixtures for the partitioner tests: small hand-built graphs (see toy_graphs.py)."""

from __future__ import annotations

import pytest
from toy_graphs import build_graph

from distgnn.data.graph import Graph


@pytest.fixture
def toy_graph() -> Graph:
    return build_graph()


@pytest.fixture
def make_graph():
    return build_graph
