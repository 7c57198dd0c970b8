"""Accuracy of the 2-layer GCN on Cora and CiteSeer on 4 ranks (cpu kernels) against the GCN paper: the
setup and the claim are in accuracy_setup.py. One file per world size, so pytest-xdist runs the two
minutes-long process groups side by side."""

from __future__ import annotations

import pytest
from accuracy_setup import check_accuracy, partitions

# 10 seeds x 200 epochs per dataset: scheduled first, never beside a starting Ray instance (tests/conftest.py)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("loads_every_core")]


@pytest.mark.timeout(840)
def test_gcn_matches_published_accuracy(tmp_path, shared_datasets):
    # 4 ranks run the C++ kernels users run
    check_accuracy(partitions(tmp_path, shared_datasets, 4), 4, stale=False, kernel="cpu")
