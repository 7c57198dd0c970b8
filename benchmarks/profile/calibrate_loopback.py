"""Calibrate the what-if network model on this machine, then check it against real training runs.

1. Micro-benchmark at a world size P: gloo processes (one thread each) on loopback send one message to
   every peer at once with ``all_to_all_single`` (the call the halo exchange makes), sizes 1 KiB .. 16 MiB.
   Each call is timed like a training exchange: from its last rank's launch to its last rank's
   completion (``distgnn.profile.skew``), median over repeats, every repeat going through all sizes
   in turn (a slow spell of the shared machine hits every size alike). Two passes: ``idle`` (calls
   back to back) and ``busy`` (after its call completes a rank computes, as a training rank computes
   its next layer).
   Fits of ``t = (P - 1) * c(bytes)`` (the busiest rank's P - 1 messages, one after another):
   ``line`` (Hockney's one alpha-beta line, idle pass), ``busy-ranges`` (a line per size range split at
   16 KiB, 256 KiB, 2 MiB), ``idle-interp`` and ``busy-interp`` (a line between each two neighbouring
   measured sizes, ``distgnn.profile.calibration.fit_interpolated``). ``busy-interp`` is the model's
   calibration; ``--network-out DIR`` writes it as ``DIR/loopback-P.json`` for
   ``distgnn profile predict --network DIR/loopback-P.json``.
2. Validation, per ``--partitions`` directory in the order given (repeat them to interleave), each
   calibrated right before it at its own world size (the machine's load then is the run's): train
   ``--epochs`` epochs with ``--profile-out`` (``--no-overlap`` unless ``--overlap``); predict with
   ``distgnn profile predict --network FILE.json`` (the calibrated file) and with every fit; compare with
   the measured transfer time: each exchange call timed from its last rank's launch to its last rank's
   completion (the ranks' skew is not network time). ``typical``: each call's median over the epochs after
   the first, summed (the figure the model predicts); ``mean total``: the mean over those epochs of the
   epoch's sum.

    python benchmarks/profile/calibrate_loopback.py --partitions runs/syn-2 runs/syn-4 runs/syn-2 \
        runs/syn-4 --epochs 11 --json-out runs/whatif.json
    python benchmarks/profile/calibrate_loopback.py --worlds 2 4 --network-out runs/net  # no validation
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

from distgnn.profile.calibration import fit_hockney, fit_interpolated, fit_piecewise
from distgnn.profile.network import Network
from distgnn.profile.network_file import save_network
from distgnn.profile.skew import call_transfer_seconds

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

    spans: dict[int, list[tuple[float, float]]] = {size: [] for size in SIZES}
    sends = {size: torch.ones(size // 4 * (world - 1)) for size in SIZES}
    for _ in range(repeats + 2):  # sizes interleaved: a slow spell of the machine hits every size alike
        for size in SIZES:
            n = size // 4
            splits = [0 if q == rank else n for q in range(world)]  # one message to every peer
            send = sends[size]
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
    """The fits at ``world`` ranks and the median seconds per size they come from (see the module doc).

    On one machine the processes share cores and memory bandwidth, which a calibration at the run's
    own world size absorbs into the per-message costs.
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
    t_idle, t_busy = [idle[s] for s in sizes], [busy[s] for s in sizes]
    alpha, beta = fit_hockney(sizes, t_idle, world - 1)
    nets = {
        "line": Network(beta, alpha, f"loopback-{world}-line"),
        "busy-ranges": fit_piecewise(sizes, t_busy, world - 1, name=f"loopback-{world}-busy-ranges"),
        "idle-interp": fit_interpolated(sizes, t_idle, world - 1, name=f"loopback-{world}-idle-interp"),
        "busy-interp": fit_interpolated(sizes, t_busy, world - 1, name=f"loopback-{world}"),
    }
    return nets, {"idle": idle, "busy": busy}


def measured_times(prof: dict) -> dict:
    """The run's measured communication per epoch (module doc): ``typical``, ``mean_total``, per call."""
    per_epoch = call_transfer_seconds(prof)
    first = min(per_epoch)
    epochs = [c for e, c in sorted(per_epoch.items()) if e != first]
    keys = sorted(epochs[0])
    return {
        "typical_s": sum(statistics.median(c[k] for c in epochs) for k in keys),
        "mean_total_s": statistics.mean(sum(c.values()) for c in epochs),
        "per_call_s": {k: [c[k] for c in epochs] for k in keys},
    }


