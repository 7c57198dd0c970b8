"""Launch-time errors on real multi-process jobs: every rank fails with the same line, nobody hangs."""

from __future__ import annotations

import pytest
from helpers import cli_rank, run_ranks

from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import partition_graph


@pytest.mark.timeout(90)
def test_world_size_mismatch_fails_on_every_rank_without_hanging(tmp_path):
    graph = synthetic_graph(num_nodes=90, num_edges=500, num_features=6, num_classes=3, seed=1)
    parts = tmp_path / "p3"
    partition_graph(graph, 3, parts, progress=False)
    # torchrun's environment for 2 ranks (RANK, WORLD_SIZE, MASTER_*), no process group yet; a rank
    # that hung would end in the harness's TimeoutError instead of these results
    results = run_ranks(
        cli_rank, 2, ["train", "--partitions", str(parts), "--no-progress"], init=False, timeout=60
    )
    expected = (
        f"distgnn train: error: partition directory {parts} has 3 parts but the job has 2 processes; "
        "run with --nproc 3 (or torchrun --nproc_per_node 3)\n"
    )
    assert results == [(2, expected), (2, expected)]
