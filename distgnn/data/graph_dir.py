"""A graph directory: the ``.npz`` schema's arrays as one ``.npy`` file each, memory-mapped on load.

Layout::

    DIR/graph.json          {"format": "distgnn-graph", "version": 1}: tells it apart from an OGB directory
    DIR/edge_src.npy        int32 or int64 [E]   directed edges (may repeat; normalised on load)
    DIR/edge_dst.npy        int32 or int64 [E]
    DIR/x.npy               float32 [N, F]
    DIR/y.npy               int64 [N]            -1 = unlabelled
    DIR/train_mask.npy, val_mask.npy, test_mask.npy    bool [N]
    DIR/num_classes.npy     int64 []             optional (else max(y) + 1)

Each file is opened with ``np.load(..., mmap_mode="r", allow_pickle=False)`` after its header is checked
(no object dtype, as many bytes as the header promises), so nothing is read until it is used and nothing
is ever unpickled. The arrays then go through the same checks and normalisation as the ``.npz`` source
(``distgnn.data.schema``): the same arrays give the same Graph. Node arrays that already have the schema's
dtype stay memory-mapped in the Graph.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from distgnn import jsonio
from distgnn.data.assemble import CsrBuild, in_memory_csr
from distgnn.data.graph import Graph
from distgnn.data.progress import Stages
from distgnn.data.schema import OPTIONAL, REQUIRED, graph_from_arrays, schema_arrays
from distgnn.errors import DistGNNError

FORMAT_NAME = "distgnn-graph"
FORMAT_VERSION = 1
MARKER = "graph.json"


def is_graph_dir(path: Path) -> bool:
    """Whether ``path`` is meant as a graph directory (it holds the marker file), not an OGB one."""
    return path.is_dir() and (path / MARKER).exists()


def open_npy(file: Path) -> np.memmap:
    """Memory-map one ``.npy`` file read-only; one DistGNNError line naming it when it cannot be.

    The header is read first, so an object dtype (which only unpickling could read) and a file shorter
    than its header promises are refused by name before numpy maps it.
    """
    try:
        with open(file, "rb") as f:
            version = npy_format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = npy_format.read_array_header_2_0(f)
            else:
                raise DistGNNError(f"{file}: .npy format version {version} is not supported (1.0 or 2.0)")
            offset = f.tell()
    except (ValueError, OSError, EOFError) as err:
        raise DistGNNError(f"{file}: not a readable .npy file ({err})") from None
    if dtype.hasobject:
        raise DistGNNError(
            f"{file}: holds Python objects (dtype {dtype}), which only unpickling could read; refused"
        )
    need = offset + math.prod(shape) * dtype.itemsize
    size = file.stat().st_size
    if size < need:
        raise DistGNNError(f"{file}: truncated: {size} bytes, but its header describes {need}")
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DistGNNError(f"{file}: not a readable .npy file ({err})") from None


def load_graph_dir(
    path: str | os.PathLike[str],
    *,
    symmetrize: bool = True,
    progress: bool = False,
    csr: CsrBuild = in_memory_csr,
) -> Graph:
    """Load a graph directory (layout in the module docstring) and normalise its edges into a CSR built by
    ``csr``."""
    path = Path(path)
    if not path.exists():
        raise DistGNNError(f"no such file or directory: {path}")
    if not path.is_dir():
        raise DistGNNError(f"{path}: not a directory (a graph directory holds {MARKER} and .npy files)")
    jsonio.read_document(path / MARKER, FORMAT_NAME, FORMAT_VERSION)
    name = path.name or path.resolve().name
    with Stages(f"loading {name}", 2, progress) as stage:
        stage("mapping")
        missing = [f"{k}.npy" for k in REQUIRED if not (path / f"{k}.npy").exists()]
        if missing:
            needs = ", ".join(f"{k}.npy" for k in REQUIRED)
            raise DistGNNError(f"{path}: missing {', '.join(missing)} (a graph directory needs {needs})")
        keys = [*REQUIRED, *(k for k in OPTIONAL if (path / f"{k}.npy").exists())]
        arrays = {k: open_npy(path / f"{k}.npy") for k in keys}

        def where(*keys: str) -> str:
            return ", ".join(str(path / f"{k}.npy") for k in keys) or str(path)

        return graph_from_arrays(arrays, where=where, name=name, symmetrize=symmetrize, stage=stage, csr=csr)


def save_graph_dir(
    graph: Graph | dict[str, np.ndarray], path: str | os.PathLike[str], *, overwrite: bool = False
) -> None:
    """Write a Graph (or the schema's arrays, as given) as a graph directory, atomically.

    The files go to a temporary sibling directory that is renamed into place once complete: a failed
    write leaves nothing behind (and an existing directory, replaced only with ``overwrite``, untouched).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise DistGNNError(f"no such directory: {path.parent}")
    if path.exists() and not path.is_dir():
        raise DistGNNError(f"{path} exists and is not a directory")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise DistGNNError(f"{path} already exists and is not empty (overwrite=True replaces it)")
    if isinstance(graph, Graph):
        arrays = schema_arrays(graph)
    else:
        missing = [k for k in REQUIRED if k not in graph]
        unknown = [k for k in graph if k not in REQUIRED and k not in OPTIONAL]
        if missing or unknown:
            what = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}"
            keys = ", ".join((*REQUIRED, *OPTIONAL))
            raise DistGNNError(f"save_graph_dir: {what} (the arrays are {keys})")
        arrays = graph
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    trash = None
    try:
        for key, arr in arrays.items():
            with open(tmp / f"{key}.npy", "wb") as f:
                try:
                    np.save(f, np.asarray(arr), allow_pickle=False)
                except ValueError as err:  # an object array
                    raise DistGNNError(f"save_graph_dir: {key}: {err}") from None
                f.flush()
                os.fsync(f.fileno())
        with open(tmp / MARKER, "w") as f:
            f.write(jsonio.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            trash = tmp.with_name(tmp.name + "-old")
            os.rename(path, trash)
        try:
            os.rename(tmp, path)
        except BaseException:
            if trash is not None:
                os.rename(trash, path)  # put the old directory back
                trash = None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
