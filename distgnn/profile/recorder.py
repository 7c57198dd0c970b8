"""The measured profile of a training run (``--profile-out``) and its Chrome traces (``--trace``).

:class:`ProfileSession` turns on the comm counters' per-epoch archive (and, with a trace directory, a
``torch.profiler`` session whose named ranges the counters emit), and at the end gathers every rank's
epochs to rank 0, which writes one strict-JSON file atomically. Its schema (``format``
``distgnn-profile``, ``version`` 1) is documented in the README ("Profiling"). Gathering uses plain
byte tensors (JSON text), no pickle. Every rank must call :meth:`finish` (it is a collective).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from distgnn import jsonio
from distgnn.comm.collectives import gather_json
from distgnn.comm.counters import CommCounters

PROFILE_FORMAT = "distgnn-profile"
PROFILE_VERSION = 1


class ProfileSession:
    """Records one run; a no-op when neither ``profile_out`` nor ``trace_dir`` is given."""

    def __init__(
        self,
        counters: CommCounters | None,
        layout: Any,
        *,
        profile_out: str | os.PathLike | None,
        trace_dir: str | os.PathLike | None,
        run_info: dict,
    ) -> None:
        self.counters, self.layout = counters, layout
        self.profile_out, self.trace_dir, self.run_info = profile_out, trace_dir, run_info
        self._prof: torch.profiler.profile | None = None
        if counters is not None and profile_out:
            counters.start_recording()
        if trace_dir:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            if counters is not None:
                counters.trace = True
            self._prof = torch.profiler.profile(activities=activities)
            self._prof.__enter__()

    @classmethod
    def start(cls, cfg: Any, strategy: Any, layout: Any, part_dir: str) -> ProfileSession:
        """The session ``distgnn train`` runs: options and run description from the config."""
        flat = cfg.flat()
        keys = ("model", "layers", "hidden", "heads", "epochs", "comm_dtype", "halo_staleness", "overlap")
        keys += ("stages", "chunks")
        run_info = {
            "strategy": flat["strategy"],
            "partitions": str(part_dir),
            "config": {k: flat[k] for k in keys},
        }
        return cls(
            comm_counters(strategy),
            layout,
            profile_out=flat["profile_out"],
            trace_dir=flat["trace"],
            run_info=run_info,
        )

    def finish(self, history: list[dict]) -> dict | None:
        """Stop tracing, gather every rank's epochs and write the profile on rank 0 (returned there)."""
        if self._prof is not None:
            self._prof.__exit__(None, None, None)
            if self.counters is not None:
                self.counters.trace = False
            out = Path(self.trace_dir)  # type: ignore[arg-type]
            out.mkdir(parents=True, exist_ok=True)
            final = out / f"trace-rank{self.layout.rank}.json"
            tmp = out / f".{final.name}.tmp"
            self._prof.export_chrome_trace(str(tmp))
            os.replace(tmp, final)
        if not self.profile_out or self.counters is None:
            return None
        epochs = self.counters.finish_recording()
        numbers = [r["epoch"] for r in history][-len(epochs) :] if epochs else []
        if len(numbers) == len(epochs):  # this process ran the last len(epochs) epochs of the history
            epochs = [{"epoch": n, **e} for n, e in zip(numbers, epochs, strict=True)]
        mine = {"rank": self.layout.rank, "epochs": epochs}
        ranks = gather_json(mine, self.layout)
        if self.layout.rank != 0:
            return None
        profile = {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "world_size": self.layout.world_size,
            "clock": "cuda-host" if self.layout.device.type == "cuda" else "host",
            **self.run_info,
            "history": history,
            "ranks": ranks,
        }
        jsonio.write_atomic(self.profile_out, profile)
        return profile


def comm_counters(strategy: Any) -> CommCounters | None:
    """The strategy's comm counters (``strategy.counters``, or its propagation's), if it has any."""
    for owner in (strategy, getattr(strategy, "prop", None)):
        counters = getattr(owner, "counters", None)
        if isinstance(counters, CommCounters):
            return counters
    return None
