"""Numerical guards: a NaN/Inf loss or gradient stops training naming the epoch and rank (default), or
skips that optimiser step (``--on-nonfinite skip-step``). The check rides on the per-epoch metrics
all-reduce: one more float64 column, no extra sync per layer."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from distgnn.config import TrainConfig
from distgnn.errors import AgreedError
from distgnn.parallel.graph import GraphStrategy
from distgnn.runtime.worker import train_partition
from distgnn.train import nonfinite_message

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dist"))
from guard_helpers import tiny_parts  # noqa: E402
from helpers import run_ranks  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["--kernel", "reference", "--no-progress", "--dropout", "0"]


def poisoned(rank: int, epoch: int):
    """GraphStrategy.loss times NaN on ``rank`` at ``epoch`` (0-based): a NaN born on one rank."""
    original = GraphStrategy.loss

    def loss(self, logits, rows=slice(None)):
        value = original(self, logits, rows)
        hit = self.mesh.world.rank == rank and self.prop.seeds.step == epoch
        return value * math.nan if hit else value

    return loss


def train_poisoned(layout, parts: str):
    """One run per --on-nonfinite mode in the same process group (one spawn for both)."""
    GraphStrategy.loss = poisoned(rank=1, epoch=2)
    out = {}
    for mode in ("stop", "skip-step"):
        cfg = TrainConfig.from_flat(epochs=5, dropout=0.0, kernel="reference", progress=False,
                                    on_nonfinite=mode, eval_every=5)  # fmt: skip
        try:
            result, _ = train_partition(cfg, parts, layout)
        except AgreedError as err:
            out[mode] = str(err)
            continue
        finite = all(bool(torch.isfinite(p).all()) for p in result.model.parameters())
        out[mode] = ([r["nonfinite_ranks"] for r in result.history], finite)
    return out


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("nonfinite")
    return {p: tiny_parts(root, p) for p in (1, 2)}


@pytest.mark.timeout(120)
def test_a_nan_born_on_one_rank_stops_every_rank_naming_it_or_is_skipped(parts):
    # The NaN in rank 1's loss reaches rank 0's gradients through the halo exchange in backward; the
    # loss names where it started. The metrics of epochs 1-5 are reduced in one batch (eval_every 5):
    # the first bad epoch is still the one named.
    results = run_ranks(train_poisoned, 2, str(parts[2]), timeout=100)
    stop = (
        "non-finite loss on rank 1 and gradient on ranks 0, 1 at epoch 3; stopping "
        "(--on-nonfinite skip-step would skip such steps)"
    )
    # skip-step: both ranks saw it (gradients), both skipped that step, the parameters stay finite
    assert results == [{"stop": stop, "skip-step": ([0, 0, 2, 0, 0], True)}] * 2


def test_an_exploding_run_stops_with_one_line(run_cli, parts, tmp_path, monkeypatch):
    # A learning rate of 1e30 overflows float32 in the second epoch: no injection, a real blow-up.
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    metrics = tmp_path / "m.jsonl"
    args = ["train", "--partitions", str(parts[1]), "--epochs", "5", "--lr", "1e30", *FAST]
    code, _, err = run_cli([*args, "--metrics-out", str(metrics)])
    assert code == 2
    assert err.splitlines()[-1] == (
        "distgnn train: error: non-finite loss on rank 0 and gradient on rank 0 at epoch 2; stopping "
        "(--on-nonfinite skip-step would skip such steps)"
    )
    assert "Traceback" not in err
    code, _, err = run_cli([*args, "--on-nonfinite", "skip-step", "--metrics-out", str(metrics)])
    assert code == 0, err
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["nonfinite_ranks"] for r in records][0] == 0 and records[-1]["nonfinite_ranks"] == 1
    assert "optimiser step skipped" in err


def test_message_names_each_kind_once():
    both = "non-finite loss on rank 3 and gradient on ranks 0, 3 at epoch 7"
    assert nonfinite_message(7, {0: 2, 3: 3}) == both
    assert nonfinite_message(1, {2: 1}) == "non-finite loss on rank 2 at epoch 1"
