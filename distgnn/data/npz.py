"""distgnn's own ``.npz`` node-classification schema: load (no pickle) and atomic save.

Schema (``distgnn.data.schema``): ``edge_src``, ``edge_dst`` int64 [E] (directed, may repeat); ``x`` float32
[N, F]; ``y`` int64 [N] (-1 = unlabelled); ``train_mask``, ``val_mask``, ``test_mask`` bool [N]; optional
``num_classes`` int64 scalar (else ``max(y) + 1``). N is the row count of ``x``.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from distgnn.data.assemble import CsrBuild, in_memory_csr
from distgnn.data.graph import Graph
from distgnn.data.progress import Stages
from distgnn.data.schema import REQUIRED, graph_from_arrays, schema_arrays
from distgnn.errors import DistGNNError


def load_npz(
    path: str | os.PathLike[str],
    *,
    symmetrize: bool = True,
    progress: bool = False,
    csr: CsrBuild = in_memory_csr,
) -> Graph:
    """Load a graph in the ``.npz`` schema and normalise its edges (see ``distgnn.data.normalize``) into a
    CSR built by ``csr``."""
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
                keys = [*REQUIRED, *(["num_classes"] if "num_classes" in data.files else [])]
                arrays = {k: data[k] for k in keys}
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise DistGNNError(f"{fname}: not a readable .npz file ({err})") from None
        except ValueError as err:  # object arrays refuse to load without pickle
            raise DistGNNError(f"{fname}: cannot read arrays without pickle ({err})") from None
        return graph_from_arrays(
            arrays, where=lambda *keys: fname, name=path.stem, symmetrize=symmetrize, stage=stage, csr=csr
        )


def save_npz(graph: Graph, path: str | os.PathLike[str], *, compress: bool = False) -> None:
    """Write ``graph`` in the ``.npz`` schema, atomically: a temp file in the same directory, then rename."""
    path = Path(path)
    if not path.parent.is_dir():
        raise DistGNNError(f"no such directory: {path.parent}")
    arrays = schema_arrays(graph)
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
