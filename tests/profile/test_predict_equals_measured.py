"""Prediction == measurement, to the byte: graph-parallel training on 2 and 4 ranks, exact and stale
halos, fp32 and bf16 wire, fp32 and bf16-mixed compute, models whose first layer does and does not send
gradients back.

The prediction reads only the partition directory; the measurement is the ``--profile-out`` file of a
real gloo run, compared per rank, per epoch, per layer, per direction and per peer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dist"))
from helpers import run_ranks  # noqa: E402
from profile_workers import profiled_runs  # noqa: E402

from distgnn.config import ParallelConfig  # noqa: E402
from distgnn.data.synthetic import synthetic_graph  # noqa: E402
from distgnn.partitioning import partition_graph  # noqa: E402
from distgnn.profile.exchanges import ModelSpec, layer_exchanges  # noqa: E402
from distgnn.profile.partition_info import PartitionInfo  # noqa: E402
from distgnn.profile.strategies import predictor  # noqa: E402

IN_DIM, CLASSES, EPOCHS = 24, 4, 3
BASE = dict(epochs=EPOCHS, eval_every=EPOCHS, dropout=0.0, kernel="reference", seed=1)
CONFIGS = [
    BASE | dict(model="gcn", hidden=8),  # every layer transforms first: gradients go back everywhere
    BASE | dict(model="gcn", hidden=32, layers=3, halo_staleness=1, comm_dtype="bf16"),  # raw first layer
    BASE | dict(model="gcn", hidden=32, layers=3, comm_dtype="bf16"),
    BASE | dict(model="sage", hidden=8, halo_staleness=1),
    BASE | dict(model="gat", hidden=4, heads=2),
    BASE | dict(model="gcn", hidden=8, precision="bf16-mixed"),  # bf16 rows travel as they are
    BASE | dict(model="sage", hidden=8, precision="bf16-mixed", comm_dtype="fp16"),  # the wire casts
]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    graph = synthetic_graph(
        num_nodes=200,
        num_edges=1200,
        num_features=IN_DIM,
        num_classes=CLASSES,
        num_train_per_class=10,
        seed=5,
    )
    root = tmp_path_factory.mktemp("predict")
    out = {}
    for p in (2, 4):
        out[p] = str(root / f"parts-{p}")
        partition_graph(graph, p, out[p], method="metis", progress=False)
    return out


def predicted(part_dir: str, cfg: dict):
    spec = ModelSpec(cfg["model"], cfg.get("layers", 2), cfg["hidden"], cfg.get("heads", 8))
    info = PartitionInfo.from_dir(part_dir)
    opts = ParallelConfig(
        comm_dtype=cfg.get("comm_dtype", "fp32"),
        halo_staleness=cfg.get("halo_staleness", 0),
        precision=cfg.get("precision", "fp32"),
    )
    return predictor("graph")(info, layer_exchanges(spec, info.feat_dim, info.num_classes), opts, spec)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("world", [2, 4])
def test_graph_prediction_equals_measurement(parts, tmp_path, world):
    profiles = run_ranks(profiled_runs, world, parts[world], str(tmp_path), CONFIGS, timeout=240)[0]
    for cfg, prof in zip(CONFIGS, profiles, strict=True):
        vol = predicted(parts[world], cfg)
        name = f"{cfg} on {world} ranks"
        # Expected sent bytes per (rank, layer, direction) -> per peer, from the prediction's flows.
        expect: dict[tuple[int, int, str], list[int]] = {}
        for f in vol.flows:
            for r in range(world):
                expect[(r, f.key, f.direction)] = f.bytes()[r].tolist()
        assert any(v != [0] * world for v in expect.values()), name
        assert len(prof["ranks"]) == world
        for rank in prof["ranks"]:
            assert [e["epoch"] for e in rank["epochs"]] == list(range(1, EPOCHS + 1)), name
            for e in rank["epochs"]:
                got = {
                    (rank["rank"], x["layer"], x["direction"]): x["sent_bytes"]
                    for x in e["exchanges"]
                    if x["direction"] != "eval"
                }
                assert got == {k: v for k, v in expect.items() if k[0] == rank["rank"]}, name
        # Totals: per rank and over ranks equal what the trainer's own metrics measured per epoch.
        per_rank = [
            sum(sum(x["sent_bytes"]) for x in r["epochs"][0]["exchanges"] if x["direction"] != "eval")
            for r in prof["ranks"]
        ]
        summary = vol.summary()
        assert per_rank == summary["per_rank_bytes"], name
        assert [h["comm_bytes"] for h in prof["history"]] == [summary["total_bytes"]] * EPOCHS, name
        assert summary["fwd_bytes"] + summary["bwd_bytes"] == summary["total_bytes"]
        assert np.asarray(summary["peer_bytes"]).sum() == summary["total_bytes"]
        # The evaluation (last epoch only) sends the forward rows once more.
        evals = [
            sum(sum(x["sent_bytes"]) for x in r["epochs"][-1]["exchanges"] if x["direction"] == "eval")
            for r in prof["ranks"]
        ]
        assert sum(evals) == summary["eval_bytes"] > 0, name
