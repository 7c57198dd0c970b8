"""Start-up and restart cost of ``distgnn train --nproc P``: whole-process-tree wall and CPU time.

Each run is one ``python -m distgnn train --nproc P`` job on a tiny graph (so training itself costs
little); with ``--restart`` rank 1 is SIGKILLed in epoch 2 and the group restarts once (the test suite's
fault hook, ``tests/reliability/hooks``). This process is the job's child subreaper, so the forkserver,
workers and helpers left when the launcher exits are reaped here: "wall" ends when the last process of
the tree is gone and "cpu" is user + system time of every process in it. Several trees (``--tree
LABEL=DIR``: DIR goes first on PYTHONPATH, e.g. a checkout of the old code; ``LABEL=`` for the
installed one) run interleaved, ``--repeats`` times each; medians are printed.

    python benchmarks/train/bench_launch.py --tree before=../old-checkout --tree after= --repeats 5
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOOKS = REPO / "tests" / "reliability" / "hooks"
PR_SET_CHILD_SUBREAPER = 36


def tiny_parts(root: Path, parts: int) -> Path:
    from distgnn.data.synthetic import synthetic_graph
    from distgnn.partitioning import partition_graph

    graph = synthetic_graph(num_nodes=200, num_edges=1200, num_features=8, num_classes=3, seed=5)
    partition_graph(graph, parts, root / f"p{parts}", progress=False)
    return root / f"p{parts}"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall s, cpu s) of ``cmd`` and every process it left behind."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    while True:  # reparented descendants (the forkserver, a resource tracker) end here
        try:
            os.wait()
        except ChildProcessError:
            break
    return time.perf_counter() - t0, children_cpu() - cpu0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", required=True, metavar="LABEL=DIR")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--restart", action="store_true", help="kill rank 1 in epoch 2; restart once")
    args = p.parse_args()
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed (Linux only)")
    trees = [t.split("=", 1) for t in args.tree]
    with tempfile.TemporaryDirectory() as tmp:
        parts = tiny_parts(Path(tmp), args.nproc)
        base = [sys.executable, "-m", "distgnn", "train", "--partitions", str(parts), "--nproc",
                str(args.nproc), "--epochs", str(args.epochs), "--kernel", "reference", "--no-progress",
                "--deterministic"]  # fmt: skip
        times: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in trees}
        for rep in range(args.repeats):
            for label, tree in trees:
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                path = [tree] if tree else []
                cmd = list(base)
                if args.restart:
                    ckpt = Path(tmp) / f"ckpt-{label}-{rep}"
                    cmd += ["--checkpoint-dir", str(ckpt), "--checkpoint-every", "1", "--max-restarts", "1"]
                    env["DISTGNN_TEST_HOOK"] = "kill:1:2"
                    path.append(str(HOOKS))
                if path:
                    env["PYTHONPATH"] = os.pathsep.join(path + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
                times[label].append(run_once(cmd, env, cwd=Path(tmp)))  # not a checkout: -m finds cwd
                wall, cpu = times[label][-1]
                print(f"repeat {rep} {label}: wall {wall:.2f} s, cpu {cpu:.2f} s", flush=True)
    print(f"\n{'tree':<12} {'wall s (median)':>16} {'cpu s (median)':>15}  runs (wall)")
    for label, runs in times.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{label:<12} {statistics.median(walls):>16.2f} {statistics.median(cpus):>15.2f}  "
              f"{[round(w, 1) for w in walls]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
