"""The node-classification array schema shared by the ``.npz`` file and the graph directory.

Keys: ``edge_src``, ``edge_dst`` integer [E] (directed, may repeat; int32 is widened on load); ``x`` float32
[N, F]; ``y`` int64 [N] (-1 = unlabelled); ``train_mask``, ``val_mask``, ``test_mask`` bool [N]; optional
``num_classes`` int64 scalar (else ``max(y) + 1``). N is the row count of ``x``.

Both sources read their arrays and hand them to :func:`graph_from_arrays`, which runs every check and the
edge normalisation, so the same arrays give the same Graph whichever container held them. ``where(*keys)``
names the file holding those keys in an error line (the ``.npz`` is one file; a graph directory has one
per key); with no keys it names the source as a whole.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from distgnn.data.assemble import CsrBuild, as_features, as_labels, assemble_graph, check_rows, in_memory_csr
from distgnn.data.graph import Graph
from distgnn.errors import DistGNNError

EDGES = ("edge_src", "edge_dst")
MASKS = ("train_mask", "val_mask", "test_mask")
REQUIRED = (*EDGES, "x", "y", *MASKS)
OPTIONAL = ("num_classes",)

Where = Callable[..., str]


def schema_arrays(graph: Graph) -> dict[str, np.ndarray]:
    """The arrays ``graph`` is written as (every key, ``num_classes`` included)."""
    src, dst = graph.edges()
    return {
        "edge_src": src,
        "edge_dst": dst,
        "x": graph.x.astype(np.float32, copy=False),
        "y": graph.y.astype(np.int64, copy=False),
        "train_mask": graph.train_mask.astype(bool, copy=False),
        "val_mask": graph.val_mask.astype(bool, copy=False),
        "test_mask": graph.test_mask.astype(bool, copy=False),
        "num_classes": np.int64(graph.num_classes),
    }


def as_mask(what: str, key: str, arr: np.ndarray) -> np.ndarray:
    """A bool mask; an integer array of 0s and 1s is accepted."""
    if arr.dtype == np.bool_:
        return arr
    if np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)
    raise DistGNNError(f"{what}: {key} must be a bool mask, got dtype {arr.dtype}")


def as_num_classes(what: str, arr: np.ndarray) -> int:
    """One whole number (an int64 scalar as written; an integral float is accepted)."""
    if arr.size == 1 and (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        value = arr.reshape(()).item()
        if float(value).is_integer():
            return int(value)
    raise DistGNNError(
        f"{what}: num_classes must be one integer, got dtype {arr.dtype} and shape {arr.shape}"
    )


def _rows(arr: np.ndarray) -> int:
    return int(arr.shape[0]) if arr.ndim else 0


def _bad_edge_keys(arrays: dict[str, np.ndarray], num_nodes: int) -> tuple[str, ...]:
    """The edge arrays a normalisation error is about (run on the error path only)."""
    src, dst = (arrays[k] for k in EDGES)
    if src.ndim != 1 or dst.ndim != 1 or src.shape != dst.shape:
        return tuple(k for k in EDGES if arrays[k].ndim != 1) or EDGES
    bad = []
    for key in EDGES:
        arr = arrays[key]
        if not arr.size:
            continue
        if not np.issubdtype(arr.dtype, np.integer):
            bad.append(key)
        elif int(arr.min()) < 0 or int(arr.max()) >= num_nodes:
            bad.append(key)
    return tuple(bad) or EDGES


def _blame(message: str, arrays: dict[str, np.ndarray], num_nodes: int) -> tuple[str, ...]:
    """The keys an ``assemble_graph`` error line is about, for ``where``."""
    first = message.split(" ", 1)[0]
    if first in REQUIRED:  # "val_mask contains nodes without a label", ...
        return (first,)
    if message.startswith("edge "):
        return _bad_edge_keys(arrays, num_nodes)
    if message.startswith("labels "):
        return ("y", "num_classes") if "num_classes" in arrays else ("y",)
    return ()


def graph_from_arrays(
    arrays: dict[str, np.ndarray],
    *,
    where: Where,
    name: str,
    symmetrize: bool = True,
    stage: Callable[[str], None] | None = None,
    csr: CsrBuild = in_memory_csr,
) -> Graph:
    """Check the schema's arrays (``REQUIRED`` keys, ``num_classes`` optional) and build the Graph.

    Every failure is one DistGNNError line starting with ``where(...)`` of the file at fault. Arrays are
    used as given where they already have the schema's dtype (a memory-mapped array stays mapped).
    """
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    num_classes = arrays.get("num_classes")
    classes = None if num_classes is None else as_num_classes(where("num_classes"), num_classes)

    # x defines the node count; when x alone disagrees with y and every mask, x is the odd one out.
    x = arrays["x"]
    others = {_rows(arrays[k]) for k in ("y", *MASKS)}
    if x.ndim and len(others) == 1 and _rows(x) not in others:
        raise DistGNNError(
            f"{where('x')}: x has {_rows(x)} rows but y and the masks have {others.pop()} (one row per node)"
        )
    x = as_features(f"{where('x')}: x", x)
    n = x.shape[0]
    y = as_labels(f"{where('y')}: y", arrays["y"])
    check_rows(f"{where('y')}: y", y, n)
    masks = tuple(as_mask(where(k), k, arrays[k]) for k in MASKS)
    for key, mask in zip(MASKS, masks, strict=True):
        check_rows(f"{where(key)}: {key}", mask, n)
    if stage is not None:
        stage("normalising")
    try:
        return assemble_graph(
            arrays["edge_src"],
            arrays["edge_dst"],
            n,
            x=x,
            y=y,
            masks=masks,  # type: ignore[arg-type]
            name=name,
            num_classes=classes,
            symmetrize=symmetrize,
            csr=csr,
        )
    except DistGNNError as err:
        raise DistGNNError(f"{where(*_blame(str(err), arrays, n))}: {err}") from None
