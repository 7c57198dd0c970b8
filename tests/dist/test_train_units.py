"""The training loop on one process: feature normalisation, sparse input, loss definition, summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distgnn.comm.layout import ProcessLayout
from distgnn.comm.mesh import Mesh2D
from distgnn.config import TrainConfig
from distgnn.data.synthetic import synthetic_graph
from distgnn.errors import DistGNNError
from distgnn.metrics import format_summary, summarize
from distgnn.models.inputs import SparseRows
from distgnn.models.registry import build_model
from distgnn.parallel.graph import GraphStrategy
from distgnn.parallel.halo_prop import HaloPropagation
from distgnn.partitioning import load_part, partition_graph
from distgnn.train import NodeData, Trainer, model_input, param_groups, row_normalize

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors (see tests/conftest.py)


def test_row_normalize_sums_to_one_and_keeps_zero_rows():
    x = torch.tensor([[1.0, 3.0], [0.0, 0.0], [2.0, 0.0]])
    torch.testing.assert_close(row_normalize(x), torch.tensor([[0.25, 0.75], [0.0, 0.0], [1.0, 0.0]]))


def test_row_normalize_rejects_negative_features():
    with pytest.raises(DistGNNError, match=r"^--feature-norm row needs non-negative features"):
        row_normalize(torch.tensor([[1.0, -1.0]]))


def test_model_input_is_sparse_only_for_mostly_zero_features():
    dense = torch.ones(10, 10)
    assert model_input(dense) is dense
    sparse = torch.zeros(10, 10)
    sparse[0, 3] = 2.0
    out = model_input(sparse)
    assert isinstance(out, SparseRows) and torch.equal(out.to_dense(), sparse)


@pytest.fixture(scope="module")
def part(tmp_path_factory):
    graph = synthetic_graph(num_nodes=120, num_edges=700, num_features=8, num_classes=3, seed=5)
    out = tmp_path_factory.mktemp("unit") / "p1"
    partition_graph(graph, 1, out, progress=False)
    return load_part(out, 0)


def _trainer(part, **kw):
    layout = ProcessLayout.single("cpu")
    cfg = TrainConfig.from_flat(**({"progress": False, "kernel": "reference"} | kw))
    prop = HaloPropagation(part, layout, kernel_impl="reference")
    data = NodeData.from_part(part, feature_norm=cfg.optim.feature_norm)
    return Trainer(cfg, GraphStrategy(Mesh2D.build(layout), data, prop, seed=cfg.optim.seed))


def test_loss_is_mean_cross_entropy_over_training_nodes(part):
    tr = _trainer(part, dropout=0.0, epochs=1)
    with torch.no_grad():
        logits = tr.model(tr.strategy.x, tr.strategy.prop)
    m = tr.strategy.data.train_mask
    expected = F.cross_entropy(logits[m], tr.strategy.data.y[m]).item()
    assert tr.global_counts == [
        int(part.train_mask.sum()),
        int(part.val_mask.sum()),
        int(part.test_mask.sum()),
    ]
    record = tr.run_epoch(0)
    assert record["loss"] == pytest.approx(expected, rel=1e-6)
    # evaluation after the step: accuracies are fractions of the split sizes
    assert record["test_acc"] * tr.global_counts[2] == pytest.approx(
        round(record["test_acc"] * tr.global_counts[2])
    )


def test_same_seed_same_run_and_eval_every(part):
    a = _trainer(part, epochs=4, seed=1).fit().history
    b = _trainer(part, epochs=4, seed=1, eval_every=3).fit().history
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [math.isnan(r["val_acc"]) for r in b] == [True, True, False, False]  # epoch 3 and the last
    c = _trainer(part, epochs=4, seed=2).fit().history
    assert [r["loss"] for r in c] != [r["loss"] for r in a]


def test_training_learns_the_planted_classes(part):
    """Means over three seeds: one run's numbers move by a test node (1/24) with the dropout masks (seed 0
    gives 0.792 with Philox masks, 0.875 with seeds 1 and 2), and its last training loss is taken with
    dropout on, so the loss is averaged over the last 10 epochs."""
    accs, ratios = [], []
    for seed in (0, 1, 2):
        result = _trainer(part, epochs=60, lr=0.02, seed=seed).fit()
        last = sum(r["loss"] for r in result.history[-10:]) / 10
        ratios.append(last / result.history[0]["loss"])
        accs.append(result.summary["final_test_acc"])
    assert sum(ratios) / 3 < 0.6
    assert sum(accs) / 3 > 0.8


def test_resume_with_other_settings_is_refused(part, tmp_path):
    _trainer(part, epochs=2, checkpoint_dir=str(tmp_path), checkpoint_every=2).fit()
    with pytest.raises(DistGNNError, match="^checkpoint was written with different settings: hidden$"):
        _trainer(part, epochs=4, hidden=32, checkpoint_dir=str(tmp_path), resume=True).fit()


def test_a_checkpoint_without_the_newer_options_resumes_at_their_defaults(part, tmp_path):
    """Checkpoints written before --alpha, --lambda and --conv-weight-decay lack them in their signature:
    they resume when the run uses the defaults, and are refused when it does not."""
    tr = _trainer(part, model="deepgcn", layers=2, epochs=2, checkpoint_dir=str(tmp_path), checkpoint_every=2)
    real = tr.state_dict

    def old_state(epoch):  # what an older version wrote (its records had no validation loss either)
        state = real(epoch)
        for key in ("alpha", "lam", "conv_weight_decay"):
            del state["signature"][key]
        state["history"] = [{k: v for k, v in r.items() if k != "val_loss"} for r in state["history"]]
        return state

    tr.state_dict = old_state
    tr.fit()
    resumed = _trainer(
        part, model="deepgcn", layers=2, epochs=3, checkpoint_dir=str(tmp_path), resume=True, patience=5
    )
    history = resumed.fit().history
    assert [r["epoch"] for r in history] == [1, 2, 3] and resumed.start_epoch == 2
    assert math.isnan(history[0]["val_loss"]) and not math.isnan(history[2]["val_loss"])
    with pytest.raises(DistGNNError, match="^checkpoint was written with different settings: alpha$"):
        _trainer(
            part, model="deepgcn", layers=2, epochs=3, alpha=0.3, checkpoint_dir=str(tmp_path), resume=True
        ).fit()


def test_gcnii_options_change_the_model():
    def out(**kw):
        torch.manual_seed(0)
        m = build_model("deepgcn", 6, 8, 3, layers=4, dropout=0.0, **kw).eval()
        return m, m(torch.ones(5, 6), IdentityProp(5))

    m, base = out()
    assert [c.beta for c in m.convs] == pytest.approx([math.log(0.5 / layer + 1) for layer in (1, 2, 3, 4)])
    m, lam = out(lam=1.5)
    assert [c.beta for c in m.convs] == pytest.approx([math.log(1.5 / layer + 1) for layer in (1, 2, 3, 4)])
    _, alpha = out(alpha=0.5)
    assert not torch.equal(base, lam) and not torch.equal(base, alpha)


@pytest.mark.parametrize("model", ["gcn", "deepgcn"])
def test_conv_weight_decay_is_a_group_of_its_own(model):
    m = build_model(model, 12, 8, 3, layers=3, dropout=0.0)
    groups = param_groups(m, 5e-4, "all", conv_weight_decay=0.01)
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in groups}
    assert by_decay[0.01] == {id(p) for p in m.conv_parameters()}
    if model == "deepgcn":  # GCNII's recipe: 0.01 on the convolutions, 5e-4 on the dense layers
        dense = list(m.lin_in.parameters()) + list(m.lin_out.parameters())
        assert by_decay[5e-4] == {id(p) for p in dense}
    else:  # every GCN parameter is a propagation layer's
        assert by_decay.get(5e-4, set()) == set()
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))


class IdentityProp:
    """Aggregation as the identity: enough to run a model's arithmetic in one process."""

    def __init__(self, rows: int) -> None:
        self.num_nodes = rows

    def mask_key(self, site: int) -> None:
        return None

    def aggregate(self, h, *, key: int, norm: str):
        return h

    def aggregate_linear(self, h, weight, *, key: int, norm: str):
        return h @ weight


