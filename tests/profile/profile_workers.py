"""Worker functions for the profiler's multi-process tests (module level, so spawn can pickle them)."""

from __future__ import annotations

import os
from typing import Any

from distgnn import jsonio
from distgnn.comm.layout import ProcessLayout
from distgnn.config import TrainConfig
from distgnn.runtime.worker import train_partition


def profiled_runs(layout: ProcessLayout, part_dir: str, out_dir: str, configs: list[dict]) -> list[Any]:
    """Train each configuration with --profile-out and --metrics-out; rank 0 returns the parsed files."""
    out = []
    for i, overrides in enumerate(configs):
        profile, metrics = (
            os.path.join(out_dir, f"profile-{i}.json"),
            os.path.join(out_dir, f"metrics-{i}.jsonl"),
        )
        cfg = TrainConfig.from_flat(
            **({"progress": False, "profile_out": profile, "metrics_out": metrics} | overrides)
        )
        train_partition(cfg, part_dir, layout)
        layout.barrier()
        if layout.rank == 0:
            with open(profile) as f:
                out.append(jsonio.loads(f.read()))
    return out
