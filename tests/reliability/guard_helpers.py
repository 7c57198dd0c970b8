"""Shared by the reliability tests: small partitions, a subprocess runner with the fault injector."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from distgnn.data.synthetic import synthetic_graph
from distgnn.partitioning import partition_graph

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
FAULTS = HERE / "faults"
FAST = ["--dropout", "0", "--seed", "3", "--kernel", "reference", "--no-progress"]


def tiny_parts(root: Path, parts: int = 2, seed: int = 5, name: str | None = None) -> Path:
    graph = synthetic_graph(num_nodes=200, num_edges=1200, num_features=8, num_classes=3, seed=seed)
    out = root / (name or f"p{parts}-s{seed}")
    partition_graph(graph, parts, out, progress=False)
    return out


def job_env(fault: str | None = None, log: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment minus launcher variables, one thread, the venv on PATH, the fault injector on."""
    launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1", PYTHON=sys.executable)
    if fault:
        env.update(PYTHONPATH=str(FAULTS), DISTGNN_TEST_FAULT=fault, DISTGNN_TEST_FAULT_LOG=str(log))
    env.update(extra)
    return env


def fault_time(log: Path) -> tuple[int, float]:
    """(pid, time) the injected fault happened at."""
    pid, at = log.read_text().split()
    return int(pid), float(at)


def run_job(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``cmd``; (the finished process, the time it ended)."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.time()


def pid_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (gone, or a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("distgnn train: error:")]
