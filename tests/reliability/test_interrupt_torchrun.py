"""SIGTERM to one of two torchrun agents: both workers stop after the same epoch, one line, no traceback,
the finished epoch checkpointed (--checkpoint-on-exit)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import restart_helpers as h

from distgnn.checkpoint import files as ckpt

pytestmark = pytest.mark.slow  # two torchrun agents: scheduled first (tests/conftest.py)


@pytest.mark.timeout(300)
def test_sigterm_under_two_torchrun_agents(tmp_path, rdzv_endpoint):
    # Two torchrun agents on 127.0.0.1 (one worker each); rank 0's agent gets SIGTERM mid-epoch 3. Rank 1's
    # agent gets nothing: its worker stops after the same epoch because the ranks agree in the metrics
    # all-reduce. The workers print one line and no traceback; torchrun's own report is torchrun's.
    parts = h.tiny_parts(str(tmp_path.parent), 2)
    args = h.train_args(parts, "graph", tmp_path / "ckpt", tmp_path / "m.jsonl")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
    torchrun += ["--rdzv_backend", "c10d", "--rdzv_endpoint", rdzv_endpoint, "--rdzv_id", "t"]
    environ = h.env("sigterm-launcher:0:2")
    agents = [
        subprocess.Popen(
            [*torchrun, "-m", "distgnn", "train", *args, "--checkpoint-on-exit"],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    errs = []
    for agent in agents:
        try:
            errs.append(agent.communicate(timeout=240)[1])
        except subprocess.TimeoutExpired:
            for a in agents:
                a.kill()
            raise
    assert all(a.returncode != 0 for a in agents)
    both = "".join(errs)
    assert "[rank" not in both, both[-3000:]  # no worker traceback (torch prefixes those with [rankN])
    lines = [ln for ln in both.splitlines() if ln.startswith("distgnn train: interrupted")]
    n = len(h.metrics(tmp_path / "m.jsonl"))
    assert 3 <= n < h.EPOCHS
    path = ckpt.epoch_dir(tmp_path / "ckpt", n)
    assert lines == [f"distgnn train: interrupted at epoch {n}; last checkpoint: {path}"]
    assert ckpt.latest(tmp_path / "ckpt") == (n, 2)
