"""HaloPropagation on 2-4 gloo ranks equals the single-process result on the whole graph.

One process group per world size runs every configuration (norms x overlap, bf16 wire, GAT) and
returns outputs, input gradients and measured bytes; the assertions compare them here with the plain
torch oracle and with the analytic halo volume.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import random_graph, ref_aggregate, ref_attend, run_ranks, split_graph

from distgnn.comm.layout import ProcessLayout
from distgnn.comm.volume import analytic_bytes
from distgnn.errors import DistGNNError
from distgnn.models.masks import MaskSeeds, attention_site
from distgnn.parallel.halo_prop import HaloPropagation

N, E, F_IN, HEADS, D = 48, 220, 5, 2, 3
SLOPE = 0.2
ATTN_DROP, MASK_SEEDS = 0.5, MaskSeeds(run_seed=5, step=2)  # attention dropout: layer key 1 of step 2
IMPL = "reference"
CONFIGS = [(norm, overlap, "f32") for norm in ("gcn", "mean", "sum") for overlap in (True, False)]
CONFIGS += [("gcn", True, "bf16"), ("mean", False, "bf16")]
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def _inputs(seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return {
        "h": f(N, F_IN),
        "r": f(N, F_IN),
        "z": f(N, HEADS, D),
        "a_src": f(N, HEADS),
        "a_dst": f(N, HEADS),
        "rz": f(N, HEADS, D),
    }


def _leaf(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, requires_grad=True)


def _run_rank(layout: ProcessLayout, parts: list, inputs: dict, part_dir: str | None) -> dict:
    part = parts[layout.rank]
    rows = part.orig_ids
    inp = {k: v[rows] for k, v in inputs.items()}
    res: dict = {"halo": part.n_halo}
    for norm, overlap, wire in CONFIGS:
        gp = HaloPropagation(part, layout, overlap=overlap, comm_dtype=DTYPES[wire], kernel_impl=IMPL)
        h = _leaf(inp["h"])
        out = gp.aggregate(h, key=0, norm=norm)
        (out * torch.from_numpy(inp["r"])).sum().backward()
        res[(norm, overlap, wire)] = (out.detach().numpy(), h.grad.numpy(), gp.counters.bytes_sent())
        with torch.no_grad():  # evaluation: same values, counted apart from training traffic
            assert torch.equal(gp.aggregate(h, key=0, norm=norm), out.detach())
        res[(norm, overlap, wire, "eval")] = gp.counters.bytes_sent(direction="eval")
    for wire in ("f32", "bf16"):
        gp = HaloPropagation(part, layout, comm_dtype=DTYPES[wire], kernel_impl=IMPL)
        z, a_src, a_dst = _leaf(inp["z"]), _leaf(inp["a_src"]), _leaf(inp["a_dst"])
        out = gp.attend(z, a_src, a_dst, key=1, negative_slope=SLOPE)
        (out * torch.from_numpy(inp["rz"])).sum().backward()
        grads = (z.grad.numpy(), a_src.grad.numpy(), a_dst.grad.numpy())
        res[("gat", wire)] = (out.detach().numpy(), grads, gp.counters.bytes_sent())
    gp = HaloPropagation(part, layout, kernel_impl="auto")  # attention dropout, on the kernels users run
    gp.seeds = MASK_SEEDS
    z, a_src, a_dst = _leaf(inp["z"]), _leaf(inp["a_src"]), _leaf(inp["a_dst"])
    out = gp.attend(z, a_src, a_dst, key=1, negative_slope=SLOPE, dropout=ATTN_DROP)
    (out * torch.from_numpy(inp["rz"])).sum().backward()
    res["gat-drop"] = (out.detach().numpy(), (z.grad.numpy(), a_src.grad.numpy(), a_dst.grad.numpy()))
    if part_dir is not None:  # a real partition directory, loaded by each rank
        from distgnn.partitioning import load_part

        gp = HaloPropagation.from_partition_dir(part_dir, layout, kernel_impl=IMPL)
        rows_dir = np.asarray(load_part(part_dir, layout.rank).orig_ids)
        h = torch.from_numpy(inputs["h"][rows_dir])
        res["dir"] = (rows_dir, gp.aggregate(h, key=0, norm="gcn").numpy())
    return res


def _reference(graph, inputs: dict) -> dict:
    out = {}
    for norm in ("gcn", "mean", "sum"):
        h = _leaf(inputs["h"])
        o = ref_aggregate(graph, h, norm)
        (o * torch.from_numpy(inputs["r"])).sum().backward()
        out[norm] = (o.detach().numpy(), h.grad.numpy())
    z, a_src, a_dst = _leaf(inputs["z"]), _leaf(inputs["a_src"]), _leaf(inputs["a_dst"])
    o = ref_attend(graph, z, a_src, a_dst, SLOPE)
    (o * torch.from_numpy(inputs["rz"])).sum().backward()
    out["gat"] = (o.detach().numpy(), (z.grad.numpy(), a_src.grad.numpy(), a_dst.grad.numpy()))
    z, a_src, a_dst = _leaf(inputs["z"]), _leaf(inputs["a_src"]), _leaf(inputs["a_dst"])
    seed = MASK_SEEDS.key(attention_site(1), torch.arange(N)).seed
    o = ref_attend(graph, z, a_src, a_dst, SLOPE, dropout=ATTN_DROP, seed=seed)
    (o * torch.from_numpy(inputs["rz"])).sum().backward()
    out["gat-drop"] = (o.detach().numpy(), (z.grad.numpy(), a_src.grad.numpy(), a_dst.grad.numpy()))
    return out


def _close(got: np.ndarray, want: np.ndarray, rel: float) -> None:
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)
    assert err <= rel, f"relative error {err:.3g} > {rel:g}"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_graph_parallel_matches_single_process(world_size: int, tmp_path) -> None:
    graph = random_graph(N, E, F_IN, seed=world_size)
    parts = split_graph(graph, world_size)
    inputs = _inputs()
    part_dir = None
    if world_size == 2:
        from distgnn.partitioning import partition_graph

        part_dir = str(tmp_path / "parts")
        partition_graph(graph, 2, part_dir, method="random", progress=False)
    results = run_ranks(_run_rank, world_size, parts, inputs, part_dir, timeout=80)
    want = _reference(graph, inputs)
    halo_sizes = [r["halo"] for r in results]
    assert sum(halo_sizes) > 0

    for norm, overlap, wire in CONFIGS:
        rel = 1e-5 if wire == "f32" else 2e-2
        for p, r in enumerate(results):
            out, grad, _ = r[(norm, overlap, wire)]
            rows = parts[p].orig_ids
            _close(out, want[norm][0][rows], rel)
            _close(grad, want[norm][1][rows], rel)
        measured = sum(r[(norm, overlap, wire)][2] for r in results)
        assert measured == analytic_bytes(halo_sizes, [F_IN], wire_dtype=DTYPES[wire], backward=True)
        eval_bytes = sum(r[(norm, overlap, wire, "eval")] for r in results)
        assert eval_bytes == analytic_bytes(halo_sizes, [F_IN], wire_dtype=DTYPES[wire], backward=False)

    f32 = analytic_bytes(halo_sizes, [HEADS * D + HEADS])
    assert analytic_bytes(halo_sizes, [HEADS * D + HEADS], wire_dtype=torch.bfloat16) * 2 == f32
    for wire, rel in (("f32", 1e-5), ("bf16", 3e-2)):
        assert sum(r[("gat", wire)][2] for r in results) == (f32 if wire == "f32" else f32 // 2)
        for p, r in enumerate(results):
            out, grads, _ = r[("gat", wire)]
            rows = parts[p].orig_ids
            _close(out, want["gat"][0][rows], rel)
            for got, full in zip(grads, want["gat"][1], strict=True):
                _close(got, full[rows], rel)
    for p, r in enumerate(results):  # attention dropout draws the single-process masks on every rank
        out, grads = r["gat-drop"]
        rows = parts[p].orig_ids
        _close(out, want["gat-drop"][0][rows], 1e-5)
        assert not np.allclose(out, want["gat"][0][rows], rtol=1e-2)  # the masks did drop something
        for got, full in zip(grads, want["gat-drop"][1], strict=True):
            _close(got, full[rows], 1e-5)

    if part_dir is not None:
        for rows, out in (r["dir"] for r in results):
            _close(out, ref_aggregate(graph, torch.from_numpy(inputs["h"]), "gcn").numpy()[rows], 1e-5)


def test_single_process_engine_and_errors(tmp_path) -> None:
    graph = random_graph(N, E, F_IN, seed=1)
    (part,) = split_graph(graph, 1)
    layout = ProcessLayout.single()
    gp = HaloPropagation(part, layout, kernel_impl=IMPL)
    h = torch.from_numpy(_inputs()["h"][part.orig_ids])
    want = ref_aggregate(graph, torch.from_numpy(_inputs()["h"]), "mean").numpy()[part.orig_ids]
    _close(gp.aggregate(h, key=0, norm="mean").numpy(), want, 1e-6)
    assert gp.counters.bytes_sent() == 0
    with pytest.raises(DistGNNError, match="unknown aggregation norm 'max'; choose one of gcn, mean, sum"):
        gp.aggregate(h, key=0, norm="max")  # type: ignore[arg-type]
    with pytest.raises(DistGNNError, match=f"h has 3 rows but this process owns {N} nodes"):
        gp.aggregate(h[:3], key=0, norm="sum")
    with pytest.raises(
        DistGNNError, match="staleness must be 0 \\(exact\\) or 1 \\(one epoch stale\\), got 2"
    ):
        HaloPropagation(part, layout, staleness=2)
    two = split_graph(graph, 2)
    with pytest.raises(
        DistGNNError, match="part 0 belongs to a 2-part partition but the job has 1 processes"
    ):
        HaloPropagation(two[0], layout)

    from distgnn.partitioning import partition_graph

    part_dir = tmp_path / "p4"
    partition_graph(graph, 4, part_dir, method="random", progress=False)
    msg = (
        f"partition directory {part_dir} has 4 parts but the job has 1 processes; "
        "run with 4 processes or re-partition with --parts 1"
    )
    with pytest.raises(DistGNNError, match=msg.replace("(", "\\(")):
        HaloPropagation.from_partition_dir(part_dir, layout)
