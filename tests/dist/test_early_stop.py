"""``--patience K``: training stops once the best validation accuracy (or, with ``--best-by val_loss``,
the lowest validation loss) is K epochs old, on every rank after the same epoch (the decision is taken on
the reduced records), with the same history as a run without it up to there; a checkpoint set is written
at the stop epoch. The validation loss two ranks report is the one process's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import run_ranks
from train_workers import train_many

from distgnn.checkpoint import files as ckpt
from distgnn.comm.layout import ProcessLayout
from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import partition_graph

BASE = dict(model="gcn", hidden=8, epochs=60, dropout=0.5, lr=0.05, seed=3, kernel="cpu")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    graph = synthetic_graph(
        num_nodes=160, num_edges=1000, num_features=12, num_classes=4, feature_noise=8.0, seed=2
    )
    root = tmp_path_factory.mktemp("early")
    out = {p: str(root / f"p{p}") for p in (1, 2)}
    for p, d in out.items():
        partition_graph(graph, p, d, progress=False)
    return out


def _stop_epoch(history: list[dict], patience: int, best_by: str = "val_acc") -> int:
    """Where --patience must stop a run with this history: the first evaluated epoch whose last
    improvement is ``patience`` epochs old (val_acc_and_loss: matching the best accuracy or the best loss
    so far is an improvement, as in the GAT paper's code)."""
    top, low, best_epoch = -math.inf, math.inf, 0
    for r in history:
        acc, loss = r["val_acc"], r["val_loss"]
        if math.isnan(acc):
            continue
        better = {"val_acc": acc > top, "val_loss": loss < low}.get(best_by, acc >= top or loss <= low)
        top, low = max(top, acc), min(low, loss)
        if better:
            best_epoch = r["epoch"]
        if r["epoch"] - best_epoch >= patience:
            return r["epoch"]
    return history[-1]["epoch"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "eval_every,best_by", [(1, "val_acc"), (3, "val_acc"), (1, "val_loss"), (1, "val_acc_and_loss")]
)
def test_patience_stops_where_the_full_history_says_on_every_rank(dirs, tmp_path, eval_every, best_by):
    torch.set_num_threads(1)
    patience = 6
    base = BASE | dict(eval_every=eval_every, best_by=best_by)
    full, early = train_many(ProcessLayout.single("cpu"), dirs[1], [base, base | dict(patience=patience)])
    stop = _stop_epoch(full["history"], patience, best_by)
    assert stop < BASE["epochs"]  # the test graph does stop early
    assert [r["epoch"] for r in early["history"]] == list(range(1, stop + 1))
    np.testing.assert_array_equal(
        [r["loss"] for r in early["history"]], [r["loss"] for r in full["history"]][:stop]
    )
    # two ranks stop after the same epoch as one process, and leave a checkpoint there
    cfg = base | dict(patience=patience, checkpoint_dir=str(tmp_path / "c"), checkpoint_every=50)
    ranks = run_ranks(train_many, 2, dirs[2], [cfg], timeout=240)
    assert all(len(r[0]["history"]) == stop for r in ranks)
    for r in ranks:  # the reduced validation loss is the whole graph's
        got = [h["val_loss"] for h in r[0]["history"] if not math.isnan(h["val_acc"])]
        want = [h["val_loss"] for h in early["history"] if not math.isnan(h["val_acc"])]
        np.testing.assert_allclose(got, want, rtol=1e-5)
    assert ckpt.latest(tmp_path / "c") == (stop, 2)
