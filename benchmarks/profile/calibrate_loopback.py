"""Calibrate the what-if network model on this machine, then check it against real training runs.

1. Micro-benchmark: 2 gloo processes (one thread each) on loopback exchange one message each way with
   ``all_to_all_single`` (the call the halo exchange makes), sizes 1 KiB .. 8 MiB; median seconds per
   call; least squares fit of ``t = alpha + bytes / beta`` on relative error.
2. Validation: for each of the given partitions, train ``--epochs`` epochs with ``--profile-out``, then
   predict that run's per-epoch communication time with the calibrated model and compare it with the
   measured in-flight time (mean over ranks, epochs after the first).

    python benchmarks/profile/calibrate_loopback.py --partitions runs/syn-2 runs/syn-4 --hidden 128
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

SIZES = [2**k for k in range(10, 24)]  # 1 KiB .. 8 MiB per message


def _bench(rank: int, world: int, store_path: str, repeats: int, out_q) -> None:
    torch.set_num_threads(1)
    store = dist.FileStore(store_path, world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    results = {}
    for size in SIZES:
        n = size // 4
        send = torch.ones(n * world)
        recv = torch.empty(n * world)
        splits = [n] * world
        times = []
        for _ in range(repeats + 2):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_to_all_single(recv, send, splits, splits)
            times.append(time.perf_counter() - t0)
        results[size] = statistics.median(times[2:])
    if rank == 0:
        out_q.put(results)
    dist.destroy_process_group()


def calibrate(repeats: int) -> tuple[float, float, dict[int, float]]:
    """(alpha seconds, beta bytes/s, median seconds per size) for one message each way between 2 ranks."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        procs = [ctx.Process(target=_bench, args=(r, 2, store, repeats, q)) for r in range(2)]
        for p in procs:
            p.start()
        res = q.get(timeout=600)
        for p in procs:
            p.join()
    sizes = np.array(sorted(res), dtype=np.float64)
    t = np.array([res[int(s)] for s in sizes])
    # Least squares on relative error (rows divided by t): small and large messages count alike.
    a = np.stack([np.ones_like(sizes), sizes], axis=1) / t[:, None]
    (alpha, inv_beta), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    return float(alpha), float(1.0 / inv_beta), res


def validate(part_dir: str, alpha: float, beta: float, args: argparse.Namespace) -> dict:
    from distgnn.partitioning import load_meta
    from distgnn.profile.exchanges import ModelSpec
    from distgnn.profile.network import Network
    from distgnn.profile.predict import load_profile, predict_volume
    from distgnn.profile.strategies import StrategyOptions

    nproc = int(load_meta(part_dir)["num_parts"])
    with tempfile.TemporaryDirectory() as tmp:
        prof_path = os.path.join(tmp, "p.json")
        cmd = [sys.executable, "-m", "distgnn", "train", "--partitions", part_dir, "--nproc", str(nproc)]
        cmd += ["--model", args.model, "--layers", str(args.layers), "--hidden", str(args.hidden)]
        cmd += ["--epochs", str(args.epochs), "--eval-every", str(args.epochs), "--no-progress"]
        cmd += ["--profile-out", prof_path]
        subprocess.run(cmd, check=True)
        prof = load_profile(prof_path)
    measured = [
        statistics.mean(
            sum(x["in_flight_s"] for x in e["exchanges"] if x["direction"] != "eval") for e in r["epochs"][1:]
        )
        for r in prof["ranks"]
    ]
    exposed = [statistics.mean(e["exposed_comm_s"] for e in r["epochs"][1:]) for r in prof["ranks"]]
    vol = predict_volume(
        part_dir, ModelSpec(args.model, args.layers, args.hidden), "graph", StrategyOptions()
    )
    predicted = Network(beta, alpha, "loopback").epoch_time(vol)
    return {
        "parts": nproc,
        "bytes_per_epoch": vol.total(),
        "predicted_ms": 1000 * predicted,
        "measured_in_flight_ms": 1000 * statistics.mean(measured),
        "measured_exposed_ms": 1000 * statistics.mean(exposed),
        "ratio": predicted / statistics.mean(measured),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", nargs="*", default=[], help="partition dirs to validate on")
    ap.add_argument("--model", default="gcn")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    alpha, beta, res = calibrate(args.repeats)
    for size, t in sorted(res.items()):
        print(f"  {size:>9} B  {1e6 * t:9.1f} us  model {1e6 * (alpha + size / beta):9.1f} us")
    print(f"loopback fit: latency={1e6 * alpha:.1f}us bandwidth={beta / 1e9:.3f}GB/s")
    print(f'  (use as --network "bandwidth={beta / 1e9:.3f}GB/s,latency={1e6 * alpha:.1f}us")')
    for part_dir in args.partitions:
        r = validate(part_dir, alpha, beta, args)
        mib = r["bytes_per_epoch"] / 2**20
        print(
            f"{r['parts']} ranks, {mib:.1f} MiB/epoch: predicted {r['predicted_ms']:.1f} ms, measured in "
            f"flight {r['measured_in_flight_ms']:.1f} ms (exposed {r['measured_exposed_ms']:.1f} ms), "
            f"predicted/measured {r['ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
