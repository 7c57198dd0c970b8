"""How much memory ``distgnn partition`` may use, and which path fits in it.

*In memory* (the whole graph in RAM, METIS or KaMinPar on an in-memory symmetric CSR) when its estimate
fits the budget; otherwise *bounded*: the loader normalises the edges into a CSR on disk
(``distgnn.data.csr_on_disk``), KaMinPar partitions its compressed graph read from a file streamed out of
that CSR, and each part is built from the memory-mapped CSR on its own. METIS has no compressed mode, so a
METIS request that does not fit runs KaMinPar instead, and says so. The estimates are peak bytes per edge
and per node of the whole command, measured (benchmarks/README.md, "Partitioning under a memory budget").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from distgnn.data.shape import SourceShape
from distgnn.errors import DistGNNError

DEFAULT_SHARE = 0.5  # of the available memory, when no --memory-budget is given
# `distgnn partition` of 100 nodes peaks at 42 MB (METIS) and 48 MB (KaMinPar).
INTERPRETER_BYTES = 64 << 20
# In memory, per directed edge after symmetrising (at most twice the input edges): the loader's keys and
# CSR, the partitioner's symmetric copy and its own structures.
IN_MEMORY_BYTES_PER_EDGE = {"metis": 59, "kaminpar": 39, "random": 30, "contiguous": 30}
IN_MEMORY_BYTES_PER_NODE = 120
# Out of core: the node-sized arrays of relabelling and the part build, KaMinPar (terapart preset,
# compressed graph) per directed edge, and one part's edges while it is built. Measured: 5M nodes / 100M
# edges with ID locality peaked at 784 MB in all (benchmarks/README.md); KaMinPar alone took 7.5 bytes per
# edge on 2M nodes / 40M edges with locality, but 41 on the same kind of graph with randomly permuted IDs
# (partitioning/bounded.py): such a graph can overrun the budget, which the summary's peak RSS then shows.
BOUNDED_BYTES_PER_NODE = 60
KAMINPAR_BYTES_PER_EDGE = 6
PART_BYTES_PER_EDGE = 40
PART_IMBALANCE = 1.5  # a part's edges against the mean: KaMinPar balances nodes, not edges
MIN_CSR_BUDGET = 8 << 20

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20}
_UNITS |= {"g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_size(text: str) -> int:
    """``2GB``, ``1.5GiB``, ``512M``, ``2e9`` -> bytes (decimal units; ``iB`` ones binary)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise DistGNNError(f"not a memory size: {text!r} (examples: 12GB, 1.5GiB, 800MB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_size(n: float) -> str:
    """Bytes in GB or MB (decimal, as ``parse_size`` reads them back)."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _proc_kib(path: str, key: str) -> int | None:
    """The ``key:`` field of a /proc file, in bytes (Linux reports kB), or None off Linux."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_memory() -> int:
    """MemAvailable from /proc/meminfo (Linux), else the physical memory."""
    found = _proc_kib("/proc/meminfo", "MemAvailable")
    return found if found is not None else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def peak_rss() -> int:
    """This process's peak resident set (VmHWM: getrusage's maxrss also counts the RSS of the process
    that started it before its exec, a pytest worker or a shell's Python)."""
    found = _proc_kib("/proc/self/status", "VmHWM")
    if found is not None:
        return found
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


@dataclass(frozen=True)
class MemoryPlan:
    """Which path runs under ``budget`` bytes, with which method, and the one-line reason."""

    budget: int
    bounded: bool
    method: str
    why: str
    in_memory_need: int
    bounded_need: int
    csr_budget: int  # what the on-disk CSR build may hold (bounded path)
    disk_need: int = 0  # scratch space beside the output at its peak (bounded path)

    def as_meta(self) -> dict[str, object]:
        return {
            "budget_bytes": self.budget,
            "path": "bounded" if self.bounded else "in-memory",
            "why": self.why,
            "estimated_in_memory_bytes": self.in_memory_need,
            "estimated_bounded_bytes": self.bounded_need,
        }


def in_memory_need(shape: SourceShape, method: str) -> int:
    edges = 2 * shape.num_edges
    features = 8 * shape.num_nodes * shape.feat_dim  # the loaded float32 features and one copy
    nodes = IN_MEMORY_BYTES_PER_NODE * shape.num_nodes
    return INTERPRETER_BYTES + IN_MEMORY_BYTES_PER_EDGE[method] * edges + nodes + features


def bounded_need(shape: SourceShape, num_parts: int, method: str) -> tuple[int, int]:
    """(peak estimate, what the loader holds while the CSR is built: the raw edges and features, unless the
    source is read in pieces: ``SourceShape.streamed``). After
    loading, the features go to disk (``bounded.features_on_disk``)."""
    edges = 2 * shape.num_edges
    held = 0 if shape.streamed else 16 * shape.num_edges + 4 * shape.num_nodes * shape.feat_dim
    part = PART_BYTES_PER_EDGE * int(PART_IMBALANCE * edges / num_parts)
    kaminpar = KAMINPAR_BYTES_PER_EDGE * edges if method in ("metis", "kaminpar") else 0
    after = BOUNDED_BYTES_PER_NODE * shape.num_nodes + max(kaminpar, part)  # the features are on disk
    return INTERPRETER_BYTES + max(held + MIN_CSR_BUDGET, after), held


def plan_memory(shape: SourceShape | None, method: str, num_parts: int, budget: int) -> MemoryPlan:
    """The path for ``shape`` under ``budget``; a budget the bounded path cannot meet is one line. With no
    shape (its headers unreadable: the loader then says what is wrong) the path is in memory."""
    if shape is None:
        return MemoryPlan(budget, False, method, "in memory (the size is unknown before loading)", 0, 0, 0)
    whole = in_memory_need(shape, method)
    least, held = bounded_need(shape, num_parts, method)
    graph = f"{shape.num_nodes:,} nodes, {shape.num_edges:,} input edges" + (
        "" if shape.exact else " (estimated)"
    )
    if whole <= budget:
        why = f"fits in memory: about {format_size(whole)} for {graph}"
        return MemoryPlan(budget, False, method, why, whole, least, 0)
    if least > budget:
        raise DistGNNError(
            f"a memory budget of {format_size(budget)} is too small for {graph}: partitioning it needs "
            f"about {format_size(least)} out of core ({format_size(whole)} in memory); give "
            f"--memory-budget {format_size(least)} or more"
        )
    runs = "kaminpar" if method == "metis" else method
    why = f"out of core: in memory would need about {format_size(whole)} for {graph}"
    if method == "metis":
        why += "; METIS has no compressed mode, so KaMinPar partitions the compressed graph"
    csr_budget = max(MIN_CSR_BUDGET, (budget - INTERPRETER_BYTES - held) // 2)
    return MemoryPlan(budget, True, runs, why, whole, least, csr_budget, disk_need(shape))


def disk_need(shape: SourceShape) -> int:
    """Scratch beside the output at most: the CSR build's bucket files (8-byte keys, at most twice the
    input edges) while the CSR (4-byte indices) grows, or the CSR and KaMinPar's ParHIP copy of it; plus
    features moved to disk. The 1B-edge run measured 7.2 GB against this estimate's 16 GB."""
    edges = 2 * shape.num_edges
    return 12 * edges + 16 * shape.num_nodes + 4 * shape.num_nodes * shape.feat_dim
