"""Checkpoints: a run stopped half-way and resumed ends exactly where an uninterrupted run does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import run_ranks
from train_workers import checkpoint_scenario

from distgnn import checkpoint as ckpt
from distgnn.data.synthetic import synthetic_graph
from distgnn.errors import DistGNNError
from distgnn.metrics import EPOCH_KEYS
from distgnn.partitioning import partition_graph

# Dropout (RNG state) and staleness 1 (stale halo buffers) are both state a resume must restore.
BASE = dict(
    model="gcn",
    hidden=8,
    epochs=6,
    dropout=0.5,
    halo_staleness=1,
    seed=11,
    kernel="reference",
    progress=False,
)


@pytest.fixture(scope="module")
def part_dir(tmp_path_factory):
    graph = synthetic_graph(num_nodes=200, num_edges=1200, num_features=12, num_classes=3, seed=2)
    out = tmp_path_factory.mktemp("ckpt") / "parts"
    partition_graph(graph, 2, out, progress=False)
    return str(out)


@pytest.mark.timeout(180)
def test_resume_reproduces_uninterrupted_run(part_dir, tmp_path):
    res = run_ranks(checkpoint_scenario, 2, part_dir, str(tmp_path), BASE, timeout=150)
    full, first, resumed = res[0]["full"], res[0]["first"], res[0]["resumed"]
    assert len(first["history"]) == 3
    assert [r["epoch"] for r in resumed["history"]] == [1, 2, 3, 4, 5, 6]
    # epochs 1-3 were restored from the checkpoint, not re-run (their measured times are the same floats)
    assert [r["epoch_s"] for r in resumed["history"][:3]] == [r["epoch_s"] for r in first["history"]]
    assert resumed["history"][3]["epoch_s"] != full["history"][3]["epoch_s"]
    # bitwise: same process, same ops, state fully restored
    assert [r["loss"] for r in resumed["history"]] == [r["loss"] for r in full["history"]]
    for k, v in full["params"].items():
        np.testing.assert_array_equal(resumed["params"][k], v, err_msg=k)
    assert resumed["summary"]["final_test_acc"] == full["summary"]["final_test_acc"]
    # rank 1 ended with the same parameters as well (its own checkpoint file was restored)
    assert [r["loss"] for r in res[1]["resumed"]["history"]] == [r["loss"] for r in full["history"]]

    # the metrics file: one line per epoch 1..6, the resumed run continued the interrupted one
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(set(EPOCH_KEYS) <= set(r) for r in records)
    assert [r["loss"] for r in records] == [r["loss"] for r in full["history"]]
    assert all(r["comm_bytes"] > 0 for r in records)

    # checkpoint files: the newest two epochs, one file per rank, loadable with weights_only=True
    root = tmp_path / "ckpt"
    assert ckpt.latest(root) == (6, 2)
    assert sorted(p.name for p in root.iterdir()) == ["epoch-000003", "epoch-000006", "latest.json"]
    state = torch.load(ckpt.rank_file(root, 6, 1), weights_only=True)
    assert state["epoch"] == 6 and state["rank"] == 1 and state["world_size"] == 2
    assert set(state["strategy"]["stale"]["rows"]) == {0, 1}  # one stale buffer per layer


def test_commit_refuses_an_incomplete_set(tmp_path):
    ckpt.save_rank_state(tmp_path, 4, 0, {"epoch": 4})
    with pytest.raises(DistGNNError, match=r"checkpoint for epoch 4 is missing rank files \[1\]"):
        ckpt.commit(tmp_path, 4, 2)
    assert ckpt.latest(tmp_path) is None


def test_unreadable_checkpoint_is_one_clear_error(tmp_path):
    path = ckpt.rank_file(tmp_path, 2, 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DistGNNError, match=r"^cannot load checkpoint .*rank-00000\.pt: "):
        ckpt.load_rank_state(tmp_path, 2, 0)
    (tmp_path / "latest.json").write_text("{")
    with pytest.raises(DistGNNError, match="checkpoint pointer .* is unreadable"):
        ckpt.latest(tmp_path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def boom(tmp):
        open(tmp, "w").write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ckpt.atomic_write_bytes(tmp_path / "x.pt", boom)
    assert list(tmp_path.iterdir()) == []
