"""DISTGNN_CPU_ISA: choosing the C++ entry point, errors for ISAs the CPU cannot run, start-up report."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from distgnn.errors import DistGNNError
from distgnn.kernels import CSR, cpu, dropout, gspmm, isa


def test_python_and_extension_agree_on_what_the_cpu_supports():
    ext = cpu.load_extension()
    assert ext.supported_isas() == isa.supported()
    assert isa.supported()[-1] == "baseline"


def test_default_is_the_best_supported(monkeypatch):
    monkeypatch.delenv(isa.ENV_VAR, raising=False)
    assert isa.chosen() == isa.supported()[0]
    assert isa.describe().startswith(f"CPU kernels: {isa.supported()[0]} (best supported; ")


@pytest.mark.parametrize(
    "value, message",
    [("avx1024", "is not an ISA: choose avx512, avx2, baseline"), ("AVX2", "is not an ISA")],
)
def test_unknown_isa_is_an_error(monkeypatch, value, message):
    monkeypatch.setenv(isa.ENV_VAR, value)
    with pytest.raises(DistGNNError, match=re.escape(message)):
        isa.chosen()
    with pytest.raises(DistGNNError, match=re.escape(message)):  # no silent fallback to another impl
        dropout(torch.ones(4), 0.5)


def test_unsupported_isa_is_an_error_in_python_and_in_the_extension(monkeypatch):
    missing = [name for name in isa.ISAS if name not in isa.supported()]
    if not missing:
        pytest.skip("this CPU runs every ISA")
    monkeypatch.setenv(isa.ENV_VAR, missing[0])
    with pytest.raises(DistGNNError, match=f"{isa.ENV_VAR}={missing[0]} cannot run on this CPU"):
        dropout(torch.ones(4), 0.5)
    with pytest.raises(ValueError, match="cannot run on this CPU"):
        cpu.load_extension().set_isa(missing[0])


def test_forced_isa_runs_that_entry_point_and_gives_the_same_results():
    """Each supported entry point computes the same gspmm (sum with register-blocked passes of 128,
    64, 32, 16 features and a tail) and the same dropout bits."""
    ext = cpu.load_extension()
    before = ext.isa()
    g = torch.Generator().manual_seed(0)
    indptr = torch.tensor([0, 3, 3, 7, 12])
    indices = torch.randint(0, 9, (12,), generator=g)
    csr = CSR(indptr, indices, num_src=9)
    x = torch.randn(9, 211, generator=g)  # 128 + 64 + 16 + 3 features
    outs = []
    try:
        for name in ext.supported_isas():
            ext.set_isa(name)
            assert ext.isa() == name
            outs.append((gspmm(csr, x, reduce="mean", impl="cpu"), dropout(x, 0.5, seed=3, impl="cpu")))
    finally:
        ext.set_isa(before)
    ref = gspmm(csr, x, reduce="mean", impl="reference")
    for agg, drop in outs:
        torch.testing.assert_close(agg, ref, rtol=1e-5, atol=1e-5)
        assert torch.equal(drop, outs[0][1])


def test_train_prints_the_isa_once_and_rejects_an_unsupported_one(tmp_path):
    from distgnn.data.synthetic import synthetic_graph
    from distgnn.partitioning import partition_graph

    graph = synthetic_graph(num_nodes=60, num_edges=300, num_features=4, num_classes=2, seed=1)
    partition_graph(graph, 1, tmp_path / "p1", progress=False)
    train = [
        sys.executable,
        "-m",
        "distgnn.cli",
        "train",
        "--partitions",
        str(tmp_path / "p1"),
        "--epochs",
        "1",
    ]
    env_ok = {"DISTGNN_CPU_ISA": "baseline", "PATH": "/usr/bin:/bin"}
    res = subprocess.run(train, capture_output=True, text=True, env=env_ok, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("CPU kernels: baseline (forced by DISTGNN_CPU_ISA;") == 1
    res = subprocess.run(
        train, capture_output=True, text=True, env={**env_ok, "DISTGNN_CPU_ISA": "sse9"}, timeout=300
    )
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "distgnn train: error: DISTGNN_CPU_ISA='sse9' is not an ISA: choose avx512, avx2, baseline"
    )
