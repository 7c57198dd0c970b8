"""Training on a real GPU: a steady-state step makes no host synchronisation (CUDA's sync debug mode
raises on any), and timing uses CUDA events (epoch time is not the launch time). Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from distgnn.comm.clock import DeviceClock
from distgnn.comm.layout import ProcessLayout
from distgnn.config import TrainConfig
from distgnn.data.synthetic import synthetic_graph
from distgnn.parallel.build import build_strategy
from distgnn.partitioning import partition_graph
from distgnn.train import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("model", ["gcn", "gat", "sage"])
def test_a_training_step_on_cuda_never_waits_for_the_device(tmp_path, model):
    graph = synthetic_graph(num_nodes=2000, num_edges=20000, num_features=32, num_classes=5, seed=1)
    partition_graph(graph, 1, str(tmp_path / "p"), progress=False)
    cfg = TrainConfig.from_flat(
        progress=False, model=model, hidden=16, heads=2, dropout=0.5, epochs=4, eval_every=2
    )
    trainer = Trainer(cfg, build_strategy(cfg, str(tmp_path / "p"), ProcessLayout.single("cuda")))
    assert isinstance(trainer.clock, DeviceClock)
    rows = [trainer.local_epoch(0), trainer.local_epoch(1)]  # caches, autotuning, one evaluation
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        rows.append(trainer.local_epoch(2))  # a step without evaluation
        rows.append(trainer.local_epoch(3))  # a step with evaluation
    finally:
        torch.cuda.set_sync_debug_mode("default")
    records = trainer.reduce_epochs(0, rows)
    assert all(r["loss"] > 0 and r["epoch_s"] > 0 for r in records)
    assert records[3]["val_acc"] == records[3]["val_acc"]  # evaluated (not NaN)
