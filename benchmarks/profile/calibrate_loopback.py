"""Calibrate the what-if network model on this machine, then check it against real training runs.

1. Micro-benchmark, at each world size of the validation runs (and 2): gloo processes (one thread
   each) on loopback send one message to every peer at once with ``all_to_all_single`` (the call the
   halo exchange makes), sizes 1 KiB .. 16 MiB. Each call is timed like a training exchange: from its
   last rank's launch to its last rank's completion (``distgnn.profile.skew``), median over repeats.
   Fits of ``t = (P - 1) * (alpha + bytes / beta)`` per world size P (the busiest rank's P - 1
   messages, one after another): Hockney's one line over every size, and one line per message-size
   range (``distgnn.profile.calibration``, ranges split at 16 KiB, 256 KiB and 2 MiB).
2. Validation: for each of the given partitions, train ``--epochs`` epochs with ``--profile-out``
   (``--no-overlap`` unless ``--overlap``), then
   predict that run's per-epoch communication time with the calibrated model and compare it with the
   measured transfer time: each exchange timed from its last rank's launch to its last rank's
   completion (``distgnn.profile.skew``; the ranks' skew is not network time), each call's median over
   the epochs after the first, summed. The ranks' own in-flight times (mean over ranks) are printed beside it.

    python benchmarks/profile/calibrate_loopback.py --partitions runs/syn-2 runs/syn-4 --epochs 11
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from distgnn.profile.calibration import fit_hockney, fit_piecewise
from distgnn.profile.network import Network

SIZES = [2**k for k in range(10, 25)]  # 1 KiB .. 16 MiB per message


def _compute_until(deadline: float) -> None:
    """Busy single-threaded arithmetic until ``deadline`` (perf_counter seconds), as a training rank."""
    a = torch.ones(128, 128)
    while time.perf_counter() < deadline:
        a = (a @ a).clamp_(max=1.0)


def _pass(rank: int, world: int, repeats: int, busy: dict[int, float] | None) -> dict[int, float]:
    """Median seconds per size of one call, from its last launch to its last completion (every rank's).

    ``busy`` (seconds per size): after its call completes a rank computes that long before the next
    call, as a training rank computes its next layer while slower peers still receive.
    """
    from distgnn.profile.skew import last_launch_seconds

    spans: dict[int, list[tuple[float, float]]] = {}
    for size in SIZES:
        n = size // 4
        splits = [0 if q == rank else n for q in range(world)]  # one message to every peer
        send = torch.ones(n * (world - 1))
        spans[size] = []
        for _ in range(repeats + 2):
            recv = torch.empty(n * (world - 1))  # a fresh buffer per call, as the halo exchange allocates
            dist.barrier()
            t0 = time.perf_counter()  # one monotonic clock for every process of this machine
            dist.all_to_all_single(recv, send, splits, splits)
            done = time.perf_counter()
            spans[size].append((t0, done))
            if busy is not None:
                _compute_until(done + busy[size])
    every: list = [None] * world
    dist.all_gather_object(every, spans)
    calls = {size: list(zip(*(r[size] for r in every), strict=True))[2:] for size in SIZES}
    return {size: statistics.median(last_launch_seconds(c) for c in calls[size]) for size in SIZES}


def _bench(rank: int, world: int, store_path: str, repeats: int, out_q) -> None:
    torch.set_num_threads(1)
    store = dist.FileStore(store_path, world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    idle = _pass(rank, world, repeats, None)
    # Computing for twice the idle call time outlasts the slowest peer's completion, as a training
    # layer's computation (tens of ms) outlasts its exchange.
    busy = _pass(rank, world, repeats, {size: 2 * t + 1e-3 for size, t in idle.items()})
    if rank == 0:
        out_q.put((idle, busy))
    dist.destroy_process_group()


def calibrate(world: int, repeats: int) -> tuple[dict[str, Network], dict[str, dict[int, float]]]:
    """The fits at ``world`` ranks and the median seconds per size they come from.

    Fits: ``line`` (Hockney's one line) and ``ranges`` (a line per size range) of the idle pass,
    ``busy`` (a line per size range) of the pass whose ranks compute after their call completes.
    The model's busiest rank sends ``world - 1`` messages one after another, so the fits are of
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
        idle, busy = q.get(timeout=1200)
        for p in procs:
            p.join()
    sizes = sorted(idle)
    alpha, beta = fit_hockney(sizes, [idle[s] for s in sizes], world - 1)
    nets = {
        "line": Network(beta, alpha, f"loopback-{world}-line"),
        "ranges": fit_piecewise(sizes, [idle[s] for s in sizes], world - 1, name=f"loopback-{world}-ranges"),
        "busy": fit_piecewise(sizes, [busy[s] for s in sizes], world - 1, name=f"loopback-{world}-busy"),
    }
    return nets, {"idle": idle, "busy": busy}


def validate(part_dir: str, nets: dict[str, Network], args: argparse.Namespace) -> dict:
    """Train on ``part_dir`` with a profile; each network's predicted epoch time against the measured one."""
    from distgnn.partitioning import load_meta
    from distgnn.profile.exchanges import ModelSpec
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
    # first (on shared cores a rank descheduled at one call's end stretches that call only).
    per_epoch = call_transfer_seconds(prof)
    first = min(per_epoch)
    epochs = [c for e, c in per_epoch.items() if e != first]
    measured = {k: statistics.median(c[k] for c in epochs) for k in sorted(epochs[0])}
    vol = predict_volume(
        part_dir, ModelSpec(args.model, args.layers, args.hidden), "graph", StrategyOptions()
    )
    calls = [
        {
            "layer": f.key,
            "direction": f.direction,
            "max_bytes_per_peer": int(f.bytes().max()),
            "measured_ms": 1000
            * sum(t for (k, d, _), t in measured.items() if (k, d) == (f.key, f.direction)),
            **{f"{n}_ms": 1000 * net.exchange_time(f.bytes()) for n, net in nets.items()},
        }
        for f in vol.flows
    ]
    transfer = sum(measured.values())
    predicted = {n: net.epoch_time(vol) for n, net in nets.items()}
    return {
        "parts": nproc,
        "bytes_per_epoch": vol.total(),
        "predicted_ms": {n: 1000 * t for n, t in predicted.items()},
        "measured_transfer_ms": 1000 * transfer,
        "measured_in_flight_ms": 1000 * statistics.mean(in_flight),
        "measured_exposed_ms": 1000 * statistics.mean(exposed),
        "ratio": {n: t / transfer for n, t in predicted.items()},
        "calls": calls,
    }


def _print_fit(world: int, nets: dict[str, Network], res: dict[str, dict[int, float]]) -> None:
    for size in SIZES:
        model = {n: 1e6 * (world - 1) * float(net.message_time(size)) for n, net in nets.items()}
        print(
            f"  {world} ranks {size:>9} B/peer: idle {1e6 * res['idle'][size]:9.1f} us (line "
            f"{model['line']:9.1f}, ranges {model['ranges']:9.1f}); busy {1e6 * res['busy'][size]:9.1f} us "
            f"(ranges {model['busy']:9.1f})"
        )
    line = nets["line"]
    print(f"{world} ranks, line: latency={1e6 * line.latency:.1f}us bandwidth={line.bandwidth / 1e9:.3f}GB/s")
    for name in ("ranges", "busy"):
        for upper, alpha, beta in nets[name].segments:
            print(
                f"{world} ranks, {name} <= {upper / 2**10:.0f} KiB: latency={1e6 * alpha:.1f}us "
                f"bandwidth={beta / 1e9:.3f}GB/s"
            )


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
    ap.add_argument("--json-out", help="write the fits, micro-benchmark times and validation rows here")
    ap.add_argument(
        "--overlap",
        action="store_true",
        help="validate on overlapped runs (default: --no-overlap, so each exchange's in-flight time is "
        "the transfer, not stretched by computation competing for the cores)",
    )
    args = ap.parse_args()
    fits: dict[int, dict[str, Network]] = {}
    report: dict = {"uptime_before": os.getloadavg(), "calibration": {}, "validation": []}
    for world in sorted({2} | {int(load_meta(d)["num_parts"]) for d in args.partitions}):
        nets, res = calibrate(world, args.repeats)
        fits[world] = nets
        _print_fit(world, nets, res)
        report["calibration"][world] = {"seconds": res, **{n: net.to_dict() for n, net in nets.items()}}
    for part_dir in args.partitions:
        r = validate(part_dir, fits[int(load_meta(part_dir)["num_parts"])], args)
        report["validation"].append(r)
        for c in r["calls"]:
            print(
                f"  {r['parts']} ranks layer {c['layer']} {c['direction']} "
                f"{c['max_bytes_per_peer'] / 2**20:.2f} MiB/peer: "
                f"measured {c['measured_ms']:.1f} ms, line {c['line_ms']:.1f}, ranges {c['ranges_ms']:.1f}, "
                f"busy {c['busy_ms']:.1f}"
            )
        mib = r["bytes_per_epoch"] / 2**20
        pred, ratio = r["predicted_ms"], r["ratio"]
        print(
            f"{r['parts']} ranks, {mib:.1f} MiB/epoch: measured from the last launch "
            f"{r['measured_transfer_ms']:.1f} ms (ranks' in flight {r['measured_in_flight_ms']:.1f} ms, "
            f"exposed {r['measured_exposed_ms']:.1f} ms); predicted (predicted/measured): "
            + ", ".join(f"{n} {pred[n]:.1f} ms ({ratio[n]:.2f})" for n in pred)
        )
    report["uptime_after"] = os.getloadavg()
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
