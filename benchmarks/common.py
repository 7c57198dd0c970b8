"""Helpers shared by the benchmark drivers and the DGL/PyG baseline scripts.

numpy and the standard library only: the baseline scripts import this from the DGL venv, where distgnn
is not (and must not be) installed. Graphs cross between the two sides as our plain ``.npz`` schema
(edge_src, edge_dst, x, y, train_mask, val_mask, test_mask).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rank_memory import RankPeaks

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
MAIN_PYTHON = REPO / ".venv" / "bin" / "python"
# The baseline venv (torch 2.2 + dgl 2.1 + torch_geometric): $DISTGNN_BASELINE_PYTHON, else the one
# `make baselines` creates in the project.
BASELINE_VENV = REPO / ".venv-baselines"


def baseline_python() -> Path:
    """The baseline interpreter: ``$DISTGNN_BASELINE_PYTHON``, else ``<repo>/.venv-baselines/bin/python``."""
    explicit = os.environ.get("DISTGNN_BASELINE_PYTHON")
    return Path(explicit) if explicit else BASELINE_VENV / "bin" / "python"


BASELINE_PYTHON = baseline_python()

NPZ_KEYS = ("edge_src", "edge_dst", "x", "y", "train_mask", "val_mask", "test_mask")


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a graph in our npz schema into plain arrays (no pickle)."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in NPZ_KEYS if k not in z.files]
        if missing:
            raise SystemExit(f"{path}: not a distgnn graph npz, missing {', '.join(missing)}")
        out = {k: z[k] for k in z.files}
    return out


def num_classes_of(arrays: dict[str, np.ndarray]) -> int:
    """Class count: the stored ``num_classes`` if the npz has it, else max label + 1."""
    if "num_classes" in arrays:
        return int(np.asarray(arrays["num_classes"]).reshape(()))
    return int(arrays["y"].max()) + 1


def edge_cut(src: np.ndarray, dst: np.ndarray, assignment: np.ndarray, chunk: int = 1 << 24) -> int:
    """Number of directed edges whose endpoints lie in different parts (chunked to bound memory)."""
    cut = 0
    for lo in range(0, src.shape[0], chunk):
        s = assignment[src[lo : lo + chunk]]
        d = assignment[dst[lo : lo + chunk]]
        cut += int(np.count_nonzero(s != d))
    return cut


@dataclass
class ProcResult:
    """One measured child process: wall time, peak RSS (of it and its waited-for children), output."""

    cmd: list[str]
    wall_s: float
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str = field(repr=False, default="")
    rank_rss_mb: dict[int, float] = field(default_factory=dict)  # per rank, with ``per_rank=True``


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None, per_rank: bool = False
) -> ProcResult:
    """Run ``cmd`` as one process and return its wall time and peak RSS (with ``per_rank``, also each
    ``RANK``'s peak RSS among its descendants, sampled from /proc: see rank_memory.py).

    The command runs under ``peak_rss.py``, whose ``os.wait4`` gives the command's own rusage (Linux:
    ``ru_maxrss`` is the peak of the command and any grandchildren it waited for), not this driver's
    (started from the driver directly, a command's ``ru_maxrss`` counts the driver's RSS at the start).
    """
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-{os.getpid()}-{time.monotonic_ns()}"
    launch = [sys.executable, str(Path(__file__).with_name("peak_rss.py")), f"{out_path}.rss", "--", *cmd]
    with open(f"{out_path}.out", "w+") as fo, open(f"{out_path}.err", "w+") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(launch, stdout=fo, stderr=fe, env=env, cwd=cwd)
        sampler = RankPeaks() if per_rank else None
        if sampler is not None:
            sampler.start(proc.pid)
        proc.wait()
        ranks = sampler.stop() if sampler is not None else {}
        wall = time.perf_counter() - t0
        fo.seek(0)
        fe.seek(0)
        stdout, stderr = fo.read(), fe.read()
    rss_file = Path(f"{out_path}.rss")
    max_rss_kib = int(rss_file.read_text()) if rss_file.exists() else 0
    for suffix in (".out", ".err", ".rss"):
        Path(f"{out_path}{suffix}").unlink(missing_ok=True)
    # Linux reports ru_maxrss in KiB.
    return ProcResult(cmd, wall, max_rss_kib / 1024.0, proc.returncode, stdout, stderr, ranks)


def check(result: ProcResult, what: str) -> ProcResult:
    """Exit with the child's stderr tail if it failed."""
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"{what} failed (exit {result.returncode}): {' '.join(result.cmd)}\n{tail}")
    return result


def last_json_line(text: str) -> dict:
    """The last line of ``text`` that parses as a JSON object (baselines print their result last)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise SystemExit(f"no JSON result line in output:\n{text[-2000:]}")


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def thread_env(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment with every thread-pool knob pinned to ``threads``."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.update(extra or {})
    return env


def machine_line() -> str:
    """One line naming the machine for the README: CPU model, cores, memory."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem_gb:.0f} GiB RAM, Python {sys.version.split()[0]}"


def load1() -> float:
    """The 1-minute load average: recorded with each run, since other work on the machine skews timings."""
    return os.getloadavg()[0]


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def verdict(value: float, limit: float) -> str:
    return "PASS" if value <= limit else "MISS"