def test_summary_and_table():
    t = dict(epoch_s=0.2, exposed_comm_s=0.05, comm_bytes=100)
    hist = [
        dict(epoch=1, loss=1.0, val_acc=0.5, test_acc=0.4, val_loss=0.9)
        | t
        | dict(epoch_s=1.0, exposed_comm_s=0.5),
        dict(epoch=2, loss=0.5, val_acc=0.7, test_acc=0.6, val_loss=0.8) | t,
        dict(epoch=3, loss=0.4, val_acc=0.6, test_acc=0.65, val_loss=0.7) | t,
        dict(epoch=4, loss=0.3, val_acc=0.7, test_acc=0.66, val_loss=0.7) | t,  # ties: the first one wins
    ]
    s = summarize(hist)
    assert (s["best_val_acc"], s["best_val_epoch"], s["test_acc_at_best_val"]) == (0.7, 2, 0.6)
    assert s["final_test_acc"] == 0.66 and s["comm_bytes_per_epoch"] == 100
    assert s["mean_epoch_s"] == pytest.approx(0.2)  # the first epoch is left out
    assert s["comm_share"] == pytest.approx(0.25)
    table = format_summary(s)
    assert "best val (acc)" in table and "70.00%, loss 0.8000 (epoch 2)" in table
    assert "100 B" in table and "25.0%" in table
    s = summarize(hist, "val_loss")  # --best-by val_loss: the lowest validation loss
    assert (s["best_val_loss"], s["best_val_epoch"], s["test_acc_at_best_val"]) == (0.7, 3, 0.65)
    assert "best val (loss)" in format_summary(s) and "60.00%, loss 0.7000 (epoch 3)" in format_summary(s)
    # the GAT paper's rule: the last epoch as good as every earlier one in both (ties count)
    s = summarize(hist, "val_acc_and_loss")
    assert (s["best_val_epoch"], s["test_acc_at_best_val"]) == (4, 0.66)


