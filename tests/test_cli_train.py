"""`distgnn train` end to end: arguments, errors, metrics file, the local launcher, the synthetic default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distgnn.data.synthetic import synthetic_graph
from distgnn.metrics import EPOCH_KEYS
from distgnn.partitioning import partition_graph

REPO = Path(__file__).resolve().parent.parent
FAST = ["--kernel", "reference", "--no-progress"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    graph = synthetic_graph(num_nodes=150, num_edges=900, num_features=10, num_classes=3, seed=4)
    root = tmp_path_factory.mktemp("cli")
    out = {}
    for p in (1, 2, 3):
        out[p] = str(root / f"p{p}")
        partition_graph(graph, p, out[p], progress=False)
    return out


pytestmark = pytest.mark.usefixtures("one_thread")  # in-process training on tiny graphs


@pytest.fixture
def no_launcher_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)


def test_help_has_examples(run_cli):
    code, out, _ = run_cli(["train", "--help"])
    assert code == 0
    assert "examples:" in out and "torchrun --nproc_per_node 4 -m distgnn train" in out
    for flag in (
        "--partitions",
        "--halo-staleness",
        "--comm-dtype",
        "--checkpoint-every",
        "--resume",
        "--nproc",
    ):
        assert flag in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--dropout", "1.5"], "dropout must be in [0, 1), got 1.5"),
        (["--epochs", "0"], "epochs must be >= 1, got 0"),
        (["--lr", "0"], "lr must be > 0, got 0.0"),
        (["--weight-decay", "-1"], "weight-decay must be >= 0, got -1.0"),
        (["--checkpoint-every", "5"], "--checkpoint-every needs --checkpoint-dir"),
        (["--resume"], "--resume needs --checkpoint-dir"),
        (["--nproc", "0"], "nproc must be >= 1, got 0"),
        (["--timeout", "0"], "timeout must be > 0 seconds, got 0.0"),
    ],
)
def test_bad_values_are_one_line_errors(run_cli, args, message, no_launcher_env):
    code, _, err = run_cli(["train", *args])
    assert code == 2
    assert err == f"distgnn train: error: {message}\n"


def test_missing_partition_dir(run_cli, tmp_path, no_launcher_env):
    code, _, err = run_cli(["train", "--partitions", str(tmp_path / "nope")])
    assert code == 2
    assert err == f"distgnn train: error: partition directory {tmp_path / 'nope'} does not exist\n"


# Wrong world size, unknown model and the other bad inputs: tests/reliability/test_bad_input.py.


def test_single_process_metrics_out(run_cli, parts, tmp_path, no_launcher_env):
    metrics = tmp_path / "sub" / "m.jsonl"
    args = ["train", "--partitions", parts[1], "--epochs", "4", "--metrics-out", str(metrics), *FAST]
    code, _, err = run_cli(args)
    assert code == 0, err
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    for r in records:
        assert set(EPOCH_KEYS) <= set(r)
        assert r["comm_bytes"] == 0 and 0 <= r["test_acc"] <= 1 and r["epoch_s"] > 0
    assert np.isfinite([r["loss"] for r in records]).all()


def test_summary_table_on_rank0(run_cli, parts, no_launcher_env):
    code, _, err = run_cli(["train", "--partitions", parts[1], "--epochs", "3", "--kernel", "reference"])
    assert code == 0
    for row in (
        "best val (acc)",
        "test acc at best val",
        "final test acc",
        "mean epoch time",
        "halo bytes / epoch",
    ):
        assert row in err


def test_workers_get_the_config_without_nproc_and_with_the_partitions():
    from distgnn.cli import build_parser
    from distgnn.commands.options import config_from_args
    from distgnn.runtime.launcher import worker_config

    args = build_parser().parse_args(
        ["train", "--nproc", "4", "--max-restarts", "2", "--model", "gat", "--heads", "2", "--resume",
         "--checkpoint-dir", "c", "--strategy", "pipeline", "--stages", "2", "--layers", "3",
         "--stage-layers", "2,1", "--timeout", "60"]
    )  # fmt: skip
    cfg = config_from_args(args)
    got = worker_config(cfg, "runs/x")
    assert (got.job.nproc, got.job.max_restarts, got.job.partitions, got.job.timeout) == (
        None,
        0,
        "runs/x",
        60,
    )
    assert (got.model, got.optim, got.parallel, got.run) == (cfg.model, cfg.optim, cfg.parallel, cfg.run)


def _cli(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "distgnn", "train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.timeout(120)
def test_nproc_uses_the_elastic_launcher(parts, tmp_path):
    metrics = tmp_path / "m.jsonl"
    proc = _cli(
        ["--partitions", parts[2], "--nproc", "2", "--epochs", "3", "--metrics-out", str(metrics), *FAST],
        tmp_path,
        100,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(r["comm_bytes"] > 0 for r in records)  # two ranks really exchanged halos


@pytest.mark.timeout(120)
def test_a_failing_rank_takes_the_job_down(parts, tmp_path):
    # Rank 1's part is corrupted: it fails while loading, after joining the process group; rank 0 would
    # wait in its first collective. The elastic agent must stop the job well before the 300 s timeout.
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(parts[2], broken)
    (broken / "part-1" / "x.npy").write_bytes(b"garbage")
    # _cli's 100 s subprocess timeout bounds the run well below the 300 s process-group timeout
    proc = _cli(["--partitions", str(broken), "--nproc", "2", "--epochs", "50", *FAST], tmp_path, 100)
    assert proc.returncode == 2
    assert "distgnn train: error:" in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "distgnn train: error: worker rank 1 failed with exit code 2; the other workers were stopped"
    )


@pytest.mark.timeout(120)
def test_no_partitions_trains_on_cached_synthetic_graph(run_cli, tmp_path, no_launcher_env, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        "distgnn.runtime.partitions.SYNTHETIC_SPEC", "synthetic:nodes=300,edges=2000,features=8"
    )
    code, _, err = run_cli(["train", "--epochs", "2", *FAST])
    assert code == 0, err
    meta = tmp_path / "runs" / "synthetic-1p" / "meta.json"
    assert json.loads(meta.read_text())["num_parts"] == 1
    stamp = meta.stat().st_mtime_ns
    code, _, err = run_cli(["train", "--epochs", "1", *FAST])
    assert code == 0, err
    assert meta.stat().st_mtime_ns == stamp  # partitioned only once


def test_every_config_field_is_an_option_with_its_default():
    """The options are generated from the config dataclasses: defaults parse back to the default config,
    and every field round-trips through the argument list the launcher hands its workers."""
    from distgnn.cli import build_parser
    from distgnn.commands.options import config_argv, config_from_args
    from distgnn.config import TrainConfig

    parse = lambda argv: config_from_args(build_parser().parse_args(["train", *argv]))  # noqa: E731
    assert parse([]) == TrainConfig()
    assert config_argv(TrainConfig()) == []
    common = dict(
        model="deepgcn", layers=6, hidden=32, heads=2, dropout=0.1, epochs=7, lr=0.05, weight_decay=0.0,
        weight_decay_scope="first", feature_norm="row", seed=9, deterministic=True, kernel="cpu",
        eval_every=3, checkpoint_dir="c", checkpoint_every=2, resume=True, metrics_out="m.jsonl",
        profile_out="p.json", tensorboard="tb", trace="tr", progress=False, lr_warmup_epochs=5,
        keep_checkpoints=5, checkpoint_on_exit=True, on_nonfinite="skip-step", collective_timeout=7.5,
        partitions="parts", nproc=2, max_restarts=1, timeout=60.0, patience=20, alpha=0.2, lam=1.0,
        conv_weight_decay=0.01, attention_dropout=0.3, best_by="val_loss", precision="bf16-mixed",
    )  # fmt: skip
    # Halo options belong to the graph strategy, stage options to the pipeline: two configs cover them all.
    graph = TrainConfig.from_flat(**common, halo_staleness=1, comm_dtype="fp16", overlap=False)
    pipe = TrainConfig.from_flat(
        **common, strategy="pipeline", stages=3, chunks=4, stage_layers=(2, 2, 2), history_dtype="bf16",
        exact_epochs=2, chunk_order="shuffle", history_grad="defer",
    )  # fmt: skip
    default = TrainConfig().flat()
    changed = {k for cfg in (graph, pipe) for k, v in cfg.flat().items() if v != default[k]}
    assert changed == set(default)  # every field is set to a non-default value in one of them
    for custom in (graph, pipe):
        assert parse(config_argv(custom)) == custom
