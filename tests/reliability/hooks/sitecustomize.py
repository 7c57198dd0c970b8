"""Test-only fault injection for ``distgnn train`` worker processes (put this directory on PYTHONPATH).

``DISTGNN_TEST_HOOK=ACTION:RANK:EPOCH`` makes worker RANK, on its first attempt only (an elastic restart
runs clean), do ACTION during 0-based epoch EPOCH:

- ``kill``: SIGKILL itself mid-epoch (after forward/backward, before the gradient all-reduce);
- ``kill-in-save``: SIGKILL itself right after writing its checkpoint file of that epoch's end;
- ``sigint-launcher`` / ``sigterm-launcher``: send SIGINT/SIGTERM to its launcher (the elastic agent:
  ``distgnn train --nproc`` or torchrun), as Ctrl-C or a Slurm preemption would, mid-epoch; then
  sleep 3 s, so the forwarded signal reaches every worker before that epoch ends;
- ``sigterm-group``: send SIGTERM to the launcher's whole process group (as Slurm signals every process
  of a job step), then sleep 3 s likewise (run the launcher in a session of its own).
- ``sigterm-self``: send SIGTERM to this worker process itself (as a preemption signals one node's
  workers), then sleep 3 s likewise.

``DISTGNN_TEST_HOOK_LOG=FILE`` gets one line ``rank attempt`` per worker start.

A worker may be a fresh interpreter (torchrun) or forked from ``--nproc``'s forkserver, which loaded this
file once, before any worker existed: so the hook wraps the worker entry's training part
(``distgnn.runtime.worker.join_and_train``) and acts when a worker starts, and the launcher is the first
process on the way down without a RANK (it records its pid in the environment its forkserver and workers
inherit), not necessarily a worker's parent. Under Ray (``launch/ray_train.py``) the launcher is the
driver script: the local Ray instance it starts, and so every worker actor, inherits its environment.
"""

from __future__ import annotations

import os
import signal
import time

LAUNCHER_PID = "DISTGNN_TEST_LAUNCHER_PID"


def _fire(action: str) -> None:
    if action.startswith("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "sigterm-self":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(3)  # this worker's training thread sees it (and its peers agree) while the epoch runs
        return
    launcher = int(os.environ[LAUNCHER_PID])
    if action == "sigterm-group":
        os.killpg(os.getpgid(launcher), signal.SIGTERM)
    else:
        os.kill(launcher, {"sigint-launcher": signal.SIGINT, "sigterm-launcher": signal.SIGTERM}[action])
    time.sleep(3)  # the launcher forwards the signal to every worker while this epoch is still running


def _install() -> None:
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    if os.environ.get("DISTGNN_TEST_HOOK_LOG"):
        with open(os.environ["DISTGNN_TEST_HOOK_LOG"], "a") as f:
            f.write(f"{os.environ['RANK']} {attempt}\n")
    spec = os.environ.get("DISTGNN_TEST_HOOK")
    if not spec or attempt != "0":
        return
    action, rank, epoch = spec.split(":")
    if int(os.environ["RANK"]) != int(rank):
        return
    epoch = int(epoch)
    from distgnn import train
    from distgnn.checkpoint import files as checkpoint

    if action == "kill-in-save":
        real_save = checkpoint.save_rank_state

        def save_rank_state(root, done, rank, state):
            out = real_save(root, done, rank, state)
            if done == epoch + 1:
                _fire(action)
            return out

        checkpoint.save_rank_state = save_rank_state
        return
    real_step = train.Trainer.train_step

    def train_step(self, e):
        if e == epoch:
            reduce = self.strategy.reduce_gradients

            def fire_then_reduce(*args, **kwargs):
                _fire(action)
                return reduce(*args, **kwargs)

            self.strategy.reduce_gradients = fire_then_reduce
        return real_step(self, e)

    train.Trainer.train_step = train_step


def _wrap_worker_entry() -> None:
    from distgnn.runtime import worker

    real = worker.join_and_train

    def join_and_train(*args, **kwargs):
        _install()
        return real(*args, **kwargs)

    worker.join_and_train = join_and_train


if "RANK" not in os.environ:
    os.environ.setdefault(LAUNCHER_PID, str(os.getpid()))
_wrap_worker_entry()
