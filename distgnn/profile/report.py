"""``distgnn profile report``: tables and PNGs of a measured profile or of a sweep.

A profile (``distgnn train --profile-out``) gives: measured bytes per layer and direction, the peer x
peer traffic heatmap, and per-epoch stacked bars of compute / exposed communication / bubble / other.
A sweep directory (``sweep.json``) gives: volume vs P and per-rank memory vs P on log axes, with the
memory of common GPUs as horizontal lines. Figures use matplotlib's headless Agg backend and are written
atomically (temp file + rename).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from distgnn import jsonio
from distgnn.errors import DistGNNError
from distgnn.metrics import human_bytes
from distgnn.profile.predict import load_profile
from distgnn.profile.sweep import SWEEP_FORMAT, SWEEP_VERSION, sweep_table
from distgnn.profile.tables import table

# Per-device memory of common GPUs (vendor datasheets), drawn on the memory-vs-P plot.
GPU_MEMORY = {"T4 16 GB": 16e9, "A10 24 GB": 24e9, "A100 40 GB": 40e9, "H100 80 GB": 80e9}
GIB = 2**30


def report(source: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> tuple[str, list[Path]]:
    """The report text and the PNGs written for a profile file or a sweep directory."""
    src = Path(source)
    if src.is_dir():
        sweep = _load_sweep(src / "sweep.json")
        out = Path(out_dir) if out_dir else src
        return sweep_table(sweep), sweep_plots(sweep, out)
    profile = load_profile(src)
    out = Path(out_dir) if out_dir else src.parent / (src.stem + "-report")
    return profile_text(profile), profile_plots(profile, out)


def _load_sweep(path: Path) -> dict:
    if not path.is_file():
        raise DistGNNError(f"{path.parent} is neither a profile file nor a sweep directory (no sweep.json)")
    return jsonio.read_document(path, SWEEP_FORMAT, SWEEP_VERSION)


# -- measured profile ---------------------------------------------------------------------------------


def epoch_breakdown(profile: dict) -> np.ndarray:
    """[epochs, 4] seconds, mean over ranks: compute, exposed communication, bubble, other."""
    ranks = profile["ranks"]
    n = min(len(r["epochs"]) for r in ranks)
    out = np.zeros((n, 4))
    for r in ranks:
        for i, e in enumerate(r["epochs"][:n]):
            compute, exposed, bubble = e["compute_s"], e["exposed_comm_s"], e.get("bubble_s", 0.0)
            out[i] += [compute, exposed, bubble, max(e["wall_s"] - compute - exposed - bubble, 0.0)]
    return out / len(ranks)


def peer_matrix(profile: dict) -> np.ndarray:
    """Training bytes sent rank -> peer per epoch (mean over epochs)."""
    p = profile["world_size"]
    m = np.zeros((p, p))
    for r in profile["ranks"]:
        for e in r["epochs"]:
            for x in e["exchanges"]:
                if x["direction"] != "eval":
                    m[r["rank"]] += np.asarray(x["sent_bytes"], dtype=np.float64)
    epochs = max(min((len(r["epochs"]) for r in profile["ranks"]), default=1), 1)
    return m / epochs


def layer_bytes(profile: dict) -> dict[tuple[int, str], float]:
    """(layer, direction) -> bytes per epoch summed over ranks (mean over epochs)."""
    acc: dict[tuple[int, str], float] = {}
    epochs = max(min((len(r["epochs"]) for r in profile["ranks"]), default=1), 1)
    for r in profile["ranks"]:
        for e in r["epochs"]:
            for x in e["exchanges"]:
                if x["direction"] != "eval":
                    key = (x["layer"], x["direction"])
                    acc[key] = acc.get(key, 0.0) + sum(x["sent_bytes"]) / epochs
    order = {"fwd": 0, "bwd": 1}
    return dict(sorted(acc.items(), key=lambda kv: (str(kv[0][0]), order.get(kv[0][1], 2))))


def profile_text(profile: dict) -> str:
    cfg = profile.get("config", {})
    head = (
        f"{profile.get('strategy', '?')} on {profile['world_size']} ranks: {cfg.get('model')} "
        f"{cfg.get('layers')} layers, hidden {cfg.get('hidden')}, wire {cfg.get('comm_dtype')}, "
        f"staleness {cfg.get('halo_staleness')}, {len(profile['history'])} epochs"
    )
    br = epoch_breakdown(profile)
    epochs = [
        [i + 1, *(f"{1000 * v:.2f}" for v in row), f"{1000 * row.sum():.2f}"] for i, row in enumerate(br)
    ]
    per_rank = []
    for r in profile["ranks"]:
        es = r["epochs"]
        sent = sum(sum(x["sent_bytes"]) for e in es for x in e["exchanges"] if x["direction"] != "eval")
        per_rank.append(
            [
                r["rank"],
                human_bytes(sent / max(len(es), 1)),
                f"{1000 * sum(e['comm_s'] for e in es) / max(len(es), 1):.2f}",
                f"{1000 * sum(e['exposed_comm_s'] for e in es) / max(len(es), 1):.2f}",
            ]
        )
    layers = [[k[0], k[1], human_bytes(v)] for k, v in layer_bytes(profile).items()]
    return "\n\n".join(
        [
            head,
            table(["epoch", "compute ms", "exposed comm ms", "bubble ms", "other ms", "wall ms"], epochs),
            table(["rank", "sent / epoch", "in flight ms / epoch", "exposed ms / epoch"], per_rank),
            table(["layer", "direction", "bytes / epoch (all ranks)"], layers),
        ]
    )


def profile_plots(profile: dict, out: Path) -> list[Path]:
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    cfg = profile.get("config", {})
    title = (
        f"{profile.get('strategy', '?')} strategy, {profile['world_size']} ranks, {cfg.get('model')} "
        f"{cfg.get('layers')} layers, hidden {cfg.get('hidden')}, {cfg.get('comm_dtype')} wire"
    )

    lb = layer_bytes(profile)
    layers = sorted({k[0] for k in lb}, key=str)
    totals = [sum(v for k, v in lb.items() if k[0] == layer) for layer in layers]
    scale, unit = _unit(max(totals, default=0.0))
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(layers))
    bottom = np.zeros(len(layers))
    for d, label, colour in (
        ("fwd", "forward (rows)", "tab:blue"),
        ("bwd", "backward (gradients)", "tab:orange"),
    ):
        vals = np.array([lb.get((layer, d), 0.0) for layer in layers]) / scale
        ax.bar(x, vals, bottom=bottom, label=label, color=colour)
        bottom += vals
    ax.set_xticks(x, [str(layer) for layer in layers])
    ax.set_xlabel("layer")
    ax.set_ylabel(f"{unit} per epoch (sent, all ranks)")
    ax.set_title(f"Halo bytes per layer and direction\n{title}", fontsize=10)
    ax.legend()
    written.append(_save(fig, out / "bytes_per_layer.png"))

    m = peer_matrix(profile)
    scale, unit = _unit(float(m.max(initial=0.0)))
    m = m / scale
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(m, cmap="viridis")
    ax.set_xlabel("receiving rank")
    ax.set_ylabel("sending rank")
    ticks = np.arange(m.shape[0])
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    if m.shape[0] <= 8:
        for (i, j), v in np.ndenumerate(m):
            text = "-" if i == j else f"{v:.3g}"
            ax.text(j, i, text, ha="center", va="center", color="w" if v < m.max() / 2 else "k", fontsize=8)
    fig.colorbar(im, ax=ax, label=f"{unit} per epoch")
    ax.set_title(f"Peer-to-peer halo traffic (training)\n{title}", fontsize=10)
    written.append(_save(fig, out / "peer_heatmap.png"))

    br = epoch_breakdown(profile) * 1000
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ep = np.arange(1, br.shape[0] + 1)
    bottom = np.zeros(br.shape[0])
    labels = (
        "aggregation kernels",
        "exposed communication (launch + wait)",
        "pipeline bubble (idle)",
        "other (dense layers, loss, optimiser, gradient all-reduce, evaluation)",
    )
    colours = ("tab:green", "tab:red", "tab:gray", "tab:purple")
    for i, (label, colour) in enumerate(zip(labels, colours, strict=True)):
        ax.bar(ep, br[:, i], bottom=bottom, label=label, color=colour)
        bottom += br[:, i]
    walls = br.sum(axis=1)
    if len(walls) > 2 and walls[0] > 2 * walls[1:].max():  # one-off start-up: keep the rest readable
        top = 1.25 * walls[1:].max()
        ax.set_ylim(0, top)
        label = f"epoch 1: {walls[0]:.0f} ms (one-off start-up, clipped)"
        ax.annotate(label, (1.5, 0.97 * top), ha="left", va="top", fontsize=8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("ms per epoch (mean over ranks)")
    ax.set_title(f"Where each epoch's time goes\n{title}", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    written.append(_save(fig, out / "epoch_breakdown.png"))
    return written


# -- sweep ------------------------------------------------------------------------------------------


def sweep_plots(sweep: dict, out: Path) -> list[Path]:
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    rows = sweep["rows"]
    strategies = sorted({r["strategy"] for r in rows})
    m = sweep["model"]
    what = (
        f"{m['model']} {m['layers']} layers, hidden {m['hidden']}, {sweep['options']['comm_dtype']} wire\n"
        f"{sweep['dataset']}"
    )
    written = []

    fig, ax = plt.subplots(figsize=(8, 5))
    _curves(
        ax,
        rows,
        strategies,
        ("total_bytes", "total"),
        ("straggler_bytes", "straggler (busiest rank, sent or received)"),
    )
    _log_p_axes(ax, rows)
    ax.set_ylabel("GiB sent per training epoch")
    ax.set_title(f"Communication volume vs P\n{what}", fontsize=10)
    ax.legend(fontsize=8)
    written.append(_save(fig, out / "volume_vs_parts.png"))

    fig, ax = plt.subplots(figsize=(8, 5))
    _curves(
        ax,
        rows,
        strategies,
        ("max_rank_memory_bytes", "largest rank"),
        ("mean_rank_memory_bytes", "mean rank"),
    )
    for name, cap in GPU_MEMORY.items():
        ax.axhline(cap / GIB, color="0.6", lw=0.8, ls=":")
        ax.annotate(
            name,
            (1.0, cap / GIB),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 2),
            textcoords="offset points",
            ha="right",
            fontsize=7,
            color="0.35",
        )
    _log_p_axes(ax, rows)
    ax.set_ylabel("GiB per rank (estimate)")
    ax.set_title(f"Per-rank memory vs P\n{what}", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    written.append(_save(fig, out / "memory_vs_parts.png"))
    return written


def _curves(
    ax, rows: list[dict], strategies: list[str], solid: tuple[str, str], dashed: tuple[str, str]
) -> None:
    """Per strategy, two byte columns of the sweep rows against P (in GiB): one solid, one dashed."""
    for i, s in enumerate(strategies):  # one colour per strategy, solid and dashed for its two columns
        sel = [r for r in rows if r["strategy"] == s]
        ps = [r["parts"] for r in sel]
        for (key, label), style in ((solid, "o-"), (dashed, "s--")):
            ax.plot(ps, [r[key] / GIB for r in sel], style, color=f"C{i}", label=f"{s}: {label}")


def _log_p_axes(ax, rows: list[dict]) -> None:
    ps = sorted({r["parts"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ps, [str(p) for p in ps])
    ax.minorticks_off()
    ax.set_xlabel("devices P (graph: P parts; pipeline: P stages; hybrid: S stages x P/S parts)")
    ax.grid(True, which="major", alpha=0.3)


def _unit(largest: float) -> tuple[float, str]:
    """The binary unit that shows ``largest`` bytes as a number between 1 and 1024."""
    for scale, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if largest >= scale:
            return float(scale), name
    return 1.0, "B"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    fig.clear()
    import matplotlib.pyplot as plt

    plt.close(fig)
    os.replace(tmp, path)
    return path
