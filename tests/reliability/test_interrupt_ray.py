"""SIGTERM under ``launch/ray_train.py`` (2 Ray Train workers) behaves as under ``--nproc`` and torchrun
(test_interrupt.py, test_interrupt_torchrun.py): every rank stops after the same epoch, the finished epoch
is checkpointed (--checkpoint-on-exit), one ``interrupted`` line, exit 143, and --resume ends bit-exact.
Signalled: the driver (a user's or a scheduler's stop) or one worker process (a preemption)."""

from __future__ import annotations

import pytest
import restart_helpers as h
from ray_helpers import driver_lines, needs_ray, ray_job, worker_lines

from distgnn.checkpoint import files as ckpt

pytestmark = [needs_ray, pytest.mark.slow]  # a local Ray instance per test: scheduled first


def stopped_at(tmp_path, proc, code: int) -> tuple[int, str]:
    """The epoch the job stopped after (from its metrics file) and its one ``interrupted`` line."""
    assert proc.returncode == code, proc.stderr[-3000:]
    # no worker traceback (Ray's own actors may log some of theirs: a control call timed out on a busy CPU)
    said = "\n".join(worker_lines(proc.stderr))
    assert "Traceback" not in said and "Error" not in said, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if "interrupted" in ln]
    assert len(lines) == 1 and lines == [ln for ln in driver_lines(proc.stderr) if "interrupted" in ln]
    done = [r["epoch"] for r in h.metrics(tmp_path / "m.jsonl")]
    assert done == list(range(1, len(done) + 1)) and 3 <= len(done) < h.EPOCHS  # signalled in epoch 3
    return len(done), lines[0]


@pytest.mark.timeout(420)
def test_sigterm_to_the_driver_checkpoints_every_rank_then_resume_is_exact(tmp_path, shared_tmp):
    # Rank 0 sends SIGTERM to the driver (`python launch/ray_train.py`) mid-epoch 3; the driver relays it
    # to both workers, which stop after that epoch and save it. The resumed run (--nproc: the checkpoint
    # is the launcher's own format) ends bit-exact with the uninterrupted one.
    parts = h.tiny_parts(str(tmp_path.parent), 2)
    args = h.train_args(parts, "graph", tmp_path / "ckpt", tmp_path / "m.jsonl")
    proc = ray_job([*args, "--checkpoint-on-exit"], h.env("sigterm-launcher:0:2"), tmp_path)
    n, line = stopped_at(tmp_path, proc, 143)
    path = ckpt.epoch_dir(tmp_path / "ckpt", n)
    assert line == f"distgnn train: interrupted at epoch {n}; last checkpoint: {path}"
    assert ckpt.latest(tmp_path / "ckpt") == (n, 2)
    resumed = h.run(h.distgnn(*args, "--nproc", "2", "--resume"), h.env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    params, records = h.reference("graph", shared_tmp)
    h.assert_bitwise_equal(h.final_tensors(tmp_path / "ckpt", 2), params)
    assert [r["loss"] for r in h.metrics(tmp_path / "m.jsonl")] == [r["loss"] for r in records]


@pytest.mark.timeout(420)
def test_sigterm_to_one_worker_process_checkpoints_every_rank(tmp_path):
    # A preemption: SIGTERM to rank 1's process (a Ray Train worker actor) mid-epoch 3. Ray's own handler
    # would end the actor at once; the worker records it instead, both ranks agree to stop after that
    # epoch, save it, and the driver exits 143 with rank 0's line.
    parts = h.tiny_parts(str(tmp_path.parent), 2)
    args = h.train_args(parts, "graph", tmp_path / "ckpt", tmp_path / "m.jsonl")
    proc = ray_job([*args, "--checkpoint-on-exit"], h.env("sigterm-self:1:2"), tmp_path)
    n, line = stopped_at(tmp_path, proc, 143)
    path = ckpt.epoch_dir(tmp_path / "ckpt", n)
    assert line == f"distgnn train: interrupted at epoch {n}; last checkpoint: {path}"
    assert ckpt.latest(tmp_path / "ckpt") == (n, 2)
