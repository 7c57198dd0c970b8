"""The commands a user runs first print no warning, of ours or torch's, on the torch that is installed.

A 2-rank job (partition, train under ``--nproc``, info, profile predict) runs with deprecation and
future warnings turned into errors in every process (PYTHONWARNINGS reaches the forked workers), and no
line of any command's stderr names a warning. A deprecated torch call (``_set_pg_timeout`` on torch 2.14)
fails this test on the torch that deprecates it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ERRORS = "error::DeprecationWarning,error::FutureWarning,error::UserWarning"


def _run(*args: str, cwd: Path) -> str:
    launcher = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    env.update(PYTHONWARNINGS=ERRORS, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [str(BIN / "distgnn"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


@pytest.mark.timeout(300)
def test_a_two_rank_job_prints_no_warning(tmp_path):
    graph = "synthetic:nodes=600,edges=4000,features=8,classes=3,seed=1"
    err = _run("partition", "--dataset", graph, "--parts", "2", "--out", "p2", cwd=tmp_path)
    err += _run("train", "--partitions", "p2", "--nproc", "2", "--epochs", "3", "--no-progress",
                "--metrics-out", "m.jsonl", cwd=tmp_path)  # fmt: skip
    err += _run(
        "train",
        "--partitions",
        "p2",
        "--nproc",
        "2",
        "--epochs",
        "2",
        "--kernel",
        "torch",
        "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip  (torch's CSR tensors warn they are "beta")
    err += _run("info", "p2", cwd=tmp_path)
    err += _run("profile", "predict", "--partitions", "p2", cwd=tmp_path)
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 3  # the job trained
    assert [line for line in err.splitlines() if "Warning" in line or "warn" in line.lower()] == []
