"""benchmarks/gpu/check.sh in CPU smoke mode (what CI can run), and its drivers' fail-loudly paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent.parent
SCRIPT = REPO / "benchmarks" / "gpu" / "check.sh"
sys.path.insert(0, str(SCRIPT.parent))


@pytest.mark.slow  # ~25 s of CPU: 4 interpreters start (2 drivers, 2 spawned ranks), METIS, 3 trainings
@pytest.mark.timeout(300)
def test_cpu_smoke_run_passes_and_skips_the_gpu_parts(tmp_path):
    out = tmp_path / "check"
    run = subprocess.run(
        ["bash", str(SCRIPT), "--cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=280, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    summary = (out / "summary.txt").read_text()
    assert summary == run.stdout  # everything printed is in the summary file
    lines = summary.splitlines()
    assert lines[0].startswith("gpu-check: CPU smoke mode")
    assert [ln.split(":")[0] for ln in lines if ln.startswith("SKIP")] == [
        "SKIP install", "SKIP pytest -m gpu", "SKIP CUDA exactness and the 2M-node / 40M-edge GPU timings",
    ]  # fmt: skip
    assert sum(ln.startswith("ok   exactness") for ln in lines) == 3  # 1 rank, then 2 ranks over gloo
    assert sum(ln.startswith("ok   spmm") for ln in lines) == 2  # random and community graphs agree
    assert not any(ln.startswith("FAIL") for ln in lines) and lines[-1].startswith(
        "gpu-check: cpu mode passed"
    )
    exact = json.loads((out / "exactness.json").read_text())
    assert len(exact["runs"]) == 3 and all(r["param_rel_err"] <= 1e-4 for r in exact["runs"])
    spmm = json.loads((out / "spmm.json").read_text())
    assert set(spmm["graphs"]) == {"random", "community"}
    assert all(t > 0 for g in spmm["graphs"].values() for t in g["median_fwd_bwd_s"].values())


def test_unknown_argument_is_one_line_and_exit_2(tmp_path):
    run = subprocess.run(["bash", str(SCRIPT), "--frobnicate"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0 and "unknown argument" in run.stderr


def test_exactness_compare_fails_loudly(capsys):
    import numpy as np
    from exactness import compare

    ref = {"losses": [1.0, 0.5], "params": {"w": np.ones(3)}, "device": "cpu"}
    assert compare("same", dict(ref), ref, 1e-4)["param_rel_err"] == 0.0
    bad = ref | {"params": {"w": np.array([1.0, 1.0, 1.01])}}
    with pytest.raises(SystemExit) as exc:
        compare("bad params", bad, ref, 1e-4)
    assert exc.value.code == 1 and capsys.readouterr().out.splitlines()[-1].startswith(
        "FAIL exactness bad params"
    )
    with pytest.raises(SystemExit):
        compare("nan loss", ref | {"losses": [1.0, float("nan")]}, ref, 1e-4)


def test_spmm_agreement_fails_loudly_on_a_wrong_op(capsys):
    from bench_spmm import check_agreement

    ops = {"a": lambda x: 2 * x, "b": lambda x: x + x}
    check_agreement(ops, 5, 3, torch.device("cpu"), "toy")
    with pytest.raises(SystemExit) as exc:
        check_agreement(ops | {"wrong": lambda x: 2.001 * x}, 5, 3, torch.device("cpu"), "toy")
    assert exc.value.code == 1 and "FAIL spmm toy: wrong forward" in capsys.readouterr().out
