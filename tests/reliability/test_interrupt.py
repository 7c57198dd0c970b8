"""SIGINT/SIGTERM on ``distgnn train --nproc 2``: every rank stops after the same epoch, one line, exit
130/143, no traceback; with --checkpoint-on-exit no finished epoch is lost and --resume ends bit-exact."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import pytest
import restart_helpers as h

from distgnn.checkpoint import files as ckpt

pytestmark = pytest.mark.slow  # nproc jobs signalled mid-epoch: scheduled first (tests/conftest.py)


def stopped_at(tmp_path, proc, code: int) -> tuple[int, str]:
    """The epoch the job stopped after (from its metrics file) and its one ``interrupted`` line."""
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if "interrupted" in ln]
    assert len(lines) == 1, proc.stderr[-3000:]  # rank 0 only
    return h.epochs_before_the_signal(tmp_path), lines[0]


def run_as_a_group(cmd: list[str], environ: dict[str, str], ckpt_dir, err_file):
    """Run ``cmd`` in a process group of its own; (its outcome, the newest complete checkpoint when the
    launcher exited). Whatever of the group outlives the launcher is then killed, as Slurm would."""
    with open(err_file, "w+") as err:
        job = subprocess.Popen(
            cmd, env=environ, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
        try:
            code = job.wait(timeout=240)
            saved = ckpt.latest(ckpt_dir)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGKILL)
            job.wait()
        err.seek(0)
        return subprocess.CompletedProcess(cmd, code, "", err.read()), saved


@pytest.mark.timeout(300)
def test_sigterm_with_checkpoint_on_exit_then_resume_is_exact(tmp_path, shared_tmp):
    # A Slurm-style preemption: SIGTERM to every process of the job (the launcher's process group) mid-epoch
    # 3. The workers' forkserver must outlive it: the launcher waits for the workers through it, here
    # while they save the finished epoch. (SIGINT below: to the launcher alone, which forwards it.)
    parts = h.tiny_parts(str(tmp_path.parent), 2)
    args = h.train_args(parts, "graph", tmp_path / "ckpt", tmp_path / "m.jsonl")
    cmd = h.distgnn(*args, "--nproc", "2", "--checkpoint-on-exit")
    proc, saved = run_as_a_group(cmd, h.env("sigterm-group:0:2"), tmp_path / "ckpt", tmp_path / "stderr")
    n, line = stopped_at(tmp_path, proc, 143)
    path = ckpt.epoch_dir(tmp_path / "ckpt", n)
    assert line == f"distgnn train: interrupted at epoch {n}; last checkpoint: {path}"
    # the finished epoch was saved, as a complete set, before the launcher exited (when Slurm ends the job)
    assert saved == (n, 2)
    h.check_resume_is_exact(args, tmp_path, shared_tmp)


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
