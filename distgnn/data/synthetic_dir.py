"""The synthetic generator's graph written straight to a graph directory, a chunk at a time, at any size.

Same model as ``distgnn.data.synthetic`` (planted communities as contiguous ID blocks, homophily, optional
power-law degrees inside a block, class-mean features plus noise, the per-class split), but the edges are
drawn and written ``chunk_edges`` undirected pairs at a time and never deduplicated: the loader's
normalisation drops the repeats and self-loops, so the graph has slightly fewer than ``num_edges`` directed
edges (few on a sparse graph; ``distgnn partition`` prints the count). Nodes are not shuffled, so IDs keep
the communities' locality. Memory: one chunk of pairs plus the node arrays (labels, masks: 11 bytes a
node) and one block of feature rows. Every ``BLOCK`` pairs and feature rows come from their own stream
seeded by ``(seed, block)``, so the chunk size changes the memory, never the graph. The stream differs
from ``synthetic_graph``'s, so the two do not give the same graph for the same seed; every recorded figure
that names ``synthetic_graph`` keeps it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from distgnn import jsonio
from distgnn.data.csr_on_disk import index_dtype
from distgnn.data.graph_dir import FORMAT_NAME, FORMAT_VERSION, MARKER
from distgnn.data.npy_writer import NpyAppender
from distgnn.data.progress import count_bar
from distgnn.data.splits import per_class_split
from distgnn.data.synthetic import _Blocks, _check, _labels
from distgnn.errors import DistGNNError

CHUNK_PAIRS = 1 << 22
BLOCK = 1 << 16  # pairs (or feature rows) drawn from one seeded stream: chunks are whole blocks


def write_synthetic_dir(
    path: str | os.PathLike[str],
    *,
    num_nodes: int,
    num_edges: int,
    num_features: int = 16,
    num_classes: int = 8,
    communities: int | None = None,
    homophily: float = 0.8,
    feature_noise: float = 6.0,
    degree_exponent: float | None = None,
    num_train_per_class: int = 20,
    num_val: float = 0.1,
    num_test: float = 0.2,
    seed: int = 0,
    chunk_pairs: int = CHUNK_PAIRS,
    progress: bool = False,
) -> None:
    """Write the graph directory ``path`` (a new directory, renamed into place once complete)."""
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
    if communities < 2 and homophily < 1.0:
        homophily = 1.0  # one community: every edge is inside it
    path = Path(path)
    if path.exists():
        raise DistGNNError(f"{path} already exists")
    if not path.parent.is_dir():
        raise DistGNNError(f"no such directory: {path.parent}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    chunk = max(1, chunk_pairs // BLOCK) * BLOCK
    try:
        blocks = _Blocks(num_nodes, communities, degree_exponent)
        _write_edges(tmp, seed, blocks, num_nodes, num_edges // 2, homophily, chunk, progress)
        y = _labels(blocks, num_nodes, num_classes)
        _write_features(tmp / "x.npy", seed, y, num_classes, num_features, feature_noise, chunk)
        masks = per_class_split(y, num_train_per_class, num_val, num_test, seed=seed)
        for key, arr in zip(("y", "train_mask", "val_mask", "test_mask"), (y, *masks), strict=True):
            np.save(tmp / f"{key}.npy", arr, allow_pickle=False)
        np.save(tmp / "num_classes.npy", np.int64(num_classes), allow_pickle=False)
        (tmp / MARKER).write_text(jsonio.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION}) + "\n")
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_edges(
    folder: Path,
    seed: int,
    blocks: _Blocks,
    n: int,
    pairs: int,
    homophily: float,
    chunk: int,
    progress: bool,
) -> None:
    """``pairs`` undirected pairs (each once, in either order), a fraction ``homophily`` inside a block."""
    dtype = index_dtype(n)
    with (
        NpyAppender(folder / "edge_src.npy", dtype) as src,
        NpyAppender(folder / "edge_dst.npy", dtype) as dst,
        count_bar("generating edges", pairs, "edge", progress) as bar,
    ):
        for start in range(0, pairs, chunk):
            k = min(chunk, pairs - start)
            parts = [
                _pairs(seed, b // BLOCK, min(BLOCK, pairs - b), blocks, homophily)
                for b in range(start, start + k, BLOCK)
            ]
            src.append(np.concatenate([u for u, _ in parts]))
            dst.append(np.concatenate([v for _, v in parts]))
            del parts
            bar.update(k)


def _pairs(seed: int, block: int, k: int, blocks: _Blocks, homophily: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` pairs of one block, from its own stream."""
    rng = np.random.default_rng([seed, 0, block])
    c = blocks.choose(rng, k)
    d = c.copy()
    inter = rng.random(k) >= homophily
    if blocks.count > 1:
        d[inter] = (c[inter] + rng.integers(1, blocks.count, size=int(inter.sum()))) % blocks.count
    return blocks.node_in(rng, c), blocks.node_in(rng, d)


def _write_features(
    file: Path, seed: int, y: np.ndarray, num_classes: int, dim: int, noise: float, chunk: int
) -> None:
    """Class mean + Gaussian noise, float32 [N, dim], ``BLOCK`` rows per stream, written a chunk at a time."""
    means = np.random.default_rng([seed, 1]).standard_normal((num_classes, dim), dtype=np.float32)
    rows = max(BLOCK, chunk // dim // BLOCK * BLOCK)
    with open(file, "wb") as f:
        npy_format.write_array_header_1_0(
            f,
            {
                "descr": npy_format.dtype_to_descr(np.dtype(np.float32)),
                "fortran_order": False,
                "shape": (y.shape[0], dim),
            },
        )
        for s in range(0, y.shape[0], rows):
            n = min(rows, y.shape[0] - s)
            block = np.concatenate(
                [
                    np.random.default_rng([seed, 2, b // BLOCK]).standard_normal(
                        (min(BLOCK, n + s - b), dim), dtype=np.float32
                    )
                    for b in range(s, s + n, BLOCK)
                ]
            )
            block *= np.float32(noise)
            block += means[y[s : s + n]]
            f.write(memoryview(block).cast("B"))
