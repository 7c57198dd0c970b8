"""Host syncs per training step, counted on CPU so that a regression shows before a GPU run.

One step of a 2-rank graph-parallel run (GCN with dropout, overlapped halo exchange, C++ kernels) with the
host reads instrumented (see sync_audit.py): after the first step (which builds caches: inner/boundary
CSRs, transposed CSRs), a training step makes ``HOST_SYNCS_PER_STEP`` (0) host syncs, an evaluation
epoch too, and the batched metrics reduction exactly the reads ``HOST_READS_PER_REDUCTION`` names.
"""

from __future__ import annotations

import pytest
from helpers import run_ranks

from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import partition_graph


def audit_worker(layout, part_dir: str, overrides: dict) -> dict:
    import torch
    from sync_audit import SyncAudit

    from distgnn.config import TrainConfig
    from distgnn.parallel.build import build_strategy
    from distgnn.train import Trainer

    torch.set_num_threads(1)
    cfg = TrainConfig.from_flat(progress=False, **overrides)
    trainer = Trainer(cfg, build_strategy(cfg, part_dir, layout))
    rows = [trainer.local_epoch(0)]  # builds the caches
    with SyncAudit().active() as step:
        rows.append(trainer.local_epoch(1))
    with SyncAudit().active() as evaluated:  # epoch 3 of 3: evaluated
        rows.append(trainer.local_epoch(2))
    with SyncAudit().active() as reduction:
        records = trainer.reduce_epochs(0, rows)
    return {
        "step": step.syncs,
        "eval": evaluated.syncs,
        "reduction": reduction.syncs,
        "host_resident": len(step.calls) - len(step.syncs),
        "records": records,
    }


@pytest.fixture(scope="module")
def part_dir(tmp_path_factory):
    graph = synthetic_graph(
        num_nodes=120, num_edges=600, num_features=8, num_classes=3, num_train_per_class=10, seed=1
    )
    path = str(tmp_path_factory.mktemp("audit") / "parts")
    partition_graph(graph, 2, path, method="metis", progress=False)
    return path


@pytest.mark.timeout(120)
@pytest.mark.parametrize("model", ["gcn", "gat"])
def test_training_step_makes_the_documented_number_of_host_syncs(part_dir, model):
    from distgnn.train import HOST_READS_PER_REDUCTION, HOST_SYNCS_PER_STEP

    overrides = dict(model=model, hidden=8, heads=2, dropout=0.5, epochs=3, eval_every=3, kernel="cpu")
    results = run_ranks(audit_worker, 2, part_dir, overrides, timeout=100)
    for rank, r in enumerate(results):
        assert len(r["step"]) == HOST_SYNCS_PER_STEP, (rank, r["step"])
        assert len(r["eval"]) == HOST_SYNCS_PER_STEP, (rank, r["eval"])
        assert sorted(w for w, _, _ in r["reduction"]) == sorted(HOST_READS_PER_REDUCTION), (
            rank,
            r["reduction"],
        )
        assert r["host_resident"] > 0  # the audit sees reads: the dropout seeds (CPU tensors by design)
        losses = [rec["loss"] for rec in r["records"]]
        assert all(loss > 0 for loss in losses) and r["records"][2]["val_acc"] >= 0.0
    same = lambda r: [(rec["loss"], rec["comm_bytes"], rec["val_acc"]) for rec in r["records"][2:]]
    assert same(results[0]) == same(results[1])  # reduced: every rank sees the same numbers


def test_the_audit_sees_a_boolean_mask_index_and_a_scalar_read():
    """The audit is not blind: the reads the trainer avoids are counted, inside C++ ops too."""
    import torch
    from sync_audit import SyncAudit

    x, m = torch.randn(6, 2), torch.tensor([True, False, True, False, False, True])
    with SyncAudit().active() as audit:
        y = x[m]  # a nonzero inside the index
        float(y.sum())  # __float__
        bool(m.any())  # __bool__
        x.tolist()
    assert [w for w, _, _ in audit.syncs] == ["aten::index (boolean mask)", "__float__", "__bool__", "tolist"]
    assert torch.Tensor.item is torch._C.TensorBase.item  # restored
