"""Pipeline and hybrid training on the C++ kernels users get by default (``kernel="cpu"``).

The schedule and history tests (test_pipeline.py, test_hybrid.py) run on the reference kernels; here the
same contracts hold on the ``cpu`` kernels:
- one chunk: pipelines of 2 and 4 stages and the 2x2 hybrid equal 1-rank graph training on the ``cpu``
  kernels (losses per epoch and parameters after 5 epochs, rel. 1e-5), GCN, SAGE, GAT, deepgcn, dropout 0.5;
- four chunks: the same stages equal the plain single-process reference of the chunk/history contract.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from chunk_reference import hybrid_chunks, train_reference
from helpers import run_ranks
from test_pipeline import BASE, CHUNKED, DIST_PARAM_RTOL, MODELS, PARAM_RTOL, _merged, partition_dirs
from train_workers import params_rel_error, train_many

from distgnn.comm.layout import ProcessLayout

CPU = BASE | dict(kernel="cpu")
LAYOUTS = {  # name -> (processes, parts, strategy options)
    "pipeline-2": (2, 1, dict(strategy="pipeline", stages=2)),
    "pipeline-4": (4, 1, dict(strategy="pipeline", stages=4)),
    "hybrid-2x2": (4, 2, dict(strategy="hybrid", stages=2)),
}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return partition_dirs(tmp_path_factory.mktemp("staged-cpu"), (1, 2))


@pytest.fixture(scope="module")
def single(dirs):
    torch.set_num_threads(1)
    return train_many(ProcessLayout.single("cpu"), dirs[1], [CPU | m for m in MODELS])


@pytest.fixture(scope="module")
def staged(dirs):
    """Per layout, one process group: every model with one chunk, then with four."""
    out = {}
    for name, (procs, parts, opts) in LAYOUTS.items():
        configs = [CPU | m | opts | dict(chunks=1) for m in MODELS]
        configs += [CPU | m | CHUNKED | opts for m in MODELS]
        out[name] = run_ranks(train_many, procs, dirs[parts], configs, timeout=400)
    return out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_one_chunk_equals_single_process_on_cpu_kernels(staged, single, layout):
    results = [r[: len(MODELS)] for r in staged[layout]]
    for i, (m, ref) in enumerate(zip(MODELS, single, strict=True)):
        got = results[-1][i]["history"]
        np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in ref["history"]], rtol=1e-5)
        bound = DIST_PARAM_RTOL.get(m["model"], 1e-5)
        assert params_rel_error(_merged(results, i), ref["params"]) <= bound, f"{m} on {layout}"
        assert set(_merged(results, i)) == set(ref["params"])


@pytest.mark.timeout(900)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_four_chunks_equal_the_history_reference_on_cpu_kernels(staged, dirs, layout):
    procs, parts, _ = LAYOUTS[layout]
    chunk_of = hybrid_chunks(dirs[1], dirs[2], CHUNKED["chunks"], BASE["seed"]) if parts == 2 else None
    results = [r[len(MODELS) :] for r in staged[layout]]
    for i, m in enumerate(MODELS):
        ref = train_reference(dirs[1], BASE | m | CHUNKED, chunk_of)
        got = results[-1][i]["history"]
        losses = [r["loss"] for r in got]
        np.testing.assert_allclose(losses, ref["losses"], rtol=1e-5, err_msg=f"{m} on {layout}")
        assert params_rel_error(_merged(results, i), ref["params"]) <= PARAM_RTOL.get(m["model"], 1e-5), m
