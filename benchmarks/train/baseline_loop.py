"""The training loop both baselines share: full-graph, Adam, cross-entropy on the train mask.

torch + numpy only (runs in the DGL/PyG venv, never imports distgnn). Each baseline supplies a model
whose ``forward(x)`` computes all nodes' logits over the whole graph; this times every epoch
(forward + backward + step) and prints one JSON line with the per-epoch times.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402


def parse_args(
    description: str, add_extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The options every baseline shares, plus any its ``add_extra`` registers."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--graph", required=True, help="graph .npz in distgnn's schema")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3, help="leading epochs left out of the median")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    if add_extra is not None:
        add_extra(ap)
    return ap.parse_args()


def layer_dims(in_dim: int, hidden: int, out_dim: int, layers: int) -> list[tuple[int, int]]:
    """(in, out) of each layer: in -> hidden -> ... -> hidden -> out."""
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    return list(zip(dims[:-1], dims[1:], strict=True))


def load(args: argparse.Namespace) -> dict[str, np.ndarray]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return common.load_npz(args.graph)


def train(
    args: argparse.Namespace,
    tool: str,
    model: torch.nn.Module,
    forward: Callable[[], torch.Tensor],
    y: torch.Tensor,
    train_mask: torch.Tensor,
    extra: dict | None = None,
) -> None:
    """Run ``args.epochs`` timed epochs and print {tool, epoch_s: [...], median_epoch_s, ...}."""
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    train_idx = train_mask.nonzero().squeeze(1)
    y_train = y[train_idx]
    model.train()
    times, losses = [], []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = forward()
        loss = loss_fn(logits[train_idx], y_train)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
    kept = times[args.warmup :] or times
    result = {
        "tool": tool,
        "threads": torch.get_num_threads(),
        "epochs": args.epochs,
        "warmup": args.warmup,
        "epoch_s": [round(t, 5) for t in times],
        "median_epoch_s": round(common.median(kept), 5),
        "first_loss": round(losses[0], 5),
        "last_loss": round(losses[-1], 5),
        "torch": torch.__version__,
    }
    result.update(extra or {})
    print(json.dumps(result))
