"""Models of your own, given by import path (``examples/gin.py``, ``examples/graphconv.py``), train
exactly like the built-in ones: 2 and 4 graph-parallel ranks, a 2-stage pipeline with one chunk and the
2x2 hybrid with one chunk equal 1-process training (losses per epoch and parameters after 5 epochs, rel.
1e-5, dropout 0.5); with four chunks the pipeline and hybrid run; the halo and stage bytes each run
measures equal what ``distgnn profile predict`` says from the partition alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import run_ranks
from test_pipeline import _merged, partition_dirs
from train_workers import params_rel_error, train_many

from distgnn.comm.layout import ProcessLayout
from distgnn.config import ParallelConfig
from distgnn.profile.exchanges import ModelSpec
from distgnn.profile.predict import predict_volume

EPOCHS = 5
MODELS = [
    dict(model="examples.gin:build", hidden=8, layers=3),
    dict(model="examples.graphconv:build", hidden=8, layers=3),
]
BASE = dict(epochs=EPOCHS, dropout=0.5, lr=0.01, weight_decay=5e-4, seed=3, eval_every=EPOCHS, kernel="cpu")
LAYOUTS = {  # name -> (processes, parts, options)
    "graph-2": (2, 2, {}),
    "graph-4": (4, 4, {}),
    "pipeline-2": (2, 1, dict(strategy="pipeline", stages=2)),
    "hybrid-2x2": (4, 2, dict(strategy="hybrid", stages=2)),
}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return partition_dirs(tmp_path_factory.mktemp("custom"), (1, 2, 4))


@pytest.fixture(scope="module")
def single(dirs):
    torch.set_num_threads(1)
    return train_many(ProcessLayout.single("cpu"), dirs[1], [BASE | m for m in MODELS])


@pytest.fixture(scope="module")
def runs(dirs):
    """Per layout, one process group: each model with one chunk, then (pipeline, hybrid) with four."""
    out = {}
    for name, (procs, parts, opts) in LAYOUTS.items():
        configs = [BASE | m | opts for m in MODELS]
        if opts:
            configs += [BASE | m | opts | dict(chunks=4, exact_epochs=2) for m in MODELS]
        out[name] = run_ranks(train_many, procs, dirs[parts], configs, timeout=400)
    return out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_custom_models_train_exactly(runs, single, layout):
    results = runs[layout]
    for i, (m, ref) in enumerate(zip(MODELS, single, strict=True)):
        got = results[-1][i]["history"]
        np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in ref["history"]], rtol=1e-5)
        assert params_rel_error(_merged(results, i), ref["params"]) <= 1e-5, f"{m} on {layout}"
        assert set(_merged(results, i)) == set(ref["params"])


@pytest.mark.timeout(900)
@pytest.mark.parametrize("layout", ["pipeline-2", "hybrid-2x2"])
def test_custom_models_run_chunked(runs, layout):
    for i, m in enumerate(MODELS, start=len(MODELS)):
        losses = [r["loss"] for r in runs[layout][-1][i]["history"]]
        assert len(losses) == EPOCHS and all(np.isfinite(losses)), m
        assert runs[layout][-1][i]["history"][-1]["stale_read_frac"] > 0  # history was in use


@pytest.mark.timeout(900)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_predicted_bytes_equal_the_measured_ones(runs, dirs, layout):
    procs, parts, opts = LAYOUTS[layout]
    parallel = ParallelConfig(**opts)
    for i, m in enumerate(MODELS):
        spec = ModelSpec(m["model"], m["layers"], m["hidden"])
        predicted = predict_volume(dirs[parts], spec, parallel).total()
        measured = [r["comm_bytes"] for r in runs[layout][0][i]["history"]]
        assert measured == [predicted] * EPOCHS, f"{m} on {layout}"
