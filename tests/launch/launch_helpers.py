"""Shared by the launcher tests: a tiny 2-part graph, a subprocess runner with a timeout, metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from made_once import made_once

from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import partition_graph

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Seeded, exact: dropout 0 (every launcher then gives the same per-epoch losses), one thread per rank.
TRAIN_ARGS = ["--epochs", "3", "--dropout", "0", "--seed", "3", "--kernel", "reference", "--no-progress"]


def tiny_parts(root: Path, parts: int = 2) -> Path:
    graph = synthetic_graph(num_nodes=200, num_edges=1200, num_features=8, num_classes=3, seed=5)
    out = root / f"p{parts}"
    partition_graph(graph, parts, out, progress=False)
    return out


def launcher_env(**extra: str) -> dict[str, str]:
    """This environment minus any launcher variables, with the venv first on PATH and 1 thread."""
    launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1", PYTHON=sys.executable)
    env.update(extra)
    return env


def losses(metrics: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in metrics.read_text().splitlines()]


def nproc_losses(part_dir: Path, out: Path, timeout: float = 150) -> list[float]:
    """Per-epoch losses of the same job under ``distgnn train --nproc 2`` (the reference launch)."""
    metrics = out / "nproc.jsonl"
    cmd = [str(BIN / "distgnn"), "train", "--partitions", str(part_dir), "--nproc", "2", *TRAIN_ARGS]
    proc = subprocess.run(
        [*cmd, "--metrics-out", str(metrics)], env=launcher_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return losses(metrics)


def nproc_reference(shared: Path) -> tuple[Path, list[float]]:
    """The tiny 2-part graph and its per-epoch losses under ``distgnn train --nproc 2``, made once per test
    run (``shared``: the ``shared_tmp`` fixture) for every launcher test that must equal it."""

    def make(root: Path) -> None:
        shutil.rmtree(root / "p2", ignore_errors=True)
        nproc_losses(tiny_parts(root), root)

    root = made_once(shared, "nproc-reference", make)
    return root / "p2", losses(root / "nproc.jsonl")
