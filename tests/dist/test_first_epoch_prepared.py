"""The graph strategy builds before the first epoch what the model's aggregations read (edge subsets,
transposes, row blocks), so the first epoch builds none of it: it runs like the others."""

from __future__ import annotations

import pytest
from helpers import run_ranks

from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import partition_graph


def caches(trainer) -> dict:
    prop = trainer.strategy.prop
    g = prop.graph
    built = {name for name in ("inner", "inner_loops", "boundary", "full_loops") if name in vars(g)}
    return {
        "blocks": {key: id(blocks) for key, blocks in prop.schedule._blocks.items()},
        "boundary_t": id(g.boundary._transposed) if "boundary" in built else None,
        "built": built,
    }


def prepared_worker(layout, part_dir: str) -> dict[str, tuple[dict, dict]]:
    import torch

    from distgnn.config import TrainConfig
    from distgnn.parallel.build import build_strategy
    from distgnn.train import Trainer

    torch.set_num_threads(1)
    out = {}
    for model in ("gcn", "sage"):  # GCN's aggregations add self-loops, SAGE's do not
        cfg = TrainConfig.from_flat(progress=False, model=model, hidden=8, epochs=2, kernel="cpu")
        trainer = Trainer(cfg, build_strategy(cfg, part_dir, layout))
        before = caches(trainer)
        trainer.local_epoch(0)
        out[model] = (before, caches(trainer))
    return out


@pytest.fixture(scope="module")
def part_dir(tmp_path_factory):
    graph = synthetic_graph(num_nodes=120, num_edges=600, num_features=8, num_classes=3, seed=1)
    path = str(tmp_path_factory.mktemp("prepared") / "parts")
    partition_graph(graph, 2, path, progress=False)
    return path


@pytest.mark.timeout(120)
def test_the_first_epoch_builds_no_graph_structure(part_dir):
    for by_model in run_ranks(prepared_worker, 2, part_dir, timeout=100):
        for model, loops in (("gcn", True), ("sage", False)):
            before, after = by_model[model]
            assert set(before["blocks"]) == {(loops, False), (loops, True)}  # inner rows, and transposed
            assert before["boundary_t"] is not None
            # what this model's norm reads (GCN's self-loop CSR is built from the plain one), no more
            needed = {"inner", "inner_loops", "boundary"} if loops else {"inner", "boundary"}
            assert before["built"] == needed
            assert after == before  # the same objects: epoch 1 rebuilt nothing, built nothing new
