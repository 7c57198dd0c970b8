"""``--precision bf16-mixed`` on a real GPU (Triton kernels, CUDA autocast): it trains close to fp32, keeps
float32 parameters and a step still makes no host synchronisation. Skipped without CUDA. The bounds are
looser than the CPU test's (tests/dist/test_precision.py, measured there: first-epoch loss 8.2e-4 relative
at most), as they have not been measured on a GPU."""

from __future__ import annotations

import pytest
import torch

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


@pytest.mark.parametrize("model", ["gcn", "sage", "gat", "deepgcn"])
def test_bf16_mixed_on_cuda(tmp_path, model):
    graph = synthetic_graph(num_nodes=2000, num_edges=20000, num_features=32, num_classes=5, seed=1)
    partition_graph(graph, 1, str(tmp_path / "p"), progress=False)
    first_losses = {}
    for precision in ("fp32", "bf16-mixed"):
        cfg = TrainConfig.from_flat(
            progress=False, model=model, hidden=16, heads=2, layers=2, dropout=0.5, epochs=3, eval_every=3,
            precision=precision,
        )  # fmt: skip
        trainer = Trainer(cfg, build_strategy(cfg, str(tmp_path / "p"), ProcessLayout.single("cuda")))
        rows = [trainer.local_epoch(0), trainer.local_epoch(1)]
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            rows.append(trainer.local_epoch(2))  # a step with evaluation
        finally:
            torch.cuda.set_sync_debug_mode("default")
        records = trainer.reduce_epochs(0, rows)
        first_losses[precision] = records[0]["loss"]
        assert all(
            p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in trainer.model.parameters()
        )
    rel = abs(first_losses["bf16-mixed"] - first_losses["fp32"]) / first_losses["fp32"]
    assert 0 < rel <= 1e-2, first_losses
