"""distgnn's own ``.npz`` node-classification schema: load (no pickle) and atomic save.

Schema: ``edge_src``, ``edge_dst`` int64 [E] (directed, may repeat); ``x`` float32 [N, F]; ``y`` int64 [N]
(-1 = unlabelled); ``train_mask``, ``val_mask``, ``test_mask`` bool [N]; optional ``num_classes`` int64
scalar (else ``max(y) + 1``). N is the row count of ``x``.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from distgnn.data.assemble import as_features, as_labels, assemble_graph, check_rows
from distgnn.data.graph import Graph
from distgnn.data.progress import Stages
from distgnn.errors import DistGNNError

REQUIRED = ("edge_src", "edge_dst", "x", "y", "train_mask", "val_mask", "test_mask")
MASKS = ("train_mask", "val_mask", "test_mask")


def _mask(fname: str, key: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr
    if np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)
    raise DistGNNError(f"{fname}: {key} must be a bool mask, got dtype {arr.dtype}")


def load_npz(path: str | os.PathLike[str], *, symmetrize: bool = True, progress: bool = False) -> Graph:
    """Load a graph in the ``.npz`` schema and normalise its edges (see ``distgnn.data.normalize``)."""
    path = Path(path)
    fname = path.name
    if not path.exists():
        raise DistGNNError(f"no such file or directory: {path}")
    with Stages(f"loading {fname}", 2, progress) as stage:
        stage("reading")
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise DistGNNError(f"{fname}: not a .npz archive")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in REQUIRED if k not in data.files]
                if missing:
                    raise DistGNNError(
                        f"{fname}: missing array(s) {', '.join(missing)} (needs {', '.join(REQUIRED)})"
                    )
                arrays = {k: data[k] for k in REQUIRED}
                num_classes = int(data["num_classes"]) if "num_classes" in data.files else None
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise DistGNNError(f"{fname}: not a readable .npz file ({err})") from None
        except ValueError as err:  # object arrays refuse to load without pickle
            raise DistGNNError(f"{fname}: cannot read arrays without pickle ({err})") from None

        x = as_features(f"{fname}: x", arrays["x"])
        n = x.shape[0]
        y = as_labels(f"{fname}: y", arrays["y"])
        check_rows(f"{fname}: y", y, n)
        masks = tuple(_mask(fname, k, arrays[k]) for k in MASKS)
        for key, mask in zip(MASKS, masks, strict=True):
            check_rows(f"{fname}: {key}", mask, n)
        stage("normalising")
        try:
            return assemble_graph(
                arrays["edge_src"],
                arrays["edge_dst"],
                n,
                x=x,
                y=y,
                masks=masks,  # type: ignore[arg-type]
                name=path.stem,
                num_classes=num_classes,
                symmetrize=symmetrize,
            )
        except DistGNNError as err:
            raise DistGNNError(f"{fname}: {err}") from None


def save_npz(graph: Graph, path: str | os.PathLike[str], *, compress: bool = False) -> None:
    """Write ``graph`` in the ``.npz`` schema, atomically: a temp file in the same directory, then rename."""
    path = Path(path)
    if not path.parent.is_dir():
        raise DistGNNError(f"no such directory: {path.parent}")
    src, dst = graph.edges()
    arrays = {
        "edge_src": src,
        "edge_dst": dst,
        "x": graph.x.astype(np.float32, copy=False),
        "y": graph.y.astype(np.int64, copy=False),
        "train_mask": graph.train_mask.astype(bool, copy=False),
        "val_mask": graph.val_mask.astype(bool, copy=False),
        "test_mask": graph.test_mask.astype(bool, copy=False),
        "num_classes": np.int64(graph.num_classes),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
