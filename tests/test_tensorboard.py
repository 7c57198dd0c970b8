"""`distgnn train --tensorboard DIR`: rank 0 writes the --metrics-out records as TensorBoard scalars."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import partition_graph

REPO = Path(__file__).resolve().parent.parent
MISSING = "--tensorboard needs the tensorboard package: pip install 'distgnn[tensorboard]'"
FAST = ["--kernel", "reference", "--no-progress"]
# The tag each --metrics-out key becomes (docs/training.md).
TAGS = {
    "loss": "loss/train",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "test_acc": "accuracy/test",
    "val_loss": "loss/val",
    "epoch_s": "time/epoch_s",
    "compute_s": "time/compute_s",
    "comm_s": "comm/time_s",
    "exposed_comm_s": "comm/exposed_s",
    "comm_bytes": "comm/bytes",
}

pytestmark = pytest.mark.usefixtures("one_thread")
# The optional dependency (in the dev extra, so CI has it); the missing-package test runs without it.
needs_tensorboard = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="needs the tensorboard package"
)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    graph = synthetic_graph(num_nodes=150, num_edges=900, num_features=10, num_classes=3, seed=4)
    root = tmp_path_factory.mktemp("tb")
    out = {}
    for p in (1, 2):
        out[p] = str(root / f"p{p}")
        partition_graph(graph, p, out[p], progress=False)
    return out


@pytest.fixture
def no_launcher_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)


def event_files(log_dir: Path) -> list[Path]:
    return sorted(p for p in log_dir.rglob("*") if p.is_file() and "tfevents" in p.name)


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} as TensorBoard's own reader sees the directory."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def expected(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """The JSON lines as TensorBoard stores them: float32 values, absent (null) values left out."""
    return {
        tag: [(r["epoch"], float(np.float32(r[key]))) for r in records if r[key] is not None]
        for key, tag in TAGS.items()
    }


def check_same_as_metrics(log_dir: Path, metrics: Path, epochs: int) -> dict[str, list[tuple[int, float]]]:
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    got = scalars(log_dir)
    assert set(got) == set(TAGS.values())
    assert got == expected(records)
    for tag in ("loss/train", "time/epoch_s", "comm/bytes", "comm/exposed_s", "comm/time_s"):
        assert [step for step, _ in got[tag]] == list(range(1, epochs + 1))
    return got


@needs_tensorboard
@pytest.mark.parametrize("eval_every", [1, 2])
def test_one_process_scalars_equal_the_metrics_lines(run_cli, parts, tmp_path, no_launcher_env, eval_every):
    tb, metrics = tmp_path / "tb" / "run", tmp_path / "m.jsonl"
    code, _, err = run_cli(
        ["train", "--partitions", parts[1], "--epochs", "3", "--eval-every", str(eval_every),
         "--metrics-out", str(metrics), "--tensorboard", str(tb), *FAST]
    )  # fmt: skip
    assert code == 0, err
    got = check_same_as_metrics(tb, metrics, 3)
    evaluated = [1, 2, 3] if eval_every == 1 else [2, 3]  # the last epoch is always evaluated
    for tag in ("accuracy/train", "accuracy/val", "accuracy/test"):
        assert [step for step, _ in got[tag]] == evaluated
    assert len(event_files(tb)) == 1


@needs_tensorboard
@pytest.mark.timeout(120)
def test_two_processes_only_rank0_writes(parts, tmp_path):
    tb, metrics = tmp_path / "tb", tmp_path / "m.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "distgnn", "train", "--partitions", parts[2], "--nproc", "2", "--epochs", "3",
         "--metrics-out", str(metrics), "--tensorboard", str(tb), *FAST],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = check_same_as_metrics(tb, metrics, 3)
    assert all(value > 0 for _, value in got["comm/bytes"])  # the two ranks really exchanged halos
    files = event_files(tb)
    assert len(files) == 1 and files[0].parent == tb  # one writer (rank 0), in DIR itself
    assert [p.name for p in tb.iterdir()] == [files[0].name]


@needs_tensorboard
def test_a_resume_shows_the_rewritten_epochs(tmp_path):
    """The writer a resume opens (``keep_through``) hides the epochs after the checkpoint from the first
    run: TensorBoard shows each epoch once, with the newest value."""
    from distgnn.metrics import TensorBoardWriter

    def record(epoch: int, loss: float) -> dict:
        return {"epoch": epoch, "loss": loss, "train_acc": None, "val_acc": float("nan")}

    first = TensorBoardWriter(tmp_path)
    for epoch in (1, 2, 3):
        first.write(record(epoch, 10.0 + epoch))
    first.close()
    time.sleep(1.1)  # event files are named (and read) by their creation second, as a restart's would be
    resumed = TensorBoardWriter(tmp_path, keep_through=1)
    for epoch in (2, 3, 4):
        resumed.write(record(epoch, 20.0 + epoch))
    resumed.close()
    assert scalars(tmp_path) == {"loss/train": [(1, 11.0), (2, 22.0), (3, 23.0), (4, 24.0)]}


def test_missing_tensorboard_is_one_line_before_training(
    run_cli, parts, tmp_path, no_launcher_env, monkeypatch
):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now raises ImportError
    tb, metrics = tmp_path / "tb", tmp_path / "m.jsonl"
    code, _, err = run_cli(
        ["train", "--partitions", parts[1], "--epochs", "2", "--metrics-out", str(metrics),
         "--tensorboard", str(tb), *FAST]
    )  # fmt: skip
    assert code == 2
    assert err == f"distgnn train: error: {MISSING}\n"
    assert not tb.exists() and not metrics.exists()  # stopped before training wrote anything
