"""Out-of-core CSR build vs the in-memory normalisation, on one random graph: wall time and peak RSS.

Writes ``edge_src.npy`` / ``edge_dst.npy`` (int32, seeded) to a scratch directory, then runs each side in
its own process (peak RSS from ``wait4``): ``memory`` loads both arrays and runs ``normalize_edges`` +
``build_csr`` and saves the CSR; ``disk`` runs ``build_csr_on_disk`` under ``--budget-mb``, its chunks read
with plain file reads (a memory map's clean pages would count in RSS too, though the kernel can drop them).
Both results are compared bit for bit.

    .venv/bin/python benchmarks/ingest/bench_csr_on_disk.py --nodes 3e6 --edges 3e7 --budget-mb 256
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import MAIN_PYTHON, check, load1, machine_line, run_measured  # noqa: E402

CHUNK = 1 << 20  # edges a chunk: 8 MB of int32 pairs


def _write_edges(folder: Path, nodes: int, edges: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name in ("edge_src", "edge_dst"):
        out = np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.int32, shape=(edges,))
        for a in range(0, edges, CHUNK):
            out[a : a + CHUNK] = rng.integers(0, nodes, min(CHUNK, edges - a), dtype=np.int32)
        out.flush()
        del out


def _file_chunks(path: Path):
    """(offset, count) reads of a 1-D .npy: chunks in ordinary memory, not a map."""
    arr = np.load(path, mmap_mode="r")
    offset, dtype, total = arr.offset, arr.dtype, arr.shape[0]
    del arr
    with open(path, "rb") as f:
        for a in range(0, total, CHUNK):
            f.seek(offset + a * dtype.itemsize)
            yield np.fromfile(f, dtype=dtype, count=min(CHUNK, total - a))


def child_memory(folder: Path, nodes: int) -> None:
    from distgnn.data import build_csr, normalize_edges

    t0 = time.perf_counter()
    src, dst = np.load(folder / "edge_src.npy"), np.load(folder / "edge_dst.npy")
    indptr, indices = build_csr(*normalize_edges(src, dst, nodes), nodes)
    (folder / "memory").mkdir()
    np.save(folder / "memory" / "indptr.npy", indptr)
    np.save(folder / "memory" / "indices.npy", indices)
    print(json.dumps({"seconds": time.perf_counter() - t0, "edges": int(indices.shape[0])}))


def child_disk(folder: Path, nodes: int, edges: int, budget: int) -> None:
    from distgnn.data.csr_on_disk import build_csr_on_disk

    tracemalloc.start()  # numpy reports its allocations to it: the arrays the budget bounds, chunks included
    t0 = time.perf_counter()
    chunks = zip(_file_chunks(folder / "edge_src.npy"), _file_chunks(folder / "edge_dst.npy"), strict=True)
    res = build_csr_on_disk(chunks, nodes, folder / "disk", memory_bytes=budget, num_edges=edges)
    seconds = time.perf_counter() - t0
    arrays = tracemalloc.get_traced_memory()[1] / 2**20
    print(
        json.dumps({"seconds": seconds, "edges": res.num_edges, "buckets": res.buckets, "arrays_mb": arrays})
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=float, default=3e6)
    p.add_argument("--edges", type=float, default=3e7)
    p.add_argument("--budget-mb", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sides", default="disk,memory", help="which to run, comma-separated")
    p.add_argument("--child", choices=["memory", "disk"], help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    nodes, edges, budget = int(args.nodes), int(args.edges), args.budget_mb << 20
    if args.child == "memory":
        return child_memory(Path(args.dir), nodes)
    if args.child == "disk":
        return child_disk(Path(args.dir), nodes, edges, budget)

    print(machine_line(), f"load1 {load1():.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-csr-") as tmp:
        folder = Path(tmp)
        _write_edges(folder, nodes, edges, args.seed)
        base = [str(MAIN_PYTHON), __file__, f"--nodes={nodes}", f"--edges={edges}", f"--dir={folder}"]
        sides = args.sides.split(",")
        for side in sides:
            cmd = [*base, f"--child={side}", f"--budget-mb={args.budget_mb}"]
            res = check(run_measured(cmd), side)
            out = json.loads(res.stdout.strip().splitlines()[-1])
            extra = ""
            if side == "disk":
                peak = f"numpy arrays at most {out['arrays_mb']:.0f} MiB"
                extra = f", {out['buckets']} buckets, budget {args.budget_mb} MiB, {peak}"
            rss = f"peak RSS {res.max_rss_mb:7.0f} MB"
            print(f"{side:6s} {out['seconds']:6.1f} s  {rss}  {out['edges']} edges{extra}")
        if sides != ["disk", "memory"] and sides != ["memory", "disk"]:
            return
        same = all(
            np.array_equal(
                np.load(folder / "disk" / f, mmap_mode="r"), np.load(folder / "memory" / f, mmap_mode="r")
            )
            for f in ("indptr.npy", "indices.npy")
        )
        print("identical CSR" if same else "CSR DIFFERS")


if __name__ == "__main__":
    main()
