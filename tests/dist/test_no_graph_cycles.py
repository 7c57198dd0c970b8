"""No training step leaves tensors in reference cycles, whatever the strategy.

A tensor in a cycle (say, an autograd function's ctx holding an object that caches the function's own
output) is freed only by a full collection, which a training process (few Python objects, large
tensors) rarely runs: every epoch's graph and buffers pile up. That happened to the halo rows (2-rank
GAT grew by 55 MB a second). Each strategy here trains two epochs (the second evaluates) with the
collector off, then a collection that keeps what it finds must find no tensor.
"""

from __future__ import annotations

import pytest
from helpers import run_ranks

from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import partition_graph

BASE = dict(hidden=8, heads=2, dropout=0.5, epochs=3, eval_every=3, kernel="cpu", layers=2)
GRAPH_RUNS = {
    "gcn overlapped": dict(model="gcn"),
    "gcn exchange first": dict(model="gcn", overlap=False),
    "gat": dict(model="gat"),
    "sage, stale halos": dict(model="sage", halo_staleness=1),
}
PIPELINE_RUNS = {"pipeline, 2 chunks": dict(model="gcn", strategy="pipeline", stages=2, chunks=2)}
HYBRID_RUNS = {"hybrid, 2 chunks": dict(model="gcn", strategy="hybrid", stages=2, chunks=2)}


def cycles_worker(layout, runs: dict[str, tuple[str, dict]]) -> dict[str, list[str]]:
    """Per run: the tensors (shape, dtype) a collection finds unreachable after two epochs."""
    import gc

    import torch

    from distgnn.config import TrainConfig
    from distgnn.parallel.build import build_strategy
    from distgnn.train import Trainer

    torch.set_num_threads(1)
    found = {}
    for name, (part_dir, overrides) in runs.items():
        cfg = TrainConfig.from_flat(progress=False, **{**BASE, **overrides})
        trainer = Trainer(cfg, build_strategy(cfg, part_dir, layout))
        trainer.local_epoch(0)
        gc.collect()
        gc.disable()
        try:
            trainer.local_epoch(1)
            trainer.local_epoch(2)  # evaluated
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            found[name] = [f"{tuple(o.shape)} {o.dtype}" for o in gc.garbage if isinstance(o, torch.Tensor)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        trainer.strategy.flush()
    return found


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[int, str]:
    graph = synthetic_graph(
        num_nodes=120, num_edges=600, num_features=8, num_classes=3, num_train_per_class=10, seed=2
    )
    root = tmp_path_factory.mktemp("cycles")
    out = {}
    for parts in (1, 2):
        out[parts] = str(root / f"p{parts}")
        partition_graph(graph, parts, out[parts], method="metis", progress=False)
    return out


@pytest.mark.timeout(150)
def test_graph_and_pipeline_steps_leave_no_tensor_cycles(dirs):
    runs = {n: (dirs[2], o) for n, o in GRAPH_RUNS.items()}
    runs |= {n: (dirs[1], o) for n, o in PIPELINE_RUNS.items()}
    for rank, found in enumerate(run_ranks(cycles_worker, 2, runs, timeout=130)):
        assert found == {name: [] for name in runs}, rank


@pytest.mark.timeout(150)
def test_hybrid_steps_leave_no_tensor_cycles(dirs):
    runs = {n: (dirs[2], o) for n, o in HYBRID_RUNS.items()}
    for rank, found in enumerate(run_ranks(cycles_worker, 4, runs, timeout=130)):
        assert found == {name: [] for name in runs}, rank
