"""OGB node-property datasets in their raw directory layout (as downloaded by ``ogb``, read without it).

Layout: ``raw/edge.csv.gz`` (``src,dst`` per line), ``raw/node-feat.csv.gz`` (optional; N rows of F
floats), ``raw/node-label.csv.gz`` (N rows, one class each; NaN = unlabelled), ``raw/num-node-list.csv.gz``
(optional node count), and ``split/<name>/{train,valid,test}.csv.gz`` (node IDs, one per line). Pass the
dataset root (holding ``raw/`` and ``split/``) or its ``raw/`` directory. Edges are symmetrised by default,
as GNN baselines do for ogbn-arxiv.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from pathlib import Path

import numpy as np

from distgnn.data.assemble import (
    CsrBuild,
    as_features,
    as_labels,
    assemble_graph,
    check_rows,
    graph_from_csr,
    in_memory_csr,
)
from distgnn.data.csr_on_disk import CsrOnDisk
from distgnn.data.edgelist import edgelist_edges
from distgnn.data.graph import Graph
from distgnn.data.progress import Stages
from distgnn.errors import DistGNNError


def find_root(path: Path) -> tuple[Path, Path]:
    """(dataset root, the single split directory) for a root or a ``raw/`` path."""
    if (path / "raw").is_dir():
        root = path
    elif path.name == "raw" and path.is_dir():
        root = path.parent
    else:
        raise DistGNNError(f"{path}: not an OGB dataset directory (expected raw/ and split/ inside it)")
    split_dir = root / "split"
    splits = sorted(p for p in split_dir.iterdir() if p.is_dir()) if split_dir.is_dir() else []
    if len(splits) != 1:
        found = ", ".join(p.name for p in splits) or "none"
        raise DistGNNError(f"{split_dir}: expected exactly one split directory, found {found}")
    return root, splits[0]


def read_csv_gz(path: Path, dtype: type) -> np.ndarray:
    """A gzipped comma-separated numeric table as a 2-D array, parsed by numpy's C reader."""
    if not path.exists():
        raise DistGNNError(f"no such file or directory: {path}")
    try:
        with gzip.open(path, "rt") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data"
            return np.loadtxt(f, delimiter=",", dtype=dtype, ndmin=2)
    except (ValueError, OverflowError) as err:
        raise DistGNNError(f"{path.name}: {err}") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DistGNNError(f"{path.name}: not a readable gzip file ({err})") from None


def _split_mask(path: Path, num_nodes: int) -> np.ndarray:
    ids = read_csv_gz(path, np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= num_nodes):
        bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
        raise DistGNNError(f"{path.name}: node ID {bad} is out of range [0, {num_nodes})")
    mask = np.zeros(num_nodes, dtype=bool)
    mask[ids] = True
    return mask


def load_ogb(
    path: str | os.PathLike[str],
    *,
    symmetrize: bool = True,
    progress: bool = False,
    csr: CsrBuild = in_memory_csr,
) -> Graph:
    """Load an OGB node-property dataset directory into a normalised Graph, its CSR built by ``csr``."""
    path = Path(path)
    if not path.exists():
        raise DistGNNError(f"no such file or directory: {path}")
    root, split = find_root(path)
    raw = root / "raw"
    streamed = isinstance(csr, CsrOnDisk)  # out of core: edge.csv.gz is read in chunks, after the rest
    with Stages(f"loading {root.name}", 4, progress) as stage:
        stage("reading edges")
        edges = None if streamed else read_csv_gz(raw / "edge.csv.gz", np.int64)
        if edges is not None and edges.size and edges.shape[1] != 2:
            raise DistGNNError(f"edge.csv.gz: expected 2 columns (src,dst), got {edges.shape[1]}")
        edges = None if edges is None else edges.reshape(-1, 2)

        stage("reading features and labels")
        labels = read_csv_gz(raw / "node-label.csv.gz", np.float64)
        if labels.shape[1] > 1:
            raise DistGNNError(
                f"node-label.csv.gz has {labels.shape[1]} columns; expected one class per node"
            )
        y = as_labels("node-label.csv.gz", labels.reshape(-1))
        n = y.shape[0]
        if (raw / "num-node-list.csv.gz").exists():
            n = int(read_csv_gz(raw / "num-node-list.csv.gz", np.int64).reshape(-1)[0])
        check_rows("node-label.csv.gz", y, n)
        feat_path = raw / "node-feat.csv.gz"
        x = read_csv_gz(feat_path, np.float32) if feat_path.exists() else np.ones((n, 1), dtype=np.float32)
        x = as_features("node-feat.csv.gz: features", x)
        check_rows("node-feat.csv.gz", x, n)
        if edges is not None and edges.size and (edges.min() < 0 or edges.max() >= n):
            bad = int(edges.min()) if edges.min() < 0 else int(edges.max())
            raise DistGNNError(f"edge.csv.gz: node ID {bad} is out of range [0, {n})")

        stage("reading the split")
        masks = tuple(_split_mask(split / f"{part}.csv.gz", n) for part in ("train", "valid", "test"))

        stage("normalising")
        if streamed:
            stream = edgelist_edges(raw / "edge.csv.gz", num_nodes=n, progress=progress)
            indptr, indices = csr.stream(stream.chunks, n, symmetrize)  # type: ignore[attr-defined]
            return graph_from_csr(indptr, indices, x=x, y=y, masks=masks, name=root.name)
        try:
            return assemble_graph(
                edges[:, 0],
                edges[:, 1],
                n,
                x=x,
                y=y,
                masks=masks,
                name=root.name,
                symmetrize=symmetrize,
                csr=csr,
            )
        except DistGNNError as err:
            raise DistGNNError(f"{root.name}: {err}") from None
