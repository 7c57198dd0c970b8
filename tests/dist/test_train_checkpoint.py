"""Checkpoints: a run stopped half-way and resumed ends exactly where an uninterrupted run does."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import cli_rank, run_ranks
from train_workers import checkpoint_scenario, train_once

from distgnn.checkpoint import files as ckpt
from distgnn.comm.layout import ProcessLayout
from distgnn.data.synthetic import synthetic_graph
from distgnn.errors import DistGNNError
from distgnn.metrics import EPOCH_KEYS
from distgnn.partitioning import partition_graph
from distgnn.train import Trainer

# Dropout (mask stream keyed by epoch) and staleness 1 (stale halo buffers) are both state a resume must
# restore; the C++ kernels are the ones users run, and the resume is bitwise on them.
BASE = dict(
    model="gcn",
    hidden=8,
    epochs=6,
    dropout=0.5,
    halo_staleness=1,
    seed=11,
    kernel="cpu",
    progress=False,
)


@pytest.fixture(scope="module")
def part_dir(tmp_path_factory):
    graph = synthetic_graph(num_nodes=200, num_edges=1200, num_features=12, num_classes=3, seed=2)
    out = tmp_path_factory.mktemp("ckpt") / "parts"
    partition_graph(graph, 2, out, progress=False)
    return str(out)


class SimulatedCrash(RuntimeError):
    """Raised on every rank at the start of an epoch to stop a run between two checkpoints."""


@contextlib.contextmanager
def epochs_run(crash_at: int | None = None) -> Iterator[list[int]]:
    """Record the (0-based) epochs this process trains; raise SimulatedCrash when ``crash_at`` starts."""
    seen: list[int] = []
    real = Trainer.local_epoch

    def local_epoch(self, epoch):
        if epoch == crash_at:
            raise SimulatedCrash(f"crash at the start of epoch {epoch + 1}")
        seen.append(epoch)
        return real(self, epoch)

    Trainer.local_epoch = local_epoch
    try:
        yield seen
    finally:
        Trainer.local_epoch = real


def resume_scenarios(layout: ProcessLayout, part_dir: str, root: str, base: dict) -> dict:
    """checkpoint_scenario with the epochs each run trained, plus a run that crashes between checkpoints
    (after epoch 5, checkpoints every 2 epochs) and is resumed from epoch 4."""
    with epochs_run() as trained:
        out = checkpoint_scenario(layout, part_dir, root, base)
    out["trained"] = trained
    common = base | dict(
        checkpoint_dir=f"{root}/crash-ckpt", checkpoint_every=2, metrics_out=f"{root}/crash.jsonl"
    )
    with epochs_run(crash_at=5), contextlib.suppress(SimulatedCrash):
        train_once(layout, part_dir, **common)
    layout.barrier()
    out["after_crash"] = Path(f"{root}/crash.jsonl").read_text() if layout.rank == 0 else None
    out["latest_after_crash"] = ckpt.latest(f"{root}/crash-ckpt")
    with epochs_run() as trained:
        out["crash_resumed"] = train_once(layout, part_dir, **(common | dict(resume=True)))
    out["crash_trained"] = trained
    return out


@pytest.fixture(scope="module")
def scenarios(part_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    return root, run_ranks(resume_scenarios, 2, part_dir, str(root), BASE, timeout=200)


@pytest.mark.timeout(240)
def test_resume_reproduces_uninterrupted_run(scenarios):
    tmp_path, res = scenarios
    full, first, resumed = res[0]["full"], res[0]["first"], res[0]["resumed"]
    assert len(first["history"]) == 3
    assert [r["epoch"] for r in resumed["history"]] == [1, 2, 3, 4, 5, 6]
    # full run, first half, resumed half: epochs 1-3 were restored from the checkpoint, not re-run
    assert res[0]["trained"] == res[1]["trained"] == [0, 1, 2, 3, 4, 5] + [0, 1, 2] + [3, 4, 5]
    assert resumed["history"][:3] == first["history"]
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
    assert sorted(p.name for p in root.iterdir()) == ["epoch-000003", "epoch-000006", "run.json"]
    assert sorted(p.name for p in ckpt.epoch_dir(root, 6).iterdir()) == [
        "manifest.json", "rank-00000.pt", "rank-00001.pt"
    ]  # fmt: skip
    state = torch.load(ckpt.rank_file(root, 6, 1), weights_only=True)
    assert state["epoch"] == 6 and state["rank"] == 1 and state["world_size"] == 2
    assert set(state["strategy"]["stale"]["rows"]) == {0, 1}  # one stale buffer per layer


@pytest.mark.timeout(240)
def test_crash_between_checkpoints_resumes_from_the_last_one(scenarios):
    tmp_path, res = scenarios
    full = res[0]["full"]
    # the crashed run wrote epochs 1-5 to the metrics file; its newest checkpoint is epoch 4
    crashed = [json.loads(line)["epoch"] for line in res[0]["after_crash"].splitlines()]
    assert crashed == [1, 2, 3, 4, 5]
    assert res[0]["latest_after_crash"] == (4, 2)
    # the resume trained epochs 5 and 6 again (0-based 4, 5) on both ranks
    assert res[0]["crash_trained"] == res[1]["crash_trained"] == [4, 5]
    # the metrics file was cut back to epoch 4 before the resumed epochs were appended: one line each
    records = [json.loads(line) for line in (tmp_path / "crash.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in records] == [r["loss"] for r in full["history"]]
    resumed = res[0]["crash_resumed"]
    assert [r["loss"] for r in resumed["history"]] == [r["loss"] for r in full["history"]]
    for k, v in full["params"].items():
        np.testing.assert_array_equal(resumed["params"][k], v, err_msg=k)


@pytest.mark.timeout(240)
def test_resume_with_another_world_size_fails_on_every_rank(scenarios, tmp_path):
    """A checkpoint of 2 processes resumed by 3: one line on every rank, non-zero, nothing written."""
    root, _ = scenarios
    graph = synthetic_graph(num_nodes=200, num_edges=1200, num_features=12, num_classes=3, seed=2)
    parts3 = tmp_path / "p3"
    partition_graph(graph, 3, parts3, progress=False)
    ckpt_dir, metrics = root / "ckpt", tmp_path / "metrics.jsonl"
    metrics.write_text("kept\n")
    before = sorted(p.name for p in ckpt_dir.iterdir())
    args = ["train", "--partitions", str(parts3), "--checkpoint-dir", str(ckpt_dir), "--resume"]
    args += ["--metrics-out", str(metrics), "--no-progress", "--epochs", "6"]
    results = run_ranks(cli_rank, 3, args, init=False, timeout=120)
    line = f"distgnn train: error: checkpoint in {ckpt_dir} was written by 2 processes, this job has 3\n"
    assert results == [(2, line), (2, ""), (2, "")]  # every rank fails; local rank 0 says it once
    assert metrics.read_text() == "kept\n"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == before


def test_manifest_refuses_an_incomplete_set(tmp_path):
    record = ckpt.save_rank_state(tmp_path, 4, 0, {"epoch": 4})
    with pytest.raises(DistGNNError, match=r"checkpoint for epoch 4 is missing rank files \[1\]"):
        ckpt.write_manifest(tmp_path, 4, [record, record], run=None)
    assert ckpt.latest(tmp_path) is None


def test_unreadable_checkpoint_is_one_clear_error(tmp_path):
    path = ckpt.rank_file(tmp_path, 2, 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DistGNNError, match=r"^cannot load checkpoint .*rank-00000\.pt: "):
        ckpt.load_rank_state(tmp_path, 2, 0)
    (path.parent / "manifest.json").write_text("{")
    with pytest.raises(DistGNNError, match="checkpoint manifest .*manifest.json is unreadable"):
        ckpt.read_manifest(tmp_path, 2)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def boom(tmp):
        open(tmp, "w").write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ckpt.atomic_write_bytes(tmp_path / "x.pt", boom)
    assert list(tmp_path.iterdir()) == []
