"""Elastic restart under plain torchrun: SIGKILL one worker in the middle of a checkpoint save; the restart
resumes from the newest complete set and ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import sys

import pytest
from restart_helpers import check_resumed, env, run, tiny_parts, train_args

pytestmark = pytest.mark.slow  # a torchrun job, killed, restarted: scheduled first (tests/conftest.py)


@pytest.mark.timeout(300)
def test_torchrun_restart_after_sigkill_mid_save(tmp_path, shared_tmp):
    # Plain torchrun --max-restarts 1. Rank 1 dies right after writing its file of the epoch-4 set, rank
    # 0's file is written too: that set has no manifest, so the restart resumes from epoch 2.
    parts = tiny_parts(str(tmp_path.parent), 2)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    torchrun += ["--max-restarts", "1", "-m", "distgnn", "train"]
    environ = env("kill-in-save:1:3", tmp_path / "starts") | {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    proc = run([*torchrun, *train_args(parts, "graph", tmp_path / "ckpt", tmp_path / "m.jsonl")], environ)
    check_resumed(tmp_path, shared_tmp, proc, "graph", resumed_from=2)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "epoch-000006",
        "epoch-000008",
        "run.json",
    ]
