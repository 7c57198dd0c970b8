"""Worker functions for the multi-process training tests (module level, so spawn can pickle them)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from distgnn.comm.layout import ProcessLayout
from distgnn.config import TrainConfig
from distgnn.runtime.worker import train_partition


def train_once(layout: ProcessLayout, part_dir: str, **overrides: Any) -> dict:
    """Train one configuration on this rank's part; return history, parameters and the part's halo size."""
    cfg = TrainConfig.from_flat(**({"progress": False} | overrides))
    result, strategy = train_partition(cfg, part_dir, layout)
    # The parameters this rank updates (a pipeline stage owns its layers'; graph ranks own all).
    owned = {id(p) for p in strategy.attach(result.model)}
    params = {
        k: v.detach().cpu().numpy().copy() for k, v in result.model.named_parameters() if id(v) in owned
    }
    return {
        "history": result.history,
        "summary": result.summary,
        "params": params,
        "n_halo": strategy.prop.part.n_halo if strategy.name == "graph" else 0,
        "widths": result.model.exchange_widths(),
    }


def train_many(layout: ProcessLayout, part_dir: str, configs: list[dict]) -> list[dict]:
    """Several configurations in one process group (process start-up dominates small tests)."""
    out = []
    for overrides in configs:
        r = train_once(layout, part_dir, **overrides)
        if r["params"] and layout.rank % max(1, layout.world_size // overrides.get("stages", 1)):
            r["params"] = {}  # identical on every rank of a stage; its first rank ships them back
        out.append(r)
    return out


def accuracy_runs(layout: ProcessLayout, runs: list[tuple[str, dict]]) -> list[dict]:
    """(partition dir, overrides) pairs -> final/best-val test accuracy of each (rank 0's view)."""
    out = []
    for part_dir, overrides in runs:
        r = train_once(layout, part_dir, **overrides)
        out.append({"part_dir": part_dir, **overrides, **{k: r["summary"][k] for k in _ACC_KEYS}})
    return out


_ACC_KEYS = ("final_test_acc", "test_acc_at_best_val", "best_val_acc")


def params_rel_error(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Largest per-tensor relative error ||a - b|| / ||b||."""
    worst = 0.0
    for k in b:
        ta, tb = torch.as_tensor(a[k], dtype=torch.float64), torch.as_tensor(b[k], dtype=torch.float64)
        worst = max(worst, float((ta - tb).norm() / tb.norm().clamp(min=1e-30)))
    return worst


def checkpoint_scenario(layout: ProcessLayout, part_dir: str, root: str, base: dict) -> dict:
    """Uninterrupted run vs. (run to the middle with checkpoints, then resume to the end), same group."""
    full = train_once(layout, part_dir, **base)
    ckpt_dir, metrics = f"{root}/ckpt", f"{root}/metrics.jsonl"
    half = base["epochs"] // 2
    common = base | dict(checkpoint_dir=ckpt_dir, checkpoint_every=half, metrics_out=metrics)
    first = train_once(layout, part_dir, **(common | dict(epochs=half)))
    layout.barrier()
    resumed = train_once(layout, part_dir, **(common | dict(resume=True)))
    return {"full": full, "first": first, "resumed": resumed}
