"""Elastic restart: SIGKILL one worker mid-epoch (or mid-save); the group restarts, resumes from the newest
complete checkpoint and ends with parameters and Adam state bit-identical to an uninterrupted run."""

from __future__ import annotations

import sys

import pytest
from restart_helpers import (
    EPOCHS,
    STRATEGIES,
    assert_bitwise_equal,
    distgnn,
    env,
    final_tensors,
    metrics,
    reference,
    run,
    tiny_parts,
    train_args,
)  # fmt: skip


def check_resumed(tmp_path, shared_tmp, proc, strategy: str, resumed_from: int) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every worker started twice: the first attempt (rank 1 killed), then the restarted group
    nproc = STRATEGIES[strategy][1]
    starts = sorted((tmp_path / "starts").read_text().split("\n")[:-1])
    assert starts == [f"{rank} {attempt}" for rank in range(nproc) for attempt in (0, 1)]
    assert f"distgnn: restart 1: resumed from epoch {resumed_from} ({tmp_path / 'ckpt'})" in proc.stderr
    params, records = reference(strategy, shared_tmp)
    assert_bitwise_equal(final_tensors(tmp_path / "ckpt", nproc), params)
    got = metrics(tmp_path / "m.jsonl")  # one line per epoch: the killed attempt's extra epochs were cut
    assert [r["epoch"] for r in got] == list(range(1, EPOCHS + 1))
    assert [r["loss"] for r in got] == [r["loss"] for r in records]


@pytest.mark.timeout(400)
@pytest.mark.parametrize("strategy", ["graph", "pipeline", pytest.param("hybrid", marks=pytest.mark.slow)])
def test_nproc_restart_after_sigkill_mid_epoch(tmp_path, shared_tmp, strategy):
    # rank 1 dies inside epoch 5 (0-based 4), between its backward and the gradient all-reduce: the
    # newest complete checkpoint is epoch 4. Hybrid: 2 stages x 2 parts, 4 processes (slow on 2 cores).
    parts, nproc, _ = STRATEGIES[strategy]
    args = train_args(
        tiny_parts(str(tmp_path.parent), parts), strategy, tmp_path / "ckpt", tmp_path / "m.jsonl"
    )
    cmd = distgnn(*args, "--nproc", str(nproc), "--max-restarts", "1")
    proc = run(cmd, env("kill:1:4", tmp_path / "starts"), timeout=360)
    check_resumed(tmp_path, shared_tmp, proc, strategy, resumed_from=4)


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


def test_max_restarts_needs_nproc(run_cli):
    code, _, err = run_cli(["train", "--max-restarts", "1", "--no-progress"])
    assert (code, err) == (2, "distgnn train: error: --max-restarts needs --nproc (under torchrun, give "
                              "torchrun --max-restarts)\n")  # fmt: skip
    code, _, err = run_cli(["train", "--nproc", "2", "--max-restarts", "-1"])
    assert (code, err) == (2, "distgnn train: error: max-restarts must be >= 0, got -1\n")
