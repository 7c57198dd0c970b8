"""Dropout forward + backward of the C++ kernel, per ISA entry point, optionally against an older build.

    python benchmarks/kernels/bench_dropout.py [--before-csrc DIR] [--rows 200000 --cols 128]

The forward is ``dropout(x)``; the backward is what autograd runs: for plain dropout ``masked_scale`` of
the forward's keep bits (``dropout_bits``; a build without it: the same kernel on the gradient, mask
regenerated from the seed), ``positive_scale`` for the fused bias + ReLU variant.
``--before-csrc`` names a directory with another version's aggregate.cpp, dropout.cpp and output.h (e.g.
extracted with ``git show <rev>:kernels/csrc/dropout.cpp``): it is built as a second extension and timed
in the same interleaved rounds, so "before" and "after" see the same machine load. Medians of wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

from distgnn.kernels import cpu, isa


def load_before(csrc: Path) -> ModuleType:
    """Build (once, cached by torch) the extension of another version's sources."""
    from torch.utils.cpp_extension import load

    srcs = [csrc / "aggregate.cpp", csrc / "dropout.cpp"]
    tag = hashlib.sha256(b"".join(s.read_bytes() for s in srcs)).hexdigest()[:12]
    return load(f"distgnn_cpu_before_{tag}", [str(s) for s in srcs], extra_cflags=["-O3", "-fopenmp"],
                extra_ldflags=["-fopenmp"])  # fmt: skip


def fwd_bwd(
    ext: ModuleType, x: torch.Tensor, g: torch.Tensor, bias: torch.Tensor | None, clock: Callable[[], float]
) -> float:
    """Seconds for one forward and its backward (plain: the forward's mask bits applied, or with a build
    that has no ``dropout_bits`` the mask regenerated; bias: ReLU + positive_scale)."""
    seed, thr, scale = 1234, 2**31, 2.0
    t0 = clock()
    if bias is None and hasattr(ext, "dropout_bits"):
        _, bits = ext.dropout_bits(x, seed, thr, scale, False, None, None)
        ext.masked_scale(g, bits, scale)
    elif bias is None:
        ext.dropout(x, seed, thr, scale, False, None, None)
        ext.dropout(g, seed, thr, scale, False, None, None)
    else:
        out = ext.dropout(x, seed, thr, scale, True, bias, None)
        ext.positive_scale(out, g, scale)
    return clock() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--cols", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--before-csrc", type=Path, default=None)
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: perf_counter; cpu: this process's CPU time (steadier on a loaded machine with "
        "--threads 1; with more threads it counts OpenMP spin-waiting too)",
    )
    args = ap.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)
    ext = cpu.load_extension()
    print(f"torch {torch.__version__}, {args.threads} threads, {isa.describe()}")
    print(f"x: {args.rows} x {args.cols} float32, p = 0.5; load average at start {os.getloadavg()}")
    runners: dict[str, tuple[ModuleType, str | None]] = {}
    if args.before_csrc is not None:
        runners["before (best clone)"] = (load_before(args.before_csrc), None)
    for name in ext.supported_isas():
        runners[f"after ({name})"] = (ext, name)
    x = torch.randn(args.rows, args.cols)
    g = torch.randn(args.rows, args.cols)
    bias = torch.randn(args.cols)
    times: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeats + 1):  # round 0 warms up (pool buffers, page faults)
        for name, (mod, isa_name) in runners.items():
            if isa_name is not None:
                ext.set_isa(isa_name)
            for variant, b in (("plain", None), ("bias+relu", bias)):
                t = fwd_bwd(mod, x, g, b, clock)
                if rep:
                    times.setdefault((name, variant), []).append(t)
    ext.set_isa(isa.chosen())
    print(f"\n{args.clock} clock, seconds")
    print(f"{'build':24s} {'variant':10s} {'median s':>9s} {'min s':>8s}")
    for (name, variant), ts in times.items():
        print(f"{name:24s} {variant:10s} {statistics.median(ts):9.4f} {min(ts):8.4f}")
    if args.before_csrc is not None:
        for variant in ("plain", "bias+relu"):
            before = statistics.median(times[("before (best clone)", variant)])
            best = statistics.median(times[(f"after ({isa.chosen()})", variant)])
            print(f"speed-up {variant}: {before / best:.2f}x (before / after, {isa.chosen()})")
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    sys.exit(main())
