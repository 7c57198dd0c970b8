"""A steady training epoch faults in (almost) no memory: its large buffers are the last epoch's.

Each activation of this graph is 100 MB on one rank and 51 MB on each of two, above glibc's 32 MiB
mapping threshold: freed, it is unmapped, and allocated again it is faulted in and zeroed page by page.
Without the buffer pool (kernels/pool.py) a steady epoch here faults in 50k pages per rank (1 rank);
with it 1-3 (1 rank) and 20-210 (2 ranks). torch's huge-page advice is off here
(``THP_MEM_ALLOC_ENABLE=0``) so that a fault of its allocations is one 4 KiB page.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import partition_graph

PAGES = 100_000 * 128 * 4 // 4096  # one 1-rank activation: 12,500 pages
STEADY_LIMIT = PAGES // 10  # per rank and steady epoch; one re-faulted activation would exceed it


@pytest.fixture(scope="module")
def graph_dirs(tmp_path_factory):
    # Imported here, not at collection: kernels/cpu.py loads Dynamo, which imports Triton before
    # tests/kernels/conftest.py sets TRITON_INTERPRET (tests/kernels/test_import_light.py).
    from distgnn.kernels import cpu

    if not cpu.is_available():
        pytest.skip(f"the C++ kernels do not build here: {cpu.build_error()}")
    graph = synthetic_graph(num_nodes=100_000, num_edges=1_000_000, num_features=128, num_classes=8, seed=0)
    base = tmp_path_factory.mktemp("reuse")
    dirs = {}
    for parts in (1, 2):
        dirs[parts] = str(base / f"parts-{parts}")
        partition_graph(graph, parts, dirs[parts], progress=False)
    return dirs


@pytest.mark.timeout(300)
@pytest.mark.parametrize("nproc", [1, 2])
def test_steady_epochs_fault_in_almost_nothing(graph_dirs, nproc, tmp_path):
    metrics = tmp_path / "m.jsonl"
    cmd = [
        sys.executable, "-m", "distgnn", "train", "--partitions", graph_dirs[nproc], "--model", "gcn",
        "--layers", "3", "--hidden", "128", "--epochs", "4", "--eval-every", "4", "--kernel", "cpu",
        "--no-progress", "--metrics-out", str(metrics),
    ]  # fmt: skip
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    env = os.environ | {"THP_MEM_ALLOC_ENABLE": "0", "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=240)
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    faults = [r["minor_faults"] / nproc for r in records]
    assert max(faults[2:]) < STEADY_LIMIT, f"pages faulted in per rank and epoch: {faults}"
