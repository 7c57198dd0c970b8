"""`distgnn info DIR`: what a partition directory holds and how good the split is."""

from __future__ import annotations

import argparse
from typing import Any

from distgnn import jsonio

EPILOG = """\
examples:
  distgnn info runs/demo-parts
  distgnn info runs/demo-parts --verify
  distgnn info runs/demo-parts --json | jq .quality
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe a partition directory (sizes, method, quality per part)",
        description="Print a partition directory's metadata and its quality report as a table.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", metavar="DIR", help="partition directory written by `distgnn partition`")
    parser.add_argument("--json", action="store_true", help="print meta.json (without checksums) as JSON")
    parser.add_argument("--verify", action="store_true", help="also check every file's sha256 checksum")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from distgnn.partitioning import load_meta, load_part

    meta = load_meta(args.dir)
    verified = None
    if args.verify:
        for p in range(int(meta["num_parts"])):
            load_part(args.dir, p, mmap=True, verify=True)
        verified = len(meta["checksums"])
    if args.json:
        shown = {k: v for k, v in meta.items() if k != "checksums"}
        if verified is not None:
            shown["verified_files"] = verified
        print(jsonio.dumps(shown, indent=2))
    else:
        print(render(meta, args.dir, verified))
    return 0


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Right-aligned columns sized to their widest cell."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows]]


def render(meta: dict[str, Any], path: str, verified: int | None = None) -> str:
    q = meta["quality"]
    how = meta["method"]
    if meta.get("objective"):
        how += f", objective {meta['objective']}"
    if meta.get("seed") is not None:
        how += f", seed {meta['seed']}"
    lines = [
        f"partition   {path}",
        f"format      {meta['format']} v{meta['version']} ({meta.get('created_by', 'unknown writer')})",
        f"dataset     {meta['dataset']}: {meta['num_nodes']:,} nodes, {meta['num_edges']:,} edges, "
        f"{meta['feat_dim']} features, {meta['num_classes']} classes",
        f"method      {how}",
        f"parts       {meta['num_parts']}",
        f"edge cut    {q['edge_cut']:,} ({100 * q['edge_cut_fraction']:.2f}% of edges)",
        f"halo        volume {q['halo_volume']:,} rows per layer, "
        f"replication factor {q['replication_factor']:.3f}",
        f"balance     nodes {_ratio(q['node_balance'])}, edges {_ratio(q['edge_balance'])}, "
        f"train nodes {_ratio(q['train_balance'])} (max/mean)",
    ]
    if "timings_s" in meta:
        lines.append("timings     " + ", ".join(f"{k} {v:.2f}s" for k, v in meta["timings_s"].items()))
    if verified is not None:
        lines.append(f"checksums   OK ({verified} files)")
    header = ["part", "node range", "owned", "halo", "in-edges", "cut in-edges", "send rows", "train"]
    rows = []
    for p, (stats, sizes, rng) in enumerate(
        zip(q["parts"], meta["part_sizes"], meta["node_ranges"], strict=True)
    ):
        rows.append(
            [
                str(p),
                f"[{rng[0]:,}, {rng[1]:,})",
                f"{stats['n_owned']:,}",
                f"{stats['n_halo']:,}",
                f"{stats['n_edges']:,}",
                f"{stats['n_cut']:,}",
                f"{sizes['n_send']:,}",
                f"{stats['n_train']:,}",
            ]
        )
    return "\n".join([*lines, "", *table(header, rows)])
