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


def ray_main(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """The script's ``main()`` in this process (exit code, stderr): its error paths end before any Ray or
    worker process would start, so a fresh interpreter per case would only add torch's import time."""
    spec = importlib.util.spec_from_file_location("ray_train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *argv])
    code = module.main()
    return code, capsys.readouterr().err


def test_bad_sizes_fail_before_ray_starts(tmp_path, monkeypatch, capsys):
    parts = tiny_parts(tmp_path)
    code, err = ray_main(["--workers", "3", "--", "--partitions", str(parts)], monkeypatch, capsys)
    assert code == 2
    assert err == f"launch/ray_train.py: error: {parts} has 2 parts; 3 workers need 3 for --strategy graph\n"
    code, err = ray_main(["--workers", "2", "--", "--epochs", "2"], monkeypatch, capsys)
    assert code == 2
    assert (
        err
        == "launch/ray_train.py: error: --partitions is required (a directory every Ray worker can read)\n"
    )


def test_missing_ray_is_one_clear_line(tmp_path, monkeypatch, capsys):
    # Ray hidden from the interpreter: the launcher says which extra to install.
    parts = tiny_parts(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code, err = ray_main(["--workers", "2", "--", "--partitions", str(parts)], monkeypatch, capsys)
    assert code == 2
    assert err.startswith("launch/ray_train.py: error: the Ray launcher needs Ray Train (")
    assert err.endswith("is missing): pip install 'distgnn[ray]'\n")
