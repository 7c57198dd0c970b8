"""The model tests run on tiny tensors: one intra-op thread (the suite's ``one_thread`` fixture)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield
