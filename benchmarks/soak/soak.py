"""Soak: a long ``distgnn train --nproc 4`` run on the built-in synthetic graph with periodic checkpoints.

While the job runs, the driver samples each worker's resident memory (``/proc/<pid>/status`` VmRSS, the
rank read from the worker's environment), the newest finished epoch (the ``--metrics-out`` file) and the
checkpoint directory's size. Afterwards it reports, against the issue's targets:

- per-rank RSS growth after warm-up: the last sample against the first one at or after epoch ``--warmup``
  (target < 5 %);
- epoch-time drift: median ``epoch_s`` of the last ``--window`` epochs against epochs
  ``window+1 .. 2*window`` (target within 5 %);
- checkpoint disk use: the largest size seen against ``keep + 1`` sets (a new set is complete before the
  oldest is dropped), and the final size against ``keep`` sets.

    python benchmarks/soak/soak.py                                  # 500 epochs, checkpoints every 50
    python benchmarks/soak/soak.py --epochs 60 --checkpoint-every 10 --window 10 --warmup 10   # a quick check

Linux only (``/proc``). It partitions the synthetic graph into ``runs/`` under ``--workdir`` once, as
``distgnn train`` does, and writes ``soak.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import load1, machine_line, thread_env  # noqa: E402

RSS_LIMIT, DRIFT_LIMIT = 0.05, 0.05


def worker_rss(launcher: int) -> dict[int, int]:
    """rank -> resident bytes of every worker the launcher process started."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            ppid = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("PPid:")))
            if ppid != launcher:
                continue
            env = (entry / "environ").read_bytes().split(b"\0")
            rank = next(int(v[5:]) for v in env if v.startswith(b"RANK="))
            kb = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:"))
        except (OSError, StopIteration, ValueError):
            continue  # not a worker (yet), or it just exited
        out[rank] = kb * 1024
    return out


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def epochs_done(metrics: Path) -> int:
    try:
        return metrics.read_text().count("\n")
    except OSError:
        return 0


def run(args: argparse.Namespace, out: Path) -> tuple[list[dict], int]:
    """Train while sampling; the samples and the job's exit code."""
    ckpt_dir, metrics = out / "ckpt", out / "metrics.jsonl"
    cmd = [sys.executable, "-m", "distgnn", "train", "--nproc", str(args.nproc), "--epochs", str(args.epochs)]
    cmd += ["--checkpoint-dir", str(ckpt_dir), "--checkpoint-every", str(args.checkpoint_every)]
    cmd += ["--keep-checkpoints", str(args.keep), "--metrics-out", str(metrics), "--no-progress"]
    cmd += args.train_args
    threads = max(1, (os.cpu_count() or 1) // args.nproc)
    proc = subprocess.Popen(cmd, cwd=args.workdir, env=thread_env(threads))
    samples = []
    while proc.poll() is None:
        rss = worker_rss(proc.pid)
        if rss:
            samples.append(
                {
                    "t": time.time(),
                    "epoch": epochs_done(metrics),
                    "rss": rss,
                    "ckpt_bytes": dir_bytes(ckpt_dir),
                }
            )
        time.sleep(args.sample_s)
    return samples, proc.returncode


def summarize(args: argparse.Namespace, out: Path, samples: list[dict]) -> dict:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    times = [r["epoch_s"] for r in records]
    w = args.window
    early, late = statistics.median(times[w : 2 * w]), statistics.median(times[-w:])
    after = [s for s in samples if s["epoch"] >= args.warmup]
    ranks = sorted({r for s in after for r in s["rss"]})
    growth = {}
    for rank in ranks:
        series = [s["rss"][rank] for s in after if rank in s["rss"]]
        growth[rank] = {"warm_mb": series[0] / 2**20, "last_mb": series[-1] / 2**20,
                        "max_mb": max(series) / 2**20, "growth": series[-1] / series[0] - 1}  # fmt: skip
    ckpt_dir = out / "ckpt"
    sets = sorted(p for p in ckpt_dir.glob("epoch-*") if p.is_dir())
    set_bytes = dir_bytes(sets[-1]) if sets else 0
    peak = max((s["ckpt_bytes"] for s in samples), default=0)
    return {
        "machine": machine_line(), "load1_end": load1(), "epochs": len(records), "nproc": args.nproc,
        "checkpoint_every": args.checkpoint_every, "keep": args.keep, "samples": len(samples),
        "rss": growth, "rss_growth_max": max((g["growth"] for g in growth.values()), default=float("nan")),
        "epoch_s_early": early, "epoch_s_late": late, "drift": late / early - 1,
        "drift_windows": [f"{w + 1}-{2 * w}", f"{len(times) - w + 1}-{len(times)}"],
        "ckpt_set_bytes": set_bytes, "ckpt_peak_bytes": peak, "ckpt_final_bytes": dir_bytes(ckpt_dir),
        "ckpt_sets_final": len(sets),
    }  # fmt: skip


def report(s: dict) -> None:
    ok = lambda good: "PASS" if good else "MISS"  # noqa: E731
    mb = lambda n: f"{n / 2**20:.2f} MB"  # noqa: E731
    print(f"{s['machine']}; load average at the end {s['load1_end']:.1f}")
    for rank, g in s["rss"].items():
        print(
            f"rank {rank}: RSS {g['warm_mb']:.1f} MB after warm-up -> {g['last_mb']:.1f} MB at the end "
            f"(max {g['max_mb']:.1f}), growth {100 * g['growth']:+.2f}%"
        )
    worst = s["rss_growth_max"]
    print(f"RSS growth (worst rank) {100 * worst:+.2f}% (< 5%): {ok(worst < RSS_LIMIT)}")
    early_w, late_w = s["drift_windows"]
    early, late, drift = 1e3 * s["epoch_s_early"], 1e3 * s["epoch_s_late"], s["drift"]
    print(
        f"epoch time: median {early:.2f} ms (epochs {early_w}) -> {late:.2f} ms (epochs {late_w}), "
        f"drift {100 * drift:+.2f}% (within 5%): {ok(abs(drift) <= DRIFT_LIMIT)}"
    )
    bound = (s["keep"] + 1) * s["ckpt_set_bytes"]
    bounded = s["ckpt_peak_bytes"] <= bound and s["ckpt_sets_final"] <= s["keep"]
    print(
        f"checkpoints: one set {mb(s['ckpt_set_bytes'])}, peak {mb(s['ckpt_peak_bytes'])} (bound: keep+1 "
        f"sets {mb(bound)}), final {mb(s['ckpt_final_bytes'])} in {s['ckpt_sets_final']} sets: {ok(bounded)}"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--nproc", type=int, default=4)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--keep", type=int, default=2, help="--keep-checkpoints")
    p.add_argument("--window", type=int, default=50, help="epochs per drift window")
    p.add_argument("--warmup", type=int, default=50, help="RSS growth is measured from this epoch on")
    p.add_argument("--sample-s", type=float, default=0.5, help="seconds between samples")
    p.add_argument("--workdir", default=".", help="where runs/ (the synthetic graph's partitions) lives")
    p.add_argument("--out", default="runs/soak", help="checkpoints, metrics and soak.json")
    p.add_argument("train_args", nargs="*", help="more `distgnn train` options (after --)")
    args = p.parse_args()
    if args.epochs < 3 * args.window or args.warmup >= args.epochs:
        p.error("need --epochs >= 3 x --window and --warmup < --epochs")
    out = (Path(args.workdir) / args.out).resolve()
    if out.exists() and any(out.iterdir()):
        p.error(f"{out} is not empty (the soak starts from a fresh checkpoint directory)")
    out.mkdir(parents=True, exist_ok=True)
    samples, code = run(args, out)
    if code != 0:
        print(f"soak: distgnn train exited {code}", file=sys.stderr)
        return 1
    summary = summarize(args, out, samples)
    (out / "soak.json").write_text(json.dumps(summary, indent=1) + "\n")
    report(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
