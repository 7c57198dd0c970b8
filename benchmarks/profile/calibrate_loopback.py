"""Calibrate the what-if network model on this machine, then check it against real training runs.

1. Micro-benchmark, at each world size of the validation runs (and 2): gloo processes (one thread
   each) on loopback send one message to every peer with
   ``all_to_all_single`` (the call the halo exchange makes), sizes 1 KiB .. 8 MiB; median seconds per
   call; ordinary least squares fit of ``t = alpha + bytes / beta`` (Hockney's model; absolute error,
   so the MiB-sized messages a training exchange sends set beta).
2. Validation: for each of the given partitions, train ``--epochs`` epochs with ``--profile-out``
   (``--no-overlap`` unless ``--overlap``), then
   predict that run's per-epoch communication time with the calibrated model and compare it with the
   measured transfer time: each exchange timed from its last rank's launch to its last rank's
   completion (``distgnn.profile.skew``; the ranks' skew is not network time), each call's median over
   the epochs after the first, summed. The ranks' own in-flight times (mean over ranks) are printed beside it.

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
        splits = [0 if q == rank else n for q in range(world)]  # one message to every peer
        send = torch.ones(n * (world - 1))
        times = []
        for _ in range(repeats + 2):
            recv = torch.empty(n * (world - 1))  # a fresh buffer per call, as the halo exchange allocates
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_to_all_single(recv, send, splits, splits)
            times.append(time.perf_counter() - t0)
        results[size] = statistics.median(times[2:])
    if rank == 0:
        out_q.put(results)
    dist.destroy_process_group()


def calibrate(world: int, repeats: int) -> tuple[float, float, dict[int, float]]:
    """(alpha seconds, beta bytes/s, median seconds per size): every rank sends one message per peer.

    The model's busiest rank sends ``world - 1`` messages one after another, so the fit is
    ``t = (world - 1) * (alpha + size / beta)``; on one machine the processes share cores and memory
    bandwidth, which a calibration at the run's own world size absorbs into alpha and beta.
    """
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        procs = [ctx.Process(target=_bench, args=(r, world, store, repeats, q)) for r in range(world)]
        for p in procs:
            p.start()
        res = q.get(timeout=600)
        for p in procs:
            p.join()
    sizes = np.array(sorted(res), dtype=np.float64)
    t = np.array([res[int(s)] for s in sizes])
    # Absolute error: a relative-error fit weighs 1 KiB messages like 8 MiB ones and misjudged the
    # bandwidth of the large messages training sends (8 MiB: measured 1.5x its prediction).
    a = (world - 1) * np.stack([np.ones_like(sizes), sizes], axis=1)
    (alpha, inv_beta), *_ = np.linalg.lstsq(a, t, rcond=None)
    if alpha < 0:  # no negative latency: bandwidth alone, through the origin
        alpha, inv_beta = 0.0, float(a[:, 1] @ t / (a[:, 1] @ a[:, 1]))
    return float(alpha), float(1.0 / inv_beta), res


def validate(part_dir: str, alpha: float, beta: float, args: argparse.Namespace) -> dict:
    from distgnn.partitioning import load_meta
    from distgnn.profile.exchanges import ModelSpec
    from distgnn.profile.network import Network
    from distgnn.profile.predict import load_profile, predict_volume
    from distgnn.profile.skew import call_transfer_seconds
    from distgnn.profile.strategies import StrategyOptions

    nproc = int(load_meta(part_dir)["num_parts"])
    with tempfile.TemporaryDirectory() as tmp:
        prof_path = os.path.join(tmp, "p.json")
        cmd = [sys.executable, "-m", "distgnn", "train", "--partitions", part_dir, "--nproc", str(nproc)]
        cmd += ["--model", args.model, "--layers", str(args.layers), "--hidden", str(args.hidden)]
        cmd += ["--epochs", str(args.epochs), "--eval-every", str(args.epochs), "--no-progress"]
        cmd += ["--profile-out", prof_path, "--kernel", args.kernel]
        if not args.overlap:
            cmd.append("--no-overlap")
        subprocess.run(cmd, check=True)
        prof = load_profile(prof_path)
    in_flight = [
        statistics.mean(
            sum(x["in_flight_s"] for x in e["exchanges"] if x["direction"] != "eval") for e in r["epochs"][1:]
        )
        for r in prof["ranks"]
    ]
    exposed = [statistics.mean(e["exposed_comm_s"] for e in r["epochs"][1:]) for r in prof["ranks"]]
    # Like the micro-benchmark's median per size: each exchange call's median over the epochs after the
    # first, summed (on shared cores a rank descheduled at one call's end stretches that call only).
    per_epoch = call_transfer_seconds(prof)
    first = min(per_epoch)
    calls = [c for e, c in per_epoch.items() if e != first]
    transfer = sum(statistics.median(c[k] for c in calls) for k in calls[0])
    vol = predict_volume(
        part_dir, ModelSpec(args.model, args.layers, args.hidden), "graph", StrategyOptions()
    )
    predicted = Network(beta, alpha, "loopback").epoch_time(vol)
    return {
        "parts": nproc,
        "bytes_per_epoch": vol.total(),
        "predicted_ms": 1000 * predicted,
        "measured_transfer_ms": 1000 * transfer,
        "measured_in_flight_ms": 1000 * statistics.mean(in_flight),
        "measured_exposed_ms": 1000 * statistics.mean(exposed),
        "ratio": predicted / transfer,
    }


def main() -> None:
    from distgnn.partitioning import load_meta

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", nargs="*", default=[], help="partition dirs to validate on")
    ap.add_argument("--model", default="gcn")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--kernel", default="auto")
    ap.add_argument(
        "--overlap",
        action="store_true",
        help="validate on overlapped runs (default: --no-overlap, so each exchange's in-flight time is "
        "the transfer, not stretched by computation competing for the cores)",
    )
    args = ap.parse_args()
    fits = {}
    for world in sorted({2} | {int(load_meta(d)["num_parts"]) for d in args.partitions}):
        alpha, beta, res = calibrate(world, args.repeats)
        fits[world] = (alpha, beta)
        for size, t in sorted(res.items()):
            model = (world - 1) * (alpha + size / beta)
            print(f"  {world} ranks {size:>9} B/peer  {1e6 * t:9.1f} us  model {1e6 * model:9.1f} us")
        print(f"{world} ranks, loopback fit: latency={1e6 * alpha:.1f}us bandwidth={beta / 1e9:.3f}GB/s")
    for part_dir in args.partitions:
        r = validate(part_dir, *fits[int(load_meta(part_dir)["num_parts"])], args)
        mib = r["bytes_per_epoch"] / 2**20
        print(
            f"{r['parts']} ranks, {mib:.1f} MiB/epoch: predicted {r['predicted_ms']:.1f} ms, measured "
            f"from the last launch {r['measured_transfer_ms']:.1f} ms (ranks' in flight "
            f"{r['measured_in_flight_ms']:.1f} ms, exposed {r['measured_exposed_ms']:.1f} ms), "
            f"predicted/measured {r['ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
