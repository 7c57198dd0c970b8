"""Small graphs and comparison helpers shared by the kernel tests."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from distgnn.kernels import CSR


def random_graph(n: int, e: int, seed: int, num_src: int | None = None) -> CSR:
    g = torch.Generator().manual_seed(seed)
    s = n if num_src is None else num_src
    src = torch.randint(0, s, (e,), generator=g)
    dst = torch.randint(0, n, (e,), generator=g)
    return CSR.from_edges(src, dst, n, s)


def graph(name: str) -> CSR:
    """Named test graphs covering the odd cases."""
    if name == "random":
        return random_graph(40, 200, 1)
    if name == "empty_rows":  # rows 0..9 have no in-edges; nodes 30..39 are isolated
        g = torch.Generator().manual_seed(2)
        src = torch.randint(10, 30, (120,), generator=g)
        dst = torch.randint(10, 30, (120,), generator=g)
        return CSR.from_edges(src, dst, 40)
    if name == "single":  # one node with a self-loop
        return CSR(torch.tensor([0, 1]), torch.tensor([0]), 1)
    if name == "single_empty":  # one node, no edges
        return CSR(torch.tensor([0, 0]), torch.tensor([], dtype=torch.int64), 1)
    if name == "duplicates":  # every edge appears twice or three times
        base = random_graph(15, 40, 3)
        rows = base.row_ids()
        src = torch.cat([base.indices, base.indices, base.indices[:10]])
        dst = torch.cat([rows, rows, rows[:10]])
        return CSR.from_edges(src, dst, 15)
    if name == "powerlaw":  # Zipf-like in-degrees: a few hubs with most of the edges
        g = torch.Generator().manual_seed(4)
        n = 120
        p = 1.0 / torch.arange(1, n + 1, dtype=torch.float64) ** 1.5
        dst = torch.multinomial(p, 600, replacement=True, generator=g)
        src = torch.randint(0, n, (600,), generator=g)
        return CSR.from_edges(src, dst, n)
    if name == "bipartite":  # 25 destinations, 33 sources
        return random_graph(25, 150, 5, num_src=33)
    if name == "hubs":  # hub rows whose edge loops run many steps (> 2 x EDGES, and > 1000), empty rows
        g = torch.Generator().manual_seed(6)
        degrees = torch.tensor([0, 1100, 40, 0, 70, 3, 33, 0])
        dst = torch.repeat_interleave(torch.arange(8), degrees)
        src = torch.randint(0, 24, (dst.numel(),), generator=g)  # few sources: a small transposed CSR
        return CSR.from_edges(src, dst, 8, 24)
    raise ValueError(name)


GRAPHS = ["random", "empty_rows", "single", "single_empty", "duplicates", "powerlaw", "bipartite", "hubs"]


# Per-element tolerances: |actual - expected| <= RTOL * (|expected| + magnitude) + ATOL, where
# ``magnitude`` bounds the sum of |terms| behind each element (cancellation makes |expected| alone too
# strict) and RTOL covers one bf16 rounding of the output plus a few of intermediates (2^-9 each).
RTOL = {torch.float32: 3e-5, torch.bfloat16: 2.0**-7}
ATOL = 1e-6


def assert_close(
    actual: torch.Tensor | None,
    expected: torch.Tensor | None,
    dtype: torch.dtype,
    what: str,
    magnitude: torch.Tensor | None = None,
) -> None:
    """Compare ``actual`` (in ``dtype``) element by element with ``expected`` computed in float32."""
    assert (actual is None) == (expected is None), what
    if actual is None:
        return
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype} != {dtype}"
    a, e = actual.detach().float(), expected.detach().float()
    m = e.abs() if magnitude is None else e.abs() + magnitude.detach().float().abs()
    bound = RTOL[dtype] * m + ATOL
    err = (a - e).abs()
    bad = ~(err <= bound)  # also catches NaN
    if bad.any():
        k = int(bad.flatten().nonzero()[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {a.numel()} elements out of tolerance, first at flat index {k}: "
            f"actual {a.flatten()[k].item()}, expected {e.flatten()[k].item()}, "
            f"bound {bound.flatten()[k].item()}"
        )


def triton_cpu_ok() -> bool:
    return importlib.util.find_spec("triton") is not None and os.environ.get("TRITON_INTERPRET") == "1"


needs_triton_interp = pytest.mark.skipif(
    not triton_cpu_ok(), reason="triton not installed or TRITON_INTERPRET!=1"
)
