"""Elastic restart: SIGKILL one worker mid-epoch (mid-save: test_restart_torchrun.py; the hybrid:
test_restart_hybrid.py); the group restarts, resumes from the newest complete checkpoint and ends with
parameters and Adam state bit-identical to an uninterrupted run."""

from __future__ import annotations

import pytest
from restart_helpers import STRATEGIES, check_resumed, distgnn, env, run, tiny_parts, train_args

pytestmark = pytest.mark.slow  # each case: a job killed and restarted: scheduled first (tests/conftest.py)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("kernel", ["reference", "cpu"])
@pytest.mark.parametrize("strategy", ["graph", "pipeline"])
def test_nproc_restart_after_sigkill_mid_epoch(tmp_path, shared_tmp, strategy, kernel):
    # rank 1 dies inside epoch 5 (0-based 4), between its backward and the gradient all-reduce: the
    # newest complete checkpoint is epoch 4. On the reference kernels and on the C++ ones users run.
    parts, nproc, _ = STRATEGIES[strategy]
    args = train_args(
        tiny_parts(str(tmp_path.parent), parts), strategy, tmp_path / "ckpt", tmp_path / "m.jsonl", kernel
    )
    cmd = distgnn(*args, "--nproc", str(nproc), "--max-restarts", "1")
    proc = run(cmd, env("kill:1:4", tmp_path / "starts"), timeout=360)
    check_resumed(tmp_path, shared_tmp, proc, strategy, resumed_from=4, kernel=kernel)


def test_max_restarts_needs_nproc(run_cli):
    code, _, err = run_cli(["train", "--max-restarts", "1", "--no-progress"])
    assert (code, err) == (2, "distgnn train: error: --max-restarts needs --nproc (under torchrun, give "
                              "torchrun --max-restarts)\n")  # fmt: skip
    code, _, err = run_cli(["train", "--nproc", "2", "--max-restarts", "-1"])
    assert (code, err) == (2, "distgnn train: error: max-restarts must be >= 0, got -1\n")
