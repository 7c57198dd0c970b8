"""Shared by the Ray reliability tests: ``launch/ray_train.py`` with 2 workers on a local Ray instance,
and what its stderr says (the driver's own lines, and the workers' lines Ray forwards with a prefix)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "launch" / "ray_train.py"
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="needs the ray extra (pip install 'distgnn[ray]')"
)
# Ray forwards each worker's output line as "(RayTrainWorker pid=123[, ip=...]) LINE", maybe coloured.
RAY_PREFIX = re.compile(r"^(?:\x1b\[[0-9;]*m)?\((\w+) pid=\d+[^)]*\)(?:\x1b\[[0-9;]*m)? ")


def ray_job(
    train_args: list[str], environ: dict[str, str], tmp_path: Path, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the Ray launcher (2 workers, its run storage in ``tmp_path``) in a session of its own; whatever
    of it outlives the driver (the local instance's processes) is killed when it ends."""
    cmd = [sys.executable, str(SCRIPT), "--workers", "2", "--storage", str(tmp_path / "ray")]
    cmd += ["--", *train_args]
    environ = {**environ, "RAY_COLOR_PREFIX": "0"}
    job = subprocess.Popen(
        cmd, env=environ, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, err = job.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    return subprocess.CompletedProcess(cmd, job.returncode, "", err)


def driver_lines(stderr: str) -> list[str]:
    """The driver's own lines (no Ray prefix)."""
    return [line for line in stderr.splitlines() if not RAY_PREFIX.match(line)]


def worker_lines(stderr: str, actor: str = "RayTrainWorker") -> list[str]:
    """What the workers printed (``actor`` lines, their Ray prefix removed)."""
    out = []
    for line in stderr.splitlines():
        m = RAY_PREFIX.match(line)
        if m and m.group(1) == actor:
            out.append(line[m.end() :])
    return out