def predict_cli(part_dir: str, network_file: str, args: argparse.Namespace) -> float:
    """``distgnn profile predict --network FILE.json``'s communication seconds per epoch."""
    cmd = [sys.executable, "-m", "distgnn", "profile", "predict", "--partitions", part_dir]
    cmd += ["--model", args.model, "--layers", str(args.layers), "--hidden", str(args.hidden)]
    cmd += ["--network", network_file, "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(json.loads(out)["what_if"]["comm_s"])


def validate(part_dir: str, nets: dict[str, Network], network_file: str, args: argparse.Namespace) -> dict:
    """Train on ``part_dir`` with a profile; each network's predicted epoch time against the measured one."""
    from distgnn.config import ParallelConfig
    from distgnn.partitioning import load_meta
    from distgnn.profile.exchanges import ModelSpec
    from distgnn.profile.predict import load_profile, predict_volume

    nproc = int(load_meta(part_dir)["num_parts"])
    cmd = [sys.executable, "-m", "distgnn", "train", "--partitions", part_dir, "--nproc", str(nproc)]
    cmd += ["--model", args.model, "--layers", str(args.layers), "--hidden", str(args.hidden)]
    cmd += ["--epochs", str(args.epochs), "--eval-every", str(args.epochs), "--no-progress"]
    cmd += ["--kernel", args.kernel] + ([] if args.overlap else ["--no-overlap"])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        prof_path = os.path.join(tmp, "p.json")
        subprocess.run([*cmd, "--profile-out", prof_path], check=True)
        prof = load_profile(prof_path)
    load_after = os.getloadavg()
    in_flight = [
        statistics.mean(
            sum(x["in_flight_s"] for x in e["exchanges"] if x["direction"] != "eval") for e in r["epochs"][1:]
        )
        for r in prof["ranks"]
    ]
    m = measured_times(prof)
    vol = predict_volume(part_dir, ModelSpec(args.model, args.layers, args.hidden), ParallelConfig())
    calls = [
        {
            "layer": f.key,
            "direction": f.direction,
            "max_bytes_per_peer": int(f.bytes().max()),
            "measured_ms": 1000
            * sum(
                statistics.median(t)
                for (k, d, _), t in m["per_call_s"].items()
                if (k, d) == (f.key, f.direction)
            ),
            **{f"{n}_ms": 1000 * net.exchange_time(f.bytes()) for n, net in nets.items()},
        }
        for f in vol.flows
    ]
    predicted = {n: net.epoch_time(vol) for n, net in nets.items()}
    from_file = predict_cli(part_dir, network_file, args)
    if abs(from_file - predicted["busy-interp"]) > 1e-9 * max(from_file, 1.0):
        raise SystemExit(
            f"--network {network_file} predicted {from_file} s, the fit {predicted['busy-interp']} s"
        )
    return {
        "parts": nproc,
        "command": " ".join([*cmd, "--profile-out", "P.json"]),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "bytes_per_epoch": vol.total(),
        "predicted_ms": {n: 1000 * t for n, t in predicted.items()},
        "measured_typical_ms": 1000 * m["typical_s"],
        "measured_mean_total_ms": 1000 * m["mean_total_s"],
        "measured_in_flight_ms": 1000 * statistics.mean(in_flight),
        "ratio_typical": {n: t / m["typical_s"] for n, t in predicted.items()},
        "ratio_mean_total": {n: t / m["mean_total_s"] for n, t in predicted.items()},
        "per_call_ms": [
            {"layer": k[0], "direction": k[1], "call": k[2], "epochs_ms": [1000 * x for x in t]}
            for k, t in m["per_call_s"].items()
        ],
        "calls": calls,
    }


def _print_fit(world: int, nets: dict[str, Network], res: dict[str, dict[int, float]]) -> None:
    for size in SIZES:
        model = {n: 1e6 * (world - 1) * float(net.message_time(size)) for n, net in nets.items()}
        print(
            f"  {world} ranks {size:>9} B/peer: idle {1e6 * res['idle'][size]:9.1f} us (line "
            f"{model['line']:9.1f}); busy {1e6 * res['busy'][size]:9.1f} us "
            f"(ranges {model['busy-ranges']:9.1f})"
        )
    line = nets["line"]
    print(f"{world} ranks, line: latency={1e6 * line.latency:.1f}us bandwidth={line.bandwidth / 1e9:.3f}GB/s")
    for upper, alpha, beta in nets["busy-ranges"].segments:
        print(
            f"{world} ranks, busy-ranges <= {upper / 2**10:.0f} KiB: latency={1e6 * alpha:.1f}us "
            f"bandwidth={beta / 1e9:.3f}GB/s"
        )


def _print_run(r: dict) -> None:
    for c in r["calls"]:
        print(
            f"  {r['parts']} ranks layer {c['layer']} {c['direction']} "
            f"{c['max_bytes_per_peer'] / 2**20:.2f} MiB/peer: measured {c['measured_ms']:.1f} ms; "
            + ", ".join(f"{n} {c[f'{n}_ms']:.1f}" for n in r["predicted_ms"])
        )
    pred, ratio = r["predicted_ms"], r["ratio_typical"]
    print(
        f"{r['parts']} ranks, {r['bytes_per_epoch'] / 2**20:.1f} MiB/epoch, load "
        f"{r['loadavg_before'][0]:.1f}->{r['loadavg_after'][0]:.1f}: measured typical "
        f"{r['measured_typical_ms']:.1f} ms, mean total {r['measured_mean_total_ms']:.1f} ms "
        f"(ranks' in flight {r['measured_in_flight_ms']:.1f} ms); predicted (/typical, /mean total): "
        + ", ".join(f"{n} {pred[n]:.1f} ms ({ratio[n]:.2f}, {r['ratio_mean_total'][n]:.2f})" for n in pred)
    )


def _calibrate_and_save(world: int, args: argparse.Namespace, out_dir: str, report: dict) -> tuple:
    load = os.getloadavg()
    nets, res = calibrate(world, args.repeats)
    _print_fit(world, nets, res)
    path = os.path.join(out_dir, f"loopback-{world}.json")
    info = {"world_size": world, "repeats": args.repeats, "loadavg": [load, os.getloadavg()], "seconds": res}
    save_network(path, nets["busy-interp"], info)
    report["calibration"].append({**info, **{n: net.to_dict() for n, net in nets.items()}})
    return nets, path


def main() -> None:
    from distgnn.partitioning import load_meta

    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.epilog = __doc__.split("\n", 1)[1]
    ap.add_argument(
        "--partitions", nargs="*", default=[], help="partition dirs to validate on, in this order"
    )
    ap.add_argument("--worlds", nargs="*", type=int, default=[], help="world sizes to calibrate only")
    ap.add_argument("--model", default="gcn")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=11)
    ap.add_argument("--repeats", type=int, default=25, help="calls per message size (median)")
    ap.add_argument("--kernel", default="auto")
    ap.add_argument("--json-out", help="write the fits, micro-benchmark times and validation rows here")
    ap.add_argument("--network-out", help="write each calibrated network as DIR/loopback-P.json")
    ap.add_argument(
        "--overlap",
        action="store_true",
        help="validate on overlapped runs (default: --no-overlap, so each exchange's in-flight time is "
        "the transfer, not stretched by computation competing for the cores)",
    )
    args = ap.parse_args()
    if any(w < 2 for w in args.worlds) or not (args.worlds or args.partitions):
        ap.error("give --partitions DIR ... and/or --worlds P ... (P >= 2)")
    report: dict = {"argv": sys.argv[1:], "calibration": [], "validation": []}
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.network_out or tmp
        for world in args.worlds:
            _calibrate_and_save(world, args, out_dir, report)
        for part_dir in args.partitions:
            nets, path = _calibrate_and_save(int(load_meta(part_dir)["num_parts"]), args, out_dir, report)
            report["validation"].append(validate(part_dir, nets, path, args))
            _print_run(report["validation"][-1])
            _write(args.json_out, report)  # after every run: a long series keeps what it measured
        _write(args.json_out, report)


def _write(path: str | None, report: dict) -> None:
    if path:
        with open(path, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
