"""SIGINT/SIGTERM on ``distgnn train --nproc 2``: every rank stops after the same epoch, one line, exit
130/143, no traceback; with --checkpoint-on-exit no finished epoch is lost and --resume ends bit-exact."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import restart_helpers as h

from distgnn import checkpoint as ckpt


def stopped_at(tmp_path, proc, code: int) -> tuple[int, str]:
    """The epoch the job stopped after (from its metrics file) and its one ``interrupted`` line."""
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if "interrupted" in ln]
    assert len(lines) == 1, proc.stderr[-3000:]  # rank 0 only
    done = [r["epoch"] for r in h.metrics(tmp_path / "m.jsonl")]
    assert done == list(range(1, len(done) + 1)) and 3 <= len(done) < h.EPOCHS  # signalled in epoch 3
    return len(done), lines[0]


@pytest.mark.timeout(300)
def test_sigterm_with_checkpoint_on_exit_then_resume_is_exact(tmp_path, shared_tmp):
    # A Slurm-style preemption: SIGTERM to the launcher mid-epoch 3, which forwards it to the workers.
    parts = h.tiny_parts(str(tmp_path.parent), 2)
    args = h.train_args(parts, "graph", tmp_path / "ckpt", tmp_path / "m.jsonl")
    proc = h.run(h.distgnn(*args, "--nproc", "2", "--checkpoint-on-exit"), h.env("sigterm-launcher:0:2"))
    n, line = stopped_at(tmp_path, proc, 143)
    path = ckpt.epoch_dir(tmp_path / "ckpt", n)
    assert line == f"distgnn train: interrupted at epoch {n}; last checkpoint: {path}"
    assert ckpt.latest(tmp_path / "ckpt") == (n, 2)  # the finished epoch was saved, as a complete set
    resumed = h.run(h.distgnn(*args, "--nproc", "2", "--resume"), h.env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    params, records = h.reference("graph", shared_tmp)
    h.assert_bitwise_equal(h.final_tensors(tmp_path / "ckpt", 2), params)
    assert [r["loss"] for r in h.metrics(tmp_path / "m.jsonl")] == [r["loss"] for r in records]


@pytest.mark.timeout(300)
def test_sigint_stops_at_the_epoch_boundary_without_a_traceback(tmp_path):
    # Ctrl-C: without --checkpoint-on-exit the last checkpoint is the last scheduled one (every 2 epochs).
    parts = h.tiny_parts(str(tmp_path.parent), 2)
    args = h.train_args(parts, "graph", tmp_path / "ckpt", tmp_path / "m.jsonl")
    proc = h.run(h.distgnn(*args, "--nproc", "2"), h.env("sigint-launcher:1:2"))
    n, line = stopped_at(tmp_path, proc, 130)
    last = n - n % 2
    path = ckpt.epoch_dir(tmp_path / "ckpt", last)
    assert line == f"distgnn train: interrupted at epoch {n}; last checkpoint: {path}"
    assert ckpt.latest(tmp_path / "ckpt") == (last, 2)


def test_checkpoint_on_exit_needs_a_checkpoint_dir(run_cli):
    code, _, err = run_cli(["train", "--checkpoint-on-exit", "--no-progress"])
    assert (code, err) == (2, "distgnn train: error: --checkpoint-on-exit needs --checkpoint-dir\n")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(300)
def test_sigterm_under_two_torchrun_agents(tmp_path):
    # Two torchrun agents on 127.0.0.1 (one worker each); rank 0's agent gets SIGTERM mid-epoch 3. Rank 1's
    # agent gets nothing: its worker stops after the same epoch because the ranks agree in the metrics
    # all-reduce. The workers print one line and no traceback; torchrun's own report is torchrun's.
    parts = h.tiny_parts(str(tmp_path.parent), 2)
    args = h.train_args(parts, "graph", tmp_path / "ckpt", tmp_path / "m.jsonl")
    port = free_port()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
    torchrun += ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", f"t{port}"]
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
