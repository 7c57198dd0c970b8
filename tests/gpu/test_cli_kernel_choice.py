"""The CLI offers every kernel implementation, ``torch`` (CSR sparse.mm, any device) included."""

from __future__ import annotations

import json

import pytest

from distgnn.config import KERNELS
from distgnn.data.synthetic import synthetic_graph
from distgnn.kernels.select import IMPLS
from distgnn.partitioning import partition_graph


def test_kernel_choices_are_auto_plus_every_implementation():
    assert KERNELS == ("auto", *IMPLS)


@pytest.mark.usefixtures("one_thread")
def test_train_with_kernel_torch(run_cli, tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    graph = synthetic_graph(num_nodes=80, num_edges=400, num_features=6, num_classes=3, seed=2)
    partition_graph(graph, 1, str(tmp_path / "p"), progress=False)
    metrics = tmp_path / "m.jsonl"
    code, _, err = run_cli(
        ["train", "--partitions", str(tmp_path / "p"), "--epochs", "2", "--kernel", "torch", "--no-progress"]
        + ["--metrics-out", str(metrics)]
    )
    assert code == 0, err
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["loss"] > 0 for r in rows)
