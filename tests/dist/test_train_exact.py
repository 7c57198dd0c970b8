"""Graph-parallel training is exact: 2, 3 and 4 ranks reproduce single-process training, with dropout.

Dropout masks are keyed by (seed, epoch, site, original node id), so every rank draws, for its rows, the
masks one process draws; with no staleness every rank computes the same full-graph loss and gradient as
one process (only float summation order differs): per-epoch losses and the parameters after 5 epochs
agree to 1e-5 relative, with dropout 0.5, on the plain-torch kernels and on the C++ ``cpu`` kernels
(the default ``auto`` choice on CPU). The same runs check, end to end through the loop, that the
measured halo bytes per epoch equal the analytic volume from the partition.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import run_ranks
from train_workers import params_rel_error, train_many

from distgnn.comm.layout import ProcessLayout
from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import load_meta, partition_graph

IN_DIM, CLASSES, EPOCHS = 24, 4, 5
BASE = dict(epochs=EPOCHS, dropout=0.5, lr=0.01, weight_decay=5e-4, seed=3, kernel="reference")
# (overrides, exchanged width per layer, whether layer 0 exchanges raw features (no backward exchange)).
# in_dim 24 > hidden 8: GCN/SAGE transform before aggregating; hidden 32 > 24: they aggregate raw features.
CASES = [
    (dict(model="gcn", hidden=8), [8, CLASSES], False),
    (dict(model="gcn", hidden=32, layers=3), [IN_DIM, 32, CLASSES], True),
    (dict(model="sage", hidden=8), [8, CLASSES], False),
    (dict(model="sage", hidden=32), [IN_DIM, CLASSES], True),
    # GAT: rows + a_src per head; attention dropout on
    (dict(model="gat", hidden=4, heads=2, attention_dropout=0.5), [2 * 4 + 2, 1 * CLASSES + 1], False),
    (dict(model="deepgcn", hidden=8, layers=4), [8, 8, 8, 8], False),
    (dict(model="gcn", hidden=8, overlap=False), [8, CLASSES], False),
]
# Every case on the plain-torch kernels, then on the C++ kernels. Evaluated at the last epoch only (fewer
# collectives); losses are compared at every epoch.
KERNEL_CASES = [(c | dict(kernel=k), w, r) for k in ("reference", "cpu") for c, w, r in CASES]
CONFIGS = [BASE | c | dict(eval_every=EPOCHS) for c, _, _ in KERNEL_CASES]
BF16 = BASE | dict(
    model="gcn", hidden=8, comm_dtype="bf16", eval_every=EPOCHS
)  # approximate: checked for volume only


@pytest.fixture(scope="module")
def partitions(tmp_path_factory):
    graph = synthetic_graph(
        num_nodes=240,
        num_edges=1600,
        num_features=IN_DIM,
        num_classes=CLASSES,
        num_train_per_class=15,
        seed=7,
    )
    root = tmp_path_factory.mktemp("exact")
    dirs = {}
    for p in (1, 2, 3, 4):
        dirs[p] = str(root / f"parts-{p}")
        partition_graph(graph, p, dirs[p], method="metis", progress=False)
    return dirs


@pytest.fixture(scope="module")
def reference(partitions):
    """Single-process results (world size 1, in this process, one thread like the ranks)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_many(ProcessLayout.single("cpu"), partitions[1], CONFIGS)
    finally:
        torch.set_num_threads(threads)


def _accs(history):
    """Accuracies of the evaluated epochs (here only the last)."""
    accs = [
        (r["epoch"], r["train_acc"], r["val_acc"], r["test_acc"])
        for r in history
        if r["val_acc"] == r["val_acc"]
    ]
    assert [a[0] for a in accs] == [EPOCHS]
    return accs


@pytest.mark.timeout(240)
@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_multi_rank_training_equals_single_process(partitions, reference, world_size):
    results = run_ranks(train_many, world_size, partitions[world_size], CONFIGS + [BF16], timeout=200)
    rank0 = results[0]
    total_halo = sum(s["n_halo"] for s in load_meta(partitions[world_size])["part_sizes"])
    assert total_halo > 0
    assert sum(r[0]["n_halo"] for r in results) == total_halo

    for i, ((cfg, widths, raw_first), ref) in enumerate(zip(KERNEL_CASES, reference, strict=True)):
        got = rank0[i]
        name = f"{cfg} on {world_size} ranks"
        np.testing.assert_allclose(
            [r["loss"] for r in got["history"]], [r["loss"] for r in ref["history"]], rtol=1e-5, err_msg=name
        )
        assert params_rel_error(got["params"], ref["params"]) <= 1e-5, name
        assert _accs(got["history"]) == _accs(ref["history"]), name
        for other in results[1:]:  # accuracies come from all-reduced counts: every rank sees the same
            assert _accs(other[i]["history"]) == _accs(got["history"]), name

        # Exact volume: forward rows of every layer, plus backward gradients of every layer whose input
        # requires grad (not raw features), 4 bytes per float32, over all halo rows of all parts.
        assert got["widths"] == widths, name
        directions = [1 if (layer == 0 and raw_first) else 2 for layer in range(len(widths))]
        expected = total_halo * 4 * sum(w * d for w, d in zip(widths, directions, strict=True))
        assert [r["comm_bytes"] for r in got["history"]] == [expected] * EPOCHS, name
        assert [r["comm_bytes"] for r in ref["history"]] == [0] * EPOCHS  # one process sends nothing

    bf16 = rank0[-1]["history"]
    assert [r["comm_bytes"] for r in bf16] == [total_halo * 2 * 2 * (8 + CLASSES)] * EPOCHS
