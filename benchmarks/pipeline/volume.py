"""Bytes per epoch of graph-parallel, pipeline and hybrid training, measured, next to the analytic figure.

deepgcn (hidden 64) on the built-in synthetic graph, 4 processes each: graph (4 parts), pipeline (4
stages over the whole graph, 8 chunks) and hybrid (2 stages x 2 parts, 8 chunks). Measured: the
``comm_bytes`` of a training epoch (``--metrics-out``). Analytic: graph and the hybrid's stages move every
halo row once per layer forward and once back (float32, 64 wide); every stage boundary moves all of a
part's rows forward and their gradients back.

    python benchmarks/pipeline/volume.py --layers 4,8,16,32
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HIDDEN = 64
RUNS = {  # name -> (parts, arguments)
    "graph": (4, ["--nproc", "4"]),
    "pipeline": (1, ["--nproc", "4", "--strategy", "pipeline", "--stages", "4", "--chunks", "8"]),
    "hybrid": (2, ["--nproc", "4", "--strategy", "hybrid", "--stages", "2", "--chunks", "8"]),
}


def distgnn(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "distgnn", *args], check=True, stdout=subprocess.DEVNULL)


def analytic(meta: dict, layers: int, stages: int) -> int:
    """Halo rows x 64 floats x 2 directions per layer, plus (stages - 1) boundaries of all rows x 2."""
    halo = sum(s["n_halo"] for s in meta["part_sizes"])
    nodes = sum(s["n_owned"] for s in meta["part_sizes"])
    return 4 * HIDDEN * 2 * (halo * layers + nodes * (stages - 1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", default="4,8,16,32")
    p.add_argument("--dataset", default="synthetic")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        metas = {}
        for parts in (1, 2, 4):
            out = f"{tmp}/p{parts}"
            distgnn("partition", "--dataset", args.dataset, "--parts", str(parts), "--out", out)
            metas[parts] = json.loads(Path(out, "meta.json").read_text())
        for layers in map(int, args.layers.split(",")):
            row = {"layers": layers}
            for name, (parts, extra) in RUNS.items():
                metrics = Path(tmp) / "m.jsonl"
                distgnn(
                    "train", "--partitions", f"{tmp}/p{parts}", *extra, "--model", "deepgcn", "--layers",
                    str(layers), "--hidden", str(HIDDEN), "--epochs", "2", "--eval-every", "2",
                    "--metrics-out", str(metrics), "--no-progress",
                )  # fmt: skip
                measured = json.loads(metrics.read_text().splitlines()[-1])["comm_bytes"]
                stages = {"graph": 1, "pipeline": 4, "hybrid": 2}[name]
                halo_layers = 0 if name == "pipeline" else layers
                row[name] = measured
                row[f"{name}_analytic"] = analytic(metas[parts], halo_layers, stages)
            row["graph/pipeline"] = row["graph"] / row["pipeline"]
            rows.append(row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
