"""The planted-community generator: determinism, exact sizes, normal form, homophily, feature signal."""

from __future__ import annotations

import numpy as np
import pytest

from distgnn.data import Graph, synthetic_graph
from distgnn.errors import DistGNNError


def _check_normal_form(g: Graph) -> None:
    n = g.num_nodes
    src, dst = g.edges()
    assert not np.any(src == dst)
    key = dst * n + src
    assert np.all(key[1:] > key[:-1])  # CSR order, no duplicates
    assert np.array_equal(key, np.sort(src * n + dst))  # symmetric


def _same_class(g: Graph) -> float:
    src, dst = g.edges()
    return float(np.mean(g.y[src] == g.y[dst]))


def test_default_is_the_documented_demo_graph():
    g = synthetic_graph()
    assert (g.num_nodes, g.num_edges, g.feat_dim, g.num_classes) == (20_000, 200_000, 64, 8)
    assert g.x.dtype == np.float32 and g.y.dtype == np.int64
    assert _same_class(g) == pytest.approx(0.8, abs=1e-9)
    _check_normal_form(g)


def test_same_seed_same_graph_other_seed_other_graph():
    a, b, c = (synthetic_graph(2000, 12_000, 8, 4, seed=s) for s in (5, 5, 6))
    for field in ("indptr", "indices", "x", "y", "train_mask", "val_mask", "test_mask"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert not np.array_equal(a.indices, c.indices) and not np.array_equal(a.y, c.y)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"degree_exponent": 2.5},
        {"communities": 1},
        {"communities": 12, "homophily": 0.3},
        {"shuffle": False, "homophily": 1.0},
        {"homophily": 0.0},
        {"num_nodes": 100, "num_edges": 3000},  # dense: 30% of all pairs, needs several top-up rounds
    ],
)
def test_exact_edge_count_and_normal_form(kwargs):
    args = {"num_nodes": 3000, "num_edges": 30_001, "num_features": 4, "num_classes": 4, **kwargs}
    g = synthetic_graph(**args)
    assert g.num_edges == args["num_edges"] // 2 * 2
    _check_normal_form(g)
    g.validate()


@pytest.mark.parametrize("homophily", [0.0, 0.35, 0.9])
def test_homophily_is_exact(homophily):
    g = synthetic_graph(4000, 40_000, 4, 5, homophily=homophily)
    assert _same_class(g) == pytest.approx(round(homophily * 20_000) / 20_000, abs=1e-12)


def test_one_community_is_a_uniform_random_graph():
    g = synthetic_graph(4000, 40_000, 4, 4, communities=1)
    assert _same_class(g) == pytest.approx(0.25, abs=0.02)  # labels independent of structure
    assert np.bincount(g.y).tolist() == [1000] * 4
    assert g.in_degree().max() < 30  # Poisson(10) tail, no hubs


def test_degree_exponent_makes_hubs():
    uniform = synthetic_graph(5000, 50_000, 4, 4)
    skewed = synthetic_graph(5000, 50_000, 4, 4, degree_exponent=2.2)
    assert uniform.in_degree().max() < 3 * 10
    assert skewed.in_degree().max() > 20 * 10
    assert np.median(skewed.in_degree()) < 10


def test_shuffle_removes_id_locality():
    ordered = synthetic_graph(2000, 10_000, 4, 4, shuffle=False)
    assert np.all(np.diff(ordered.y) >= 0)  # community blocks are contiguous ID ranges
    shuffled = synthetic_graph(2000, 10_000, 4, 4)
    assert np.bincount(shuffled.y).tolist() == [500] * 4
    assert np.mean(shuffled.y[1:] == shuffled.y[:-1]) < 0.35


def test_split_sizes():
    g = synthetic_graph(2000, 10_000, 4, 5, num_train_per_class=7, num_val=0.1, num_test=300)
    assert np.bincount(g.y[g.train_mask], minlength=5).tolist() == [7] * 5
    assert (int(g.val_mask.sum()), int(g.test_mask.sum())) == (200, 300)
    assert not np.any((g.train_mask & g.val_mask) | (g.train_mask & g.test_mask) | (g.val_mask & g.test_mask))


def _nearest_mean_accuracy(h: np.ndarray, g: Graph) -> float:
    means = np.stack([h[g.train_mask & (g.y == k)].mean(0) for k in range(g.num_classes)])
    dist = ((h[g.test_mask][:, None, :] - means[None]) ** 2).sum(-1)
    return float(np.mean(dist.argmin(1) == g.y[g.test_mask]))


def test_features_carry_class_signal_and_neighbours_add_more():
    g = synthetic_graph(6000, 60_000, 32, 6, feature_noise=4.0, num_train_per_class=200)
    raw = _nearest_mean_accuracy(g.x, g)
    src, dst = g.edges()
    agg = np.zeros_like(g.x)
    np.add.at(agg, dst, g.x[src])
    agg = (agg + g.x) / (g.in_degree()[:, None] + 1)  # one mean-aggregation hop, as a GCN layer does
    hop = _nearest_mean_accuracy(agg, g)
    assert raw > 2.5 / 6  # chance is 1/6
    assert hop > raw + 0.2


def test_noise_free_features_are_the_class_means():
    g = synthetic_graph(500, 2000, 8, 3, feature_noise=0.0)
    for k in range(3):
        rows = g.x[g.y == k]
        assert np.all(rows == rows[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"homophily": 1.5}, "homophily must be in [0, 1], got 1.5"),
        ({"degree_exponent": 2.0}, "degree exponent must be > 2 (or unset for uniform degrees), got 2.0"),
        ({"num_nodes": 0}, "synthetic graph needs at least 1 node, got 0"),
        ({"num_nodes": 10, "num_edges": 100}, "100 edges do not fit in a simple graph of 10 nodes"),
        ({"num_nodes": 10, "num_edges": 80, "homophily": 1.0, "num_classes": 2},
         "cannot place 40 intra-community edges: only 20 node pairs exist; lower homophily"),
        ({"communities": 0}, "communities must be in [1, nodes=100], got 0"),
        ({"feature_noise": -1.0}, "feature noise must be >= 0, got -1.0"),
    ],
)  # fmt: skip
def test_bad_arguments(kwargs, message):
    args = {"num_nodes": 100, "num_edges": 200, "num_features": 2, "num_classes": 2, **kwargs}
    with pytest.raises(DistGNNError) as err:
        synthetic_graph(**args)
    assert str(err.value) == message
