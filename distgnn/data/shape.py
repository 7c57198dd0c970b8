"""A graph source's size before it is loaded: what ``distgnn partition`` plans its memory from.

Read from headers only: a ``.npz`` archive's and a graph directory's ``.npy`` headers, the synthetic spec's
keys, an OGB directory's ``num-node-list`` / ``num-edge-list`` files. A text edge list's edge count is
estimated from its size and the mean length of its first lines, and its node count from that as an
average of ``EDGES_PER_NODE`` listed edges per node (counting the IDs would mean reading the whole file):
``exact`` says which.
"""

from __future__ import annotations

import gzip
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from distgnn.data.graph_dir import is_graph_dir, open_npy
from distgnn.data.ogb import find_root
from distgnn.data.sources import parse_synthetic
from distgnn.errors import DistGNNError

SAMPLE_BYTES = 1 << 20  # an edge list's first MiB gives its mean line length
EDGES_PER_NODE = 10  # a text edge list's assumed mean: 20 directed edges per node once symmetrised


@dataclass(frozen=True)
class SourceShape:
    """Input edges (before normalisation: symmetrising may double them), nodes, features per node."""

    num_nodes: int
    num_edges: int
    feat_dim: int
    exact: bool = True
    streamed: bool = False  # read in pieces (never whole): a graph directory, an edge list, stream=true


def source_shape(spec: str) -> SourceShape:
    """The shape of the source ``spec`` names (the specs of ``distgnn.data.load_graph``); headers it
    cannot read are one DistGNNError line."""
    try:
        return _shape(spec)
    except (OSError, ValueError, EOFError, KeyError, IndexError, zipfile.BadZipFile) as err:
        raise DistGNNError(f"{spec}: cannot read its size ({err})") from None


def _shape(spec: str) -> SourceShape:
    if spec == "synthetic" or spec.startswith("synthetic:"):
        kw = parse_synthetic(spec)
        nodes, edges = kw.get("num_nodes", 20_000), kw.get("num_edges", 200_000)
        return SourceShape(nodes, edges, kw.get("num_features", 64), streamed=kw.get("stream", False))
    path = Path(spec)
    if not path.exists():
        raise DistGNNError(f"no such file or directory: {spec}")
    if is_graph_dir(path):
        src, x = open_npy(path / "edge_src.npy"), open_npy(path / "x.npy")
        return SourceShape(x.shape[0], src.shape[0], _features(x.shape), streamed=True)
    if path.is_dir():
        return _ogb_shape(path)
    if path.suffix == ".npz":
        return _npz_shape(path)
    return _edgelist_shape(path)


def _features(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape[1:])) if len(shape) > 1 else 1


def _npz_shape(path: Path) -> SourceShape:
    shapes = {}
    with zipfile.ZipFile(path) as z:
        for key in ("edge_src", "x"):
            with z.open(f"{key}.npy") as f:
                version = npy_format.read_magic(f)
                read = (
                    npy_format.read_array_header_1_0
                    if version == (1, 0)
                    else npy_format.read_array_header_2_0
                )
                shapes[key] = read(f)[0]
    return SourceShape(shapes["x"][0], shapes["edge_src"][0], _features(shapes["x"]))


def _ogb_shape(path: Path) -> SourceShape:
    root, _ = find_root(path)
    raw = root / "raw"

    def first(name: str) -> int | None:
        file = raw / name
        if not file.exists():
            return None
        with gzip.open(file, "rt") as f:
            return int(f.readline().split(",")[0])

    nodes, edges = first("num-node-list.csv.gz"), first("num-edge-list.csv.gz")
    feat = 1
    if (raw / "node-feat.csv.gz").exists():
        with gzip.open(raw / "node-feat.csv.gz", "rt") as f:
            feat = len(f.readline().split(","))
    if nodes is None or edges is None:
        raise DistGNNError(f"{root}: num-node-list.csv.gz and num-edge-list.csv.gz are needed to plan memory")
    return SourceShape(nodes, edges, feat)


def _edgelist_shape(path: Path) -> SourceShape:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
    lines = max(head.count(b"\n"), 1)
    edges = size * lines // max(len(head), 1) + 1
    return SourceShape(max(1, edges // EDGES_PER_NODE), edges, 1, exact=False, streamed=True)
