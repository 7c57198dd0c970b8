"""Write a synthetic graph directory of any size, a chunk at a time (``write_synthetic_dir``).

.venv/bin/python benchmarks/partition/make_graph_dir.py /tmp/g100m --nodes 5e6 --edges 1e8
"""

from __future__ import annotations

import argparse
import time

from distgnn.data.synthetic_dir import write_synthetic_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--nodes", type=float, required=True)
    ap.add_argument("--edges", type=float, required=True, help="directed edges (twice the pairs drawn)")
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--classes", type=int, default=16)
    ap.add_argument("--communities", type=int, help="default: 1 per 50k nodes (blocks of contiguous IDs)")
    ap.add_argument("--gamma", type=float, default=2.5, help="power-law degree exponent (default 2.5)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    nodes, edges = int(args.nodes), int(args.edges)
    t = time.perf_counter()
    write_synthetic_dir(
        args.out,
        num_nodes=nodes,
        num_edges=edges,
        num_features=args.features,
        num_classes=args.classes,
        communities=args.communities or max(args.classes, nodes // 50_000),
        degree_exponent=args.gamma,
        seed=args.seed,
        progress=True,
    )
    print(
        f"wrote {args.out}: {nodes:,} nodes, {edges:,} directed edges drawn, {time.perf_counter() - t:.0f} s"
    )


if __name__ == "__main__":
    main()
