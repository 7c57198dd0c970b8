"""Seeded synthetic node-classification graphs with planted communities (a stochastic block model).

Nodes are split into ``communities`` equal blocks; a fraction ``homophily`` of the undirected edges join
two nodes of the same block, the rest join two different blocks. Endpoints are uniform within a block, or
with ``degree_exponent`` (gamma > 2) drawn Chung-Lu style from weights ``w_r ~ (r + 1) ** (-1 / (gamma - 1))``
so degrees follow a power law. Classes are communities (community c has class ``c % num_classes``; with
fewer communities than classes, classes are dealt round-robin, so ``communities=1`` is a uniform random
graph with labels independent of structure). Features are the class-mean vector (a standard normal draw
per class) plus Gaussian noise of std ``feature_noise``, float32: the larger the noise, the more a model
must lean on neighbours. ``shuffle`` relabels nodes by a random permutation, so IDs carry no locality.

``num_edges`` counts directed edges of the final normalised graph (symmetric, no duplicates, no
self-loops); the generator hits it exactly (rounded down to even) by topping up and trimming the unique
undirected pairs of each kind, so homophily is exact as well. Everything is vectorised numpy on int64
keys ``lo * N + hi``: 2M nodes / 40M edges / 128 features take ~10-20 s and < 2 GB.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from distgnn.data.graph import Graph
from distgnn.data.normalize import csr_from_sorted_keys, unique_sorted
from distgnn.data.progress import Stages
from distgnn.data.splits import per_class_split
from distgnn.errors import DistGNNError

BATCH = 1 << 22  # endpoints drawn per vectorised batch, to bound temporaries
MAX_ROUNDS = 64


class _Blocks:
    """Equal-size contiguous node blocks and a sampler of endpoints inside a given block."""

    def __init__(self, num_nodes: int, count: int, degree_exponent: float | None) -> None:
        self.count = count
        self.sizes = np.full(count, num_nodes // count, dtype=np.int64)
        self.sizes[: num_nodes % count] += 1
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        # Inverse-CDF sampling of rank r in a block of size s with density ~ (r + 1) ** -a (a < 1).
        self.power = None if degree_exponent is None else 1.0 - 1.0 / (degree_exponent - 1.0)
        if self.power is None:
            mass = self.sizes.astype(np.float64)
        else:
            mass = ((self.sizes + 1.0) ** self.power - 1.0) / self.power
        self.p = mass / mass.sum()

    def choose(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """k block IDs, each with probability proportional to its total weight."""
        if self.count == 1:
            return np.zeros(k, dtype=np.int64)
        return rng.choice(self.count, size=k, p=self.p)

    def node_in(self, rng: np.random.Generator, block: np.ndarray) -> np.ndarray:
        """One node per entry of ``block``, drawn by weight inside that block."""
        size = self.sizes[block]
        u = rng.random(block.shape[0])
        if self.power is None:
            rank = (u * size).astype(np.int64)
        else:
            b = self.power
            top = (size + 1.0) ** b - 1.0
            rank = ((1.0 + u * top) ** (1.0 / b) - 1.0).astype(np.int64)
        np.minimum(rank, size - 1, out=rank)
        return self.starts[block] + rank


def _canonical(u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """Undirected keys ``min * N + max`` with self-loops dropped."""
    keep = u != v
    u, v = u[keep], v[keep]
    return np.minimum(u, v) * n + np.maximum(u, v)


def _unique_pairs(
    target: int, draw: Callable[[int], np.ndarray], rng: np.random.Generator, kind: str
) -> np.ndarray:
    """Exactly ``target`` distinct keys: draw, dedup, top up by the observed yield, trim at random."""
    keys = np.empty(0, dtype=np.int64)
    overdraw = 1.02
    for _ in range(MAX_ROUNDS):
        need = target - keys.shape[0]
        if need <= 0:
            break
        k = int(need * overdraw) + 16
        new = np.concatenate([draw(min(BATCH, k - s)) for s in range(0, k, BATCH)])
        before = keys.shape[0]
        keys = np.concatenate([keys, new])
        del new
        keys.sort()
        keys = unique_sorted(keys)
        gained = keys.shape[0] - before
        overdraw = min(1.05 * k / max(gained, 1), 64.0)
    else:
        raise DistGNNError(
            f"could not place {target} distinct {kind} edges; the requested graph is too dense"
        )
    extra = keys.shape[0] - target
    if extra > 0:
        keys = np.delete(keys, rng.choice(keys.shape[0], size=extra, replace=False))
    return keys


def _check(num_nodes: int, num_edges: int, num_features: int, num_classes: int, communities: int,
           homophily: float, feature_noise: float, degree_exponent: float | None) -> None:  # fmt: skip
    if num_nodes < 1:
        raise DistGNNError(f"synthetic graph needs at least 1 node, got {num_nodes}")
    if num_edges < 0 or num_features < 1 or num_classes < 1:
        raise DistGNNError("synthetic graph needs edges >= 0, features >= 1 and classes >= 1")
    if not 1 <= communities <= num_nodes:
        raise DistGNNError(f"communities must be in [1, nodes={num_nodes}], got {communities}")
    if not 0.0 <= homophily <= 1.0:
        raise DistGNNError(f"homophily must be in [0, 1], got {homophily}")
    if feature_noise < 0:
        raise DistGNNError(f"feature noise must be >= 0, got {feature_noise}")
    if degree_exponent is not None and degree_exponent <= 2.0:
        raise DistGNNError(
            f"degree exponent must be > 2 (or unset for uniform degrees), got {degree_exponent}"
        )
    if num_edges > num_nodes * (num_nodes - 1):
        raise DistGNNError(f"{num_edges} edges do not fit in a simple graph of {num_nodes} nodes")


def _labels(blocks: _Blocks, num_nodes: int, num_classes: int) -> np.ndarray:
    """Class of each node in block order: community c -> c % K, or round-robin with fewer communities."""
    if blocks.count >= num_classes:
        return np.repeat(np.arange(blocks.count, dtype=np.int64) % num_classes, blocks.sizes)
    return np.arange(num_nodes, dtype=np.int64) % num_classes


def _features(
    rng: np.random.Generator, y: np.ndarray, num_classes: int, dim: int, noise: float
) -> np.ndarray:
    """Class mean + Gaussian noise, float32, filled in row blocks to avoid a second [N, F] temporary."""
    means = rng.standard_normal((num_classes, dim), dtype=np.float32)
    x = rng.standard_normal((y.shape[0], dim), dtype=np.float32)
    rows = max(1, BATCH // dim)
    for s in range(0, y.shape[0], rows):
        block = x[s : s + rows]
        block *= np.float32(noise)
        block += means[y[s : s + rows]]
    return x


def synthetic_graph(
    num_nodes: int = 20_000,
    num_edges: int = 200_000,
    num_features: int = 64,
    num_classes: int = 8,
    *,
    communities: int | None = None,
    homophily: float = 0.8,
    feature_noise: float = 6.0,
    degree_exponent: float | None = None,
    shuffle: bool = True,
    num_train_per_class: int = 20,
    num_val: float = 0.1,
    num_test: float = 0.2,
    seed: int = 0,
    progress: bool = False,
) -> Graph:
    """A seeded planted-community graph (see the module docstring). ``communities`` defaults to
    ``num_classes``. Split: ``num_train_per_class`` training nodes per class, then ``num_val`` and
    ``num_test`` nodes (int counts or float fractions of all nodes), PyG ``RandomNodeSplit`` style."""
    communities = num_classes if communities is None else communities
    _check(
        num_nodes,
        num_edges,
        num_features,
        num_classes,
        communities,
        homophily,
        feature_noise,
        degree_exponent,
    )
    n = num_nodes
    rng = np.random.default_rng(seed)
    blocks = _Blocks(n, communities, degree_exponent)
    pairs = num_edges // 2
    intra_pool = int(np.sum(blocks.sizes * (blocks.sizes - 1) // 2))
    inter_pool = n * (n - 1) // 2 - intra_pool
    n_intra = pairs if communities == 1 else int(round(homophily * pairs))
    n_inter = pairs - n_intra
    for count, pool, kind in (
        (n_intra, intra_pool, "intra-community"),
        (n_inter, inter_pool, "inter-community"),
    ):
        if count > pool:
            raise DistGNNError(
                f"cannot place {count} {kind} edges: only {pool} node pairs exist; lower homophily"
            )

    def intra(k: int) -> np.ndarray:
        c = blocks.choose(rng, k)
        return _canonical(blocks.node_in(rng, c), blocks.node_in(rng, c), n)

    def inter(k: int) -> np.ndarray:
        c = blocks.choose(rng, k)
        d = (c + rng.integers(1, communities, size=k)) % communities
        return _canonical(blocks.node_in(rng, c), blocks.node_in(rng, d), n)

    with Stages("generating synthetic graph", 5, progress) as stage:
        stage("sampling intra-community edges")
        keys = _unique_pairs(n_intra, intra, rng, "intra-community")
        stage("sampling inter-community edges")
        if n_inter:
            keys = np.concatenate([keys, _unique_pairs(n_inter, inter, rng, "inter-community")])

        stage("building CSR")
        lo, hi = np.divmod(keys, n) if n > 1 else (keys, keys)
        del keys
        perm = rng.permutation(n) if shuffle else None
        if perm is not None:
            lo, hi = perm[lo], perm[hi]
        directed = np.empty(2 * lo.shape[0], dtype=np.int64)
        np.multiply(hi, n, out=directed[: lo.shape[0]])
        directed[: lo.shape[0]] += lo
        np.multiply(lo, n, out=directed[lo.shape[0] :])
        directed[lo.shape[0] :] += hi
        del lo, hi
        directed.sort()
        indptr, indices = csr_from_sorted_keys(directed, n)

        stage("features")
        block_y = _labels(blocks, n, num_classes)
        if perm is None:
            y = block_y
        else:
            y = np.empty(n, dtype=np.int64)
            y[perm] = block_y
        x = _features(rng, y, num_classes, num_features, feature_noise)

        stage("split")
        masks = per_class_split(y, num_train_per_class, num_val, num_test, seed=seed)
    graph = Graph(indptr, indices, x, y, *masks, num_classes=num_classes, name="synthetic")
    graph.validate()
    return graph