def test_patience_counts_from_the_last_improvement_of_the_chosen_rule():
    from distgnn.metrics import selection

    rows = [(0.5, 0.9), (0.7, 0.8), (0.6, 0.7), (0.6, 0.75), (0.7, 0.71), (0.65, 0.72)]
    hist = [dict(epoch=i + 1, val_acc=a, val_loss=v) for i, (a, v) in enumerate(rows)]
    hist.insert(2, dict(epoch=0, val_acc=float("nan"), val_loss=float("nan")))  # not evaluated: skipped
    assert [(b["epoch"], i) for b, i in [selection(hist, by) for by in ("val_acc", "val_loss")]] == [
        (2, 2),
        (3, 3),
    ]
    best, improved = selection(hist, "val_acc_and_loss")
    assert (best["epoch"], improved) == (2, 5)  # epoch 5 ties the best accuracy: an improvement, not the best


def test_validation_loss_is_the_mean_over_every_ranks_validation_rows():
    from distgnn.metrics import evaluated_metrics, evaluation_counts

    logits = torch.tensor([[0.0, 2.0], [1.0, 0.0], [3.0, 0.0], [0.5, 0.5]])
    y = torch.tensor([1, 1, 0, -1])
    val = torch.tensor([False, True, True, False])
    masks = [torch.tensor([True, False, False, False]), val, torch.zeros(4, dtype=torch.bool)]
    # two "ranks" holding rows {0, 1} and {2, 3}: their summed counts give the whole graph's numbers
    summed = sum(
        evaluation_counts(logits[r], y[r], [m[r] for m in masks]) for r in (slice(0, 2), slice(2, 4))
    )
    accs, val_loss = evaluated_metrics(summed.tolist())
    want = torch.nn.functional.cross_entropy(logits[val], y[val])
    assert accs[1] == 0.5 and val_loss == pytest.approx(float(want), rel=1e-6)


def test_accuracy_counts_are_exact():
    from distgnn.metrics import accuracies, correct_counts

    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([1, 1, 1])
    masks = [
        torch.tensor([True, True, False]),
        torch.tensor([False, False, True]),
        torch.zeros(3, dtype=torch.bool),
    ]
    counts = correct_counts(logits, y, masks)
    assert counts.tolist() == [1, 2, 1, 1, 0, 0]
    acc = accuracies(counts)
    assert acc[:2] == [0.5, 1.0] and np.isnan(acc[2])


@pytest.mark.parametrize("model", ["gcn", "sage", "gat", "deepgcn"])
def test_weight_decay_scope_first_regularises_only_the_first_layer(model):
    m = build_model(model, 12, 8, 3, layers=3, dropout=0.0, heads=2)
    (everything,) = param_groups(m, 5e-4, "all")
    assert everything["weight_decay"] == 5e-4 and len(everything["params"]) == len(list(m.parameters()))
    first, rest = param_groups(m, 5e-4, "first")
    assert (first["weight_decay"], rest["weight_decay"]) == (5e-4, 0.0)
    assert [id(p) for p in first["params"]] == [id(p) for p in m.first_layer.parameters()]
    assert len(first["params"]) + len(rest["params"]) == len(list(m.parameters())) and rest["params"]
    # Adam with the first-only groups leaves a zero-gradient later parameter where it is
    opt = torch.optim.Adam(param_groups(m, 0.1, "first"), lr=0.01)
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    before = [p.detach().clone() for p in rest["params"]]
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, rest["params"], strict=True))


def test_weight_decay_scope_is_validated():
    with pytest.raises(DistGNNError, match=r"^weight-decay-scope must be one of all, first, got 'last'$"):
        TrainConfig.from_flat(weight_decay_scope="last")
