"""Faults under ``launch/ray_train.py`` (2 Ray Train workers) behave as under ``--nproc`` and torchrun.

- SIGTERM (test_interrupt.py, test_interrupt_torchrun.py): every rank stops after the same epoch, the
  finished epoch is checkpointed (--checkpoint-on-exit), one ``interrupted`` line, exit 143, and --resume
  ends bit-exact. Signalled: the driver (a user's or a scheduler's stop) or one worker process (a
  preemption).
- A rank stopped (SIGSTOP; test_hangs.py, test_hangs_torchrun.py) is killed by its watchdog once its peers
  have given up on it, named once, and the driver exits non-zero within 60 s naming the dead worker.

Their local Ray instances run one at a time, across the run's xdist workers too (tests/launch/test_ray.py
starts one): several starting at once on two cores time out.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import restart_helpers as h
from guard_helpers import FAST, error_lines, fault_time, job_env, pid_gone, tiny_parts
from ray_helpers import driver_lines, needs_ray, ray_job, worker_lines
from test_hangs import only_the_stop_named

from distgnn.checkpoint import files as ckpt

# A local Ray instance per test, one at a time across the run's workers (conftest.one_ray_at_a_time):
# scheduled first; the timeouts include waiting for another test's instance.
pytestmark = [needs_ray, pytest.mark.slow, pytest.mark.usefixtures("one_ray_at_a_time")]
DIED = (
    "launch/ray_train.py: error: worker rank 1 died (its process was killed or crashed); the other workers "
    "were stopped"
)


def stopped_at(tmp_path, proc, code: int) -> tuple[int, str]:
    """The epoch the job stopped after (from its metrics file) and its one ``interrupted`` line."""
    assert proc.returncode == code, proc.stderr[-3000:]
    # no worker traceback (Ray's own actors may log some of theirs: a control call timed out on a busy CPU)
    said = "\n".join(worker_lines(proc.stderr))
    assert "Traceback" not in said and "Error" not in said, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if "interrupted" in ln]
    assert len(lines) == 1 and lines == [ln for ln in driver_lines(proc.stderr) if "interrupted" in ln]
    return h.epochs_before_the_signal(tmp_path), lines[0]


@pytest.mark.timeout(1200)
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
    h.check_resume_is_exact(args, tmp_path, shared_tmp)


@pytest.mark.timeout(1200)
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


@pytest.mark.timeout(1200)
def test_a_stopped_ray_worker_is_killed_by_its_watchdog_and_named_once(tmp_path):
    # Ray Train sees a stopped actor as running (its health check waits minutes): the watchdog, a child
    # of the worker process as under the other launchers, kills it after --collective-timeout; Ray then
    # sees a dead worker and ends the run.
    parts = tiny_parts(tmp_path)
    log = tmp_path / "fault"
    args = ["--partitions", str(parts), "--epochs", "8", *FAST, "--collective-timeout", "5"]
    pid = None
    try:
        proc = ray_job(args, job_env("1:2:stop", log), tmp_path)
        ended = time.time()
        assert log.exists(), f"rank 1 never reached its fault (exit {proc.returncode}): {proc.stderr[-3000:]}"
        pid, at = fault_time(log)
        print(f"the Ray job ended {ended - at:.1f} s after rank 1 stopped")
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert ended - at < 60
        assert pid_gone(pid)
        assert only_the_stop_named(error_lines("\n".join(worker_lines(proc.stderr)))), proc.stderr[-3000:]
        assert [ln for ln in driver_lines(proc.stderr) if "error:" in ln] == [DIED], proc.stderr[-3000:]
    finally:
        if pid is not None and not pid_gone(pid):
            os.kill(pid, signal.SIGKILL)
