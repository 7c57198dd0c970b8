"""Plain-text tables for the terminal (aligned columns, human-readable bytes)."""

from __future__ import annotations

from collections.abc import Sequence

from distgnn.metrics import human_bytes


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns right-aligned except the first; cells are str()-ed."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    rule = "-" * len(line(cells[0]))
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def volume_report(summary: dict, *, max_peers: int = 16) -> str:
    """The ``profile predict`` text: totals, per rank (with memory), per layer, peer matrix, what-if."""
    out = [
        f"strategy {summary['strategy']} on {summary['world_size']} ranks, per training epoch:",
        f"  total {human_bytes(summary['total_bytes'])} ({summary['total_bytes']} B): "
        f"forward {human_bytes(summary['fwd_bytes'])}, backward {human_bytes(summary['bwd_bytes'])}; "
        f"one evaluation {human_bytes(summary['eval_bytes'])}",
        f"  straggler: rank {summary['straggler']['rank']} "
        f"({human_bytes(summary['straggler']['bytes'])} in its busier direction)",
        "",
    ]
    mem = summary["per_rank_memory_bytes"]
    rows = [
        [
            r,
            human_bytes(s),
            human_bytes(v),
            *(human_bytes(m[k]) for k in ("graph", "features", "activations", "history", "total")),
        ]
        for r, (s, v, m) in enumerate(
            zip(summary["per_rank_bytes"], summary["per_rank_recv_bytes"], mem, strict=True)
        )
    ]
    out.append(
        table(["rank", "sent", "received", "graph", "features", "activations", "history", "memory"], rows)
    )
    out.append("")
    layers = [
        [row["layer"], row["width"], human_bytes(row["fwd_bytes"]), human_bytes(row["bwd_bytes"])]
        for row in summary["per_layer_bytes"]
    ]
    out.append(table(["layer", "width", "forward", "backward"], layers))
    peers = summary.get("peer_bytes")
    if peers is not None and 1 < len(peers) <= max_peers:
        out += ["", "bytes sent, row rank -> column rank:"]
        out.append(
            table(
                ["from\\to", *range(len(peers))],
                [[p, *(human_bytes(b) for b in row)] for p, row in enumerate(peers)],
            )
        )
    if "what_if" in summary:
        w = summary["what_if"]
        net = w["network"]
        link = (
            f"calibrated, {len(net['segments'])} message-size ranges"
            if net.get("segments")
            else f"{net['bandwidth_Bps'] / 1e9:g} GB/s, {net['latency_s'] * 1e6:g} us"
        )
        out += ["", f"on {net['name']} ({link}): communication {1000 * w['comm_s']:.3f} ms per epoch"]
        if "epoch_s" in w:
            out.append(
                f"  predicted epoch {1000 * w['epoch_s']:.3f} ms with the run's overlap "
                f"({1000 * w['epoch_s_no_overlap']:.3f} ms without overlap)"
            )
    return "\n".join(out)
