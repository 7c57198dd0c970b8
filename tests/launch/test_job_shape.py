"""One job shape: stages x parts = world, with one rank map, checked once by ``JobShape.of``; every entry
point (``--nproc``, a torchrun worker, the Ray launcher) refuses an impossible shape with the same line,
before any process group or worker exists."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from launch_helpers import REPO, tiny_parts

from distgnn.config import JobShape, ParallelConfig, TrainConfig
from distgnn.errors import DistGNNError

PIPELINE_3 = (
    ["--strategy", "pipeline", "--stages", "2", "--layers", "3"],
    3,
    "--strategy pipeline runs one process per stage: 2 stages need 2 processes, the job has 3",
)
HYBRID_3 = (
    ["--strategy", "hybrid", "--stages", "2", "--layers", "3"],
    3,
    "3 processes cannot run 2 pipeline stages: the process count must be stages x graph parts",
)


def test_the_rank_map_is_stage_major():
    shape = JobShape.of(ParallelConfig(strategy="hybrid", stages=2), 6)
    assert (shape.stages, shape.parts, shape.world) == (2, 3, 6)
    assert [shape.stage_part(r) for r in range(6)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert all(shape.rank(*shape.stage_part(r)) == r for r in range(6))
    with pytest.raises(DistGNNError, match="^rank 6 is outside a job of 6 processes$"):
        shape.stage_part(6)
    assert JobShape.of(ParallelConfig(), 4) == JobShape("graph", 1, 4)
    assert JobShape.of(ParallelConfig(strategy="pipeline", stages=4), 4).parts == 1


@pytest.mark.parametrize("argv, world, message", [PIPELINE_3, HYBRID_3], ids=["pipeline", "hybrid"])
def test_every_entry_point_refuses_a_bad_shape_with_the_same_line(
    argv, world, message, tmp_path, monkeypatch, capsys, run_cli
):
    parts = str(tiny_parts(tmp_path))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    # distgnn train --nproc: the local launcher, before the forkserver or any worker starts
    code, _, err = run_cli(["train", "--partitions", parts, "--nproc", str(world), *argv])
    assert (code, err) == (2, f"distgnn train: error: {message}\n")

    # a torchrun worker: the worker entry, before it joins the process group
    from distgnn.runtime.worker import run_worker

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", str(world))
    flat = dict(strategy=argv[1], stages=2, layers=3, partitions=parts, progress=False)
    assert run_worker(TrainConfig.from_flat(**flat)) == 2
    assert capsys.readouterr().err == f"distgnn train: error: {message}\n"
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name)

    # the Ray launcher, before Ray starts
    spec = importlib.util.spec_from_file_location("ray_train_script", REPO / "launch" / "ray_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(
        sys, "argv", ["ray_train.py", "--workers", str(world), "--", "--partitions", parts, *argv]
    )
    assert module.main() == 2
    assert capsys.readouterr().err == f"launch/ray_train.py: error: {message}\n"
