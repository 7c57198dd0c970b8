"""Elastic restart of the 2 stages x 2 parts hybrid (4 processes): SIGKILL one worker mid-epoch; the group
restarts and ends bit-identical to an uninterrupted run (the graph and pipeline cases: test_restart.py)."""

from __future__ import annotations

import pytest
from restart_helpers import STRATEGIES, check_resumed, distgnn, env, run, tiny_parts, train_args

pytestmark = pytest.mark.slow  # 4 processes on 2 cores, killed and restarted: scheduled first


@pytest.mark.timeout(400)
def test_hybrid_restart_after_sigkill_mid_epoch(tmp_path, shared_tmp):
    # as test_restart.py: rank 1 dies inside epoch 5 (0-based 4); the newest complete checkpoint is epoch 4
    parts, nproc, _ = STRATEGIES["hybrid"]
    args = train_args(
        tiny_parts(str(tmp_path.parent), parts), "hybrid", tmp_path / "ckpt", tmp_path / "m.jsonl"
    )
    cmd = distgnn(*args, "--nproc", str(nproc), "--max-restarts", "1")
    proc = run(cmd, env("kill:1:4", tmp_path / "starts"), timeout=360)
    check_resumed(tmp_path, shared_tmp, proc, "hybrid", resumed_from=4)
