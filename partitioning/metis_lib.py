"""METIS 5.2 (KarypisLab, the library DGL vendors) called through ctypes, from the ``cmeel-metis`` wheel.

Why not only pymetis: pymetis ships METIS 5.1 with 64-bit indices and without 5.2's ``dropedges``. On
expander-like graphs (GNN graphs: average degree ~20, little locality) METIS's coarse graphs keep most of
the edges at every level (200k nodes / 4M edges: 4.0M, 3.8M, 3.7M, 3.6M, ... over 8 levels), so it holds
~16 bytes (adjncy + adjwgt) x 7 x the edges: 5.8 GB on 2M nodes / 40M edges. This wheel's METIS has
32-bit indices, which alone halves that (2.6 GB on that graph); its ``dropedges`` option (which DGL
sets) halves it again but cuts more edges on some graphs, so ``methods.METIS_OPTIONS`` leaves it off.

Only ``METIS_PartGraphKway`` is bound: the C signature is fixed by ``metis.h``; the index and real widths
are read from the installed header, never assumed.
"""

from __future__ import annotations

import ctypes
import functools
import re
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from distgnn.errors import DistGNNError

# Option slots of METIS 5.2's ``moptions_et`` (metis.h); METIS_NOPTIONS is 40.
NOPTIONS = 40
OPTION_INDEX = {
    "objtype": 1,
    "ctype": 2,
    "dbglvl": 5,
    "niparts": 6,
    "niter": 7,
    "ncuts": 8,
    "seed": 9,
    "no2hop": 10,
    "ufactor": 18,
    "numbering": 19,
    "dropedges": 20,
}
OBJTYPE = {"cut": 0, "vol": 1}
_STATUS = {-2: "input error", -3: "out of memory", -4: "internal error"}


@dataclass(frozen=True)
class MetisLib:
    """The loaded library and its index/real dtypes."""

    lib: ctypes.CDLL
    idx: type[np.integer]
    real: type[np.floating]

    def fits(self, num_nodes: int, num_adjacent: int) -> bool:
        """Whether the graph's IDs and adjacency length fit the library's index type."""
        return max(num_nodes, num_adjacent) <= np.iinfo(self.idx).max


def _file(dist: str, rel: str) -> str:
    files = metadata.files(dist) or []
    for f in files:
        if str(f) == rel:
            return str(f.locate())
    raise FileNotFoundError(f"{dist} has no {rel}")


@functools.cache
def load() -> MetisLib | None:
    """The METIS 5.2 library from cmeel-metis, or None when that wheel is not installed."""
    try:
        header = open(_file("cmeel-metis", "cmeel.prefix/include/metis.h")).read()
        libmetis = _file("cmeel-metis", "cmeel.prefix/lib/libmetis.so")
        libgk = _file("cmeel-gklib", "cmeel.prefix/lib/libGKlib.so")
    except (metadata.PackageNotFoundError, FileNotFoundError, OSError):
        return None
    widths = {k: int(v) for k, v in re.findall(r"#define\s+(IDXTYPEWIDTH|REALTYPEWIDTH)\s+(\d+)", header)}
    idx = {32: np.int32, 64: np.int64}.get(widths.get("IDXTYPEWIDTH", 0))
    real = {32: np.float32, 64: np.float64}.get(widths.get("REALTYPEWIDTH", 0))
    if idx is None or real is None or "METIS_OPTION_DROPEDGES" not in header:
        return None
    try:
        # libmetis's RUNPATH is malformed in the wheel ("$$ORIGIN"): load GKlib globally first.
        ctypes.CDLL(libgk, mode=ctypes.RTLD_GLOBAL)
        lib = ctypes.CDLL(libmetis)
    except OSError:
        return None
    lib.METIS_PartGraphKway.restype = ctypes.c_int
    lib.METIS_PartGraphKway.argtypes = [ctypes.c_void_p] * 13
    lib.METIS_SetDefaultOptions.restype = ctypes.c_int
    lib.METIS_SetDefaultOptions.argtypes = [ctypes.c_void_p]
    return MetisLib(lib=lib, idx=idx, real=real)


def part_graph_kway(
    metis: MetisLib,
    xadj: np.ndarray,
    adjncy: np.ndarray,
    num_parts: int,
    *,
    objective: str,
    seed: int,
    options: dict[str, int],
) -> np.ndarray:
    """``METIS_PartGraphKway`` on a symmetric simple CSR (no weights, one balance constraint).

    ``xadj``/``adjncy`` must already have the library's index dtype and be C-contiguous (no copy is made
    here, so the caller controls peak memory). ``options`` maps names of ``OPTION_INDEX`` to values; the
    rest keep METIS's defaults. Returns the part of every node as int64.
    """
    n = xadj.shape[0] - 1
    for name, arr in (("xadj", xadj), ("adjncy", adjncy)):
        if arr.dtype != metis.idx or not arr.flags.c_contiguous:
            raise TypeError(f"{name} must be a C-contiguous {np.dtype(metis.idx)} array")
    opts = np.full(NOPTIONS, -1, dtype=metis.idx)
    metis.lib.METIS_SetDefaultOptions(opts.ctypes.data)
    opts[OPTION_INDEX["objtype"]] = OBJTYPE[objective]
    opts[OPTION_INDEX["seed"]] = seed
    for name, value in options.items():
        opts[OPTION_INDEX[name]] = value
    part = np.empty(n, dtype=metis.idx)
    scalars = [np.array([v], dtype=metis.idx) for v in (n, 1, num_parts, 0)]
    nvtxs, ncon, nparts, objval = scalars
    status = metis.lib.METIS_PartGraphKway(
        nvtxs.ctypes.data,
        ncon.ctypes.data,
        xadj.ctypes.data,
        adjncy.ctypes.data,
        None,  # vwgt: every node weighs 1
        None,  # vsize
        None,  # adjwgt: every edge weighs 1
        nparts.ctypes.data,
        None,  # tpwgts: equal parts
        None,  # ubvec: from ufactor
        opts.ctypes.data,
        objval.ctypes.data,
        part.ctypes.data,
    )
    if status != 1:
        raise DistGNNError(f"METIS failed to partition the graph: {_STATUS.get(status, f'status {status}')}")
    return part.astype(np.int64)
