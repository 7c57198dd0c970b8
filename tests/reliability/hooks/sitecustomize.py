"""Test-only fault injection for ``distgnn train`` worker processes (put this directory on PYTHONPATH).

``DISTGNN_TEST_HOOK=ACTION:RANK:EPOCH`` makes worker RANK, on its first attempt only (an elastic restart
runs clean), do ACTION during 0-based epoch EPOCH:

- ``kill``: SIGKILL itself mid-epoch (after forward/backward, before the gradient all-reduce);
- ``kill-in-save``: SIGKILL itself right after writing its checkpoint file of that epoch's end;
- ``sigint-launcher`` / ``sigterm-launcher``: send SIGINT/SIGTERM to its parent (the elastic agent:
  ``distgnn train --nproc`` or torchrun), as Ctrl-C or a Slurm preemption would, mid-epoch; then
  sleep 3 s, so the forwarded signal reaches every worker before that epoch ends.

``DISTGNN_TEST_HOOK_LOG=FILE`` gets one line ``rank attempt`` per worker start.
"""

from __future__ import annotations

import os
import signal
import time


def _fire(action: str) -> None:
    if action.startswith("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    sig = {"sigint-launcher": signal.SIGINT, "sigterm-launcher": signal.SIGTERM}[action]
    os.kill(os.getppid(), sig)
    time.sleep(3)  # the launcher forwards the signal to every worker while this epoch is still running


def _install() -> None:
    if "RANK" not in os.environ:
        return  # the launcher itself
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
    from distgnn import checkpoint, train

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


_install()
