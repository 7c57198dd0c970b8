"""One intra-op thread for the model tests: tiny tensors gain nothing from threads, and on a shared
2-core machine OpenMP threads contending with other processes make small ops orders of magnitude slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
