"""Training on a device equals training on the CPU: 1 rank, and 2 ranks sharing the device.

Trains the same configuration (GCN, dropout 0.5, a few epochs, C++/Triton kernels as ``auto`` picks) on
the synthetic graph: once on the CPU in this process (the reference), once on ``--device`` with one
process, and once with two processes on that device -- over NCCL, or, if NCCL refuses two ranks on one
GPU, over gloo with CUDA tensors. Every per-epoch loss and every final parameter must agree with the
reference to ``--rtol`` (default 1e-4, relative); the first that does not stops the run with a
``FAIL`` line and exit code 1. Writes the figures as JSON to ``--out``.

    python benchmarks/gpu/exactness.py --device cuda --out runs/gpu-check/exactness.json
    python benchmarks/gpu/exactness.py --device cpu --nodes 600 --edges 4000   # the CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import torch


def train(layout, part_dir: str, cfg_kwargs: dict) -> dict:
    """Train on ``layout``; the per-epoch losses and the final parameters (as numpy arrays)."""
    from distgnn.config import TrainConfig
    from distgnn.runtime.worker import train_partition

    cfg = TrainConfig.from_flat(progress=False, **cfg_kwargs)
    result, _ = train_partition(cfg, part_dir, layout)
    return {
        "losses": [r["loss"] for r in result.history],
        "params": {k: v.detach().cpu().double().numpy() for k, v in result.model.named_parameters()},
        "device": str(layout.device),
        "backend": layout.backend,
    }


def _rank(rank: int, store_path: str, backend: str, device: str, part_dir: str, cfg: dict, out) -> None:
    from distgnn.comm.layout import ProcessLayout

    torch.set_num_threads(1)
    layout = None
    try:
        store = torch.distributed.FileStore(store_path, 2)
        layout = ProcessLayout.init(
            rank=rank, world_size=2, backend=backend, store=store, timeout=120, device=device
        )
        out.put((rank, True, train(layout, part_dir, cfg)))
    except BaseException as err:  # noqa: B036 - reported to the parent, which decides
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        out.put((rank, False, f"{type(err).__name__}: {first}\n{traceback.format_exc(limit=3)}"))
    finally:
        if layout is not None:
            layout.destroy()


def two_ranks(backend: str, device: str, part_dir: str, cfg: dict, timeout: float = 300.0) -> list:
    """Both ranks' results, or raise RuntimeError with the first rank's error."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        procs = [
            ctx.Process(target=_rank, args=(r, f"{tmp}/store", backend, device, part_dir, cfg, results))
            for r in range(2)
        ]
        for p in procs:
            p.start()
        got: dict[int, object] = {}
        try:
            while len(got) < 2:
                try:
                    rank, ok, value = results.get(timeout=timeout)
                except queue.Empty:
                    raise RuntimeError(f"2 ranks over {backend}: no result within {timeout:.0f} s") from None
                if not ok:
                    raise RuntimeError(f"rank {rank} over {backend} failed: {value}")
                got[rank] = value
        finally:
            for p in procs:
                p.join(5)
                if p.is_alive():
                    p.kill()
    return [got[0], got[1]]


def compare(name: str, got: dict, ref: dict, rtol: float) -> dict:
    """Loss and parameter errors of ``got`` against ``ref``; exit 1 on the first out of tolerance."""
    # np.max, not max(): it propagates NaN (max() would skip it, NaN compares False)
    a, b = np.asarray(got["losses"], dtype=np.float64), np.asarray(ref["losses"], dtype=np.float64)
    loss_err = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))
    param_err = float(
        np.max(
            [
                np.linalg.norm(got["params"][k] - v) / max(np.linalg.norm(v), 1e-30)
                for k, v in ref["params"].items()
            ]
        )
    )
    line = f"{name}: max loss rel err {loss_err:.2e}, max param rel err {param_err:.2e} (tolerance {rtol:g})"
    if not (loss_err <= rtol and param_err <= rtol):  # NaN fails too
        print(f"FAIL exactness {line}", flush=True)
        sys.exit(1)
    print(f"ok   exactness {line}", flush=True)
    return {"name": name, "loss_rel_err": loss_err, "param_rel_err": param_err, "device": got["device"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke run)")
    ap.add_argument("--nodes", type=int, default=20_000, help="synthetic graph nodes (the CLI default)")
    ap.add_argument("--edges", type=int, default=200_000, help="synthetic graph edges (the CLI default)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("FAIL exactness: --device cuda but torch sees no CUDA device", flush=True)
        return 1

    from distgnn.comm.layout import ProcessLayout
    from distgnn.data.synthetic import synthetic_graph
    from distgnn.partitioning import partition_graph

    cfg = dict(model="gcn", hidden=32, dropout=0.5, epochs=args.epochs, eval_every=args.epochs, seed=1)
    records = []
    with tempfile.TemporaryDirectory(prefix="distgnn-gpu-check-") as tmp:
        graph = synthetic_graph(num_nodes=args.nodes, num_edges=args.edges, seed=0)
        parts = {}
        for p in (1, 2):
            parts[p] = os.path.join(tmp, f"p{p}")
            partition_graph(graph, p, parts[p], method="metis", progress=False)
        ref = train(ProcessLayout.single("cpu"), parts[1], cfg)
        one = train(ProcessLayout.single(args.device), parts[1], cfg)
        records.append(compare(f"1 rank on {one['device']} vs 1 rank on cpu", one, ref, args.rtol))
        device = "cuda:0" if args.device.startswith("cuda") else "cpu"
        backends = ["nccl", "gloo"] if device != "cpu" else ["gloo"]
        for backend in backends:
            try:
                ranks = two_ranks(
                    backend, device, parts[2], cfg, timeout=120.0 if backend == "nccl" else 300.0
                )
            except RuntimeError as err:
                if backend == "nccl":  # e.g. "Duplicate GPU detected": NCCL wants one GPU per rank
                    print(f"note exactness: NCCL refused 2 ranks on one GPU ({str(err).splitlines()[0]}); "
                          "using gloo with CUDA tensors", flush=True)  # fmt: skip
                    continue
                print(f"FAIL exactness: {str(err).splitlines()[0]}", flush=True)
                return 1
            for r, res in enumerate(ranks):
                name = f"2 ranks over {backend} on {device} (rank {r}) vs 1 rank on cpu"
                records.append(compare(name, res, ref, args.rtol) | {"backend": backend})
            break
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"graph": [args.nodes, args.edges], "runs": records}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
