"""Shared by the restart/interrupt tests: tiny partitions, ``distgnn train`` subprocesses (optionally with
the fault-injection hook in ``hooks/``) and the final checkpoint's tensors for bitwise comparisons."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from made_once import made_once

from distgnn.checkpoint import files as ckpt
from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import partition_graph

BIN = Path(sys.executable).parent
HOOKS = Path(__file__).resolve().parent / "hooks"
EPOCHS = 8
# Dropout on (shared-seed masks), deterministic kernels, a checkpoint every 2 epochs; the kernel is a
# train_args choice (the reference by default; "cpu": the C++ kernels users get).
COMMON = ["--epochs", str(EPOCHS), "--seed", "3", "--deterministic", "--no-progress"]
COMMON += ["--checkpoint-every", "2"]
STRATEGIES = {  # name -> (parts, processes, extra options)
    "graph": (2, 2, []),
    "pipeline": (1, 2, ["--strategy", "pipeline", "--stages", "2", "--chunks", "2"]),
    "hybrid": (2, 4, ["--strategy", "hybrid", "--stages", "2", "--chunks", "2"]),
}


@functools.cache
def tiny_parts(root: str, parts: int) -> Path:
    graph = synthetic_graph(num_nodes=200, num_edges=1200, num_features=8, num_classes=3, seed=5)
    out = Path(root) / f"p{parts}"
    partition_graph(graph, parts, out, progress=False)
    return out


def env(hook: str | None = None, log: Path | None = None) -> dict[str, str]:
    """This environment minus launcher variables, one thread per process, the hook when asked for."""
    launcher = (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "TORCHELASTIC_RESTART_COUNT",
    )
    out = {k: v for k, v in os.environ.items() if k not in launcher}
    out.update(PATH=f"{BIN}{os.pathsep}{out.get('PATH', '')}", OMP_NUM_THREADS="1")
    if hook:
        out.update(PYTHONPATH=os.pathsep.join(filter(None, [str(HOOKS), out.get("PYTHONPATH")])))
        out["DISTGNN_TEST_HOOK"] = hook
    if log:
        out["DISTGNN_TEST_HOOK_LOG"] = str(log)
    return out


def train_args(
    part_dir: Path, strategy: str, ckpt_dir: Path, metrics: Path, kernel: str = "reference"
) -> list[str]:
    extra = STRATEGIES[strategy][2]
    return ["--partitions", str(part_dir), *COMMON, "--kernel", kernel, *extra, "--checkpoint-dir",
            str(ckpt_dir), "--metrics-out", str(metrics)]  # fmt: skip


def run(cmd: list[str], environ: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=timeout)


def distgnn(*args: str) -> list[str]:
    return [str(BIN / "distgnn"), "train", *args]


def final_tensors(ckpt_dir: Path, world: int, epoch: int = EPOCHS) -> dict[str, torch.Tensor]:
    """Every rank's model parameters and Adam moments at ``epoch``, flattened to one dict."""
    out = {}
    for rank in range(world):
        state = ckpt.load_rank_state(ckpt_dir, epoch, rank)
        for k, v in state["model"].items():
            out[f"{rank}/model/{k}"] = v
        for idx, s in state["optimizer"]["state"].items():
            for k, v in s.items():
                out[f"{rank}/adam/{idx}/{k}"] = v
    return out


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def reference(
    strategy: str, shared: Path, kernel: str = "reference"
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """The uninterrupted ``--nproc`` run of ``strategy`` on ``kernel`` (final tensors, metrics), once per
    test run.

    ``shared`` is a directory every pytest-xdist worker of the run sees (the ``shared_tmp`` fixture): the
    first test to ask runs the job under a file lock, the others (in any worker) read its outputs.
    """
    parts, nproc, _ = STRATEGIES[strategy]

    def make(root: Path) -> None:
        shutil.rmtree(root / "ckpt", ignore_errors=True)
        (root / "m.jsonl").unlink(missing_ok=True)
        args = train_args(tiny_parts(str(root), parts), strategy, root / "ckpt", root / "m.jsonl", kernel)
        proc = run(distgnn(*args, "--nproc", str(nproc)), env())
        assert proc.returncode == 0, proc.stderr[-3000:]

    root = made_once(shared, f"reference-{strategy}-{kernel}", make)
    return final_tensors(root / "ckpt", nproc), metrics(root / "m.jsonl")


def metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_resumed(
    tmp_path, shared_tmp, proc, strategy: str, resumed_from: int, kernel: str = "reference"
) -> None:
    """A restarted job: every worker started twice, resumed from ``resumed_from``, ended bit-exact."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every worker started twice: the first attempt (rank 1 killed), then the restarted group
    nproc = STRATEGIES[strategy][1]
    starts = sorted((tmp_path / "starts").read_text().split("\n")[:-1])
    assert starts == [f"{rank} {attempt}" for rank in range(nproc) for attempt in (0, 1)]
    assert f"distgnn: restart 1: resumed from epoch {resumed_from} ({tmp_path / 'ckpt'})" in proc.stderr
    params, records = reference(strategy, shared_tmp, kernel)
    assert_bitwise_equal(final_tensors(tmp_path / "ckpt", nproc), params)
    got = metrics(tmp_path / "m.jsonl")  # one line per epoch: the killed attempt's extra epochs were cut
    assert [r["epoch"] for r in got] == list(range(1, EPOCHS + 1))
    assert [r["loss"] for r in got] == [r["loss"] for r in records]


def epochs_before_the_signal(tmp_path: Path) -> int:
    """How many epochs a job signalled in epoch 3 finished (its metrics file: 1, 2, 3, ... with none lost)."""
    done = [r["epoch"] for r in metrics(tmp_path / "m.jsonl")]
    assert done == list(range(1, len(done) + 1)) and 3 <= len(done) < EPOCHS  # signalled in epoch 3
    return len(done)


def check_resume_is_exact(args: list[str], tmp_path: Path, shared_tmp: Path) -> None:
    """``--resume`` from the graph job's checkpoint on 2 processes ends bit-exact with the uninterrupted
    run, with the same loss every epoch."""
    resumed = run(distgnn(*args, "--nproc", "2", "--resume"), env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    params, records = reference("graph", shared_tmp)
    assert_bitwise_equal(final_tensors(tmp_path / "ckpt", 2), params)
    assert [r["loss"] for r in metrics(tmp_path / "m.jsonl")] == [r["loss"] for r in records]
