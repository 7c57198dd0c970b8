"""launch/ray_train.py: Ray Train's TorchTrainer on a local Ray instance gives torchrun's losses."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from launch_helpers import REPO, TRAIN_ARGS, launcher_env, losses, nproc_losses, tiny_parts

SCRIPT = REPO / "launch" / "ray_train.py"
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="needs the ray extra (pip install 'distgnn[ray]')"
)


def ray_train(args: list[str], tmp_path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=launcher_env(), cwd=tmp_path, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip


@needs_ray
@pytest.mark.timeout(600)
def test_two_ray_workers_match_torchrun(tmp_path):
    parts = tiny_parts(tmp_path)
    metrics = tmp_path / "ray.jsonl"
    proc = ray_train(
        ["--workers", "2", "--", "--partitions", str(parts), *TRAIN_ARGS, "--metrics-out", str(metrics)],
        tmp_path,
        540,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = nproc_losses(parts, tmp_path)
    assert len(expected) == 3
    assert losses(metrics) == expected


def test_bad_sizes_fail_before_ray_starts(tmp_path):
    parts = tiny_parts(tmp_path)
    proc = ray_train(["--workers", "3", "--", "--partitions", str(parts)], tmp_path, 120)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"launch/ray_train.py: error: {parts} has 2 parts; 3 workers need 3 for --strategy graph\n"
    )
    proc = ray_train(["--workers", "2", "--", "--epochs", "2"], tmp_path, 120)
    assert proc.stderr == (
        "launch/ray_train.py: error: --partitions is required (a directory every Ray worker can read)\n"
    )


def test_missing_ray_is_one_clear_line(tmp_path):
    # Ray hidden from the interpreter: the launcher says which extra to install.
    parts = tiny_parts(tmp_path)
    code = (
        "import sys, runpy; sys.modules['ray'] = None; "
        f"sys.argv = ['ray_train.py', '--workers', '2', '--', '--partitions', {str(parts)!r}]; "
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("launch/ray_train.py: error: the Ray launcher needs Ray Train (")
    assert proc.stderr.endswith("is missing): pip install 'distgnn[ray]'\n")
