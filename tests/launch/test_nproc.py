"""`distgnn train --nproc P`: kernels built in the launcher before workers start (forked from a preloaded
forkserver); no --partitions."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from launch_helpers import BIN, launcher_env

from distgnn.commands import train as train_cmd
from distgnn.commands.options import config_from_args
from distgnn.kernels import cpu
from distgnn.runtime.launcher import launch_local

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from rank_memory import RankPeaks  # noqa: E402  (benchmarks/ is not a package)


def test_the_launcher_builds_before_any_worker_starts(monkeypatch, tmp_path):
    events = []
    monkeypatch.setattr("distgnn.runtime.launcher.resolve_partitions", lambda *a, **k: str(tmp_path))
    monkeypatch.setattr("distgnn.kernels.build.prebuild", lambda kernel: events.append(("prebuild", kernel)))

    monkeypatch.setattr(
        "distgnn.runtime.forkserver.start", lambda: events.append(("forkserver",)) or "forkserver"
    )

    def fake_launch(config, entrypoint):
        events.append(("launch", config.nproc_per_node, config.start_method, entrypoint.__name__))
        return lambda cfg: None

    monkeypatch.setattr("torch.distributed.launcher.api.elastic_launch", fake_launch)
    parser = argparse.ArgumentParser()
    train_cmd.add_parser(parser.add_subparsers())  # the real parser: every option the launcher forwards
    ns = parser.parse_args(["train", "--nproc", "2", "--kernel", "cpu"])
    assert launch_local(config_from_args(ns)) == 0
    # the workers' forkserver starts first, so that its imports overlap the build check
    assert events == [("forkserver",), ("prebuild", "cpu"), ("launch", 2, "forkserver", "worker_main")]


@pytest.mark.skipif(not cpu.is_available(), reason="the C++ extension does not build here")
@pytest.mark.timeout(300)
def test_nproc_2_without_partitions_trains_on_the_synthetic_graph(tmp_path):
    # The default synthetic graph, partitioned once into runs/ by the launcher; workers import the
    # prebuilt kernels (no "compiling" line from anyone) and really exchange halos.
    # The benchmarks' per-rank memory sampler finds both forked workers (by their distgnn-r<RANK> name).
    metrics = tmp_path / "m.jsonl"
    proc = subprocess.Popen(
        [str(BIN / "distgnn"), "train", "--nproc", "2", "--epochs", "2", "--kernel", "cpu", "--no-progress",
         "--metrics-out", str(metrics)],
        cwd=tmp_path, env=launcher_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    sampler = RankPeaks(interval=0.05)
    sampler.start(proc.pid)
    try:
        _, stderr = proc.communicate(timeout=280)
    finally:
        proc.kill()
        peaks = sampler.stop()
    assert proc.returncode == 0, stderr[-3000:]
    assert "compiling" not in stderr
    assert sorted(peaks) == [0, 1] and all(mb > 50 for mb in peaks.values()), peaks
    meta = json.loads((tmp_path / "runs" / "synthetic-2p" / "meta.json").read_text())
    assert meta["num_parts"] == 2
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(r["comm_bytes"] > 0 for r in records)
