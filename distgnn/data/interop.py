"""Convert in-memory PyG ``Data`` and DGL graphs into a Graph.

PyG and DGL are optional: they are imported when a converter is called, and a missing package is one
clear error naming the extra to install (PyG's ``WITH_*`` style, checked at call time, not import time).
Masks are taken from the object when it has all three (the first column when it holds several splits);
otherwise a seeded random 60/20/20 split of the labelled nodes is drawn.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from distgnn.data.assemble import as_features, as_labels, assemble_graph, check_rows
from distgnn.data.graph import Graph
from distgnn.data.splits import random_split
from distgnn.errors import DistGNNError

MASKS = ("train_mask", "val_mask", "test_mask")


def require(module: str, caller: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise the one-line install hint."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DistGNNError(f"{caller} requires {module}; pip install 'distgnn[{extra}]'") from None


def _numpy(value: Any) -> np.ndarray:
    """A torch tensor (or array-like) as a numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _convert(
    src: Any,
    dst: Any,
    n: int,
    x: Any,
    y: Any,
    masks: list[Any] | None,
    *,
    what: str,
    name: str,
    symmetrize: bool,
    seed: int,
) -> Graph:
    x = np.ones((n, 1), dtype=np.float32) if x is None else as_features(f"{what} features", _numpy(x))
    check_rows(f"{what} features", x, n)
    y = np.full(n, -1, dtype=np.int64) if y is None else as_labels(f"{what} labels", _numpy(y))
    check_rows(f"{what} labels", y, n)
    if masks is None:
        split = random_split(y, seed=seed)
    else:
        arrays = [_numpy(m).astype(bool) for m in masks]
        split = tuple(m[:, 0] if m.ndim == 2 else m for m in arrays)
        for key, mask in zip(MASKS, split, strict=True):
            check_rows(f"{what} {key}", mask, n)
    return assemble_graph(
        _numpy(src),
        _numpy(dst),
        n,
        x=x,
        y=y,
        masks=split,
        name=name,
        symmetrize=symmetrize,  # type: ignore[arg-type]
    )


def from_pyg(data: Any, *, name: str = "pyg", symmetrize: bool = True, seed: int = 0) -> Graph:
    """A homogeneous ``torch_geometric.data.Data`` (edge_index, x, y, *_mask) as a normalised Graph."""
    pyg = require("torch_geometric", "from_pyg", "pyg")
    if not isinstance(data, pyg.data.Data):
        raise DistGNNError(f"from_pyg expects a torch_geometric.data.Data, got {type(data).__name__}")
    edge_index = data.edge_index
    if edge_index is None:
        edge_index = np.empty((2, 0), dtype=np.int64)
    edge_index = _numpy(edge_index)
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise DistGNNError(f"PyG edge_index must have shape [2, E], got {list(edge_index.shape)}")
    n = int(data.num_nodes or 0)
    have = [getattr(data, k, None) for k in MASKS]
    masks = have if all(m is not None for m in have) else None
    return _convert(
        edge_index[0], edge_index[1], n, data.x, data.y, masks,
        what="PyG", name=name, symmetrize=symmetrize, seed=seed,
    )  # fmt: skip


def _first(ndata: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in ndata:
            return ndata[key]
    return None


def from_dgl(g: Any, *, name: str = "dgl", symmetrize: bool = True, seed: int = 0) -> Graph:
    """A homogeneous ``dgl.DGLGraph`` (ndata ``feat``/``x``, ``label``/``y``, ``*_mask``) as a Graph."""
    dgl = require("dgl", "from_dgl", "dgl")
    if not isinstance(g, dgl.DGLGraph):
        raise DistGNNError(f"from_dgl expects a dgl.DGLGraph, got {type(g).__name__}")
    if not g.is_homogeneous:
        raise DistGNNError("from_dgl supports homogeneous graphs only (one node type and one edge type)")
    src, dst = g.edges()
    n = int(g.num_nodes())
    have = [g.ndata[k] if k in g.ndata else None for k in MASKS]
    masks = have if all(m is not None for m in have) else None
    return _convert(
        src, dst, n, _first(g.ndata, ("feat", "x")), _first(g.ndata, ("label", "y")), masks,
        what="DGL", name=name, symmetrize=symmetrize, seed=seed,
    )  # fmt: skip
